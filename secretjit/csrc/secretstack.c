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
 * Nested calls (the secret stack is in use by this thread: a callback into
 * Python that calls another secret kernel, a signal handler) return 1: the
 * caller's boundary runs the kernel in place and zeroes its depth below its
 * own stack pointer.
 *
 * Fork: the child's stack is re-locked (mlock is not inherited), the stacks
 * of the parent's other threads (which do not exist in the child) are
 * unmapped, and locked_bytes counts what the child really has locked. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secretmem.h"

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

#define DEFAULT_STACK ((size_t)256 << 10)
#define MIN_STACK ((size_t)4 << 10)
#define MAX_STACK ((size_t)1 << 30)
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif
#if defined(__x86_64__)
#define RED_ZONE 128
#else
#define RED_ZONE 0
#endif
/* Slack for the kernel's alignment of the frame (16 bytes, -8 on x86-64). */
#define WINDOW_MARGIN 64
/* Checked below the depth after every call: any call chain that crosses
 * the depth with frames smaller than this minus 144 bytes (a callback into
 * Python, a deep destructor chain) leaves a return address in it.  The
 * whole signal window is checked when rseq says that the call may have been
 * interrupted (or when rseq is not available). */
#define FRAME_WINDOW 1024
/* Stack for the handler's own frames, in the reserve (CPython's C handler
 * and glibc's write() use a few hundred bytes). */
#define HANDLER_ALLOWANCE 4096
/* When neither the kernel (AT_MINSIGSTKSZ) nor libc knows the frame size. */
#define FALLBACK_SIGFRAME 16384
#define MAX_LOCK_BACKOFF 1024u

struct secret_stack {
    char *map;          /* guard page + stack */
    size_t map_len;
    char *lo, *hi;      /* usable [lo, hi); hi is 16-byte aligned */
    size_t room;        /* largest scrub depth a call may have */
    int active;         /* a secret call is running on this stack */
    int failed;         /* setup failed once: do not retry on every call */
    int locked;         /* the stack is mlock'ed (and counted) */
    unsigned lock_skip, lock_backoff;   /* retrying a failed mlock */
    struct secret_stack *prev, *next;   /* registry, under reg_lock */
};

/* initial-exec: no __tls_get_addr call on every secret call (the struct is
 * small enough for the static TLS surplus glibc keeps for dlopen). */
static __thread struct secret_stack tls_stack
    __attribute__((tls_model("initial-exec")));
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int key_ok;
static size_t stack_size, page_size, sig_window, sig_reserve;
static int detect_off;          /* secretjit_test_deep_scrub(0): tests only */
static uint64_t stacks_created, stack_fallbacks, signal_scrubs, nested_calls;
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

/* Every thread's mapped stack, for fork (setup and thread exit only). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret_stack *registry;

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
 * Paid on every call for the signal window: ORs of 64-byte vectors (one
 * zmm load with AVX-512, two ymm with AVX2, four xmm otherwise), cloned for
 * those on x86-64 and resolved once when the library is loaded. */
#if defined(__x86_64__)
typedef uint64_t v64 __attribute__((vector_size(64), aligned(8)));
#else
/* AArch64: two q registers per vector, so that the loop fits in v0-v7 and
 * v16-v31 and never touches the callee-saved v8-v15 (saving d8-d15 would
 * zero their high halves, which the caller may still hold). */
typedef uint64_t v64 __attribute__((vector_size(32), aligned(8)));
#endif
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
static int any_nonzero(const char *p, size_t n)
{
    v64 acc0 = {0}, acc1 = {0}, acc2 = {0}, acc3 = {0};
    uint64_t r = 0, t;
    size_t i = 0;
    unsigned k;
    const size_t v = sizeof(v64);
    for (; i + 4 * v <= n; i += 4 * v) {
        acc0 |= *(const v64 *)(p + i);
        acc1 |= *(const v64 *)(p + i + v);
        acc2 |= *(const v64 *)(p + i + 2 * v);
        acc3 |= *(const v64 *)(p + i + 3 * v);
    }
    acc0 |= acc1 | acc2 | acc3;
    for (k = 0; k < v / 8; k++)
        r |= acc0[k];
    for (; i < n; i += 8) {
        memcpy(&t, p + i, 8);
        r |= t;
    }
    return r != 0;
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

static void unregister(struct secret_stack *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (registry == s)
        registry = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void unmap(struct secret_stack *s)
{
    /* Nothing is left to wipe (every call zeroes what it wrote), and
     * unmapped pages reach no one: the kernel zeroes them for reuse. */
    secretjit__unmap_secret(s->map, s->map_len);
    if (s->locked)
        secretjit__unlocked(s->hi - s->lo);
    s->map = s->lo = s->hi = NULL;
    s->locked = 0;
}

static void release(void *unused)
{
    struct secret_stack *s = &tls_stack;
    (void)unused;
    if (s->map) {
        pthread_mutex_lock(&reg_lock);
        unregister(s);
        pthread_mutex_unlock(&reg_lock);
        unmap(s);
    }
}

static void fork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&reg_lock); }

