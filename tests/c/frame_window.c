/* The plain entry's 1 KiB frame-window check at every word of the window
 * (tests/test_frame_window.py builds it natively and runs it also under
 * qemu-x86_64 with CPU models that select each of the check's vector widths).
 *
 * For each 8-byte word of the window below the depth, a call writes one
 * non-zero word there; the plain entry must find it (a deep scrub counted)
 * and leave the whole stack zero.  Then the same with the deep scrub turned
 * off (the control): the words must be left.  Prints "key=value" lines:
 * words (window words tried), found (deep scrubs), left (tries after which
 * a non-zero word was left), off_left (tries left with the scrub off). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>

#include "secretmem.h"
#include "stack_probe.h"

#define DEPTH 160
#define WINDOW 1024

static size_t offset;

static void write_below(void *arg)
{
    uintptr_t lo, hi;
    (void)arg;
    if (secretjit_stack_range(&lo, &hi))
        *(volatile uint64_t *)(hi - DEPTH - WINDOW + offset) = 0x5ec7e7ULL;
}

static unsigned long long scrubs(void)
{
    struct secretjit_memstats st;
    secretjit_memstats(&st);
    return (unsigned long long)st.signal_scrubs;
}

int main(void)
{
    unsigned long long before;
    int left = 0, off_left = 0, words = 0;
    printf("setup=%d\n", secretjit_secret_call(write_below, 0, 0) == 0 ? 0 : 1);
    zero_stack();
    before = scrubs();
    for (offset = 0; offset < WINDOW; offset += 8, words++) {
        secretjit_secret_call(write_below, 0, DEPTH);
        left += nonzero_words() != 0;
        zero_stack();
    }
    printf("words=%d found=%llu left=%d\n", words, scrubs() - before, left);
    secretjit_test_deep_scrub(0);
    for (offset = 0; offset < WINDOW; offset += 8) {
        secretjit_secret_call(write_below, 0, DEPTH);
        off_left += nonzero_words() != 0;
        zero_stack();
    }
    secretjit_test_deep_scrub(1);
    printf("off_left=%d\n", off_left);
    return 0;
}
