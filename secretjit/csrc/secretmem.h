/* secretjit's secret memory: the C runtime under every secret kernel.
 *
 * Two parts, one library (secretjit/_secretmem<EXT_SUFFIX> for the JIT; the
 * same sources are compiled into every AOT library by the target's compiler):
 *
 *   arena*.c       the secret heap: page spans that are mlock'ed, left out of
 *                  core dumps (MADV_DONTDUMP), zeroed in forked children
 *                  (MADV_WIPEONFORK), followed by a PROT_NONE guard page,
 *                  wiped on free and reused through per-thread caches.
 *   secretstack*.c the secret stack: a per-thread stack with the same flags
 *                  and a guard page below it, and the trampoline that runs a
 *                  kernel's call tree on it and zeroes what the tree wrote.
 *
 * Only libc is needed.  Settings come from the environment, read once when
 * the library is loaded (a whole number of bytes, optionally with a suffix
 * K, M, G or T; anything else, a negative or an out-of-range value is
 * rejected with an error on stderr naming the setting and the range, the
 * default is used, and secretjit_settings_error reports it):
 *   SECRETJIT_ARENA_SIZE   bytes of address space for the secret heap
 *                          (default 256M; 8K to 4T)
 *   SECRETJIT_STACK_SIZE   bytes of secret stack per thread (default 256K;
 *                          4K to 1G)
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

/* -- small blocks (slab.c) -------------------------------------------------- */

/* The allocator of secret kernels (secretjit/arena_nrt.py): a block of at
 * most 2048 bytes is a slot of a size class (16, 32, ... 2048 bytes, 16-byte
 * aligned, zero-filled) in a slab, which is one SLAB_BYTES arena block
 * (locked, undumped, zero in forked children, a guard page after the slab,
 * not after each slot); larger blocks are arena spans (secretjit_arena_*).
 * Free wipes the whole slot; any thread may free any block; a bad or double
 * free warns once and is ignored.  realloc: as secretjit_arena_realloc. */
SECRETJIT_EXPORT void *secretjit_slab_alloc(size_t size);
SECRETJIT_EXPORT void secretjit_slab_free(void *p);
SECRETJIT_EXPORT void *secretjit_slab_realloc(void *p, size_t size);
/* Enrol this thread in the arena's and the slabs' per-thread caches (their
 * thread-exit destructors armed with pthread_setspecific, the arena cache's
 * TLS block allocated), once.  The secret stack's setup calls it before the
 * thread's first secret call, so no kernel path enrols; a thread that never
 * enrols allocates through the shared lists and depots (slab_threads.c). */
SECRETJIT_EXPORT void secretjit_arena_thread_enroll(void);

/* -- secret stack (secretstack.c) ----------------------------------------- */

/* Run fn(arg) on this thread's secret stack, then zero the `scrub` bytes
 * below the secret stack's top (where fn's call tree kept its frames).
 * Between calls the secret stack is zero below that; if the window of
 * secretjit_signal_window() bytes just below the scrub depth is not (a
 * signal frame, a signal handler's or a destructor chain's frames reached
 * below the computed depth), the whole stack is zeroed down to its deepest
 * non-zero word (counted in signal_scrubs).
 * Returns 0 when fn ran there.  Otherwise fn did not run, and the caller
 * runs it in place (on the stack it is on) and zeroes `scrub` bytes below
 * its own stack pointer: -1 when no secret stack could be set up or scrub
 * plus secretjit_signal_reserve() does not fit in it (counted in
 * stack_fallbacks); 1 when the secret stack is already in use by this thread
 * (a nested secret call, e.g. from a callback into Python; counted in
 * nested_calls). */
SECRETJIT_EXPORT int secretjit_secret_call(void (*fn)(void *), void *arg,
                                           size_t scrub);
/* The same for a tree whose depth `scrub` is exact (derived from its own
 * machine code: no external callee, allowance or indirect call): the 1 KiB
 * frame window below the depth is not checked (the signal window still is,
 * when the call may have been interrupted).  A tree whose only externals
 * are the secret heap's entries may pass its hot depth: when a marked call
 * ran (marked.h), the call scrubs the marked slack more and checks the frame
 * window below that, like the plain entry. */
SECRETJIT_EXPORT int secretjit_secret_call_exact(void (*fn)(void *), void *arg,
                                                 size_t scrub);
/* The bytes secretjit_secret_call_exact adds to its depth (up to the room)
 * when a marked call of the secret heap ran in the tree (marked.h): the
 * most any marked path of the heap's entries goes below their hot depths,
 * which exact trees may be given instead of their whole bounds.  Set once by
 * the compiler from the runtime's machine code (stack_bound.native); until
 * then SIZE_MAX: such a call scrubs the whole room. */
