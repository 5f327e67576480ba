/* The marked C library calls of the secret heap (issue 15).
 *
 * The heap's kernel-path entries (secretjit_slab_alloc/free/realloc) are
 * bounded from their machine code (secretjit/stack_bound/native.py), except
 * for the C library functions they call on slow paths (a new slab, mlock,
 * madvise, the depot's mutex, the mlock-failure warning, realloc's memcpy),
 * which count measured allowances.  Every such call goes through a wrapper
 * secretjit__m_NAME (marked.c) that first sets this thread's
 * secretjit__inexact; secretjit_secret_call_exact clears it before the call
 * and, when it finds it set afterwards, checks the frame window below the
 * depth like the plain entry (secretstack.c).  So an exact call stays exact
 * on the hot path (no C library code runs) and is checked like the plain
 * one whenever allowance-covered code ran.
 *
 * The heap's files define SECRETJIT_MARK_CALLS and include this header
 * last: the macros below then send their calls of these functions to the
 * wrappers (elsewhere, e.g. secretstack_internal.h, it only declares them).
 * native.py proves from the machine code that no function below the
 * entries but a wrapper calls outside the library, and that each wrapper
 * (and each secretjit__cold_ function, below) stores 1 to
 * secretjit__inexact before its first branch, call or return. */
#ifndef SECRETJIT_MARKED_H
#define SECRETJIT_MARKED_H

#include <pthread.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#pragma GCC visibility push(hidden)
/* Set (1) by every wrapper before its C library call; cleared by the exact
 * secret call.  initial-exec: no __tls_get_addr. */
extern __thread int secretjit__inexact __attribute__((tls_model("initial-exec")));

/* The store every marking function starts with: a relaxed atomic store and
 * a compiler barrier, so that nothing is moved above it. */
#define SECRETJIT_MARK() do { \
        __atomic_store_n(&secretjit__inexact, 1, __ATOMIC_RELAXED); \
        __asm__ __volatile__("" : : : "memory"); \
    } while (0)

/* The heap's own slow paths are marked too: each is called through a static
 * function secretjit__cold_NAME (SECRETJIT_COLD; slab.c) that marks, then
 * calls it.  The exact call's depth leaves everything below a marking
 * function out (its "hot" depth, stack_bound.native.runtime_bounds) and adds
 * the process's marked slack (secretjit_set_marked_slack) when the flag is
 * set: the fast paths keep a small scrub, the slow ones get the whole
 * bound. */
#define SECRETJIT_COLD __attribute__((noinline, noipa, cold))

void *secretjit__m_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int secretjit__m_mprotect(void *addr, size_t len, int prot);
int secretjit__m_mlock(const void *addr, size_t len);
int secretjit__m_munlock(const void *addr, size_t len);
int secretjit__m_madvise(void *addr, size_t len, int advice);
int secretjit__m_getrlimit(int resource, struct rlimit *rl);
int *secretjit__m_errno_location(void);
char *secretjit__m_strchr(const char *s, int c);
int secretjit__m_strncmp(const char *a, const char *b, size_t n);
size_t secretjit__m_strlen(const char *s);
long long secretjit__m_strtoll(const char *s, char **end, int base);
int secretjit__m_pthread_mutex_lock(pthread_mutex_t *m);
int secretjit__m_pthread_mutex_unlock(pthread_mutex_t *m);
int secretjit__m_open(const char *path, int flags);
int secretjit__m_close(int fd);
ssize_t secretjit__m_read(int fd, void *buf, size_t n);
ssize_t secretjit__m_write(int fd, const void *buf, size_t n);
/* common.c's wipe (libc's memset), marked: the heap's span wipes. */
void secretjit__m_wipe(void *p, size_t n);
#pragma GCC visibility pop
/* Exported too: the JIT's secret engines resolve the memset, memcpy and
 * memmove calls of numba's code to these (secretjit/arena_nrt.py, issue
 * 15), so that a tree whose only C library calls are those takes the exact
 * entry, checked like the plain one when one ran.  Protected: the heap's
 * own calls bind here directly, not through the PLT. */
#define SECRETJIT_MARKED_EXPORT __attribute__((visibility("protected")))
SECRETJIT_MARKED_EXPORT void *secretjit__m_memset(void *p, int c, size_t n);
SECRETJIT_MARKED_EXPORT void *secretjit__m_memcpy(void *d, const void *s, size_t n);
SECRETJIT_MARKED_EXPORT void *secretjit__m_memmove(void *d, const void *s, size_t n);

#endif

#if defined(SECRETJIT_MARK_CALLS) && !defined(SECRETJIT_MARKED_MACROS)
#define SECRETJIT_MARKED_MACROS
#define mmap(...) secretjit__m_mmap(__VA_ARGS__)
#define mprotect(...) secretjit__m_mprotect(__VA_ARGS__)
#define mlock(...) secretjit__m_mlock(__VA_ARGS__)
#define munlock(...) secretjit__m_munlock(__VA_ARGS__)
#define madvise(...) secretjit__m_madvise(__VA_ARGS__)
#define getrlimit(...) secretjit__m_getrlimit(__VA_ARGS__)
#define __errno_location() secretjit__m_errno_location()
#define strchr(...) secretjit__m_strchr(__VA_ARGS__)
#define strncmp(...) secretjit__m_strncmp(__VA_ARGS__)
#define strlen(...) secretjit__m_strlen(__VA_ARGS__)
#define strtoll(...) secretjit__m_strtoll(__VA_ARGS__)
#define pthread_mutex_lock(...) secretjit__m_pthread_mutex_lock(__VA_ARGS__)
#define pthread_mutex_unlock(...) secretjit__m_pthread_mutex_unlock(__VA_ARGS__)
#define open(...) secretjit__m_open(__VA_ARGS__)
#define close(...) secretjit__m_close(__VA_ARGS__)
#define read(...) secretjit__m_read(__VA_ARGS__)
#define write(...) secretjit__m_write(__VA_ARGS__)
#define memset(...) secretjit__m_memset(__VA_ARGS__)
#define memcpy(...) secretjit__m_memcpy(__VA_ARGS__)
#define secretjit__wipe(...) secretjit__m_wipe(__VA_ARGS__)
#endif