static void fork_child(void)
{
    struct secret_stack *s, *next, *mine = &tls_stack;
    /* The other threads do not exist here: their stacks (zero, by
     * MADV_WIPEONFORK, and not locked: mlock is not inherited) go. */
    for (s = registry; s; s = next) {
        next = s->next;
        if (s != mine) {
            unregister(s);
            unmap(s);
        }
    }
    if (mine->map && mine->locked) {
        secretjit__unlocked(mine->hi - mine->lo);
        mine->locked = secretjit__lock_onfault(mine->lo, mine->hi - mine->lo) == 0;
    }
    pthread_mutex_init(&reg_lock, NULL);
}

static size_t signal_frame_size(void)
{
    size_t f = (size_t)getauxval(AT_MINSIGSTKSZ);
#ifdef _SC_MINSIGSTKSZ
    long c = sysconf(_SC_MINSIGSTKSZ);
    if (c > 0 && (size_t)c > f)
        f = (size_t)c;
#endif
    if (f == 0)
        f = FALLBACK_SIGFRAME;
    return f;
}

static void init(void)
{
    long p = sysconf(_SC_PAGESIZE);
    int err;
    page_size = p > 0 ? (size_t)p : 4096;
    stack_size = secretjit__env_size("SECRETJIT_STACK_SIZE", DEFAULT_STACK,
                                     MIN_STACK, MAX_STACK);
    stack_size = (stack_size + page_size - 1) & ~(page_size - 1);
    sig_window = (RED_ZONE + signal_frame_size() + WINDOW_MARGIN + 63)
                 & ~(size_t)63;
    sig_reserve = sig_window + HANDLER_ALLOWANCE;
#ifdef HAVE_RSEQ
    if (&__rseq_size != NULL && &__rseq_offset != NULL && __rseq_size >= 16) {
        rseq_desc.abort_ip = (uint64_t)(uintptr_t)&rseq_abort[1];
        rseq_desc.start_ip = rseq_desc.abort_ip;   /* empty range */
        rseq_off = __rseq_offset;
        rseq_ok = 1;
    }
#endif
    err = pthread_key_create(&exit_key, release);
    key_ok = err == 0;
    if (!key_ok)
        fprintf(stderr, "secretjit: error: pthread_key_create failed (%s): "
                "the process has used up its PTHREAD_KEYS_MAX thread-specific "
                "keys, so a thread's secret stack could not be released when "
                "it exits.  Secret calls run on the calling thread's own "
                "stack instead, which is zeroed in place after each call "
                "(counted in memory_status()['stack_fallbacks']); that stack "
                "is not locked or left out of core dumps.  Fix: load "
                "secretjit before the code that creates so many keys.\n",
                strerror(err));
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static int setup(struct secret_stack *s)
{
    char *m;
    size_t len;
    pthread_once(&once, init);
    if (!key_ok)
        return -1;
    len = stack_size + page_size;
    m = secretjit__map_secret(len, PROT_READ | PROT_WRITE,
                              MAP_NORESERVE | MAP_STACK);
    if (m == MAP_FAILED)
        return -1;
    if (mprotect(m, page_size, PROT_NONE) != 0) {       /* the guard page */
        secretjit__unmap_secret(m, len);
        return -1;
    }
    if (pthread_setspecific(exit_key, s) != 0) {
        secretjit__unmap_secret(m, len);
        return -1;
    }
    s->map = m;
    s->map_len = len;
    s->lo = m + page_size;
    s->hi = m + len;
    s->room = stack_size > sig_reserve ? stack_size - sig_reserve : 0;
    /* Locked on fault: a page is locked when a call first touches it, so a
     * thread's first call does not fault in (and zero) all 256 KiB, only
     * the pages its call tree uses (issue 15: the first call went from about
     * 23 to about 3.5 us).  Fresh anonymous pages are zero. */
    s->locked = secretjit__lock_onfault(s->lo, stack_size) == 0;
    s->lock_skip = 0;
    s->lock_backoff = s->locked ? 0 : 1;
    /* A stack without mlock: touch every page now, so that it does not
     * fault in pages in the middle of a call. */
    if (!s->locked)
        secretjit__wipe(s->lo, stack_size);
    pthread_mutex_lock(&reg_lock);
    s->prev = NULL;
    s->next = registry;
    if (registry)
        registry->prev = s;
    registry = s;
    pthread_mutex_unlock(&reg_lock);
    __atomic_add_fetch(&stacks_created, 1, __ATOMIC_RELAXED);
    return 0;
}

/* The stack could not be locked when it was set up: retry, less and less
 * often while it keeps failing (the warning named the budget). */
__attribute__((cold, noinline))
static void retry_lock(struct secret_stack *s)
{
    if (s->lock_skip) {
        s->lock_skip--;
        return;
    }
    if (secretjit__lock_onfault(s->lo, (size_t)(s->hi - s->lo)) == 0) {
        s->locked = 1;
        s->lock_backoff = 0;
        return;
    }
    s->lock_skip = s->lock_backoff;
    s->lock_backoff = s->lock_backoff * 2 > MAX_LOCK_BACKOFF
                      ? MAX_LOCK_BACKOFF : s->lock_backoff * 2 + 1;
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

int secretjit_secret_call(void (*fn)(void *), void *arg, size_t scrub)
{
    struct secret_stack *s = &tls_stack;
    char *below, *rseq;
    uint64_t saved = 0, mark = 0;
    int interrupted = 1;
    if (s->active) {                    /* nested: the caller runs fn in place */
        __atomic_add_fetch(&nested_calls, 1, __ATOMIC_RELAXED);
        return 1;
    }
    if (s->map == NULL && (s->failed || setup(s) != 0)) {
        s->failed = 1;
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (scrub > s->room) {
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (__builtin_expect(!s->locked, 0))
        retry_lock(s);
    rseq = rseq_area();
    if (rseq) {
#ifdef HAVE_RSEQ
        mark = (uint64_t)(uintptr_t)&rseq_desc;
#endif
        saved = __atomic_load_n((uint64_t *)(rseq + 8), __ATOMIC_RELAXED);
        __atomic_store_n((uint64_t *)(rseq + 8), mark, __ATOMIC_RELAXED);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    }
    s->active = 1;
    secretjit__call_on(fn, arg, s->hi);
    s->active = 0;
    if (rseq) {
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        interrupted = __atomic_load_n((uint64_t *)(rseq + 8), __ATOMIC_RELAXED) != mark;
        /* Restored, so that a secret call from a signal handler arriving
         * just now cannot hide an earlier interruption from its caller. */
        __atomic_store_n((uint64_t *)(rseq + 8), saved, __ATOMIC_RELAXED);
    }
    below = s->hi - scrub;
    if (__builtin_expect(any_nonzero(below - FRAME_WINDOW, FRAME_WINDOW)
                         || (interrupted && any_nonzero(below - sig_window,
                                                        sig_window - FRAME_WINDOW)), 0)
        && !__atomic_load_n(&detect_off, __ATOMIC_RELAXED)) {
        /* Something wrote below the computed depth. */
        below = deepest_write(s);
        __atomic_add_fetch(&signal_scrubs, 1, __ATOMIC_RELAXED);
    }
    secretjit__wipe(below, (size_t)(s->hi - below));
    return 0;
}

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
    pthread_once(&once, init);
    return sig_reserve;
}

int secretjit_test_deep_scrub(int on)
{
    return !__atomic_exchange_n(&detect_off, !on, __ATOMIC_RELAXED);
}

size_t secretjit_signal_window(void)
{
    pthread_once(&once, init);
    return sig_window;
}

void secretjit__stack_stats(struct secretjit_memstats *out)
{
    pthread_once(&once, init);
    out->stack_size = stack_size;
    out->stacks_created = __atomic_load_n(&stacks_created, __ATOMIC_RELAXED);
    out->stack_fallbacks = __atomic_load_n(&stack_fallbacks, __ATOMIC_RELAXED);
    out->signal_scrubs = __atomic_load_n(&signal_scrubs, __ATOMIC_RELAXED);
    out->nested_calls = __atomic_load_n(&nested_calls, __ATOMIC_RELAXED);
    out->signal_reserve = sig_reserve;
    out->rseq = rseq_area() != NULL;
}
