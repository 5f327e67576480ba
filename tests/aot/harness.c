/* C harness for the AOT tests: ABI checks, stack and register erasure probes.
 *
 *   harness abi                     run the ABI exports, print results
 *   harness stack K0 K1 K2 K3 [raise]  stack_probe around stack_kernel(_raises)
 *   harness regs K0 K1 K2 K3        reg_probe around reg_kernel
 *   harness heap K0 K1 K2 K3        heap_kernel, then scan all writable memory
 * Keys are 64-bit hex words.  Output: key=value lines for the Python side.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe_kernels.h"

typedef uint64_t (*fn_t)(void);
uint64_t stack_probe(void *fn, uint64_t a0, uint64_t a1, uint64_t a2,
                     uint64_t a3, uint64_t a4, uint64_t *dump, uint64_t n);
#if defined(__x86_64__)
uint64_t reg_probe(void *fn, uint64_t a0, uint64_t a1, uint64_t a2,
                   uint64_t a3, uint64_t a4, uint64_t *save, uint64_t canary,
                   int level);
#define NSAVE (9 + 8 * 32 + 8)
#else
#include <sys/auxv.h>
#include <sys/prctl.h>
uint64_t reg_probe(void *fn, uint64_t a0, uint64_t a1, uint64_t a2,
                   uint64_t a3, uint64_t a4, uint64_t *save, uint64_t canary);
#define NSAVE (19 + 2 * 32)
/* SVE: vector length in bytes (0 without SVE) and the probe's spill areas */
int probe_sve_vl;
uint8_t probe_zsave[32 * 256] __attribute__((aligned(16)));
uint8_t probe_psave[16 * 32] __attribute__((aligned(16)));
#endif

#define N 512
#define WINDOW 8192
#define MIX 0x9E3779B97F4A7C15ull
#define CANARY 0xC0FFEE5EC2E7C0DEull

static uint64_t derived[N + 4];

static void derive(const uint64_t *key)
{
    for (int i = 0; i < N; i++)
        derived[i] = key[i % 4] ^ (MIX * (uint64_t)(i + 1));
    for (int i = 0; i < 4; i++)
        derived[N + i] = key[i];
}

static int is_secret(uint64_t w)
{
    for (int i = 0; i < N + 4; i++)
        if (derived[i] == w)
            return 1;
    return 0;
}

static int abi(void)
{
    uint8_t key[5] = {1, 2, 3, 4, 5}, out[12];
    int64_t sum = -1;
    int32_t st = toy_mix(key, 5, out, 12, &sum);
    printf("toy_mix status=%d sum=%" PRId64 " out=", st, sum);
    for (int i = 0; i < 12; i++)
        printf("%02x", out[i]);
    printf("\n");
    printf("toy_mix_empty status=%d\n", toy_mix(key, 0, out, 12, &sum));
    printf("toy_mix_null status=%d\n", toy_mix(NULL, 5, out, 12, &sum));
    printf("toy_mix_neg status=%d\n", toy_mix(key, -1, out, 12, &sum));
    printf("toy_mix_nullret status=%d\n", toy_mix(key, 5, out, 12, NULL));
    printf("toy_mix_nullempty status=%d\n", toy_mix(key, 5, NULL, 0, &sum));
    double d = 0;
    st = scalars(1.5, 3, true, 200, -7, &d);
    printf("scalars status=%d value=%.17g\n", st, d);
    st = scalars(1.5, -3, false, 255, 32767, &d);
    printf("scalars2 status=%d value=%.17g\n", st, d);
    bool b = false;
    st = is_even(42, &b);
    printf("is_even42 status=%d value=%d\n", st, (int)b);
    st = is_even(-7, &b);
    printf("is_even7 status=%d value=%d\n", st, (int)b);
    float f[4];
    st = fill_f32(f, 4, 0.5f);
    printf("fill_f32 status=%d value=%g,%g,%g,%g\n", st, f[0], f[1], f[2], f[3]);
    return 0;
}

static int stack(const uint64_t *key, int raise)
{
    static uint64_t dump[WINDOW];
    uint64_t ret = 0;
    uint64_t st;
    if (raise)
        st = stack_probe((void *)stack_kernel_raises, (uint64_t)key, 4, 1,
                         (uint64_t)&ret, 0, dump, WINDOW);
    else
        st = stack_probe((void *)stack_kernel, (uint64_t)key, 4,
                         (uint64_t)&ret, 0, 0, dump, WINDOW);
    int leaks = 0, written = 0;
    for (int i = 0; i < WINDOW; i++) {
        leaks += is_secret(dump[i]);
        written += dump[i] != 0x5050505050505050ull;
    }
    printf("status=%d\nresult=%" PRIu64 "\nleaks=%d\nwritten=%d\n",
           (int)(int32_t)st, ret, leaks, written);
    return 0;
}

