/* Locking secret pages: mlock (or mlock2(MLOCK_ONFAULT)), the count of
 * locked bytes, and the warning, once per cause, that names the budget a
 * failed mlock ran out of (RLIMIT_MEMLOCK or vm.max_map_count) and the fix.
 * It runs inside secret calls: no stdio.  See secretmem.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "secretmem.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

/* common.c's appenders (no stdio). */
#define put secretjit__append
#define put_num secretjit__append_num

static int mlock_errno;
static size_t locked_bytes;

/* Up to cap - 1 bytes of a small /proc file, NUL-terminated; -1 on error.
 * (open/read, no stdio: see common.c's put.) */
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
/* Which budget the failed mlock of `len` bytes (errno `err`) ran out of. */
static int failure_cause(int err, size_t len, const struct rlimit *rl, int have_rl,
                         long long vmlck, int have_cap)
{
    if (err == EPERM)
        return CAUSE_RLIMIT;
    if (err != ENOMEM)
        return CAUSE_OTHER;
    /* ENOMEM is either the lock budget or a mapping split refused at
     * vm.max_map_count (mlock of part of a mapping splits it). */
    if (!have_cap && have_rl && rl->rlim_cur != RLIM_INFINITY
        && (vmlck < 0 || (unsigned long long)vmlck * 1024 + len > rl->rlim_cur))
        return CAUSE_RLIMIT;
    return CAUSE_MAPS;
}

/* "the exhausted budget is ...": the cause, with the mapping counts for maps. */
static void put_exhausted(char *msg, size_t cap, size_t *at, int cause)
{
    long long maps, max_maps = -1;
    if (cause == CAUSE_RLIMIT) {
        put(msg, cap, at, "the exhausted budget is RLIMIT_MEMLOCK");
        return;
    }
    if (cause != CAUSE_MAPS) {
        put(msg, cap, at, "the kernel could not lock the pages");
        return;
    }
    maps = count_maps(proc_buf, sizeof proc_buf);
    if (read_small("/proc/sys/vm/max_map_count", proc_buf, sizeof proc_buf) > 0)
        max_maps = strtoll(proc_buf, NULL, 10);
    put(msg, cap, at, "the exhausted budget is vm.max_map_count (the "
        "process has ");
    if (maps >= 0)
        put_num(msg, cap, at, (unsigned long long)maps);
    else
        put(msg, cap, at, "an unknown number of");
    put(msg, cap, at, " mappings, the limit is ");
    if (max_maps >= 0)
        put_num(msg, cap, at, (unsigned long long)max_maps);
    else
        put(msg, cap, at, "unknown");
    put(msg, cap, at, "; locking part of a mapping splits it), not "
        "RLIMIT_MEMLOCK");
}

/* " (RLIMIT_MEMLOCK is ..., the process has ... locked, secretjit ... of them)" */
static void put_budget(char *msg, size_t cap, size_t *at, const struct rlimit *rl,
                       int have_rl, int have_cap, long long vmlck)
{
    put(msg, cap, at, " (RLIMIT_MEMLOCK is ");
    if (!have_rl)
        put(msg, cap, at, "unknown");
    else if (rl->rlim_cur == RLIM_INFINITY)
        put(msg, cap, at, "unlimited");
    else {
        put_num(msg, cap, at, rl->rlim_cur);
        put(msg, cap, at, " bytes");
    }
    if (have_cap)
        put(msg, cap, at, ", CAP_IPC_LOCK in effect");
    if (vmlck >= 0) {
        put(msg, cap, at, ", the process has ");
        put_num(msg, cap, at, (unsigned long long)vmlck * 1024);
        put(msg, cap, at, " bytes locked");
    }
    put(msg, cap, at, ", secretjit ");
    put_num(msg, cap, at, __atomic_load_n(&locked_bytes, __ATOMIC_RELAXED));
    put(msg, cap, at, " of them)");
}

static void lock_failed(size_t len, int err)
{
    struct rlimit rl;
    long long vmlck = -1, capeff = -1;
    int cause, have_rl, have_cap;
    size_t at = 0, cap = sizeof warn_msg;
    char *msg = warn_msg;
    ssize_t unused;
    if (__atomic_exchange_n(&warning_busy, 1, __ATOMIC_ACQUIRE))
        return;                 /* another thread is reporting right now */
    have_rl = getrlimit(RLIMIT_MEMLOCK, &rl) == 0;
    if (read_small("/proc/self/status", proc_buf, sizeof proc_buf) > 0) {
        vmlck = field(proc_buf, "VmLck:", 10);
        capeff = field(proc_buf, "CapEff:", 16);
    }
    have_cap = capeff >= 0 && (capeff & (1LL << 14));   /* CAP_IPC_LOCK */
    cause = failure_cause(err, len, &rl, have_rl, vmlck, have_cap);
    if (__atomic_fetch_or(&warned_causes, cause, __ATOMIC_RELAXED) & cause) {
        __atomic_store_n(&warning_busy, 0, __ATOMIC_RELEASE);
        return;
    }
    put(msg, cap, &at, "secretjit: warning: mlock of ");
    put_num(msg, cap, &at, len);
    put(msg, cap, &at, " bytes of secret memory failed (errno ");
    put_num(msg, cap, &at, (unsigned)err);
    put(msg, cap, &at, "): ");
    put_exhausted(msg, cap, &at, cause);
    put_budget(msg, cap, &at, &rl, have_rl, have_cap, vmlck);
    put(msg, cap, &at, ": secret pages may be swapped out.  They are "
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

void secretjit__lock_stats(struct secretjit_memstats *out)
{
    out->locked_bytes = __atomic_load_n(&locked_bytes, __ATOMIC_RELAXED);
    out->mlock_errno = __atomic_load_n(&mlock_errno, __ATOMIC_RELAXED);
}
