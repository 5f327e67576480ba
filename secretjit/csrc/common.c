/* Settings, page hardening and status shared by the arena and the secret
 * stack.  Where the pages come from (memfd_secret or mlock'ed anonymous
 * memory), with the fork and RLIMIT_MEMLOCK design, is backing.c.  See
 * secretmem.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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

/* Up to cap - 1 bytes of a small /proc file, NUL-terminated; -1 on error.
 * (open/read, no stdio: see put.) */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    ssize_t n, got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while ((size_t)got + 1 < cap
           && (n = read(fd, buf + got, cap - 1 - (size_t)got)) > 0)
        got += n;
    close(fd);
    buf[got] = '\0';
    return got;
}

/* The number after `key` at the start of a line of buf, or -1. */
static long long field(const char *buf, const char *key, int base)
{
    size_t k = strlen(key);
    const char *p = buf;
    while (p && *p) {
        if (strncmp(p, key, k) == 0)
            return strtoll(p + k, NULL, base);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

static long long count_maps(char *buf, size_t cap)
{
    long long lines = 0;
    ssize_t n, i;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while ((n = read(fd, buf, cap)) > 0)
        for (i = 0; i < n; i++)
            lines += buf[i] == '\n';
    close(fd);
    return lines;
}

/* Which budget a failed mlock ran out of; each is reported once. */
enum { CAUSE_RLIMIT = 1, CAUSE_MAPS = 2, CAUSE_OTHER = 4 };
static int warned_causes;
static int warning_busy;
static char warn_msg[1024], proc_buf[4096];   /* under warning_busy */

__attribute__((cold, noinline))
static void lock_failed(size_t len, int err)
{
    struct rlimit rl;
    long long vmlck, capeff, maps = -1, max_maps = -1;
    int cause, have_rl, have_cap;
    size_t at = 0, cap = sizeof warn_msg;
    char *msg = warn_msg;
    ssize_t unused;
    if (__atomic_exchange_n(&warning_busy, 1, __ATOMIC_ACQUIRE))
        return;                 /* another thread is reporting right now */
    have_rl = getrlimit(RLIMIT_MEMLOCK, &rl) == 0;
    vmlck = capeff = -1;
    if (read_small("/proc/self/status", proc_buf, sizeof proc_buf) > 0) {
        vmlck = field(proc_buf, "VmLck:", 10);
        capeff = field(proc_buf, "CapEff:", 16);
    }
    have_cap = capeff >= 0 && (capeff & (1LL << 14));   /* CAP_IPC_LOCK */
    if (err == EPERM)
        cause = CAUSE_RLIMIT;
    else if (err == ENOMEM) {
        /* ENOMEM is either the lock budget or a mapping split refused at
         * vm.max_map_count (mlock of part of a mapping splits it). */
        if (!have_cap && have_rl && rl.rlim_cur != RLIM_INFINITY
            && (vmlck < 0 || (unsigned long long)vmlck * 1024 + len > rl.rlim_cur))
            cause = CAUSE_RLIMIT;
        else
            cause = CAUSE_MAPS;
    } else
        cause = CAUSE_OTHER;
    if (__atomic_fetch_or(&warned_causes, cause, __ATOMIC_RELAXED) & cause) {
        __atomic_store_n(&warning_busy, 0, __ATOMIC_RELEASE);
        return;
    }
    put(msg, cap, &at, "secretjit: warning: mlock of ");
    put_num(msg, cap, &at, len);
    put(msg, cap, &at, " bytes of secret memory failed (errno ");
    put_num(msg, cap, &at, (unsigned)err);
    put(msg, cap, &at, "): ");
    if (cause == CAUSE_MAPS) {
        maps = count_maps(proc_buf, sizeof proc_buf);
        if (read_small("/proc/sys/vm/max_map_count", proc_buf, sizeof proc_buf) > 0)
            max_maps = strtoll(proc_buf, NULL, 10);
        put(msg, cap, &at, "the exhausted budget is vm.max_map_count (the "
            "process has ");
        if (maps >= 0)
            put_num(msg, cap, &at, (unsigned long long)maps);
        else
            put(msg, cap, &at, "an unknown number of");
        put(msg, cap, &at, " mappings, the limit is ");
        if (max_maps >= 0)
            put_num(msg, cap, &at, (unsigned long long)max_maps);
        else
            put(msg, cap, &at, "unknown");
        put(msg, cap, &at, "; locking part of a mapping splits it), not "
            "RLIMIT_MEMLOCK");
    } else if (cause == CAUSE_RLIMIT) {
        put(msg, cap, &at, "the exhausted budget is RLIMIT_MEMLOCK");
    } else {
        put(msg, cap, &at, "the kernel could not lock the pages");
    }
    put(msg, cap, &at, " (RLIMIT_MEMLOCK is ");
    if (!have_rl)
        put(msg, cap, &at, "unknown");
    else if (rl.rlim_cur == RLIM_INFINITY)
        put(msg, cap, &at, "unlimited");
    else {
        put_num(msg, cap, &at, rl.rlim_cur);
        put(msg, cap, &at, " bytes");
    }
    if (have_cap)
        put(msg, cap, &at, ", CAP_IPC_LOCK in effect");
    if (vmlck >= 0) {
        put(msg, cap, &at, ", the process has ");
        put_num(msg, cap, &at, (unsigned long long)vmlck * 1024);
        put(msg, cap, &at, " bytes locked");
    }
    put(msg, cap, &at, ", secretjit ");
    put_num(msg, cap, &at, __atomic_load_n(&locked_bytes, __ATOMIC_RELAXED));
    put(msg, cap, &at, " of them): secret pages may be swapped out.  They are "
        "still wiped and left out of core dumps, and locking is retried on "
        "later allocations.  Fix: ");
    if (cause == CAUSE_MAPS)
        put(msg, cap, &at, "raise the limit (sysctl vm.max_map_count) or make "
            "fewer, larger secret allocations (every arena buffer is a mapping "
            "and its guard page).");
    else
        put(msg, cap, &at, "raise the limit (`ulimit -l`, LimitMEMLOCK= in a "
            "systemd unit, memlock in /etc/security/limits.conf) or lower "
            "SECRETJIT_ARENA_SIZE / SECRETJIT_STACK_SIZE.");
    put(msg, cap, &at, "  This warning is shown once.\n");
    unused = write(2, msg, at);
    (void)unused;
    __atomic_store_n(&warning_busy, 0, __ATOMIC_RELEASE);
}

int secretjit__lock_onfault(void *p, size_t len)
{
#ifdef MLOCK_ONFAULT
    int expected = 0, err;
    if (secretjit__is_memfd(p, len)) {
        __atomic_add_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
        return 0;               /* locked by the kernel (backing.c) */
    }
    if (mlock2(p, len, MLOCK_ONFAULT) == 0) {
        __atomic_add_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
        return 0;
    }
    err = errno;
    if (err != ENOSYS && err != EINVAL) {
        __atomic_compare_exchange_n(&mlock_errno, &expected, err, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        lock_failed(len, err);
        return -1;
    }
#endif
    return secretjit__lock(p, len);     /* no mlock2 (kernel < 4.4, qemu) */
}

int secretjit__lock(void *p, size_t len)
{
    int expected = 0, err;
    if (secretjit__is_memfd(p, len) || mlock(p, len) == 0) {
        __atomic_add_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
        return 0;
    }
    err = errno;
    __atomic_compare_exchange_n(&mlock_errno, &expected, err, 0,
                                __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    lock_failed(len, err);
    return -1;
}

void secretjit__unlocked(size_t len)
{
    __atomic_sub_fetch(&locked_bytes, len, __ATOMIC_RELAXED);
}

void secretjit__unlock(void *p, size_t len)
{
    munlock(p, len);
    secretjit__unlocked(len);
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
    secretjit__backing_init();          /* first: its fork handler runs first */
    secretjit_memstats(&st);
}
