/* A/B two builds of the C runtime (_secretmem*.so) in one process (issue 15,
 * semiexact): dlopen both (RTLD_LOCAL: each keeps its own arena, slabs and
 * secret stack), then time secretjit_secret_call and _exact on a tree shaped
 * like benchmarks/hardened.py's temp64 (a 112-byte slab block: MemInfo +
 * 64 bytes, filled, summed, freed), rounds interleaved A plain, A exact,
 * B plain, B exact, thread CPU time, medians and quartiles of 41 rounds.
 *
 *     gcc -O2 -o /tmp/runtime_ab benchmarks/runtime_ab.c -ldl
 *     /tmp/runtime_ab OLD.so NEW.so DEPTH
 *
 * Build A's and B's .so from two checkouts (pip install -e . in each). */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef int call_fn(void (*)(void *), void *, size_t);
typedef void *alloc_fn(size_t);
typedef void free_fn(void *);
struct rt { call_fn *plain, *exact; alloc_fn *alloc; free_fn *free; };
static struct rt R[2];
static struct rt *cur;

static void tree(void *a)
{
    unsigned char *p = cur->alloc(112);
    unsigned s = 0;
    int i;
    (void)a;
    for (i = 0; i < 64; i++)
        p[48 + i] = (unsigned char)(3 + i);
    __asm__ volatile("" : : "r"(p) : "memory");
    for (i = 0; i < 64; i++)
        s += p[48 + i];
    __asm__ volatile("" : : "r"(s));
    cur->free(p);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define ROUNDS 41
#define N 20000

int main(int argc, char **argv)
{
    static const char *names[4] = {"A plain", "A exact", "B plain", "B exact"};
    double t[4][ROUNDS];
    size_t depth;
    int i, r, k;
    if (argc != 4) {
        fprintf(stderr, "usage: %s A.so B.so DEPTH\n", argv[0]);
        return 2;
    }
    depth = (size_t)atol(argv[3]);
    for (k = 0; k < 2; k++) {
        void *h = dlopen(argv[1 + k], RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "%s\n", dlerror());
            return 1;
        }
        R[k].plain = (call_fn *)dlsym(h, "secretjit_secret_call");
        R[k].exact = (call_fn *)dlsym(h, "secretjit_secret_call_exact");
        R[k].alloc = (alloc_fn *)dlsym(h, "secretjit_slab_alloc");
        R[k].free = (free_fn *)dlsym(h, "secretjit_slab_free");
    }
    for (r = 0; r < ROUNDS; r++)
        for (k = 0; k < 4; k++) {
            call_fn *f;
            double t0;
            cur = &R[k / 2];
            f = (k % 2) ? cur->exact : cur->plain;
            t0 = now();
            for (i = 0; i < N; i++)
                f(tree, 0, depth);
            t[k][r] = (now() - t0) / N;
        }
    for (k = 0; k < 4; k++) {
        qsort(t[k], ROUNDS, sizeof(double), cmp);
        printf("%s %.1f ns (%.1f-%.1f)\n", names[k], t[k][ROUNDS / 2],
               t[k][ROUNDS / 4], t[k][3 * ROUNDS / 4]);
    }
    return 0;
}
