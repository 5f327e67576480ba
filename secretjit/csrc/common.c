/* Settings, page hardening and status shared by the arena and the secret
 * stack.  Where the pages come from (memfd_secret or mlock'ed anonymous
 * memory), with the fork and RLIMIT_MEMLOCK design, is backing.c; locking
 * them (and the warning that names the exhausted budget) is lock.c.  See
 * secretmem.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secretmem.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static int dontdump_errno, wipeonfork_errno;

static void put(char *buf, size_t cap, size_t *at, const char *s);
static void put_num(char *buf, size_t cap, size_t *at, unsigned long long n);

/* The first rejected setting, for secretjit_settings_error (written by the
 * library's constructor, before any other thread can call in). */
static char settings_error[320];

static int parse_size(const char *s, unsigned long long *out)
{
    unsigned long long v = 0;
    unsigned shift = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;                      /* also rejects '-', '+', ' ' */
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (~0ULL - d) / 10)
            return -1;                  /* overflow */
        v = v * 10 + d;
    }
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    default: break;
    }
    if (*p != '\0')
        return -1;
    if (shift && v > (~0ULL >> shift))
        return -1;                      /* overflow */
    *out = v << shift;
    return 0;
}

static void human(char *buf, size_t cap, size_t *at, unsigned long long n);

size_t secretjit__env_size(const char *name, size_t dflt, size_t lo, size_t hi)
{
    const char *s = getenv(name);
    unsigned long long v;
    char msg[sizeof settings_error];
    size_t at = 0;
    if (s == NULL || *s == '\0')
        return dflt;
    if (parse_size(s, &v) == 0 && v >= lo && v <= hi)
        return (size_t)v;
    put(msg, sizeof msg, &at, name);
    put(msg, sizeof msg, &at, "=");
    put(msg, sizeof msg, &at, s);
    put(msg, sizeof msg, &at, " is not a valid size: want a whole number of "
        "bytes, optionally with a suffix K, M, G or T (powers of 1024), from ");
    human(msg, sizeof msg, &at, lo);
    put(msg, sizeof msg, &at, " to ");
    human(msg, sizeof msg, &at, hi);
    put(msg, sizeof msg, &at, " (default ");
    human(msg, sizeof msg, &at, dflt);
    put(msg, sizeof msg, &at, ")");
    msg[at] = '\0';
    secretjit__settings_reject(msg, "using the default");
    return dflt;
}

void secretjit__settings_reject(const char *msg, const char *instead)
{
    if (settings_error[0] == '\0') {
        strncpy(settings_error, msg, sizeof settings_error - 1);
        settings_error[sizeof settings_error - 1] = '\0';
    }
    fprintf(stderr, "secretjit: error: %s; %s\n", msg, instead);
}

int secretjit_settings_error(char *buf, size_t len)
{
    if (settings_error[0] == '\0')
        return 0;
    if (buf && len) {
        size_t n = strlen(settings_error);
        if (n >= len)
            n = len - 1;
        memcpy(buf, settings_error, n);
        buf[n] = '\0';
    }
    return 1;
}

void secretjit__exclude(void *p, size_t len)
{
    if (madvise(p, len, MADV_DONTDUMP) != 0 && !dontdump_errno)
        __atomic_store_n(&dontdump_errno, errno, __ATOMIC_RELAXED);
    if (madvise(p, len, MADV_WIPEONFORK) != 0 && !wipeonfork_errno)
        __atomic_store_n(&wipeonfork_errno, errno, __ATOMIC_RELAXED);
}

/* Append s, or the decimal n, to buf at *at (no stdio: this runs inside secret
 * calls, on a stack whose depth the stack analysis must bound). */
static void put(char *buf, size_t cap, size_t *at, const char *s)
{
    while (*s && *at + 1 < cap)
        buf[(*at)++] = *s++;
}

