/* Where the secret pages come from: memfd_secret(2), or private anonymous
 * memory that is mlock'ed, MADV_DONTDUMP and MADV_WIPEONFORK.  The arena's
 * reservation and every secret stack are mapped by secretjit__map_secret and
 * unmapped by secretjit__unmap_secret; nothing else in the runtime calls mmap
 * for secret pages.  See secretmem.h.
 *
 * The setting.  SECRETJIT_SECRET_MEMORY=auto (the default: memfd_secret when
 * the kernel offers it), memfd (memfd_secret or an error: secretjit_backing
 * returns -1 and the Python side raises) or mlock (the anonymous path).  The
 * kernel is probed once, with memfd_secret(O_CLOEXEC), when the library is
 * loaded: ENOSYS means a kernel older than 5.14, CONFIG_SECRETMEM off,
 * secretmem.enable=0, or an arm64 kernel that cannot remove pages from the
 * direct map.
 *
 * A memfd_secret mapping.  One descriptor per mapping, sized with ftruncate,
 * mapped MAP_SHARED and closed at once (the mapping keeps the file).  Its
 * pages leave the kernel's direct map when first faulted in: /proc/<pid>/mem,
 * ptrace and process_vm_readv read them as EIO, root included; they are
 * never swapped (VM_LOCKED, unevictable) and never dumped (VM_DONTDUMP).
 * mlock on them fails (the kernel cannot populate them through GUP) and
 * MADV_DONTNEED is refused (VM_LOCKED): secretjit__lock* count them as locked
 * without a syscall, and a freed arena span keeps its (wiped) pages.
 *
 * RLIMIT_MEMLOCK.  The kernel charges the WHOLE mapping to the locked-memory
 * budget when it is mapped (mlock_future_ok in secretmem_mmap; VmLck counts
 * it, guard pages and untouched pages included), unless the process has
 * CAP_IPC_LOCK.  When that fails (EAGAIN) in auto mode, that mapping takes
 * the anonymous path, which locks on fault and warns if the budget runs out
 * (common.c); later mappings try memfd_secret again.  In memfd mode the
 * mapping fails and the failure is reported as the backing error.
 *
 * Fork.  memfd_secret mappings are MAP_SHARED, so a child would share the
 * parent's secret pages.  The child handler (registered before the arena's
 * and the stacks', so it runs first) replaces every memfd_secret mapping of
 * the child, as /proc/self/maps lists it ("/secretmem (deleted)"), with
 * private anonymous zero pages of the same protection at the same address
 * (MAP_FIXED), marked MADV_DONTDUMP and MADV_WIPEONFORK: the child sees zeros
 * exactly as with MADV_WIPEONFORK, keeps the layout (guard pages stay
 * PROT_NONE), and the arena's and stacks' own child handlers then mlock what
 * they keep.  The child uses the anonymous path from then on.  If a range
 * cannot be replaced it is unmapped; if even that fails the child aborts
 * rather than share the parent's secrets.  MADV_DONTFORK was not chosen: the
 * child would lose the ranges' layout.  A child made without the atfork
 * handlers (a raw clone or fork system call, not fork(3)/os.fork) shares the
 * pages until it execs.  Every memfd_secret mapping in the process is
 * replaced, also one another library made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "secretmem.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447            /* the same on x86-64 and AArch64 */
#endif
#define MAX_MEMFD_MAPS 1024             /* memfd_secret mappings at once */

enum { WANT_AUTO, WANT_MEMFD, WANT_MLOCK };

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int want, use_memfd, failed, reason_set;
static size_t memfd_live, anon_live;    /* mappings now, by kind */
static char reason[400];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { uintptr_t lo, hi; } reg[MAX_MEMFD_MAPS];   /* under reg_lock */
static int reg_top;                     /* slots [0, reg_top) were ever used */

static const char *errno_name(int err)
{
    switch (err) {
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    default: return "errno";
    }
}

