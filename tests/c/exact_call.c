/* secretjit_secret_call_exact at the C level (tests/test_exact_call.py builds
 * it natively and for AArch64 under qemu).
 *
 * write_below writes one word 256 bytes below the depth (64), inside the
 * 1 KiB frame window: the plain entry finds and zeroes it on every call; the
 * exact entry, which its caller may use only for a tree whose depth is
 * exact, does not look there unless rseq says the call was interrupted (or
 * rseq is absent), so the word survives.  A signal raised during an exact
 * call is still found and zeroed (the signal window), and left without the
 * deep scrub (the control).  Prints "key=value" lines. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "secretmem.h"
#include "stack_probe.h"

#define DEPTH 64
#define TRIES 5

static volatile int handled;
static void on_usr1(int sig) { (void)sig; handled++; }
static void noop(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }
static void with_signal(void *arg) { (void)arg; raise(SIGUSR1); }

static volatile uint64_t *marker(void)
{
    uintptr_t lo, hi;
    if (!secretjit_stack_range(&lo, &hi))
        return 0;
    return (volatile uint64_t *)(hi - DEPTH - 256);
}

static void write_below(void *arg) { (void)arg; *marker() = 0x5ec7e7ULL; }

static unsigned long long scrubs(void)
{
    struct secretjit_memstats st;
    secretjit_memstats(&st);
    return (unsigned long long)st.signal_scrubs;
}

int main(void)
{
    struct sigaction sa;
    struct secretjit_memstats st;
    int rc, i, plain_left = 0, exact_left = 0;
    unsigned long long before;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    printf("setup=%d\n", secretjit_secret_call_exact(noop, 0, DEPTH));
    secretjit_memstats(&st);
    printf("rseq=%d\n", st.rseq);
    before = scrubs();
    for (i = 0; i < TRIES; i++) {
        rc = secretjit_secret_call(write_below, 0, DEPTH);
        plain_left += rc == 0 && *marker() != 0;
        zero_stack();
    }
    printf("plain_left=%d plain_scrubs=%llu\n", plain_left, scrubs() - before);
    for (i = 0; i < TRIES; i++) {
        rc = secretjit_secret_call_exact(write_below, 0, DEPTH);
        exact_left += rc == 0 && *marker() != 0;
        zero_stack();
    }
    printf("exact_left=%d\n", exact_left);
    before = scrubs();
    rc = secretjit_secret_call_exact(with_signal, 0, 2048);
    printf("sig_rc=%d sig_handled=%d sig_left=%zu sig_scrubs=%llu\n", rc, handled,
           nonzero_words(), scrubs() - before);
    secretjit_test_deep_scrub(0);
    rc = secretjit_secret_call_exact(with_signal, 0, 2048);
    secretjit_test_deep_scrub(1);
    printf("off_rc=%d off_handled=%d off_left=%zu\n", rc, handled, nonzero_words());
    zero_stack();
    return 0;
}
