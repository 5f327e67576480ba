/* The secret stack: each thread that makes a secret call gets a stack of its
 * own, SECRETJIT_STACK_SIZE bytes, mlock'ed, left out of core dumps, zeroed in
 * forked children, with a PROT_NONE guard page below it.  secretjit_secret_call
 * switches to it, runs the kernel's call tree there and zeroes the bytes the
 * tree could have written before it switches back.  See secretmem.h.
 *
 * Signals.  A signal delivered mid-call pushes its frame (red zone skipped,
 * then up to AT_MINSIGSTKSZ bytes) below the interrupted stack pointer, and
 * the handler's frames go below that: possibly below the computed scrub
 * depth.  Between calls the secret stack is all zero below that depth (it is
 * zeroed when mapped, and every call zeroes what it may write), so after the
 * call a non-zero word in the window just below the depth means something
 * wrote deeper.  The window covers the whole range where a signal frame's
 * lowest word (x86-64: the restorer's return address; AArch64: siginfo's
 * si_signo) can lie, and every frame smaller than the window that starts
 * above the depth leaves a return address (or a saved lr) inside it when it
 * calls on.  Then the stack is scanned from the bottom for its deepest
 * non-zero word and zeroed from there: a cost paid only when it happened.
 * Every call keeps secretjit_signal_reserve() bytes free below its tree, so
 * that a signal does not run into the guard page.
 *
 * secretjit_secret_call_exact skips the frame window: the depth is exact (a
 * tree with no external callee, allowance or indirect call), so only a signal
 * frame can lie below it; the rseq-gated signal window check stays.  A tree
 * whose only allowances are the secret heap's marked C library calls
 * (marked.h) also takes it, with its hot depth (the heap's marked slow
 * paths left out): when a marked call ran (secretjit__inexact set), the call
 * scrubs the marked slack more and is checked like the plain one.  On x86-64
 * its common case (stack ready, rseq area, depth <= 512 B) is one assembly
 * function, the rest the same C code as secretjit_secret_call.
 *
 * Nested calls (the secret stack is in use by this thread: a callback into
 * Python that calls another secret kernel, a signal handler) return 1: the
 * caller's boundary runs the kernel in place and zeroes its depth below its
 * own stack pointer.
 *
 * Files: secretstack.c (this comment, the call and its scrub, the rseq
 * detector, the API), secretstack_setup.c (settings, mapping a thread's
 * stack, thread exit, fork); secretstack_internal.h (what they share). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "secretstack_internal.h"

#if defined(__has_include)
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif
#endif
#ifdef RSEQ_SIG
/* glibc >= 2.35 registers every thread's rseq area; weak, so that the library
 * still loads with an older glibc (then __rseq_size reads as absent). */
#pragma weak __rseq_offset
#pragma weak __rseq_size
#define HAVE_RSEQ 1
#endif

/* Checked below the depth after every call: any call chain that crosses
 * the depth with frames smaller than this minus 144 bytes (a callback into
 * Python, a deep destructor chain) leaves a return address in it.  The
 * whole signal window is checked when rseq says that the call may have been
 * interrupted (or when rseq is not available). */
#define FRAME_WINDOW 1024

/* This thread's stack and the settings: see secretstack_internal.h. */
__thread struct secret_stack tls_stack
    __attribute__((tls_model("initial-exec")));
struct stack_cfg SC;
static int detect_off;          /* secretjit_test_deep_scrub(0): tests only */
/* Added to an exact call's depth when a marked call ran (marked.h): the
 * most the runtime's marked paths go below its entries' hot depths, set by
 * secretjit_set_marked_slack; SIZE_MAX until then (the whole room). */