static void put_errno(char *b, size_t cap, size_t *at, int err)
{
    secretjit__append(b, cap, at, errno_name(err));
    secretjit__append(b, cap, at, " ");
    secretjit__append_num(b, cap, at, (unsigned)err);
}

static const char *const why_enosys = "the kernel is older than 5.14, has "
    "CONFIG_SECRETMEM off or secretmem.enable=0 on its command line, or is an "
    "arm64 kernel that cannot remove pages from the direct map";

/* The reason, written once at load time and once more by the first mapping
 * that falls back or fails. */
static void set_reason(const char *a, int err, const char *b, int update)
{
    char msg[sizeof reason];
    size_t at = 0;
    if (update && __atomic_exchange_n(&reason_set, 1, __ATOMIC_ACQ_REL))
        return;
    secretjit__append(msg, sizeof msg, &at, a);
    if (err) {
        secretjit__append(msg, sizeof msg, &at, " (");
        put_errno(msg, sizeof msg, &at, err);
        secretjit__append(msg, sizeof msg, &at, ")");
    }
    secretjit__append(msg, sizeof msg, &at, b);
    msg[at] = '\0';
    memcpy(reason, msg, at + 1);
}

static void fork_child(void);

static void setup(void)
{
    const char *s = getenv("SECRETJIT_SECRET_MEMORY");
    int fd, err = 0;
    if (s == NULL || *s == '\0' || strcmp(s, "auto") == 0)
        want = WANT_AUTO;
    else if (strcmp(s, "memfd") == 0)
        want = WANT_MEMFD;
    else if (strcmp(s, "mlock") == 0)
        want = WANT_MLOCK;
    else {
        char msg[320];
        size_t at = 0;
        secretjit__append(msg, sizeof msg, &at, "SECRETJIT_SECRET_MEMORY=");
        secretjit__append(msg, sizeof msg, &at, s);
        secretjit__append(msg, sizeof msg, &at, " is not a valid choice: want "
            "auto (memfd_secret when the kernel offers it, else mlock; the "
            "default), memfd (memfd_secret or an error) or mlock (mlock'ed "
            "anonymous memory)");
        msg[at] = '\0';
        secretjit__settings_reject(msg, "using auto");
        want = WANT_AUTO;
    }
    if (want == WANT_MLOCK) {
        set_reason("SECRETJIT_SECRET_MEMORY=mlock", 0, "", 0);
        return;
    }
    fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        use_memfd = 1;
        set_reason(want == WANT_MEMFD ? "SECRETJIT_SECRET_MEMORY=memfd: the "
                   "kernel offers memfd_secret(2)" : "auto: the kernel offers "
                   "memfd_secret(2)", 0, "", 0);
    } else {
        err = errno;
        if (want == WANT_MEMFD) {
            failed = 1;
            set_reason("SECRETJIT_SECRET_MEMORY=memfd, but memfd_secret(2) is "
                       "unavailable", err, err == ENOSYS ? ": " : "", 0);
            if (err == ENOSYS)
                strncat(reason, why_enosys, sizeof reason - strlen(reason) - 1);
        } else {
            set_reason("auto: memfd_secret(2) is unavailable", err,
                       "; using mmap + mlock + MADV_DONTDUMP + MADV_WIPEONFORK", 0);
        }
    }
    pthread_atfork(NULL, NULL, fork_child);
}

void secretjit__backing_init(void)
{
    pthread_once(&once, setup);
}

static int reg_add(void *p, size_t len)
{
    int i, ok = 0;
    pthread_mutex_lock(&reg_lock);
    for (i = 0; i < MAX_MEMFD_MAPS && !ok; i++)
        if (reg[i].hi == 0) {
            reg[i].lo = (uintptr_t)p;
            reg[i].hi = (uintptr_t)p + len;
            ok = 1;
            if (i >= reg_top)
                reg_top = i + 1;
        }
    pthread_mutex_unlock(&reg_lock);
    return ok;
}

