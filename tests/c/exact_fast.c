/* The paths of secretjit_secret_call_exact (tests/test_exact_call.py builds
 * it natively and for AArch64 under qemu, where the C entry runs).
 *
 * paint writes a marker into every word of [hi - span, hi - 16) of the
 * secret stack (below its own return address at hi - 8; it has no frame):
 *   fast/N   span = N, scrub N: every depth the x86-64 fast path takes
 *            (N <= 512, a multiple of 32) leaves nothing (`left` counts the
 *            words still non-zero on the stack after the call);
 *   miss/N   control: span = N + 64, scrub N: the 8 words below the depth
 *            are found by the same count (the exact entry does not look
 *            below the depth);
 *   slow/N   the depths the slow path takes (not a multiple of 32, > 512);
 *   zero/0   depth 0 (the slow path too): nothing is zeroed, paint's return
 *            address stays (1 word; the fast path's loop would zero it);
 * nested: a secret call from inside one returns 1 (runs in place), counted;
 * too_deep: a depth beyond the stack's room returns -1 (falls back);
 * sig/N: a signal raised during a call of depth N is found and zeroed
 * (rseq says interrupted), and with the deep scrub off it is left (the
 * control).  x86-64: unwind=N,L: backtrace() called by a tree on the secret
 * stack gets N frames, L=1 if one of them is in libc (__libc_start_main:
 * the unwinder walked from the secret stack back to the thread's stack
 * through the fast path's unwind information); nocfi=N,L the same through a
 * stack switch without unwind information (the control: the walk stops).
 * The fast path's gate (struct secret_stack's fast_room and rseq, opened by
 * a call through the C path): gate=F,M after the first call (F its depth
 * limit, M=1 if rseq is this thread's area); thread=B,A,M in a second
 * thread that takes the first one's stack after it exited (B, A: the limit
 * before and after its first call, M: its own area); fork=B,A the same in
 * a forked child (closed by the fork, opened again by the child's first
 * call).
 * Prints "key=value" lines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <pthread.h>
#include <sys/mman.h>
#if __has_include(<sys/rseq.h>)
#include <sys/rseq.h>
#endif
#include <sys/wait.h>
#include <unistd.h>

#include "secretmem.h"
#include "secretstack_internal.h"
#include "stack_probe.h"

struct paint { uintptr_t hi; size_t span; };

__attribute__((noinline))
static void paint(void *arg)
{
    const struct paint *p = arg;
    volatile uint64_t *w = (volatile uint64_t *)(p->hi - p->span);
    for (; (uintptr_t)w < p->hi - 16; w++)
        *w = 0x5ec7e7ULL;
}

static volatile int handled;
static void on_usr1(int sig) { (void)sig; handled++; }
static void with_signal(void *arg) { (void)arg; raise(SIGUSR1); }
static int inner_rc;
static void noop(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }
static void nested(void *arg) { inner_rc = secretjit_secret_call_exact(noop, arg, 64); }

#if defined(__x86_64__)
static void *frames[64];
static int nframes;
__attribute__((noinline)) static void trace(void *arg)
{
    (void)arg;
    nframes = backtrace(frames, 64);
}

static int in_libc(void)
{
    Dl_info info;
    int i;
    for (i = 0; i < nframes; i++)
        if (dladdr(frames[i], &info) && info.dli_fname
            && strstr(info.dli_fname, "libc.so"))
            return 1;
    return 0;
}

/* The control: secretjit__call_on's switch with no unwind information. */
void nocfi_call_on(void (*fn)(void *), void *arg, void *top);
__asm__(".text\n"
        "nocfi_call_on:\n"
        "    pushq %rbp\n"
        "    movq %rsp, %rbp\n"
        "    movq %rdx, %rsp\n"
        "    movq %rdi, %rax\n"
        "    movq %rsi, %rdi\n"
        "    callq *%rax\n"
        "    movq %rbp, %rsp\n"
        "    popq %rbp\n"
        "    retq\n");
static char alt_stack[65536] __attribute__((aligned(16)));
#endif

/* This thread's rseq area (glibc's), or NULL. */
static char *my_rseq(void)
{
#ifdef RSEQ_SIG
    if (__rseq_size >= 16)
        return (char *)__builtin_thread_pointer() + __rseq_offset;
#endif
    return NULL;
}

/* The stack's cached rseq area is this thread's own. */
static int rseq_is_mine(void)
{
    return tls_stack.rseq != NULL && tls_stack.rseq == my_rseq();
}

