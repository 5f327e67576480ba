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

void secretjit__wipe(void *p, size_t n)
{
    /* explicit_bzero is glibc >= 2.25; a volatile loop would be slower. */
    memset(p, 0, n);
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