/* 1 when [p, p+len) lies in a memfd_secret mapping (removing it when
 * `drop`). */
static int reg_find(const void *p, size_t len, int drop)
{
    uintptr_t a = (uintptr_t)p;
    int i, hit = 0;
    pthread_mutex_lock(&reg_lock);
    for (i = 0; i < reg_top && !hit; i++)
        if (reg[i].lo <= a && a + len <= reg[i].hi) {
            hit = 1;
            if (drop)
                reg[i].lo = reg[i].hi = 0;
        }
    pthread_mutex_unlock(&reg_lock);
    return hit;
}

int secretjit__is_memfd(const void *p, size_t len)
{
    if (__atomic_load_n(&memfd_live, __ATOMIC_RELAXED) == 0)
        return 0;
    if (__atomic_load_n(&anon_live, __ATOMIC_RELAXED) == 0)
        return 1;                       /* every secret mapping is memfd */
    return reg_find(p, len, 0);
}

static void *map_memfd(size_t len, int prot, int flags, int *err)
{
    void *p = MAP_FAILED;
    int fd = (int)syscall(SYS_memfd_secret, O_CLOEXEC);
    if (fd < 0) {
        *err = errno;
        return MAP_FAILED;
    }
    if (ftruncate(fd, (off_t)len) == 0)
        p = mmap(NULL, len, prot, MAP_SHARED | flags, fd, 0);
    *err = errno;
    close(fd);
    if (p != MAP_FAILED && !reg_add(p, len)) {
        munmap(p, len);
        *err = EMFILE;
        p = MAP_FAILED;
    }
    return p;
}

__attribute__((cold, noinline))
static void memfd_failed(size_t len, int err)
{
    char a[160];
    size_t at = 0;
    struct rlimit rl;
    secretjit__append(a, sizeof a, &at, want == WANT_MEMFD
                      ? "SECRETJIT_SECRET_MEMORY=memfd, but a memfd_secret "
                      "mapping of " : "auto: a memfd_secret mapping of ");
    secretjit__append_num(a, sizeof a, &at, len);
    secretjit__append(a, sizeof a, &at, " bytes failed");
    a[at] = '\0';
    if (err == EAGAIN && getrlimit(RLIMIT_MEMLOCK, &rl) == 0)
        set_reason(a, err, ": the kernel charges the whole mapping to "
                   "RLIMIT_MEMLOCK when it is mapped (raise the limit with "
                   "ulimit -l, or lower SECRETJIT_ARENA_SIZE)", 1);
    else if (err == EMFILE)
        set_reason(a, err, ": more memfd_secret mappings than secretjit "
                   "tracks (1024)", 1);
    else
        set_reason(a, err, "", 1);
    if (want != WANT_MEMFD)
        strncat(reason, "; this mapping uses mlock'ed anonymous memory",
                sizeof reason - strlen(reason) - 1);
}

void *secretjit__map_secret(size_t len, int prot, int flags)
{
    void *p;
    int err;
    secretjit__backing_init();
    if (__atomic_load_n(&use_memfd, __ATOMIC_RELAXED)) {
        p = map_memfd(len, prot, flags, &err);
        if (p != MAP_FAILED) {
            __atomic_add_fetch(&memfd_live, 1, __ATOMIC_RELAXED);
            return p;
        }
        memfd_failed(len, err);
        if (want == WANT_MEMFD) {
            __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);
            errno = err;
            return MAP_FAILED;
        }
    } else if (want == WANT_MEMFD) {
        errno = ENOSYS;
        return MAP_FAILED;
    }
    p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
    if (p != MAP_FAILED) {
        secretjit__exclude(p, len);
        __atomic_add_fetch(&anon_live, 1, __ATOMIC_RELAXED);
    }
    return p;
}

