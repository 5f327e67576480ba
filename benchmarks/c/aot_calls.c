/* Per-call cost of AOT exports, called from C (benchmarks/aot.py builds and
 * runs it).  Usage: aot_calls ROUNDS CALLS SYMBOL SIGNATURE LIB [LIB...]
 *
 * Loads every library (dlopen, RTLD_LOCAL: each keeps its own symbols) and
 * times SYMBOL in each, interleaved: round r times CALLS calls of lib 0, then
 * lib 1, ... with clock_gettime around the loop.  Prints one line per round
 * and library: "round lib ns_per_call".  SIGNATURE is the export's C shape:
 *   "i64"      int32_t f(int64_t x, int64_t *ret)                (x + 1)
 *   "buf"      int32_t f(uint8_t *key, int64_t key_len, uint8_t *out,
 *                        int64_t out_len, uint8_t *nonce, int64_t nonce_len)
 *              (a bulk kernel: CALLS calls on a BUFSIZE-byte buffer)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int32_t (*i64_fn)(int64_t, int64_t *);
typedef int32_t (*buf_fn)(uint8_t *, int64_t, uint8_t *, int64_t, uint8_t *,
                          int64_t);

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int64_t sink;

static double time_i64(i64_fn f, long calls)
{
    int64_t r = 0, acc = 0;
    double t0 = now_ns();
    for (long i = 0; i < calls; i++) {
        if (f(i, &r) != 0)
            exit(3);
        acc += r;
    }
    double t = now_ns() - t0;
    sink += acc;
    return t / calls;
}

static double time_buf(buf_fn f, long calls, uint8_t *buf, int64_t n)
{
    static uint8_t key[32], nonce[12];
    double t0 = now_ns();
    for (long i = 0; i < calls; i++)
        if (f(key, 32, buf, n, nonce, 12) != 0)
            exit(3);
    return (now_ns() - t0) / calls;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s ROUNDS CALLS SYMBOL i64|buf[:BYTES] LIB...\n",
                argv[0]);
        return 2;
    }
    int rounds = atoi(argv[1]), nlib = argc - 5;
    long calls = atol(argv[2]);
    const char *sym = argv[3], *sig = argv[4];
    void *fns[16];
    int64_t n = 0;
    uint8_t *buf = NULL;
    if (nlib > 16)
        return 2;
    if (strncmp(sig, "buf:", 4) == 0) {
        n = atol(sig + 4);
        buf = calloc(n ? n : 1, 1);
    }
    for (int k = 0; k < nlib; k++) {
        void *h = dlopen(argv[5 + k], RTLD_NOW | RTLD_LOCAL);
        if (!h || !(fns[k] = dlsym(h, sym))) {
            fprintf(stderr, "%s: %s\n", argv[5 + k], dlerror());
            return 2;
        }
    }
    for (int r = -1; r < rounds; r++)           /* round -1: warm-up */
        for (int k = 0; k < nlib; k++) {
            double ns = buf ? time_buf((buf_fn)fns[k], calls, buf, n)
                            : time_i64((i64_fn)fns[k], calls);
            if (r >= 0)
                printf("%d %d %.4f\n", r, k, ns);
        }
    return sink == 42 ? 1 : 0;
}
