/* The secret stack's interrupted path leaves no stack bytes in vector
 * registers (tests/test_used_vregs.py builds it as is, and with
 * -DSECRETJIT_TEST_NO_CLEAR_VREGS: the control, secretjit__clear_vregs
 * empty).  x86-64 with AVX only.
 *
 * Run with GLIBC_TUNABLES=glibc.pthread.rseq=0: without rseq every call
 * counts as interrupted, so the exact entry checks the signal window below
 * the depth.  plant() writes a canary over 256 bytes at the bottom of that
 * window, where a signal frame would hold the tree's registers; the runtime
 * finds it (any_nonzero), looks for the deepest write (deepest_write: vector
 * loads of the stack) and scrubs.  call_and_dump fills every vector register
 * with the caller's value, calls, and spills them (xmm, ymm or zmm: what the
 * CPU has) the instant the runtime returns.  Prints "key=value":
 * rseq, rc, scrubs (the deep scrubs the call did), left (non-zero words on
 * the secret stack after it), canary_regs (registers holding a canary
 * word), nonzero_regs (registers not all zero). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretmem.h"
#include "stack_probe.h"

#define DEPTH 256
#define CANARY 0x5ec7e7ca7a11f00dULL
#define CALLER 0xca11e4ca11e4ca11ULL

int call_and_dump(void (*fn)(void *), void *arg, size_t scrub, void *buf,
                  int level, const uint64_t *fill);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".type call_and_dump, @function\n"
    "call_and_dump:\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    movq %rcx, %rbx\n"
    "    movl %r8d, %r12d\n"
    "    cmpl $1, %r12d\n"
    "    jb 5f\n"
    "    je 3f\n"
    "    vpbroadcastq (%r9), %zmm16\n"
    "    vmovdqa64 %zmm16, %zmm17\n    vmovdqa64 %zmm16, %zmm18\n"
    "    vmovdqa64 %zmm16, %zmm19\n    vmovdqa64 %zmm16, %zmm20\n"
    "    vmovdqa64 %zmm16, %zmm21\n    vmovdqa64 %zmm16, %zmm22\n"
    "    vmovdqa64 %zmm16, %zmm23\n    vmovdqa64 %zmm16, %zmm24\n"
    "    vmovdqa64 %zmm16, %zmm25\n    vmovdqa64 %zmm16, %zmm26\n"
    "    vmovdqa64 %zmm16, %zmm27\n    vmovdqa64 %zmm16, %zmm28\n"
    "    vmovdqa64 %zmm16, %zmm29\n    vmovdqa64 %zmm16, %zmm30\n"
    "    vmovdqa64 %zmm16, %zmm31\n"
    "    vmovdqa64 %zmm16, %zmm0\n    vmovdqa64 %zmm16, %zmm1\n"
    "    vmovdqa64 %zmm16, %zmm2\n    vmovdqa64 %zmm16, %zmm3\n"
    "    vmovdqa64 %zmm16, %zmm4\n    vmovdqa64 %zmm16, %zmm5\n"
    "    vmovdqa64 %zmm16, %zmm6\n    vmovdqa64 %zmm16, %zmm7\n"
    "    vmovdqa64 %zmm16, %zmm8\n    vmovdqa64 %zmm16, %zmm9\n"
    "    vmovdqa64 %zmm16, %zmm10\n    vmovdqa64 %zmm16, %zmm11\n"
    "    vmovdqa64 %zmm16, %zmm12\n    vmovdqa64 %zmm16, %zmm13\n"
    "    vmovdqa64 %zmm16, %zmm14\n    vmovdqa64 %zmm16, %zmm15\n"
    "    jmp 4f\n"
    "3:  vbroadcastsd (%r9), %ymm0\n"
    "    vmovdqa %ymm0, %ymm1\n    vmovdqa %ymm0, %ymm2\n"
    "    vmovdqa %ymm0, %ymm3\n    vmovdqa %ymm0, %ymm4\n"
    "    vmovdqa %ymm0, %ymm5\n    vmovdqa %ymm0, %ymm6\n"
    "    vmovdqa %ymm0, %ymm7\n    vmovdqa %ymm0, %ymm8\n"
    "    vmovdqa %ymm0, %ymm9\n    vmovdqa %ymm0, %ymm10\n"
    "    vmovdqa %ymm0, %ymm11\n    vmovdqa %ymm0, %ymm12\n"
    "    vmovdqa %ymm0, %ymm13\n    vmovdqa %ymm0, %ymm14\n"
    "    vmovdqa %ymm0, %ymm15\n"
    "    jmp 4f\n"
    "5:  movq (%r9), %xmm0\n"
    "    punpcklqdq %xmm0, %xmm0\n"
    "    movdqa %xmm0, %xmm1\n    movdqa %xmm0, %xmm2\n"
    "    movdqa %xmm0, %xmm3\n    movdqa %xmm0, %xmm4\n"
    "    movdqa %xmm0, %xmm5\n    movdqa %xmm0, %xmm6\n"
    "    movdqa %xmm0, %xmm7\n    movdqa %xmm0, %xmm8\n"
    "    movdqa %xmm0, %xmm9\n    movdqa %xmm0, %xmm10\n"
    "    movdqa %xmm0, %xmm11\n    movdqa %xmm0, %xmm12\n"
    "    movdqa %xmm0, %xmm13\n    movdqa %xmm0, %xmm14\n"
    "    movdqa %xmm0, %xmm15\n"
    "4:  call secretjit_secret_call_exact\n"
    "    movl %eax, %r13d\n"
    "    cmpl $1, %r12d\n"
    "    jb 6f\n"
    "    ja 1f\n"
    "    vmovdqu %ymm0, 0(%rbx)\n    vmovdqu %ymm1, 64(%rbx)\n"
    "    vmovdqu %ymm2, 128(%rbx)\n    vmovdqu %ymm3, 192(%rbx)\n"
    "    vmovdqu %ymm4, 256(%rbx)\n    vmovdqu %ymm5, 320(%rbx)\n"
    "    vmovdqu %ymm6, 384(%rbx)\n    vmovdqu %ymm7, 448(%rbx)\n"
    "    vmovdqu %ymm8, 512(%rbx)\n    vmovdqu %ymm9, 576(%rbx)\n"
    "    vmovdqu %ymm10, 640(%rbx)\n    vmovdqu %ymm11, 704(%rbx)\n"
    "    vmovdqu %ymm12, 768(%rbx)\n    vmovdqu %ymm13, 832(%rbx)\n"
    "    vmovdqu %ymm14, 896(%rbx)\n    vmovdqu %ymm15, 960(%rbx)\n"
    "    jmp 2f\n"
    "1:  vmovdqu64 %zmm0, 0(%rbx)\n    vmovdqu64 %zmm1, 64(%rbx)\n"
    "    vmovdqu64 %zmm2, 128(%rbx)\n    vmovdqu64 %zmm3, 192(%rbx)\n"
    "    vmovdqu64 %zmm4, 256(%rbx)\n    vmovdqu64 %zmm5, 320(%rbx)\n"
    "    vmovdqu64 %zmm6, 384(%rbx)\n    vmovdqu64 %zmm7, 448(%rbx)\n"
    "    vmovdqu64 %zmm8, 512(%rbx)\n    vmovdqu64 %zmm9, 576(%rbx)\n"
    "    vmovdqu64 %zmm10, 640(%rbx)\n    vmovdqu64 %zmm11, 704(%rbx)\n"
    "    vmovdqu64 %zmm12, 768(%rbx)\n    vmovdqu64 %zmm13, 832(%rbx)\n"
    "    vmovdqu64 %zmm14, 896(%rbx)\n    vmovdqu64 %zmm15, 960(%rbx)\n"
    "    vmovdqu64 %zmm16, 1024(%rbx)\n    vmovdqu64 %zmm17, 1088(%rbx)\n"
    "    vmovdqu64 %zmm18, 1152(%rbx)\n    vmovdqu64 %zmm19, 1216(%rbx)\n"
    "    vmovdqu64 %zmm20, 1280(%rbx)\n    vmovdqu64 %zmm21, 1344(%rbx)\n"
    "    vmovdqu64 %zmm22, 1408(%rbx)\n    vmovdqu64 %zmm23, 1472(%rbx)\n"
    "    vmovdqu64 %zmm24, 1536(%rbx)\n    vmovdqu64 %zmm25, 1600(%rbx)\n"
    "    vmovdqu64 %zmm26, 1664(%rbx)\n    vmovdqu64 %zmm27, 1728(%rbx)\n"
    "    vmovdqu64 %zmm28, 1792(%rbx)\n    vmovdqu64 %zmm29, 1856(%rbx)\n"
    "    vmovdqu64 %zmm30, 1920(%rbx)\n    vmovdqu64 %zmm31, 1984(%rbx)\n"
    "    jmp 2f\n"
    "6:  movdqu %xmm0, 0(%rbx)\n    movdqu %xmm1, 64(%rbx)\n"
    "    movdqu %xmm2, 128(%rbx)\n    movdqu %xmm3, 192(%rbx)\n"
    "    movdqu %xmm4, 256(%rbx)\n    movdqu %xmm5, 320(%rbx)\n"
    "    movdqu %xmm6, 384(%rbx)\n    movdqu %xmm7, 448(%rbx)\n"
    "    movdqu %xmm8, 512(%rbx)\n    movdqu %xmm9, 576(%rbx)\n"
    "    movdqu %xmm10, 640(%rbx)\n    movdqu %xmm11, 704(%rbx)\n"
    "    movdqu %xmm12, 768(%rbx)\n    movdqu %xmm13, 832(%rbx)\n"
    "    movdqu %xmm14, 896(%rbx)\n    movdqu %xmm15, 960(%rbx)\n"
    "2:  movl %r13d, %eax\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    ret\n"
    ".size call_and_dump, .-call_and_dump\n");

static void noop(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }

static const uint64_t caller_value = CALLER;

/* The canary over 256 bytes (64-byte aligned) at the bottom of the signal
 * window below the depth ("window"), or in the 64 bytes at the bottom of the
 * scrubbed depth itself ("inside", which the scrub zeroes). */