struct gate { size_t before, after; int mine; };

static void gate_call(struct gate *g)
{
    g->before = tls_stack.fast_room;
    secretjit_secret_call_exact(noop, 0, 64);
    g->after = tls_stack.fast_room;
    g->mine = rseq_is_mine();
}

static void *gate_thread(void *arg)
{
    gate_call(arg);
    return NULL;
}

static void one(const char *name, uintptr_t hi, size_t span, size_t scrub)
{
    struct paint p = { hi, span };
    int rc;
    zero_stack();
    rc = secretjit_secret_call_exact(paint, &p, scrub);
    printf("%s/%zu=%d,%zu\n", name, scrub, rc, nonzero_words());
}

int main(void)
{
    static const size_t fast[] = { 32, 64, 160, 480, 512 };
    static const size_t slow[] = { 48, 144, 544, 2048 };
    struct sigaction sa;
    struct secretjit_memstats st;
    uintptr_t lo, hi;
    unsigned long long before;
    size_t i;
    int rc;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    printf("setup=%d\n", secretjit_secret_call_exact(noop, 0, 64));
    secretjit_memstats(&st);
    printf("rseq=%d\n", st.rseq);
    if (!secretjit_stack_range(&lo, &hi))
        return 1;
    for (i = 0; i < sizeof fast / sizeof fast[0]; i++) {
        one("fast", hi, fast[i], fast[i]);
        one("miss", hi, fast[i] + 64, fast[i]);
    }
    for (i = 0; i < sizeof slow / sizeof slow[0]; i++) {
        one("slow", hi, slow[i], slow[i]);
        one("slowmiss", hi, slow[i] + 64, slow[i]);
    }
    one("zero", hi, 0, 0);
    zero_stack();
    secretjit_memstats(&st);
    before = st.nested_calls;
    inner_rc = 7;
    rc = secretjit_secret_call_exact(nested, 0, 1024);
    secretjit_memstats(&st);
    printf("nested=%d,%d,%llu,%zu\n", rc, inner_rc,
           (unsigned long long)(st.nested_calls - before), nonzero_words());
    secretjit_memstats(&st);
    before = st.stack_fallbacks;
    rc = secretjit_secret_call_exact(noop, 0, (size_t)1 << 40);
    secretjit_memstats(&st);
    printf("too_deep=%d,%llu\n", rc, (unsigned long long)(st.stack_fallbacks - before));
    for (i = 0; i < 2; i++) {
        size_t depth = i ? 160 : 64;
        zero_stack();
        secretjit_memstats(&st);
        before = st.signal_scrubs;
        handled = 0;
        rc = secretjit_secret_call_exact(with_signal, 0, depth);
        secretjit_memstats(&st);
        printf("sig/%zu=%d,%d,%zu,%llu\n", depth, rc, handled, nonzero_words(),
               (unsigned long long)(st.signal_scrubs - before));
        zero_stack();
        secretjit_test_deep_scrub(0);
        rc = secretjit_secret_call_exact(with_signal, 0, depth);
        secretjit_test_deep_scrub(1);
        printf("sigoff/%zu=%d,%d,%zu\n", depth, rc, handled, nonzero_words());
    }
    {
        struct gate first, second;
        pthread_t t;
        struct gate *shared;
        pid_t pid;
        int status;
        printf("gate=%zu,%d\n", tls_stack.fast_room, rseq_is_mine());
        pthread_create(&t, NULL, gate_thread, &first);
        pthread_join(t, NULL);
        pthread_create(&t, NULL, gate_thread, &second);
        pthread_join(t, NULL);
        printf("thread=%zu,%zu,%d\n", second.before, second.after, second.mine);
        shared = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        fflush(stdout);
        pid = fork();
        if (pid == 0) {
            gate_call(shared);
            _exit(0);
        }
        waitpid(pid, &status, 0);
        printf("fork=%zu,%zu\n", shared->before, shared->after);
    }
#if defined(__x86_64__)
    trace(0);                   /* loads libgcc_s (the unwinder) first */
    nframes = 0;
    rc = secretjit_secret_call_exact(trace, 0, 512);
    printf("unwind=%d,%d,%d\n", rc, nframes, in_libc());
    nframes = 0;
    nocfi_call_on(trace, 0, alt_stack + sizeof alt_stack);
    printf("nocfi=%d,%d\n", nframes, in_libc());
#endif
    zero_stack();
    return 0;
}