static size_t marked_slack = SIZE_MAX;
static uint64_t stack_fallbacks, signal_scrubs, nested_calls;
#ifdef HAVE_RSEQ
/* Interruption detector.  Before a call, the thread's rseq area points at
 * this critical-section descriptor, whose range is empty: when the kernel
 * delivers a signal to the thread (or preempts or migrates it) it finds the
 * interrupted address outside the range and clears the pointer.  So a
 * pointer still there after the call means that no signal frame was pushed
 * during it, and the 1 KiB frame window suffices; otherwise the whole signal
 * window is checked.  The descriptor must pass the kernel's checks (an
 * abort address preceded by the registered signature, RSEQ_SIG) or the
 * kernel kills the thread with SIGSEGV. */
static struct {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32))) rseq_desc;
static const uint32_t rseq_abort[2] __attribute__((aligned(8))) = { RSEQ_SIG, 0 };
static ptrdiff_t rseq_off;
static int rseq_ok;
#endif


/* Switch to the stack whose top is `top`, call fn(arg), switch back. */
void secretjit__call_on(void (*fn)(void *), void *arg, void *top);
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".type secretjit__call_on,@function\n"
    "secretjit__call_on:\n"
    ".cfi_startproc\n"
    "    pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "    movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "    movq %rdx, %rsp\n"
    "    movq %rdi, %rax\n"
    "    movq %rsi, %rdi\n"
    "    callq *%rax\n"
    "    movq %rbp, %rsp\n"
    "    popq %rbp\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    retq\n"
    ".cfi_endproc\n"
    ".size secretjit__call_on, .-secretjit__call_on\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".p2align 2\n"
    ".type secretjit__call_on,%function\n"
    "secretjit__call_on:\n"
    ".cfi_startproc\n"
    "    stp x29, x30, [sp, #-16]!\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset x29, -16\n"
    ".cfi_offset x30, -8\n"
    "    mov x29, sp\n"
    ".cfi_def_cfa_register x29\n"
    "    mov sp, x2\n"
    "    mov x9, x0\n"
    "    mov x0, x1\n"
    "    blr x9\n"
    "    mov sp, x29\n"
    "    ldp x29, x30, [sp], #16\n"
    ".cfi_def_cfa sp, 0\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size secretjit__call_on, .-secretjit__call_on\n");
#else
#error "secretjit's secret stack supports x86-64 and AArch64"
#endif

/* Whether any byte of [p, p + n) is non-zero (n a multiple of 8).
 * Paid after every plain call for the frame window (and for the signal
 * window when rseq says the call may have been interrupted): ORs of four
 * vectors a loop step.  On x86-64 one body per vector width, chosen once
 * when the library is loaded (an ifunc): 64-byte zmm loads with AVX-512,
 * 32-byte ymm with AVX2, 16-byte xmm otherwise.  (target_clones of one body
 * with a 64-byte vector type, before: GCC lowers the 64-byte ORs for the
 * AVX2 and SSE2 clones through stack spills, 100 ns for the 1 KiB frame
 * window on an AVX2 machine, measured in issue 15.)  AArch64: 32-byte
 * vectors, two q registers each, so that the loop fits in v0-v7 and v16-v31
 * and never touches the callee-saved v8-v15 (saving d8-d15 would zero their
 * high halves, which the caller may still hold). */
typedef uint64_t v16 __attribute__((vector_size(16), aligned(8)));
typedef uint64_t v32 __attribute__((vector_size(32), aligned(8)));
#if defined(__x86_64__)
typedef uint64_t v64 __attribute__((vector_size(64), aligned(8)));
#else
typedef v32 v64;
#endif
#define ANY_NONZERO(name, T, attrs)                                         \
    attrs static int name(const char *p, size_t n)                          \
    {                                                                       \
        T acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};                   \
        uint64_t r = 0, t;                                                  \
        size_t i = 0;                                                       \
        unsigned k;                                                         \
        const size_t v = sizeof(T);                                         \
        for (; i + 4 * v <= n; i += 4 * v) {                                \
            acc0 |= *(const T *)(p + i);                                    \
            acc1 |= *(const T *)(p + i + v);                                \
            acc2 |= *(const T *)(p + i + 2 * v);                            \
            acc3 |= *(const T *)(p + i + 3 * v);                            \
        }                                                                   \
        acc0 |= acc1 | acc2 | acc3;                                         \
        for (k = 0; k < v / 8; k++)                                         \
            r |= acc0[k];                                                   \
        for (; i < n; i += 8) {                                             \
            memcpy(&t, p + i, 8);                                           \
            r |= t;                                                         \
        }                                                                   \
        return r != 0;                                                      \
    }