static void plant_at(int inside)
{
    uintptr_t lo, hi, p;
    int i, n = inside ? 8 : 32;
    if (!secretjit_stack_range(&lo, &hi))
        return;
    p = inside ? hi - DEPTH
               : (hi - DEPTH - secretjit_signal_window()) & ~(uintptr_t)63;
    for (i = 0; i < n; i++)
        ((volatile uint64_t *)p)[i] = CANARY;
}
static void window(void *arg) { (void)arg; plant_at(0); }
static void inside(void *arg) { (void)arg; plant_at(1); }
/* The tree itself leaves the canary in xmm5 (the detector's control). */
static const uint64_t canary_value = CANARY;
static void tree(void *arg)
{
    (void)arg;
    __asm__ volatile("movq %0, %%xmm5\n"
                     "punpcklqdq %%xmm5, %%xmm5" : : "m"(canary_value) : "xmm5");
}

static unsigned long long scrubs(void)
{
    struct secretjit_memstats st;
    secretjit_memstats(&st);
    return (unsigned long long)st.signal_scrubs;
}

static void run(const char *name, void (*fn)(void *), int level)
{
    static uint64_t regs[32 * 8] __attribute__((aligned(64)));
    int nregs = level == 2 ? 32 : 16, words = 2 << level, r, k;
    int canary = 0, other = 0, rc;
    unsigned long long before = scrubs();
    zero_stack();
    memset(regs, 0, sizeof regs);
    rc = call_and_dump(fn, 0, DEPTH, regs, level, &caller_value);
    /* vzeroupper (glibc's AVX2 memset, the AVX clones) zeroes the upper
     * halves: a word is the caller's, zero, the canary or something else */
    for (r = 0; r < nregs; r++) {
        int c = 0, o = 0;
        for (k = 0; k < words; k++) {
            uint64_t w = regs[r * 8 + k];
            c |= w == CANARY;
            o |= w != 0 && w != CALLER;
        }
        if (o && getenv("DUMP"))
            printf("# %s ymm%d %016llx %016llx %016llx %016llx\n", name, r,
                   (unsigned long long)regs[r * 8], (unsigned long long)regs[r * 8 + 1],
                   (unsigned long long)regs[r * 8 + 2], (unsigned long long)regs[r * 8 + 3]);
        canary += c;
        other += o;
    }
    printf("%s_rc=%d %s_scrubs=%llu %s_left=%zu %s_canary_regs=%d %s_other_regs=%d\n",
           name, rc, name, scrubs() - before, name, nonzero_words(), name, canary,
           name, other);
}

int main(void)
{
    struct secretjit_memstats st;
    int level;
    __builtin_cpu_init();
    level = __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;
    secretjit_secret_call_exact(noop, 0, DEPTH);       /* set the stack up */
    secretjit_memstats(&st);
    printf("rseq=%d level=%d\n", st.rseq, level);
    run("window", window, level);
    run("inside", inside, level);
    run("tree", tree, level);
    zero_stack();
    return 0;
}
