/* The parts of a secret call's boundary, timed one by one (x86-64).
 *
 * Built and run by benchmarks/boundary.py with the secret runtime's sources
 * (secretjit/_csrc.py).  Each case is a loop of ITERS calls of one part; the
 * cases are interleaved over ROUNDS rounds and each prints its per-call time
 * of every round in ns ("name t1 t2 ..."), the script takes medians:
 *
 *   call            an indirect call of an empty function (what a plain
 *                   wrapper -> kernel call costs, the baseline)
 *   secret_call/N   secretjit_secret_call onto the secret stack with a scrub
 *                   depth of N bytes: TLS lookup, rseq marks, the stack switch,
 *                   the 1 KiB window check and the scrub of N bytes
 *   secret_call_exact/N  secretjit_secret_call_exact: the same without the
 *                   1 KiB window check (a tree whose depth is exact)
 *   memset/N        secretjit__wipe of N bytes alone (the scrub's share)
 *   window          the 1 KiB below-depth check alone (the same loop as
 *                   secretstack.c's any_nonzero, AVX-512 clone)
 *   tls             a load of an initial-exec thread-local (the lookup)
 *   regs/llvm-all   LLVM's "zero-call-used-regs"="all" epilogue on this CPU,
 *                   as it emits it: 8 fldz + 8 fstp, 8 GPR xors, xmm0-15
 *                   three times, k0-k7, xmm16-31, vzeroupper
 *   regs/once       the same registers, each zeroed once
 *   regs/no-x87     regs/once without the x87 stack
 *   regs/x87        the x87 part alone (8 fldz + 8 fstp)
 *   xgetbv1         xgetbv(1) (XINUSE: which state components are in use)
 *
 * Without AVX-512 (an AVX2 machine) the register rows zero what the boundary
 * zeroes there (xmm0-15, no k or xmm16-31), regs/llvm-all is left out (not
 * measured what LLVM emits there) and window uses 32-byte vectors; the first
 * line of the output says which ("cpu avx512" or "cpu avx2").
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
static __thread uint64_t tls_word __attribute__((tls_model("initial-exec")));
static char buf[8192] __attribute__((aligned(64)));

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

#define X87 \
    "fldz\nfldz\nfldz\nfldz\nfldz\nfldz\nfldz\nfldz\n" \
    "fstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\n" \
    "fstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\n"
#define GPR \
    "xorl %%ecx, %%ecx\nxorl %%edi, %%edi\nxorl %%edx, %%edx\nxorl %%esi, %%esi\n" \
    "xorl %%r8d, %%r8d\nxorl %%r9d, %%r9d\nxorl %%r10d, %%r10d\nxorl %%r11d, %%r11d\n"
#define X(n) "vxorps %%xmm" #n ", %%xmm" #n ", %%xmm" #n "\n"
#define XMM0_15 X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) \
    X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define XMM16_31 X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23) \
    X(24) X(25) X(26) X(27) X(28) X(29) X(30) X(31)
#define K "kxorq %%k0, %%k0, %%k0\nkxorq %%k0, %%k0, %%k1\nkxorq %%k0, %%k0, %%k2\n" \
    "kxorq %%k0, %%k0, %%k3\nkxorq %%k0, %%k0, %%k4\nkxorq %%k0, %%k0, %%k5\n" \
    "kxorq %%k0, %%k0, %%k6\nkxorq %%k0, %%k0, %%k7\n"
#define CLOBBERS "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
    "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", \
    "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", \
    "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31", "k0", "k1", \
    "k2", "k3", "k4", "k5", "k6", "k7", "st", "st(1)", "st(2)", "st(3)", \
    "st(4)", "st(5)", "st(6)", "st(7)", "memory"

__attribute__((noinline, target("avx512f"))) static void regs_llvm_all(void)
{
    __asm__ volatile(X87 GPR XMM0_15 XMM0_15 K XMM0_15 XMM16_31 "vzeroupper\n"
                     : : : CLOBBERS);
}
__attribute__((noinline, target("avx512f"))) static void regs_once(void)
{
    __asm__ volatile(X87 GPR XMM0_15 K XMM16_31 "vzeroupper\n" : : : CLOBBERS);
}
__attribute__((noinline, target("avx512f"))) static void regs_no_x87(void)
{
    __asm__ volatile(GPR XMM0_15 K XMM16_31 "vzeroupper\n" : : : CLOBBERS);
}
__attribute__((noinline, target("avx512f"))) static void regs_x87(void)
{
    __asm__ volatile(X87 : : : CLOBBERS);
}
/* The AVX2 forms (no AVX-512 registers). */
#define CLOBBERS_AVX2 "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", \
    "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", \
    "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st", \
    "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)", "memory"