static void put_num(char *buf, size_t cap, size_t *at, unsigned long long n)
{
    char digits[24];
    int i = 0;
    do {
        digits[i++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (i && *at + 1 < cap)
        buf[(*at)++] = digits[--i];
}

/* n as "256K", "4G" when it is a whole number of such units, else bytes. */
static void human(char *buf, size_t cap, size_t *at, unsigned long long n)
{
    static const char units[] = "TGMK";
    int i;
    for (i = 0; i < 4; i++) {
        unsigned shift = 40 - 10 * (unsigned)i;
        if (n >= (1ULL << shift) && (n & ((1ULL << shift) - 1)) == 0) {
            char u[2] = { units[i], 0 };
            put_num(buf, cap, at, n >> shift);
            put(buf, cap, at, u);
            return;
        }
    }
    put_num(buf, cap, at, n);
}

void secretjit__append(char *buf, size_t cap, size_t *at, const char *s)
{
    put(buf, cap, at, s);
}

void secretjit__append_num(char *buf, size_t cap, size_t *at,
                           unsigned long long n)
{
    put_num(buf, cap, at, n);
}

static void put_hex(char *buf, size_t cap, size_t *at, uintptr_t n)
{
    char digits[2 * sizeof n];
    int i = 0;
    put(buf, cap, at, "0x");
    do {
        digits[i++] = "0123456789abcdef"[n & 15];
        n >>= 4;
    } while (n);
    while (i && *at + 1 < cap)
        buf[(*at)++] = digits[--i];
}

void secretjit__misuse(const char *what, const void *p, const char *problem)
{
    char msg[256];
    size_t at = 0;
    ssize_t unused;
    put(msg, sizeof msg, &at, "secretjit: ");
    put(msg, sizeof msg, &at, what);
    put(msg, sizeof msg, &at, "(");
    put_hex(msg, sizeof msg, &at, (uintptr_t)p);
    put(msg, sizeof msg, &at, "): ");
    put(msg, sizeof msg, &at, problem);
    put(msg, sizeof msg, &at, "; ignored (shown once)\n");
    unused = write(2, msg, at);
    (void)unused;
}

void (secretjit__wipe)(void *p, size_t n)     /* (name): not marked.h's macro */
{
    /* explicit_bzero is glibc >= 2.25; a volatile loop would be slower.
     * (memset): libc's, not the marking wrapper: the secret stack's scrub
     * after every call runs it outside the tree; the heap's files call
     * secretjit__m_wipe (marked.h), which marks, then comes here. */
    (memset)(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void secretjit_memstats(struct secretjit_memstats *out)
{
    memset(out, 0, sizeof *out);
    secretjit__arena_stats(out);
    secretjit__slab_stats(out);
    secretjit__stack_stats(out);
    secretjit__lock_stats(out);
    out->dontdump_errno = __atomic_load_n(&dontdump_errno, __ATOMIC_RELAXED);
    out->wipeonfork_errno = __atomic_load_n(&wipeonfork_errno, __ATOMIC_RELAXED);
}

/* Read the settings and set up the arena when the library is loaded, so
 * that no secret call pays for it (or for the stdio it may use to report a
 * malformed setting). */
__attribute__((constructor)) static void secretjit__init(void)
{
    struct secretjit_memstats st;
    secretjit__backing_init();          /* first: its fork handler runs first */
    secretjit_memstats(&st);
}

/* secretjit__clear_vregs (secretmem.h).  The boundary of an exact call tree
 * zeroes only the vector registers that tree can write
 * (secretjit/stack_bound/vregs.py); the runtime code it calls must leave no
 * secret in the others.  The secret stack's exact entry calls this after its
 * interrupted-path check found data below the depth: any_nonzero and
 * deepest_write loaded secret stack bytes (a signal frame holds the tree's
 * whole register state) into vector registers.  Zeroes what this CPU has:
 * xmm0-15 (VEX vpxor also clears the upper ymm/zmm bits; legacy pxor
 * without AVX), and with AVX-512 zmm16-31 and k0-k7.  Decided once at load.
 * SECRETJIT_TEST_NO_CLEAR_VREGS builds it empty: the control of
 * tests/test_used_vregs.py, never a real build. */
#if defined(__x86_64__)
__attribute__((visibility("hidden"))) int secretjit__vlevel = 0;

__attribute__((constructor)) static void secretjit__vlevel_detect(void)
{
    __builtin_cpu_init();
    secretjit__vlevel = __builtin_cpu_supports("avx512f") ? 2
                      : __builtin_cpu_supports("avx") ? 1 : 0;
}

#ifdef SECRETJIT_TEST_NO_CLEAR_VREGS
void secretjit__clear_vregs(void) {}
#else
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl secretjit__clear_vregs\n"
    ".hidden secretjit__clear_vregs\n"
    ".type secretjit__clear_vregs, @function\n"
    "secretjit__clear_vregs:\n"
    "    movl secretjit__vlevel(%rip), %eax\n"
    "    testl %eax, %eax\n"
    "    jz 2f\n"
    SECRETJIT_VPXOR_XMM0_15
    "    cmpl $2, %eax\n"
    "    jb 1f\n"
    "    vpxord %zmm16, %zmm16, %zmm16\n    vpxord %zmm17, %zmm17, %zmm17\n"
    "    vpxord %zmm18, %zmm18, %zmm18\n    vpxord %zmm19, %zmm19, %zmm19\n"
    "    vpxord %zmm20, %zmm20, %zmm20\n    vpxord %zmm21, %zmm21, %zmm21\n"
    "    vpxord %zmm22, %zmm22, %zmm22\n    vpxord %zmm23, %zmm23, %zmm23\n"
    "    vpxord %zmm24, %zmm24, %zmm24\n    vpxord %zmm25, %zmm25, %zmm25\n"
    "    vpxord %zmm26, %zmm26, %zmm26\n    vpxord %zmm27, %zmm27, %zmm27\n"
    "    vpxord %zmm28, %zmm28, %zmm28\n    vpxord %zmm29, %zmm29, %zmm29\n"
    "    vpxord %zmm30, %zmm30, %zmm30\n    vpxord %zmm31, %zmm31, %zmm31\n"
    "    kxorw %k0, %k0, %k0\n    kxorw %k0, %k0, %k1\n"
    "    kxorw %k0, %k0, %k2\n    kxorw %k0, %k0, %k3\n"
    "    kxorw %k0, %k0, %k4\n    kxorw %k0, %k0, %k5\n"
    "    kxorw %k0, %k0, %k6\n    kxorw %k0, %k0, %k7\n"
    "1:  xorl %eax, %eax\n"
    "    ret\n"
    "2:  pxor %xmm0, %xmm0\n    pxor %xmm1, %xmm1\n"
    "    pxor %xmm2, %xmm2\n    pxor %xmm3, %xmm3\n"
    "    pxor %xmm4, %xmm4\n    pxor %xmm5, %xmm5\n"
    "    pxor %xmm6, %xmm6\n    pxor %xmm7, %xmm7\n"
    "    pxor %xmm8, %xmm8\n    pxor %xmm9, %xmm9\n"
    "    pxor %xmm10, %xmm10\n    pxor %xmm11, %xmm11\n"
    "    pxor %xmm12, %xmm12\n    pxor %xmm13, %xmm13\n"
    "    pxor %xmm14, %xmm14\n    pxor %xmm15, %xmm15\n"
    "    ret\n"
    ".size secretjit__clear_vregs, .-secretjit__clear_vregs\n");
#endif
#else
/* AArch64: the boundary keeps LLVM's "all" (v0-v31) and, in AOT builds,
 * secretjit_aot_clear_vregs: nothing is narrowed, nothing to add here. */
void secretjit__clear_vregs(void) {}
#endif
