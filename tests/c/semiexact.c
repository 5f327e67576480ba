/* The exact secret call with marked C library calls (issue 15), at the C
 * level (tests/test_semiexact.py builds it natively and for AArch64 under
 * qemu).
 *
 * Each tree allocates and frees one slab block, then writes a word 256 bytes
 * below the depth (inside the 1 KiB frame window), standing for a C library
 * call that wrote deeper than its allowance:
 * - A: the first block of a size class (the slow path: the depot's mutex,
 *   a new slab, mlock, all marked calls): the exact entry sees the flag set,
 *   checks the window, finds and zeroes the word;
 * - B: the same classes again (the hot path: no C library call): the word is
 *   left (the exact entry does not look, unless rseq says the call was
 *   interrupted), so the hot path sets no flag;
 * - C (the control of A): fresh classes, but the tree clears the flag before
 *   it returns (the check forced off): the word is left; C_flagged counts
 *   the calls in which the slow path had set it;
 * - D: a marked call itself (secretjit__m_getrlimit), then the word: zeroed.
 * A-D run with a marked slack of 0.  With a slack of SLACK bytes
 * (secretjit_set_marked_slack), the word written SLACK - 512 bytes below
 * the depth (below the frame window):
 * - E: arena spans (marked every time): the exact entry scrubs the slack
 *   too, so the word is zeroed without the search for a deeper write;
 * - F (the control of E): the same, but the tree clears the flag: left.
 * Then each wrapper of marked.h is called with harmless arguments and must
 * set the flag ("wrap_NAME=1").  Prints "key=value" words. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "secretmem.h"
#include "marked.h"
#include "stack_probe.h"

/* 2048: the C entry; -DDEPTH=160 on x86-64: its assembly fast path. */
#ifndef DEPTH
#define DEPTH 2048
#endif

#define SLACK 4096

static int clear_flag, flagged;
static size_t mark_below = 256;     /* the word's offset below the depth */

static volatile uint64_t *marker(void)
{
    uintptr_t lo, hi;
    if (!secretjit_stack_range(&lo, &hi))
        return 0;
    return (volatile uint64_t *)(hi - DEPTH - mark_below);
}

static void alloc_then_write(void *arg)
{
    void *p = secretjit_slab_alloc(*(size_t *)arg);
    secretjit_slab_free(p);
    *marker() = 0x5ec7e7ULL;
    if (clear_flag) {
        flagged += secretjit__inexact == 1;
        secretjit__inexact = 0;
    }
}

static void marked_then_write(void *arg)
{
    struct rlimit rl;
    (void)arg;
    secretjit__m_getrlimit(RLIMIT_MEMLOCK, &rl);
    *marker() = 0x5ec7e7ULL;
}

static void noop(void *arg) { __asm__ volatile("" : : "r"(arg) : "memory"); }

static unsigned long long scrubs(void)
{
    struct secretjit_memstats st;
    secretjit_memstats(&st);
    return (unsigned long long)st.signal_scrubs;
}

static size_t dirty;     /* non-zero words on the secret stack after the calls */

/* Run tree on each size with the exact entry: how many calls left the word. */
static int run(void (*tree)(void *), const size_t *sizes, int n)
{
    int i, left = 0;
    dirty = 0;
    for (i = 0; i < n; i++) {
        size_t s = sizes[i];
        int rc = secretjit_secret_call_exact(tree, &s, DEPTH);
        left += rc == 0 && *marker() != 0;
        dirty += nonzero_words();
        zero_stack();
    }
    return left;
}

#define WRAP(name, call) do { \
        secretjit__inexact = 0; \
        (void)(call); \
        printf("wrap_%s=%d\n", name, secretjit__inexact); \
    } while (0)

int main(void)
{
    static const size_t fresh[] = {8, 20, 40, 100, 200};      /* 16 .. 256 */
    static const size_t fresh2[] = {300, 600, 1200};          /* 512 .. 2048 */
    static const size_t spans[] = {3000, 5000, 9000};         /* arena spans */
    struct secretjit_memstats st;
    struct rlimit rl;
    unsigned long long before;
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    char buf[64], *end;
    int fd, left;
    void *page;

    secretjit_set_marked_slack(0);
    printf("setup=%d\n", secretjit_secret_call_exact(noop, 0, DEPTH));
    secretjit_memstats(&st);
    printf("rseq=%d\n", st.rseq);
    before = scrubs();
    left = run(alloc_then_write, fresh, 5);
    printf("A_left=%d A_scrubs=%llu A_dirty=%zu\n", left, scrubs() - before, dirty);
    left = run(alloc_then_write, fresh, 5);
    printf("B_left=%d\n", left);
    clear_flag = 1;
    left = run(alloc_then_write, fresh2, 3);
    clear_flag = 0;
    printf("C_left=%d C_flagged=%d\n", left, flagged);
    before = scrubs();
    left = run(marked_then_write, fresh, 1);
    printf("D_left=%d D_scrubs=%llu D_dirty=%zu\n", left, scrubs() - before, dirty);

    secretjit_set_marked_slack(SLACK);
    mark_below = SLACK - 512;
    before = scrubs();
    left = run(alloc_then_write, spans, 3);
    printf("E_left=%d E_scrubs=%llu E_dirty=%zu\n", left, scrubs() - before, dirty);
    clear_flag = 1;
    flagged = 0;
    left = run(alloc_then_write, spans, 3);
    clear_flag = 0;
    printf("F_left=%d F_flagged=%d\n", left, flagged);
    mark_below = 256;
    secretjit_set_marked_slack(0);

    page = secretjit__m_mmap(0, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    WRAP("mmap", secretjit__m_mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    WRAP("mprotect", secretjit__m_mprotect((char *)page + 4096, 4096, PROT_READ));
    WRAP("mlock", secretjit__m_mlock(page, 4096));
    WRAP("munlock", secretjit__m_munlock(page, 4096));
    WRAP("madvise", secretjit__m_madvise(page, 4096, MADV_NORMAL));
    WRAP("getrlimit", secretjit__m_getrlimit(RLIMIT_MEMLOCK, &rl));
    WRAP("errno_location", secretjit__m_errno_location());
    WRAP("strchr", secretjit__m_strchr("a\nb", '\n'));
    WRAP("strncmp", secretjit__m_strncmp("ab", "ac", 2));
    WRAP("strlen", secretjit__m_strlen("abc"));
    WRAP("strtoll", secretjit__m_strtoll("123", &end, 10));
    WRAP("pthread_mutex_lock", secretjit__m_pthread_mutex_lock(&m));
    WRAP("pthread_mutex_unlock", secretjit__m_pthread_mutex_unlock(&m));
    fd = -1;
    WRAP("open", fd = secretjit__m_open("/proc/self/status", O_RDONLY | O_CLOEXEC));
    WRAP("read", secretjit__m_read(fd, buf, sizeof buf));
    WRAP("close", secretjit__m_close(fd));
    WRAP("write", secretjit__m_write(-1, buf, 0));
    WRAP("memset", secretjit__m_memset(buf, 0, sizeof buf));
    WRAP("memcpy", secretjit__m_memcpy(buf, "xyz", 3));
    WRAP("memmove", secretjit__m_memmove(buf + 1, buf, 3));
    WRAP("wipe", secretjit__m_wipe(buf, sizeof buf));
    return 0;
}