__attribute__((noinline, target("avx2"))) static void regs_once_avx2(void)
{
    __asm__ volatile(X87 GPR XMM0_15 : : : CLOBBERS_AVX2);
}
__attribute__((noinline, target("avx2"))) static void regs_no_x87_avx2(void)
{
    __asm__ volatile(GPR XMM0_15 : : : CLOBBERS_AVX2);
}
__attribute__((noinline)) static uint64_t xgetbv1(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
    return ((uint64_t)hi << 32) | lo;
}

typedef uint64_t v64 __attribute__((vector_size(64), aligned(8)));
__attribute__((noinline, noipa, target("avx512f")))
static int window(const char *p, size_t n)
{
    v64 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    uint64_t r = 0;
    size_t i;
    unsigned k;
    for (i = 0; i + 256 <= n; i += 256) {
        a0 |= *(const v64 *)(p + i);
        a1 |= *(const v64 *)(p + i + 64);
        a2 |= *(const v64 *)(p + i + 128);
        a3 |= *(const v64 *)(p + i + 192);
    }
    a0 |= a1 | a2 | a3;
    for (k = 0; k < 8; k++)
        r |= a0[k];
    return r != 0;
}

typedef uint64_t v32 __attribute__((vector_size(32), aligned(8)));
__attribute__((noinline, noipa, target("avx2")))
static int window_avx2(const char *p, size_t n)
{
    v32 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    uint64_t r = 0;
    size_t i;
    unsigned k;
    for (i = 0; i + 128 <= n; i += 128) {
        a0 |= *(const v32 *)(p + i);
        a1 |= *(const v32 *)(p + i + 32);
        a2 |= *(const v32 *)(p + i + 64);
        a3 |= *(const v32 *)(p + i + 96);
    }
    a0 |= a1 | a2 | a3;
    for (k = 0; k < 4; k++)
        r |= a0[k];
    return r != 0;
}

static int avx512;

enum { N_SIZES = 4 };
static const size_t sizes[N_SIZES] = {160, 1024, 1648, 2640};

static double run_case(int c)
{
    double t0 = now();
    uint64_t sink = 0;
    int i;
    switch (c) {
    case 0: for (i = 0; i < ITERS; i++) empty_ptr(buf); break;
    case 1: case 2: case 3: case 4:
        for (i = 0; i < ITERS; i++)
            sink += secretjit_secret_call(empty, buf, sizes[c - 1]);
        break;
    case 5: case 6: case 7: case 8:
        for (i = 0; i < ITERS; i++) secretjit__wipe(buf, sizes[c - 5]);
        break;
    case 9:
        for (i = 0; i < ITERS; i++) {
            __asm__ volatile("" : : : "memory");    /* buf may have changed */
            sink += avx512 ? window(buf, 1024) : window_avx2(buf, 1024);
        }
        break;
    case 10:
        for (i = 0; i < ITERS; i++) {
            __asm__ volatile("" : : : "memory");
            sink += tls_word;
        }
        break;
    case 11: for (i = 0; i < ITERS; i++) regs_llvm_all(); break;
    case 12:
        for (i = 0; i < ITERS; i++)
            avx512 ? regs_once() : regs_once_avx2();
        break;
    case 13:
        for (i = 0; i < ITERS; i++)
            avx512 ? regs_no_x87() : regs_no_x87_avx2();
        break;
    case 14: for (i = 0; i < ITERS; i++) regs_x87(); break;
    case 15: for (i = 0; i < ITERS; i++) sink += xgetbv1(); break;
    case 16: case 17:
        for (i = 0; i < ITERS; i++)
            sink += secretjit_secret_call_exact(empty, buf, sizes[c - 16]);
        break;
    }
    if (sink == 12345)
        puts("");
    return (now() - t0) / ITERS;
}

int main(void)
{
    static const char *names[] = {
        "call", "secret_call/160", "secret_call/1024", "secret_call/1648",
        "secret_call/2640", "memset/160", "memset/1024", "memset/1648",
        "memset/2640", "window", "tls", "regs/llvm-all", "regs/once",
        "regs/no-x87", "regs/x87", "xgetbv1", "secret_call_exact/160",
        "secret_call_exact/1024"};
    enum { N = sizeof names / sizeof names[0] };
    static double t[N][ROUNDS];
    int r, c;
    __builtin_cpu_init();
    avx512 = __builtin_cpu_supports("avx512f");
    if (secretjit_secret_call(empty, buf, 64) != 0) {
        fprintf(stderr, "no secret stack for this thread\n");
        return 1;
    }
    for (r = 0; r < ROUNDS; r++)
        for (c = 0; c < N; c++)
            if (avx512 || c != 11)      /* regs/llvm-all: AVX-512 only */
                t[c][r] = run_case(c);
    printf("cpu %s\n", avx512 ? "avx512" : "avx2");
    for (c = 0; c < N; c++) {
        if (!avx512 && c == 11)
            continue;
        printf("%s", names[c]);
        for (r = 0; r < ROUNDS; r++)
            printf(" %.3f", t[c][r]);
        printf("\n");
    }
    return 0;
}
