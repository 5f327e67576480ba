/* The marking wrappers of marked.h: each sets this thread's
 * secretjit__inexact, then makes its C library call.  The store comes
 * first in every wrapper's machine code (a relaxed atomic store and a
 * compiler barrier: nothing is moved above it), which
 * secretjit/stack_bound/native.py checks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "marked.h"
#include "secretmem.h"

__thread int secretjit__inexact __attribute__((tls_model("initial-exec")));

#define MARK() SECRETJIT_MARK()

void *secretjit__m_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{ MARK(); return mmap(addr, len, prot, flags, fd, off); }
int secretjit__m_mprotect(void *addr, size_t len, int prot)
{ MARK(); return mprotect(addr, len, prot); }
int secretjit__m_mlock(const void *addr, size_t len)
{ MARK(); return mlock(addr, len); }
int secretjit__m_munlock(const void *addr, size_t len)
{ MARK(); return munlock(addr, len); }
int secretjit__m_madvise(void *addr, size_t len, int advice)
{ MARK(); return madvise(addr, len, advice); }
int secretjit__m_getrlimit(int resource, struct rlimit *rl)
{ MARK(); return getrlimit(resource, rl); }
int *secretjit__m_errno_location(void)
{ MARK(); return __errno_location(); }
char *secretjit__m_strchr(const char *s, int c)
{ MARK(); return strchr(s, c); }
int secretjit__m_strncmp(const char *a, const char *b, size_t n)
{ MARK(); return strncmp(a, b, n); }
size_t secretjit__m_strlen(const char *s)
{ MARK(); return strlen(s); }
long long secretjit__m_strtoll(const char *s, char **end, int base)
{ MARK(); return strtoll(s, end, base); }
int secretjit__m_pthread_mutex_lock(pthread_mutex_t *m)
{ MARK(); return pthread_mutex_lock(m); }
int secretjit__m_pthread_mutex_unlock(pthread_mutex_t *m)
{ MARK(); return pthread_mutex_unlock(m); }
/* Two arguments (the runtime opens files to read them): not variadic, whose
 * register save area would cost the deepest path 88 bytes. */
int secretjit__m_open(const char *path, int flags)
{ MARK(); return open(path, flags); }
int secretjit__m_close(int fd)
{ MARK(); return close(fd); }
ssize_t secretjit__m_read(int fd, void *buf, size_t n)
{ MARK(); return read(fd, buf, n); }
ssize_t secretjit__m_write(int fd, const void *buf, size_t n)
{ MARK(); return write(fd, buf, n); }
void *secretjit__m_memset(void *p, int c, size_t n)
{ MARK(); return memset(p, c, n); }
void *secretjit__m_memcpy(void *d, const void *s, size_t n)
{ MARK(); return memcpy(d, s, n); }
void *secretjit__m_memmove(void *d, const void *s, size_t n)
{ MARK(); return memmove(d, s, n); }
void secretjit__m_wipe(void *p, size_t n)
{ MARK(); secretjit__wipe(p, n); }