#if defined(__x86_64__)
ANY_NONZERO(any_nonzero_avx512, v64, __attribute__((target("avx512f"))))
ANY_NONZERO(any_nonzero_avx2, v32, __attribute__((target("avx2"))))
ANY_NONZERO(any_nonzero_sse2, v16, )
typedef int any_nonzero_fn(const char *, size_t);
static any_nonzero_fn *resolve_any_nonzero(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return any_nonzero_avx512;
    if (__builtin_cpu_supports("avx2"))
        return any_nonzero_avx2;
    return any_nonzero_sse2;
}
static int any_nonzero(const char *p, size_t n)
    __attribute__((ifunc("resolve_any_nonzero")));
#else
ANY_NONZERO(any_nonzero, v32, )
#endif

/* Zero [p, end) after a call (the scrub), n = end - p a multiple of 8.
 * glibc's memset switches to `rep stosb` above 2 KiB, which cost about 10 ns
 * more than vector stores for a 2.6 KiB scrub here (benchmarks/boundary.py;
 * below that memset is faster): 64-byte stores from the first 64-byte
 * boundary, cloned like any_nonzero.  The empty asm keeps the compiler from
 * turning the loops into memset. */
#define VECTOR_SCRUB 2048
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
static void zero_range(char *p, char *end)
{
    const v64 zero = {0};
    const size_t v = sizeof(v64);
    for (; ((uintptr_t)p & (v - 1)) && p < end; p += 8) {
        __asm__ volatile("" : : : "memory");
        *(uint64_t *)p = 0;
    }
    for (; p + 4 * v <= end; p += 4 * v) {
        __asm__ volatile("" : : : "memory");
        *(v64 *)p = zero;
        *(v64 *)(p + v) = zero;
        *(v64 *)(p + 2 * v) = zero;
        *(v64 *)(p + 3 * v) = zero;
    }
    for (; p + v <= end; p += v) {
        __asm__ volatile("" : : : "memory");
        *(v64 *)p = zero;
    }
    for (; p < end; p += 8) {
        __asm__ volatile("" : : : "memory");
        *(uint64_t *)p = 0;
    }
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Scrubs of at most INLINE_SCRUB bytes, a multiple of 32 (s->hi is 16-byte
 * aligned): 16-byte stores in line, no call.  memset through
 * secretjit__wipe and the PLT cost 5.3 ns for 160 B on an AVX2 EPYC (issue
 * 15, benchmarks/fastcall.py: the exact call's largest part); on a Zen 4
 * with AVX-512 in-line stores were measured 0.2 ns faster in the exact call
 * and 1.5 ns slower in the plain one. */
#define INLINE_SCRUB 512
typedef uint64_t scrub16 __attribute__((vector_size(16), aligned(16)));

static inline void zero_small(char *p, size_t n)
{
    const scrub16 zero = {0};
    char *end = p + n;
    for (; p < end; p += 32) {
        __asm__ volatile("" : : : "memory");    /* no memset call */
        *(scrub16 *)p = zero;
        *(scrub16 *)(p + 16) = zero;
    }
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* The scrub: zero [below, s->hi), and remember how deep calls zeroed (the
 * span the stack's release zeroes again, secretstack_setup.c). */
static inline void zero_from(struct secret_stack *s, char *below)
{
    size_t n = (size_t)(s->hi - below);
    if (n > s->used)
        s->used = n;
    if (n <= INLINE_SCRUB && (n & 31) == 0)
        zero_small(below, n);
    else if (n > VECTOR_SCRUB && (n & 7) == 0)
        zero_range(below, s->hi);
    else
        secretjit__wipe(below, n);
}

/* The lowest address of s whose 16 bytes are not all zero (s->hi if none). */
__attribute__((cold, noinline))
static char *deepest_write(struct secret_stack *s)
{
    char *p = s->lo;
    size_t chunk = 4096;
    while (p < s->hi) {
        size_t n = (size_t)(s->hi - p) < chunk ? (size_t)(s->hi - p) : chunk;
        if (any_nonzero(p, n)) {
            while (!any_nonzero(p, 16))
                p += 16;
            return p;
        }
        p += n;
    }
    return s->hi;
}

/* From the setup's init, once: use this thread library's rseq areas if
 * glibc registers them. */
void secretjit__stack_rseq_init(void)
{
#ifdef HAVE_RSEQ
    if (&__rseq_size != NULL && &__rseq_offset != NULL && __rseq_size >= 16) {
        rseq_desc.abort_ip = (uint64_t)(uintptr_t)&rseq_abort[1];
        rseq_desc.start_ip = rseq_desc.abort_ip;   /* empty range */
        rseq_off = __rseq_offset;
        rseq_ok = 1;
    }
#endif
}

/* The thread's rseq area (glibc's), or NULL when this thread has none. */
static inline char *rseq_area(void)
{
#ifdef HAVE_RSEQ
    char *r;
    if (!rseq_ok)
        return NULL;
    r = (char *)__builtin_thread_pointer() + rseq_off;
    /* cpu_id (offset 4) is -1 or -2 until the kernel accepted the area. */
    if (__atomic_load_n((int32_t *)(r + 4), __ATOMIC_RELAXED) < 0)
        return NULL;
    return r;
#else
    return NULL;
#endif
}

/* After the call: check below the depth (see the top), then the scrub. */
__attribute__((always_inline))
static inline void scrub_after(struct secret_stack *s, size_t scrub, int exact,
                               int interrupted)
{
    char *below = s->hi - scrub;
    if (__builtin_expect(exact ? interrupted && any_nonzero(below - SC.sig_window,
                                                            SC.sig_window)
                         : any_nonzero(below - FRAME_WINDOW, FRAME_WINDOW)
                         || (interrupted && any_nonzero(below - SC.sig_window,
                                                        SC.sig_window - FRAME_WINDOW)), 0)
        && !__atomic_load_n(&detect_off, __ATOMIC_RELAXED)) {
        /* Something wrote below the computed depth. */
        below = deepest_write(s);
        __atomic_add_fetch(&signal_scrubs, 1, __ATOMIC_RELAXED);
        /* The checks loaded stack bytes into vector registers, which an
         * exact tree's boundary may not zero (stack_bound/vregs.py). */
        secretjit__clear_vregs();
    }
    zero_from(s, below);
}

/* The scrub depth of an exact call in which a marked call ran: the caller's
 * `scrub` may be the tree's hot depth (its runtime entries' marked paths
 * left out, stack_bound.native.runtime_bounds), so the slack is added, up
 * to the room (no tree is deeper: the compiler checks its full depth). */
static inline size_t marked_scrub(const struct secret_stack *s, size_t scrub)
{
    size_t slack = __atomic_load_n(&marked_slack, __ATOMIC_RELAXED);
    return slack >= s->room - scrub ? s->room : scrub + slack;
}

/* The call; `exact`: the caller's scrub depth is an exact bound of the
 * tree (secretjit_secret_call_exact), or its hot depth. */
__attribute__((always_inline))
static inline int secret_call(void (*fn)(void *), void *arg, size_t scrub,
                              int exact)
{
    struct secret_stack *s = &tls_stack;
    char *rseq;
    uint64_t saved = 0, mark = 0;
    int interrupted = 1;
    if (s->active) {                    /* nested: the caller runs fn in place */
        __atomic_add_fetch(&nested_calls, 1, __ATOMIC_RELAXED);
        return 1;
    }
    if (s->map == NULL && (s->failed || secretjit__stack_setup(s) != 0)) {
        s->failed = 1;
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (scrub > s->room) {
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (__builtin_expect(!s->locked, 0))
        secretjit__stack_retry_lock(s);
    rseq = rseq_area();
    /* The x86-64 exact entry's gate, opened here once the stack is ready
     * (secretjit__stack_gate_off closes it whenever that changes). */
    if (__builtin_expect(!s->fast_room, 0) && rseq && s->locked) {
        s->rseq = rseq;
        s->fast_room = s->room < INLINE_SCRUB ? s->room : INLINE_SCRUB;
        if (s->used < s->fast_room)     /* the fast path does not count it */
            s->used = s->fast_room;
    }
    if (rseq) {
#ifdef HAVE_RSEQ
        mark = (uint64_t)(uintptr_t)&rseq_desc;
#endif
        saved = __atomic_load_n((uint64_t *)(rseq + 8), __ATOMIC_RELAXED);
        __atomic_store_n((uint64_t *)(rseq + 8), mark, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    if (exact)                          /* semiexact: see marked.h */
        secretjit__inexact = 0;
    s->active = 1;
    secretjit__call_on(fn, arg, s->hi);
    s->active = 0;
    if (exact && __builtin_expect(secretjit__inexact, 0)) {
        exact = 0;      /* a marked call ran: check like the plain entry */
        scrub = marked_scrub(s, scrub);
    }
    if (rseq) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        interrupted = __atomic_load_n((uint64_t *)(rseq + 8), __ATOMIC_RELAXED) != mark;
        /* Restored, so that a secret call from a signal handler arriving
         * just now cannot hide an earlier interruption from its caller. */
        __atomic_store_n((uint64_t *)(rseq + 8), saved, __ATOMIC_RELAXED);
    }
    scrub_after(s, scrub, exact, interrupted);
    return 0;
}

int secretjit_secret_call(void (*fn)(void *), void *arg, size_t scrub)
{
    return secret_call(fn, arg, scrub, 0);
}

/* The exact entry when its fast path does not apply (nested, no stack yet,
 * too deep, not locked, no rseq area), and on architectures without one.
 * noipa: the x86-64 fast path below jumps here with the entry's arguments. */
__attribute__((used, noinline, noipa))
static int secret_call_exact_slow(void (*fn)(void *), void *arg, size_t scrub)
{
    return secret_call(fn, arg, scrub, 1);
}

#if defined(__x86_64__) && defined(HAVE_RSEQ)
/* After an exact call that was interrupted or ran a marked C library call
 * (marked.h: secretjit__inexact, which the fast path clears before the call
 * as secret_call does), cold: the checks and the scrub as secret_call does
 * them, the frame window too when the flag is set; returns 0. */
__attribute__((used, noinline, noipa, cold))
static int exact_tail(struct secret_stack *s, size_t scrub, int interrupted)
{
    int marked = secretjit__inexact != 0;
    scrub_after(s, marked ? marked_scrub(s, scrub) : scrub, !marked, interrupted);
    return 0;
}


/* Offsets of struct secret_stack the assembly below uses. */
#define SS_HI 24
#define SS_GATE 48
#define SS_RSEQ 56
#define SS_ACTIVE 64
_Static_assert(offsetof(struct secret_stack, hi) == SS_HI, "hi");
_Static_assert(offsetof(struct secret_stack, fast_room) == SS_GATE, "fast_room");
_Static_assert(offsetof(struct secret_stack, rseq) == SS_RSEQ, "rseq");
_Static_assert(offsetof(struct secret_stack, active) == SS_ACTIVE, "active");
#define SS_STR_(x) #x
#define SS_STR(x) SS_STR_(x)
#define SS(field) SS_STR(SS_##field)

/* secretjit_secret_call_exact on x86-64 (issue 15): secret_call(fn, arg,
 * scrub, 1), step by step in the same order, for a thread whose stack is set
 * up, locked and not in use, with an rseq area, and a scrub depth of at most
 * INLINE_SCRUB bytes, a multiple of 32 and not 0 (the loop stores before it
 * counts: it would zero 32 bytes); anything else goes to
 * secret_call_exact_slow with the arguments untouched, an interrupted call
 * or one that ran a marked C library call to exact_tail.  The stack's gate
 * (fast_room: secret_call opens it when the stack is mapped and locked and
 * the rseq area registered, with `used` raised to it, so the fast path
 * neither checks those nor counts its depth) and the cached rseq area
 * leave four checks of nine (6.3 -> 4.6 ns per call of depth 160 in
 * benchmarks/fastcall.py's C loop on an Intel Xeon), and the common path
 * takes no branch but the call, the scrub loop and the return.  One function
 * instead of three (the entry, secretjit__call_on, memset): no callee-saved register but rbp (the depth
 * and the saved rseq_cs are kept in its frame, the stack's TLS offset and
 * the rseq area loaded again after the call: 1 ns less than keeping them in
 * four saved registers), the switch in line (the CFA is rbp-based, so
 * unwinders walk out of the secret stack), the
 * scrub as 16-byte stores (32-byte AVX stores with vzeroupper were 0.3 ns
 * faster in benchmarks/fastcall.py's C loop but 8 ns slower in the JIT's
 * trivial call, benchmarks/exact_call.py --runtime, on an AVX2 EPYC). */
__asm__(
    ".text\n"
    ".globl secretjit_secret_call_exact\n"
    ".p2align 4\n"
    ".type secretjit_secret_call_exact,@function\n"
    "secretjit_secret_call_exact:\n"
    ".cfi_startproc\n"
    "    movq secretjit__stack_tls@gottpoff(%rip), %rax\n"
    "    cmpl $0, %fs:" SS(ACTIVE) "(%rax)\n"
    "    jne 8f\n"
    "    leaq -1(%rdx), %rcx\n"
    "    cmpq %rcx, %fs:" SS(GATE) "(%rax)\n"  /* ready, locked, rseq, */
    "    jbe 8f\n"                         /* 0 < depth <= min(room, 512) */
    "    testb $31, %dl\n"
    "    jne 8f\n"
    "    movq %fs:" SS(RSEQ) "(%rax), %rcx\n"  /* the rseq area */
    "    cmpl $0, 4(%rcx)\n"                /* cpu_id < 0: not registered */
    "    jl 8f\n"
    "    pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "    movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "    pushq %rdx\n"                      /* scrub, at -8(%rbp) */
    "    pushq 8(%rcx)\n"                   /* saved rseq_cs, at -16(%rbp) */
    "    leaq rseq_desc(%rip), %r8\n"
    "    movq %r8, 8(%rcx)\n"               /* mark */
    "    movq secretjit__inexact@gottpoff(%rip), %r9\n"
    "    movl $0, %fs:(%r9)\n"               /* no marked call yet */
    "    movl $1, %fs:" SS(ACTIVE) "(%rax)\n"
    "    movq %fs:" SS(HI) "(%rax), %rsp\n" /* onto the secret stack */
    "    movq %rdi, %r8\n"
    "    movq %rsi, %rdi\n"
    "    callq *%r8\n"
    "    leaq -16(%rbp), %rsp\n"            /* back */
    "    movq secretjit__stack_tls@gottpoff(%rip), %rdx\n"
    "    movl $0, %fs:" SS(ACTIVE) "(%rdx)\n"
    "    movq %fs:" SS(RSEQ) "(%rdx), %rcx\n"
    "    movq 8(%rcx), %rax\n"
    "    popq %rsi\n"
    "    movq %rsi, 8(%rcx)\n"              /* restored */
    "    leaq rseq_desc(%rip), %rsi\n"
    "    cmpq %rsi, %rax\n"
    "    popq %rsi\n"                       /* scrub */
    "    jne 7f\n"                          /* interrupted */
    "    movq secretjit__inexact@gottpoff(%rip), %rax\n"
    "    cmpl $0, %fs:(%rax)\n"
    "    jne 5f\n"                          /* a marked call ran */
    "    movq %fs:" SS(HI) "(%rdx), %rdi\n"
    "    subq %rsi, %rdi\n"                 /* below */
    "    xorps %xmm0, %xmm0\n"             /* zero [below, hi), down */
    "2:  subq $32, %rsi\n"                 /* (scrub 0: [hi - 32, hi)) */
    "    movaps %xmm0, (%rdi,%rsi)\n"
    "    movaps %xmm0, 16(%rdi,%rsi)\n"
    "    ja 2b\n"
    "    xorl %eax, %eax\n"
    "6:  popq %rbp\n"
    ".cfi_remember_state\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    retq\n"
    ".cfi_restore_state\n"
    "5:  movq %fs:0, %rdi\n"
    "    addq %rdx, %rdi\n"                 /* s; scrub in rsi */
    "    xorl %edx, %edx\n"                 /* not interrupted */
    "    jmp 3f\n"
    "7:  movq %fs:0, %rdi\n"
    "    addq %rdx, %rdi\n"                 /* s; scrub in rsi */
    "    movl $1, %edx\n"                   /* interrupted */
    "3:  callq exact_tail\n"                /* rsp = rbp: 16-byte aligned */
    "    jmp 6b\n"
    ".cfi_def_cfa %rsp, 8\n"
    ".cfi_restore %rbp\n"
    "8:  jmp secret_call_exact_slow\n"      /* before the push */
    ".cfi_endproc\n"
    ".size secretjit_secret_call_exact, .-secretjit_secret_call_exact\n");
#else
/* See the top: only the signal window is checked (when interrupted). */
int secretjit_secret_call_exact(void (*fn)(void *), void *arg, size_t scrub)
{
    return secret_call_exact_slow(fn, arg, scrub);
}
#endif

int secretjit_stack_range(uintptr_t *lo, uintptr_t *hi)
{
    struct secret_stack *s = &tls_stack;
    if (s->map == NULL)
        return 0;
    *lo = (uintptr_t)s->lo;
    *hi = (uintptr_t)s->hi;
    return 1;
}

size_t secretjit_signal_reserve(void)
{
    secretjit__stack_once();
    return SC.sig_reserve;
}

int secretjit__deep_scrub_off(void)
{
    return __atomic_load_n(&detect_off, __ATOMIC_RELAXED);
}

int secretjit_test_deep_scrub(int on)
{
    return !__atomic_exchange_n(&detect_off, !on, __ATOMIC_RELAXED);
}

void secretjit_set_marked_slack(size_t bytes)
{
    __atomic_store_n(&marked_slack, bytes, __ATOMIC_RELAXED);
}

size_t secretjit_marked_slack(void)
{
    return __atomic_load_n(&marked_slack, __ATOMIC_RELAXED);
}

size_t secretjit_signal_window(void)
{
    secretjit__stack_once();
    return SC.sig_window;
}

void secretjit__stack_stats(struct secretjit_memstats *out)
{
    secretjit__stack_once();
    out->stack_size = SC.stack_size;
    out->stacks_created = __atomic_load_n(&SC.stacks_created, __ATOMIC_RELAXED);
    out->stack_fallbacks = __atomic_load_n(&stack_fallbacks, __ATOMIC_RELAXED);
    out->signal_scrubs = __atomic_load_n(&signal_scrubs, __ATOMIC_RELAXED);
    out->nested_calls = __atomic_load_n(&nested_calls, __ATOMIC_RELAXED);
    out->signal_reserve = SC.sig_reserve;
    out->rseq = rseq_area() != NULL;
}