SECRETJIT_EXPORT void secretjit_set_marked_slack(size_t bytes);
SECRETJIT_EXPORT size_t secretjit_marked_slack(void);
/* Bytes kept free below every call tree on the secret stack, for a signal
 * frame (red zone + the kernel's largest signal frame, AT_MINSIGSTKSZ) and
 * its handler's frames: a call tree may use at most the stack size minus
 * this. */
SECRETJIT_EXPORT size_t secretjit_signal_reserve(void);
/* Bytes checked below the scrub depth after every call (red zone + largest
 * signal frame + margin). */
SECRETJIT_EXPORT size_t secretjit_signal_window(void);
/* For secretjit's own tests only: turn the scrub below the depth (after a
 * non-zero word in the window) off (0) or on (1, the default), so that a test
 * can show the leftover it removes.  Returns the previous setting. */
SECRETJIT_EXPORT int secretjit_test_deep_scrub(int on);
/* This thread's secret stack as [lo, hi) (lo is the lowest usable byte,
 * above the guard page); 0 if the thread has none yet, 1 otherwise. */
SECRETJIT_EXPORT int secretjit_stack_range(uintptr_t *lo, uintptr_t *hi);

/* -- status ----------------------------------------------------------------- */

struct secretjit_memstats {
    uintptr_t arena_start;      /* arena address range [start, end) */
    uintptr_t arena_end;
    size_t arena_limit;         /* SECRETJIT_ARENA_SIZE, rounded to pages */
    size_t arena_carved;        /* bytes of spans (with guards) ever carved */
    size_t arena_in_use;        /* bytes of spans (with guards) currently
                                 * handed out, the slabs not counted, plus
                                 * slab_in_use */
    size_t locked_bytes;        /* bytes mlock'ed successfully (arena+stacks) */
    uint64_t arena_failures;    /* allocations that returned NULL */
    size_t stack_size;          /* SECRETJIT_STACK_SIZE, rounded to pages */
    uint64_t stacks_created;    /* secret stacks set up so far */
    uint64_t stack_fallbacks;   /* secret_call returned -1 */
    int mlock_errno;            /* first mlock failure (0: none) */
    int dontdump_errno;         /* madvise(MADV_DONTDUMP) failure (0: none) */
    int wipeonfork_errno;       /* madvise(MADV_WIPEONFORK) failure */
    int rseq;                   /* 1: the calling thread's calls detect
                                 * interruptions with rseq (and check the
                                 * whole signal window only then); 0: the
                                 * whole window after every call */
    uint64_t signal_scrubs;     /* calls after which something had written
                                 * below the scrub depth (signal frame...):
                                 * the secret stack was zeroed down to it */
    uint64_t nested_calls;      /* secret calls made while the secret stack
                                 * was in use: run and scrubbed in place */
    size_t signal_reserve;      /* secretjit_signal_reserve() */
    size_t locked_cached;       /* bytes of freed arena spans kept locked */
    size_t slab_bytes;          /* bytes of arena spans held as slabs */
    size_t slab_in_use;         /* bytes of slab slots handed out */
};
SECRETJIT_EXPORT void secretjit_memstats(struct secretjit_memstats *out);
/* 1 (and the message, NUL-terminated, in buf) when a setting was rejected
 * when the library was loaded, else 0. */
SECRETJIT_EXPORT int secretjit_settings_error(char *buf, size_t len);

/* Which pages back the arena and the secret stacks (backing.c):
 * SECRETJIT_BACKING_MEMFD (memfd_secret), _MLOCK (mlock'ed anonymous
 * memory), _MIXED (some mappings fell back to mlock), or -1 when
 * SECRETJIT_SECRET_MEMORY=memfd could not be honoured; the reason,
 * NUL-terminated, in buf. */
#define SECRETJIT_BACKING_MEMFD 1
#define SECRETJIT_BACKING_MLOCK 2
#define SECRETJIT_BACKING_MIXED 3
SECRETJIT_EXPORT int secretjit_backing(char *buf, size_t len);

/* -- internal, shared by the runtime's files -------------------------------- */

/* Pages for secret data (backing.c): len bytes (page multiple) with the
 * given protection and extra MAP_ flags (MAP_NORESERVE, MAP_STACK), from
 * memfd_secret or private anonymous memory (then MADV_DONTDUMP and
 * MADV_WIPEONFORK), as SECRETJIT_SECRET_MEMORY says.  MAP_FAILED (errno) on
 * failure.  Not locked: use secretjit__lock*. */
void *secretjit__map_secret(size_t len, int prot, int flags);
void secretjit__unmap_secret(void *p, size_t len);
/* 1 when [p, p+len) is memfd_secret memory (locked by the kernel). */
int secretjit__is_memfd(const void *p, size_t len);
void secretjit__backing_init(void);     /* read the setting, probe the kernel */
/* Record a rejected setting for secretjit_settings_error and say on stderr
 * what is done instead. */
