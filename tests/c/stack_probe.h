/* What the C-level secret stack tests read on this thread's secret stack. */
#ifndef SECRETJIT_TEST_STACK_PROBE_H
#define SECRETJIT_TEST_STACK_PROBE_H

#include <stdint.h>
#include <string.h>

#include "secretmem.h"

/* Non-zero words on the secret stack ((size_t)-1 when there is none). */
static size_t nonzero_words(void)
{
    uintptr_t lo, hi, p;
    size_t n = 0;
    if (!secretjit_stack_range(&lo, &hi))
        return (size_t)-1;
    for (p = lo; p < hi; p += 8)
        n += *(uint64_t *)p != 0;
    return n;
}

/* Zero the secret stack again, as between calls. */
static void zero_stack(void)
{
    uintptr_t lo, hi;
    if (secretjit_stack_range(&lo, &hi))
        memset((void *)lo, 0, hi - lo);
}

#endif
