/* The parts of an AOT export's boundary, each timed alone (x86-64; built by
 * benchmarks/aot.py and linked with the C runtime, secretjit/csrc).
 * Usage: aot_parts ROUNDS CALLS -> one line per round and part: "round part ns".
 *
 * Each part runs CALLS times in a loop (thread CPU time around the loop);
 * the loop itself is the part "loop".  The register-zeroing parts are the
 * instruction sequences the library's code contains (objdump of a trivial
 * export): LLVM's zero-call-used-regs epilogue of a boundary for the
 * baseline and for an AVX-512 (--cpu host) build, and the export's
 * secretjit_aot_clear_vregs before and after this change. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "secretmem.h"

void secretjit_aot_clear_vregs(void);

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static void noop(void *arg) { __asm__ __volatile__("" : : "r"(arg) : "memory"); }

#define X87 "fldz\nfldz\nfldz\nfldz\nfldz\nfldz\nfldz\nfldz\n" \
    "fstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\n" \
    "fstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\nfstp %%st(0)\n"
#define GPR "xorl %%ecx,%%ecx\nxorl %%edi,%%edi\nxorl %%edx,%%edx\n" \
    "xorl %%esi,%%esi\nxorl %%r8d,%%r8d\nxorl %%r9d,%%r9d\n" \
    "xorl %%r10d,%%r10d\nxorl %%r11d,%%r11d\n"
#define X16(op) op " %%xmm0,%%xmm0\n" op " %%xmm1,%%xmm1\n" op " %%xmm2,%%xmm2\n" \
    op " %%xmm3,%%xmm3\n" op " %%xmm4,%%xmm4\n" op " %%xmm5,%%xmm5\n" \
    op " %%xmm6,%%xmm6\n" op " %%xmm7,%%xmm7\n" op " %%xmm8,%%xmm8\n" \
    op " %%xmm9,%%xmm9\n" op " %%xmm10,%%xmm10\n" op " %%xmm11,%%xmm11\n" \
    op " %%xmm12,%%xmm12\n" op " %%xmm13,%%xmm13\n" op " %%xmm14,%%xmm14\n" \
    op " %%xmm15,%%xmm15\n"
#define V16(op) op " %%xmm0,%%xmm0,%%xmm0\n" op " %%xmm1,%%xmm1,%%xmm1\n" \
    op " %%xmm2,%%xmm2,%%xmm2\n" op " %%xmm3,%%xmm3,%%xmm3\n" \
    op " %%xmm4,%%xmm4,%%xmm4\n" op " %%xmm5,%%xmm5,%%xmm5\n" \
    op " %%xmm6,%%xmm6,%%xmm6\n" op " %%xmm7,%%xmm7,%%xmm7\n" \
    op " %%xmm8,%%xmm8,%%xmm8\n" op " %%xmm9,%%xmm9,%%xmm9\n" \
    op " %%xmm10,%%xmm10,%%xmm10\n" op " %%xmm11,%%xmm11,%%xmm11\n" \
    op " %%xmm12,%%xmm12,%%xmm12\n" op " %%xmm13,%%xmm13,%%xmm13\n" \
    op " %%xmm14,%%xmm14,%%xmm14\n" op " %%xmm15,%%xmm15,%%xmm15\n"
#define HI16 "vxorps %%xmm16,%%xmm16,%%xmm16\nvxorps %%xmm17,%%xmm17,%%xmm17\n" \
    "vxorps %%xmm18,%%xmm18,%%xmm18\nvxorps %%xmm19,%%xmm19,%%xmm19\n" \
    "vxorps %%xmm20,%%xmm20,%%xmm20\nvxorps %%xmm21,%%xmm21,%%xmm21\n" \
    "vxorps %%xmm22,%%xmm22,%%xmm22\nvxorps %%xmm23,%%xmm23,%%xmm23\n" \
    "vxorps %%xmm24,%%xmm24,%%xmm24\nvxorps %%xmm25,%%xmm25,%%xmm25\n" \
    "vxorps %%xmm26,%%xmm26,%%xmm26\nvxorps %%xmm27,%%xmm27,%%xmm27\n" \
    "vxorps %%xmm28,%%xmm28,%%xmm28\nvxorps %%xmm29,%%xmm29,%%xmm29\n" \
    "vxorps %%xmm30,%%xmm30,%%xmm30\nvxorps %%xmm31,%%xmm31,%%xmm31\n"
#define K8 "kxorq %%k0,%%k0,%%k0\nkxorq %%k0,%%k0,%%k1\nkxorq %%k0,%%k0,%%k2\n" \
    "kxorq %%k0,%%k0,%%k3\nkxorq %%k0,%%k0,%%k4\nkxorq %%k0,%%k0,%%k5\n" \
    "kxorq %%k0,%%k0,%%k6\nkxorq %%k0,%%k0,%%k7\n"
#define CLOB : : : "memory", "rcx", "rdi", "rdx", "rsi", "r8", "r9", "r10", "r11"

#define PART(name, body) do {                                   \
        double t0 = now_ns();                                   \
        for (long i = 0; i < calls; i++) { body; }              \
        double ns = (now_ns() - t0) / calls;                    \
        if (r >= 0) printf("%d %s %.4f\n", r, name, ns);        \
    } while (0)

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    long calls = argc > 2 ? atol(argv[2]) : 1000000;
    static char buf[4096] __attribute__((aligned(64)));
    int avx512 = __builtin_cpu_supports("avx512f");
    struct secretjit_memstats st;
    secretjit_secret_call(noop, buf, 16);
    secretjit_memstats(&st);
    printf("-1 rseq %d\n-1 signal_window %zu\n", (int)st.rseq,
           secretjit_signal_window());
    for (int r = -1; r < rounds; r++) {
        PART("loop", __asm__ __volatile__("" ::: "memory"));
        PART("secret_call(depth 16)", secretjit_secret_call(noop, buf, 16));
        PART("secret_call(depth 160)", secretjit_secret_call(noop, buf, 160));
        PART("secret_call_exact(depth 160)", secretjit_secret_call_exact(noop, buf, 160));
        PART("secret_call_exact(depth 32, the trivial export's)", secretjit_secret_call_exact(noop, buf, 32));
        PART("wipe 160 B (memset)", secretjit__wipe(buf, 160));
        PART("zeroing: x87 stack", __asm__ __volatile__(X87 ::: "memory"));
        PART("zeroing: baseline boundary (x87, 8 gpr, 16 xorps)",
             __asm__ __volatile__(X87 GPR X16("xorps") CLOB));
        if (avx512) {
            PART("zeroing: AVX-512 boundary (x87, 8 gpr, 3x16 xmm, 16 hi, 8 k, vzeroupper)",
                 __asm__ __volatile__(X87 GPR V16("vxorps") V16("vxorps")
                                      K8 V16("vxorps") HI16 "vzeroupper\n" CLOB));
            PART("zeroing: same without the two repeated 16 xmm",
                 __asm__ __volatile__(X87 GPR K8 V16("vxorps") HI16
                                      "vzeroupper\n" CLOB));
            PART("zeroing: one-pass epilogue, exact tree (8 gpr, 16 xmm, 16 hi, 8 k)",
                 __asm__ __volatile__(GPR V16("vxorps") HI16 K8 CLOB));
            PART("clear_vregs before (16 hi, 8 k, vzeroall)",
                 __asm__ __volatile__(HI16 K8 "vzeroall\n" ::: "memory"));
        }
        PART("clear_vregs now (this CPU, baseline build)",
             secretjit_aot_clear_vregs());
    }
    return 0;
}
