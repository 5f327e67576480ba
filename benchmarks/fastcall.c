/* The exact secret call's cost, part by part (issue 15), on any x86-64 or
 * AArch64 CPU (no AVX-512 or other optional instructions).
 *
 * Built and run by benchmarks/fastcall.py with the secret runtime's sources
 * (secretjit/_csrc.py, or another checkout's for a before/after).  Each case
 * is a loop of ITERS calls; the cases are interleaved over ROUNDS rounds and
 * each prints its per-call thread CPU time of every round in ns
 * ("name t1 t2 ..."); the script takes medians:
 *
 *   call              an indirect call of an empty function (the baseline)
 *   exact/N           secretjit_secret_call_exact(empty, buf, N)
 *   plain/N           secretjit_secret_call(empty, buf, N)
 *   wipe/N            secretjit__wipe of N bytes alone (memset)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "secretmem.h"

void secretjit__wipe(void *p, size_t n);

#ifndef ITERS
#define ITERS 20000
#endif
#ifndef ROUNDS
#define ROUNDS 41
#endif

static void empty(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }
static void (*volatile empty_ptr)(void *) = empty;
static char buf[4096] __attribute__((aligned(64)));
static char stk[8192] __attribute__((aligned(64)));

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static const char *names[] = {
    "call", "exact/160", "exact/1024", "plain/160", "wipe/160",
};
enum { N = sizeof names / sizeof names[0] };

static double run_case(int c)
{
    double t0 = now();
    long sink = 0;
    int i;
    switch (c) {
    case 0: for (i = 0; i < ITERS; i++) empty_ptr(buf); break;
    case 1:
        for (i = 0; i < ITERS; i++)
            sink += secretjit_secret_call_exact(empty_ptr, buf, 160);
        break;
    case 2:
        for (i = 0; i < ITERS; i++)
            sink += secretjit_secret_call_exact(empty_ptr, buf, 1024);
        break;
    case 3:
        for (i = 0; i < ITERS; i++)
            sink += secretjit_secret_call(empty_ptr, buf, 160);
        break;
    case 4:
        for (i = 0; i < ITERS; i++) {
            __asm__ volatile("" : : : "memory");
            secretjit__wipe(stk + 4096, 160);
        }
        break;
    }
    if (sink != 0)
        puts("a secret call fell back");
    return (now() - t0) / ITERS;
}

int main(int argc, char **argv)
{
    static double t[N][ROUNDS];
    int r, c, only = argc > 1 ? -1 : -2;
    if (secretjit_secret_call(empty, buf, 64) != 0) {
        fprintf(stderr, "no secret stack for this thread\n");
        return 1;
    }
    for (c = 0; only == -1 && c < N; c++)     /* perf stat: one case, long */
        if (strcmp(argv[1], names[c]) == 0)
            only = c;
    if (only >= 0) {
        for (r = 0; r < 2000; r++)
            run_case(only);
        return 0;
    }
    if (only == -1) {
        fprintf(stderr, "no case %s\n", argv[1]);
        return 2;
    }
    for (r = 0; r < ROUNDS; r++)
        for (c = 0; c < N; c++)
            t[c][r] = run_case(c);
    for (c = 0; c < N; c++) {
        printf("%s", names[c]);
        for (r = 0; r < ROUNDS; r++)
            printf(" %.3f", t[c][r]);
        printf("\n");
    }
    return 0;
}
