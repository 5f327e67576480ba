/* secretjit's secret memory: the C runtime under every secret kernel.
 *
 * Two parts, one library (secretjit/_secretmem<EXT_SUFFIX> for the JIT; the
 * same sources are compiled into every AOT library by the target's compiler):
 *
 *   arena.c        the secret heap: page spans that are mlock'ed, left out of
 *                  core dumps (MADV_DONTDUMP), zeroed in forked children
 *                  (MADV_WIPEONFORK), followed by a PROT_NONE guard page,
 *                  wiped on free and reused through per-thread caches.
 *   secretstack.c  the secret stack: a per-thread stack with the same flags
 *                  and a guard page below it, and the trampoline that runs a
 *                  kernel's call tree on it and zeroes what the tree wrote.
 *
 * Only libc is needed.  Settings come from the environment, read once on
 * first use:
 *   SECRETJIT_ARENA_SIZE   bytes of address space for the secret heap
 *                          (default 256M; suffixes K, M, G)
 *   SECRETJIT_STACK_SIZE   bytes of secret stack per thread (default 256K)
 */
#ifndef SECRETJIT_SECRETMEM_H
#define SECRETJIT_SECRETMEM_H

#include <stddef.h>
#include <stdint.h>

#define SECRETJIT_EXPORT __attribute__((visibility("default")))

/* -- arena (arena.c) ---------------------------------------------------- */

/* A block of at least `size` bytes, 16-byte aligned, placed so that it ends
 * less than 16 bytes before a PROT_NONE guard page.  NULL when the arena is
 * exhausted or size is 0 or too large (then the arena_failures count of
 * secretjit_memstats grows).  Thread-safe; no lock on the path that reuses a cached span. */
SECRETJIT_EXPORT void *secretjit_arena_alloc(size_t size);
/* Wipe the block (every byte handed out) and return its span for reuse.
 * NULL is a no-op.  Any thread may free any block. */
SECRETJIT_EXPORT void secretjit_arena_free(void *p);
/* A new block with the first min(old, size) bytes; the old block is wiped
 * and freed (never resized in place).  NULL p behaves as alloc; on failure
 * NULL is returned and p stays valid. */
SECRETJIT_EXPORT void *secretjit_arena_realloc(void *p, size_t size);
/* Whether p points into the arena's address range. */
SECRETJIT_EXPORT int secretjit_arena_owns(const void *p);

/* -- secret stack (secretstack.c) ----------------------------------------- */

/* Run fn(arg) on this thread's secret stack, then zero the `scrub` bytes
 * below the secret stack's top (where fn's call tree kept its frames).
 * Returns 0 when fn ran there; -1 when no secret stack could be set up or
 * scrub does not fit in it (fn did not run: the caller runs it on its own
 * stack and scrubs that).  A call made while already on the secret stack
 * (a nested secret call) runs fn in place and returns 0. */
SECRETJIT_EXPORT int secretjit_secret_call(void (*fn)(void *), void *arg,
                                           size_t scrub);
/* This thread's secret stack as [lo, hi) (lo is the lowest usable byte,
 * above the guard page); 0 if the thread has none yet, 1 otherwise. */
SECRETJIT_EXPORT int secretjit_stack_range(uintptr_t *lo, uintptr_t *hi);

/* -- status ----------------------------------------------------------------- */

struct secretjit_memstats {
    uintptr_t arena_start;      /* arena address range [start, end) */
    uintptr_t arena_end;
    size_t arena_limit;         /* SECRETJIT_ARENA_SIZE, rounded to pages */
    size_t arena_carved;        /* bytes of spans (with guards) ever carved */
    size_t arena_in_use;        /* bytes of spans currently handed out */
    size_t locked_bytes;        /* bytes mlock'ed successfully (arena+stacks) */
    uint64_t arena_failures;    /* allocations that returned NULL */
    size_t stack_size;          /* SECRETJIT_STACK_SIZE, rounded to pages */
    uint64_t stacks_created;    /* secret stacks set up so far */
    uint64_t stack_fallbacks;   /* secret_call returned -1 */
    int mlock_errno;            /* first mlock failure (0: none) */
    int dontdump_errno;         /* madvise(MADV_DONTDUMP) failure (0: none) */
    int wipeonfork_errno;       /* madvise(MADV_WIPEONFORK) failure */
    int reserved;
};
SECRETJIT_EXPORT void secretjit_memstats(struct secretjit_memstats *out);

/* -- internal, shared by the three files (common.c) ------------------------ */

/* A size from the environment ("65536", "64K", "256M", "1G"); dflt when
 * unset; a malformed value is reported once on stderr and dflt used. */
size_t secretjit__env_size(const char *name, size_t dflt);
/* Mark [p, p+len) (page-aligned) MADV_DONTDUMP and MADV_WIPEONFORK. */
void secretjit__exclude(void *p, size_t len);
/* mlock [p, p+len); on failure warn once on stderr with RLIMIT_MEMLOCK and
 * the fix, and keep going.  Returns 0 when locked. */
int secretjit__lock(void *p, size_t len);
void secretjit__unlocked(size_t len);   /* bookkeeping after munlock/munmap */
/* "secretjit: what(p): problem; ignored (shown once)" on stderr, without
 * stdio (it runs inside secret calls, within the arena's stack allowance). */
void secretjit__misuse(const char *what, const void *p, const char *problem);
/* Overwrite n bytes in a way the compiler cannot drop. */
void secretjit__wipe(void *p, size_t n);
/* Each file fills its own fields of the stats. */
void secretjit__arena_stats(struct secretjit_memstats *out);
void secretjit__stack_stats(struct secretjit_memstats *out);

#endif