static int regs(const uint64_t *key)
{
    static uint64_t save[NSAVE];
    /* 64 derived words: long enough for the vectorized copy loop */
    static uint64_t in[64], out[64];
    uint64_t ret = 0;
    memcpy(in, derived, sizeof in);
#if defined(__x86_64__)
    __builtin_cpu_init();
    int level = __builtin_cpu_supports("avx512f") ? 2
              : __builtin_cpu_supports("avx") ? 1 : 0;
    uint64_t st = reg_probe((void *)reg_kernel, (uint64_t)in, 64,
                            (uint64_t)out, 64, (uint64_t)&ret, save, CANARY,
                            level);
    int first = 1;              /* save[0] is rax: the status */
#else
    if (getauxval(AT_HWCAP) & (1 << 22))            /* HWCAP_SVE */
        probe_sve_vl = prctl(51 /* PR_SVE_GET_VL */) & 0xffff;
    uint64_t st = reg_probe((void *)reg_kernel, (uint64_t)in, 64,
                            (uint64_t)out, 64, (uint64_t)&ret, save, CANARY);
    int first = 1;              /* save[0] is x0: the status */
    int sve_nonzero = 0;
    for (int z = 0; z < 32 && probe_sve_vl; z++) {
        if (z >= 8 && z < 16)   /* callee-saved low halves: see below */
            continue;
        for (int b = 0; b < probe_sve_vl; b++)
            sve_nonzero += probe_zsave[z * probe_sve_vl + b] != 0;
    }
    for (int b = 0; b < 16 * probe_sve_vl / 8; b++)
        sve_nonzero += probe_psave[b] != 0;
    printf("sve_vl=%d\nsve_nonzero=%d\n", probe_sve_vl, sve_nonzero);
#endif
    int leaks = 0, canaries = 0, nonzero = 0, kept = 0;
    for (int i = first; i < NSAVE; i++) {
        leaks += is_secret(save[i]);
#if defined(__aarch64__)
        /* v8-v15: callee-saved (low halves); they hold the probe's own
         * canary again, which the call must preserve, not erase. */
        if (i >= 19 + 2 * 8 && i < 19 + 2 * 16) {
            kept += save[i] == CANARY;
            continue;
        }
#endif
#if defined(__x86_64__)
        /* k0-k7 (save[9 + 8 * 32 ...]): kmovw loaded the canary's low 16 bits */
        canaries += save[i] == (i >= 9 + 8 * 32 ? (CANARY & 0xffff) : CANARY);
#else
        canaries += save[i] == CANARY;
#endif
        nonzero += save[i] != 0;
    }
    printf("status=%d\nresult=%" PRIu64 "\nleaks=%d\ncanaries=%d\nnonzero=%d\n"
           "callee_saved_kept=%d\n",
           (int)(int32_t)st, ret, leaks, canaries, nonzero, kept);
    printf("copied=%d\n", memcmp(out, in, sizeof in) == 0);
    return 0;
}

#define HEAPMIX 0xA5A5A5A55A5A5A5Aull
/* Stored complemented, so the harness's own table never matches. */
static uint64_t heap_words_not[256];
static uint8_t heap_filter[65536];      /* by the top 16 bits of ~word */

static int heap(const uint64_t *key)
{
    uint64_t ret = 0;
    int32_t st = heap_kernel((uint64_t *)key, 4, &ret);
    /* After the call, and as (~k) ^ m: the harness itself never holds a
     * derived word, in memory or in a register the library could save. */
    for (int i = 0; i < 256; i++) {
        heap_words_not[i] = ~key[i % 4] ^ (HEAPMIX * (uint64_t)(i + 1));
        heap_filter[heap_words_not[i] >> 48] = 1;
    }
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    long leaks = 0, scanned = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
            continue;
        if (perms[0] != 'r' || perms[1] != 'w' || strstr(line, "[vvar"))
            continue;
        for (const uint64_t *w = (const uint64_t *)lo; w < (const uint64_t *)hi; w++) {
            uint64_t nw = ~*w;
            scanned++;
            if (!heap_filter[nw >> 48])
                continue;
            for (int i = 0; i < 256; i++)
                if (heap_words_not[i] == nw) {
                    leaks++;
                    if (getenv("HARNESS_VERBOSE"))
                        fprintf(stderr, "leak word %d at %p in %s", i,
                                (const void *)w, line);
                    break;
                }
        }
    }
    if (maps)
        fclose(maps);
    printf("status=%d\nresult=%" PRIu64 "\nleaks=%ld\nscanned=%ld\n", st, ret,
           leaks, scanned);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "abi") == 0)
        return abi();
    if (argc >= 6) {
        uint64_t key[4];
        for (int i = 0; i < 4; i++)
            key[i] = strtoull(argv[2 + i], NULL, 16);
        derive(key);
        if (strcmp(argv[1], "stack") == 0)
            return stack(key, argc > 6);
        if (strcmp(argv[1], "regs") == 0)
            return regs(key);
        if (strcmp(argv[1], "heap") == 0)
            return heap(key);
    }
    fprintf(stderr, "usage: harness abi | stack K0 K1 K2 K3 [raise] | regs K0 K1 K2 K3\n");
    return 2;
}