void secretjit__unmap_secret(void *p, size_t len)
{
    if (__atomic_load_n(&memfd_live, __ATOMIC_RELAXED) && reg_find(p, len, 1))
        __atomic_sub_fetch(&memfd_live, 1, __ATOMIC_RELAXED);
    else
        __atomic_sub_fetch(&anon_live, 1, __ATOMIC_RELAXED);
    munmap(p, len);
}

/* -- fork ------------------------------------------------------------------ */

__attribute__((noreturn)) static void child_abort(void)
{
    static const char m[] = "secretjit: fatal: a forked child could not "
        "replace the parent's memfd_secret pages, which it shares; aborting\n";
    ssize_t unused = write(2, m, sizeof m - 1);
    (void)unused;
    abort();
}

/* Replace the mapping of one line of /proc/self/maps if it is memfd_secret. */
static void replace_line(const char *line)
{
    static const char tag[] = "/secretmem (deleted)";
    size_t n = strlen(line), t = sizeof tag - 1;
    char *end;
    uintptr_t lo, hi;
    int prot;
    void *p;
    if (n < t || strcmp(line + n - t, tag) != 0)
        return;
    lo = strtoul(line, &end, 16);
    if (*end != '-')
        return;
    hi = strtoul(end + 1, &end, 16);
    if (*end != ' ' || hi <= lo)
        return;
    prot = (end[1] == 'r' ? PROT_READ : 0) | (end[2] == 'w' ? PROT_WRITE : 0)
           | (end[3] == 'x' ? PROT_EXEC : 0);
    p = mmap((void *)lo, hi - lo, prot, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS
             | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        if (munmap((void *)lo, hi - lo) != 0)
            child_abort();
        return;
    }
    secretjit__exclude(p, hi - lo);
}

/* Runs in the child of fork(3), before the arena's and the stacks' handlers:
 * only system calls and string functions (no malloc, no stdio).  The kernel
 * resumes a read of /proc/self/maps at the address where the last one
 * stopped, so replacing the mappings already read is safe. */
static void fork_child(void)
{
    static char buf[4096], line[512];
    size_t used = 0;
    ssize_t n, i;
    int fd;
    if (__atomic_load_n(&memfd_live, __ATOMIC_RELAXED) == 0)
        return;
    fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        child_abort();
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (used + 1 < sizeof line)
                    line[used++] = buf[i];
                continue;
            }
            line[used] = '\0';
            replace_line(line);
            used = 0;
        }
    close(fd);
    if (n < 0)
        child_abort();
    memset(reg, 0, sizeof reg);
    reg_top = 0;
    pthread_mutex_init(&reg_lock, NULL);
    anon_live += memfd_live;
    memfd_live = 0;
    use_memfd = 0;
    reason_set = 1;
    set_reason("a forked child of a process with memfd_secret memory: its "
               "secret ranges were replaced by private zero pages, and it "
               "uses mlock'ed anonymous memory", 0, "", 0);
}

/* -- status ----------------------------------------------------------------- */

int secretjit_backing(char *buf, size_t len)
{
    int code;
    size_t m, a;
    secretjit__backing_init();
    m = __atomic_load_n(&memfd_live, __ATOMIC_RELAXED);
    a = __atomic_load_n(&anon_live, __ATOMIC_RELAXED);
    if (__atomic_load_n(&failed, __ATOMIC_RELAXED))
        code = -1;
    else if (m && a)
        code = SECRETJIT_BACKING_MIXED;
    else if (m || (!a && __atomic_load_n(&use_memfd, __ATOMIC_RELAXED)))
        code = SECRETJIT_BACKING_MEMFD;
    else
        code = SECRETJIT_BACKING_MLOCK;
    if (buf && len) {
        size_t k = strnlen(reason, sizeof reason);
        if (k >= len)
            k = len - 1;
        memcpy(buf, reason, k);
        buf[k] = '\0';
    }
    return code;
}
