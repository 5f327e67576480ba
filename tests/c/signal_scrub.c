/* The secret stack's scrub below the depth, at the C level (any target:
 * tests/test_signal_scrub.py builds it natively and for AArch64 under qemu).
 *
 * A call whose tree fits in `scrub` bytes raises a signal: the signal frame
 * (and the handler's frames) land below the depth.  With the deep scrub on,
 * the secret stack is all zero afterwards and signal_scrubs counted it; with
 * it off (the control) non-zero words are left.  A nested call returns 1.
 * Prints "key=value" lines. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "secretmem.h"
#include "stack_probe.h"

static volatile int handled;
static void on_usr1(int sig) { (void)sig; handled++; }
static void noop(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }
static void with_signal(void *arg) { (void)arg; raise(SIGUSR1); }
static int nested_rc = -9;
static void nested(void *arg) { (void)arg; nested_rc = secretjit_secret_call(noop, 0, 64); }

int main(void)
{
    struct sigaction sa;
    struct secretjit_memstats st;
    int rc;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    printf("setup=%d\n", secretjit_secret_call(noop, 0, 64));
    printf("reserve=%zu window=%zu\n", secretjit_signal_reserve(),
           secretjit_signal_window());
    rc = secretjit_secret_call(with_signal, 0, 2048);
    secretjit_memstats(&st);
    printf("on_rc=%d on_handled=%d on_left=%zu on_scrubs=%llu rseq=%d\n", rc, handled,
           nonzero_words(), (unsigned long long)st.signal_scrubs, st.rseq);
    secretjit_test_deep_scrub(0);
    rc = secretjit_secret_call(with_signal, 0, 2048);
    secretjit_test_deep_scrub(1);
    secretjit_memstats(&st);
    printf("off_rc=%d off_handled=%d off_left=%zu off_scrubs=%llu\n", rc, handled,
           nonzero_words(), (unsigned long long)st.signal_scrubs);
    zero_stack();
    rc = secretjit_secret_call(nested, 0, 4096);
    secretjit_memstats(&st);
    printf("nested_outer=%d nested_inner=%d nested_calls=%llu\n", rc, nested_rc,
           (unsigned long long)st.nested_calls);
    /* A call tree that leaves no room for the reserve runs in place. */
    rc = secretjit_secret_call(noop, 0, st.stack_size - 1024);
    printf("too_deep=%d\n", rc);
    return 0;
}
