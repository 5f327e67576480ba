/* Settings, page hardening and status shared by the arena and the secret
 * stack.  See secretmem.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "secretmem.h"

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

static int mlock_errno, dontdump_errno, wipeonfork_errno;
static size_t locked_bytes;

size_t secretjit__env_size(const char *name, size_t dflt)
{
    const char *s = getenv(name);
    char *end;
    unsigned long long v;
    if (s == NULL || *s == '\0')
        return dflt;
    errno = 0;
    v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k': case 'K': v <<= 10; end++; break;
    case 'm': case 'M': v <<= 20; end++; break;
    case 'g': case 'G': v <<= 30; end++; break;
    default: break;
    }
    if (errno || end == s || *end != '\0' || v == 0) {
        fprintf(stderr, "secretjit: ignoring %s=%s (want a positive size such "
                "as 262144, 256K, 64M or 1G); using %zu\n", name, s, dflt);
        return dflt;
    }
    return (size_t)v;
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

int secretjit__lock(void *p, size_t len)
{
    static char msg[640];       /* written once, under the CAS below */
    int expected = 0, err;
    size_t at = 0;
    struct rlimit rl;
    ssize_t unused;
    if (mlock(p, len) == 0) {
        __atomic_add_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
        return 0;
    }
    err = errno;
    if (!__atomic_compare_exchange_n(&mlock_errno, &expected, err, 0,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return -1;
    put(msg, sizeof msg, &at, "secretjit: warning: mlock of ");
    put_num(msg, sizeof msg, &at, len);
    put(msg, sizeof msg, &at, " bytes of secret memory failed (errno ");
    put_num(msg, sizeof msg, &at, (unsigned)err);
    put(msg, sizeof msg, &at, "; RLIMIT_MEMLOCK is ");
    if (getrlimit(RLIMIT_MEMLOCK, &rl) != 0)
        put(msg, sizeof msg, &at, "unknown");
    else if (rl.rlim_cur == RLIM_INFINITY)
        put(msg, sizeof msg, &at, "unlimited");
    else {
        put_num(msg, sizeof msg, &at, rl.rlim_cur);
        put(msg, sizeof msg, &at, " bytes");
    }
    put(msg, sizeof msg, &at, ", ");
    put_num(msg, sizeof msg, &at, __atomic_load_n(&locked_bytes, __ATOMIC_RELAXED));
    put(msg, sizeof msg, &at,
        " bytes locked so far): secret pages may be swapped out.  They are "
        "still wiped and left out of core dumps.  Fix: raise the limit "
        "(`ulimit -l`, LimitMEMLOCK= in a systemd unit, memlock in "
        "/etc/security/limits.conf) or lower SECRETJIT_ARENA_SIZE / "
        "SECRETJIT_STACK_SIZE.  This warning is shown once.\n");
    unused = write(2, msg, at);
    (void)unused;
    return -1;
}

void secretjit__unlocked(size_t len)
{
    __atomic_sub_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
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
    secretjit__stack_stats(out);
    out->locked_bytes = __atomic_load_n(&locked_bytes, __ATOMIC_RELAXED);
    out->mlock_errno = __atomic_load_n(&mlock_errno, __ATOMIC_RELAXED);
    out->dontdump_errno = __atomic_load_n(&dontdump_errno, __ATOMIC_RELAXED);
    out->wipeonfork_errno = __atomic_load_n(&wipeonfork_errno, __ATOMIC_RELAXED);
}

/* Read the settings and set up the arena when the library is loaded, so
 * that no secret call pays for it (or for the stdio it may use to report a
 * malformed setting). */
__attribute__((constructor)) static void secretjit__init(void)
{
    struct secretjit_memstats st;
    secretjit_memstats(&st);
}