void secretjit__settings_reject(const char *msg, const char *instead);
/* Append s (or the decimal n) to buf at *at, without stdio. */
void secretjit__append(char *buf, size_t cap, size_t *at, const char *s);
void secretjit__append_num(char *buf, size_t cap, size_t *at,
                           unsigned long long n);

/* A size from the environment ("65536", "64K", "256M", "1G"); dflt when
 * unset; a malformed value or one outside [lo, hi] is reported on stderr
 * (and by secretjit_settings_error) and dflt used. */
size_t secretjit__env_size(const char *name, size_t dflt, size_t lo, size_t hi);
/* Mark [p, p+len) (page-aligned) MADV_DONTDUMP and MADV_WIPEONFORK. */
void secretjit__exclude(void *p, size_t len);
/* mlock [p, p+len); on failure warn once per cause on stderr with the budget
 * that is exhausted (RLIMIT_MEMLOCK or vm.max_map_count) and the fix, and
 * keep going.  Returns 0 when locked (and counted in locked_bytes). */
int secretjit__lock(void *p, size_t len);
/* The same with mlock2(MLOCK_ONFAULT) where the kernel has it: the pages are
 * locked as they are first touched (and counted whole, as the kernel counts
 * them against RLIMIT_MEMLOCK). */
int secretjit__lock_onfault(void *p, size_t len);
void secretjit__unlocked(size_t len);   /* bookkeeping after munlock/munmap */
void secretjit__unlock(void *p, size_t len);    /* munlock + bookkeeping */
/* "secretjit: what(p): problem; ignored (shown once)" on stderr, without
 * stdio (it runs inside secret calls, within the arena's stack allowance). */
void secretjit__misuse(const char *what, const void *p, const char *problem);
/* Overwrite n bytes in a way the compiler cannot drop. */
void secretjit__wipe(void *p, size_t n);
/* Zero every vector register the CPU has (xmm/ymm/zmm0-15, with AVX-512
 * also zmm16-31 and k0-k7; common.c): after runtime code that loaded stack
 * bytes into them (the secret stack's interrupted path), since the boundary
 * of an exact tree zeroes only the registers its tree writes. */
void secretjit__clear_vregs(void);
/* Each file fills its own fields of the stats. */
void secretjit__arena_stats(struct secretjit_memstats *out);
void secretjit__stack_stats(struct secretjit_memstats *out);
void secretjit__slab_stats(struct secretjit_memstats *out);
void secretjit__lock_stats(struct secretjit_memstats *out);   /* lock.c */
/* Private zeroed memory for metadata (MAP_NORESERVE), or NULL
 * (arena_setup.c). */
void *secretjit__map_meta(size_t bytes);
/* The arena's lock generation: changes when a forked child must re-lock. */
unsigned secretjit__arena_lock_gen(void);
/* The arena's entries for the kernel path (slab.c): as the public ones,
 * but a thread that has not enrolled gets no cache instead of enrolling, so
 * no pthread_setspecific or __tls_get_addr runs inside a secret call. */
void *secretjit__arena_alloc_kernel(size_t size);
void secretjit__arena_free_kernel(void *p);
void *secretjit__arena_realloc_kernel(void *p, size_t size);
/* Enrol this thread in the arena's cache (arena.c), once; returns it. */
struct tcache;
struct tcache *secretjit__arena_enroll_thread(void);

/* xmm0-15 zeroed with VEX vpxor (which clears the upper ymm/zmm bits too), as
 * assembly text: the one copy secretjit__clear_vregs (common.c) and
 * secretjit_aot_clear_vregs (nrt_aot.c) both emit. */
#define SECRETJIT_VPXOR_XMM0_15 \
    "    vpxor %xmm0, %xmm0, %xmm0\n    vpxor %xmm1, %xmm1, %xmm1\n" \
    "    vpxor %xmm2, %xmm2, %xmm2\n    vpxor %xmm3, %xmm3, %xmm3\n" \
    "    vpxor %xmm4, %xmm4, %xmm4\n    vpxor %xmm5, %xmm5, %xmm5\n" \
    "    vpxor %xmm6, %xmm6, %xmm6\n    vpxor %xmm7, %xmm7, %xmm7\n" \
    "    vpxor %xmm8, %xmm8, %xmm8\n    vpxor %xmm9, %xmm9, %xmm9\n" \
    "    vpxor %xmm10, %xmm10, %xmm10\n    vpxor %xmm11, %xmm11, %xmm11\n" \
    "    vpxor %xmm12, %xmm12, %xmm12\n    vpxor %xmm13, %xmm13, %xmm13\n" \
    "    vpxor %xmm14, %xmm14, %xmm14\n    vpxor %xmm15, %xmm15, %xmm15\n"

#endif
