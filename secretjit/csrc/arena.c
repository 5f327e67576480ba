/* The secret heap.  See secretmem.h for the API.
 *
 * Layout.  One reservation of SECRETJIT_ARENA_SIZE bytes of address space
 * (PROT_NONE, MAP_NORESERVE), marked MADV_DONTDUMP and MADV_WIPEONFORK as a
 * whole.  It is carved from the bottom up, without a lock (a CAS on a page
 * index), into spans:
 *
 *     [ k data pages, PROT_READ|PROT_WRITE ][ 1 guard page, PROT_NONE ]
 *
 * A block of `size` bytes is placed at the END of its span's data pages,
 * ptr = data_end - round_up(size, 16), so it is 16-byte aligned and an
 * overrun of more than 15 bytes faults on the guard page.  Spans are never
 * split, merged or given back to the kernel; the data pages of a span that
 * is not handed out are all zero (every free wipes every byte it handed
 * out), so a new block is zero-filled.  The pages a block covers are
 * mlock'ed when it is handed out (once per span and page: a span remembers
 * how many of its top pages are locked), not the whole span, so a block of
 * 2^n + 1 pages in a 2^(n+1)-page span does not pin twice its size.  Pages
 * below every block a span has held are never touched, so never resident.
 *
 * Size classes (k data pages): 1, 2, 3, 4, then 8, 16, 32, ... so that a
 * freed span serves any later request of its class.
 *
 * Metadata (span sizes, requested sizes, free-list links, the span head of
 * every page) lives outside the arena, in ordinary private memory: in a
 * forked child MADV_WIPEONFORK zeroes the arena but the child can still free
 * (and wipe, now zeros) the blocks it inherited.
 *
 * Reuse.  Each thread keeps a free list per class (__thread, no lock), and
 * its own share of arena_in_use (summed by the stats), so the hot path
 * writes nothing shared but the span's own metadata.  A
 * list that grows past SPILL_COUNT spans or SPILL_BYTES gives half to the
 * global lists (one mutex); so do the lists of an exiting thread (pthread
 * key destructor).  alloc: own list -> global list (taking a small batch) ->
 * carve -> a free span of a larger class -> NULL (counted in
 * arena_failures).  Any thread may free any block.
 *
 * Fork.  The global mutex is held across fork().  mlock is not inherited;
 * the child re-locks every carved span with one mlock2(MLOCK_ONFAULT) over
 * the carved range, which costs no memory up front (the child's arena pages
 * are zero and absent until touched) and covers the blocks it inherited.
 * If that fails (old kernel, RLIMIT_MEMLOCK) spans are re-locked lazily, with
 * secretjit__lock, when the child allocates them.  The caches of the
 * parent's other threads (which do not exist in the child, and whose TLS
 * glibc frees or reuses later) go to the child's global lists, and the
 * registry of threads keeps only the forking thread.
 *
 * Limits.  Every span adds two kernel mappings (its data and its guard;
 * three while a span of 8+ pages is only partly locked), so a process has
 * at most about vm.max_map_count / 2 spans (default 65530 / 2, i.e. a
 * 256M arena of 1-page spans is right at that limit); past it mprotect
 * fails with ENOMEM and alloc returns NULL as on exhaustion.  Page indices
 * are 32-bit: the arena is clamped to 2^32 - 2 pages.  Not async-signal-
 * safe: do not call from signal handlers.
 *
 * Files: arena.c (this comment, the state, the API), arena_spans.c (free
 * lists, carving, locking of spans), arena_setup.c (init, fork, thread
 * exit); arena_internal.h (the state's layout, the hot path's helpers).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>

#include "arena_internal.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

struct arena_cfg AC = { .lock_gen = 1 };
struct arena_shared AG = { .lock = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t once = PTHREAD_ONCE_INIT;
/* This thread's cache lives in general-dynamic TLS (it is too large for the
 * static TLS surplus a dlopen'ed library may take), reached only through
 * tcp, an initial-exec pointer (8 bytes of static TLS, one %fs-relative
 * load): the kernel path never calls __tls_get_addr, which may malloc a
 * thread's TLS block or a larger DTV.  tcp is set when the thread enrols
 * (secretjit__arena_enroll: at its first secret call, from the secret
 * stack's setup, or at its first call of the public entries below) and
 * stays set; after the thread-exit destructor the cache is T_DEAD. */
static __thread struct tcache tc;
static __thread struct tcache *tcp __attribute__((tls_model("initial-exec")));
/* Threads that never enrolled, on the kernel path: no cache (T_DEAD), every
 * span through the global lists; its free lists stay empty. */
static struct tcache nocache = { .mode = T_DEAD };

/* The public entries' cache: enrols the thread on its first call. */
static inline struct tcache *my_cache(void)
{
    struct tcache *t = tcp;
    return __builtin_expect(t != NULL, 1) ? t : secretjit__arena_enroll_thread();
}

/* The kernel path's (slab.c's) cache: never enrols, so neither
 * pthread_setspecific nor __tls_get_addr is on a secret call's stack. */
static inline struct tcache *kernel_cache(void)
{
    struct tcache *t = tcp;
    return __builtin_expect(t != NULL, 1) ? t : &nocache;
}

/* Misuse (bad or double free) is reported once per kind and never fatal. */
static int warned_foreign, warned_bad, warned_double;

__attribute__((cold, noinline))
static void warn_once(int *flag, const char *what, const void *p,
                      const char *problem)
{
    if (!__atomic_exchange_n(flag, 1, __ATOMIC_RELAXED))
        secretjit__misuse(what, p, problem);
}

static inline void ensure_init(void)
{
    if (__builtin_expect(!__atomic_load_n(&AC.ready, __ATOMIC_ACQUIRE), 0))
        pthread_once(&once, secretjit__arena_init);
}

/* Enrol this thread: register its cache and arm the thread-exit destructor
 * (T_LIVE), or T_DEAD when that is not possible; then tcp is set. */
__attribute__((noinline))
struct tcache *secretjit__arena_enroll_thread(void)
{
    struct tcache *t = tcp;
    if (t)
        return t;
    ensure_init();
    t = &tc;
    __asm__("" : "+r"(t));      /* one __tls_get_addr, here only */
    secretjit__arena_enroll(t);
    tcp = t;
    return t;
}

/* -- API --------------------------------------------------------------------- */

/* The bodies of the entries; t: my_cache() or kernel_cache(). */
static inline __attribute__((always_inline))
void *alloc_in(struct tcache *t, size_t size)
{
    size_t pages;
    unsigned c;
    int64_t h;
    struct span *s;
    uint32_t gen;

    if (size == 0 || size > SIZE_MAX - 15 - AC.page)
        goto fail;
    pages = (((size + 15) & ~(size_t)15) + AC.page - 1) >> AC.pshift;
    if (pages >= AC.npages)
        goto fail;
    c = class_of(pages);
    if (t->fl[c].head) {
        h = pop(&t->fl[c]);
        t->locked_cached -= locked_of((uint32_t)h);
    } else if ((h = secretjit__arena_take(pages, c, t)) < 0)
        goto fail;
    s = &AC.spans[h];
    s->req = size;
    __atomic_store_n(&s->state, SPAN_USED, __ATOMIC_RELAXED);
    /* mlock the pages this block covers (the top `pages` of the span) if an
     * earlier block has not.  Locking the whole span instead would make an
     * allocation of 2^n + 1 pages pin 2^(n+1) pages of RAM. */
    gen = __atomic_load_n(&AC.lock_gen, __ATOMIC_RELAXED);
    if (__builtin_expect(s->lockgen != gen, 0)) {
        s->locked = 0;                  /* in a forked child */
        s->lockgen = gen;
    }
    if (__builtin_expect(pages > s->locked, 0))
        secretjit__arena_lock_block(t, (uint32_t)h, pages);
    count_in_use(t, ((size_t)s->pages + 1) << AC.pshift);
    return block_of((uint32_t)h, size);
fail:
    __atomic_add_fetch(&AG.failures, 1, __ATOMIC_RELAXED);
    return NULL;
}

/* The span head of block p, or -1 (after a warning) if p is not a live
 * block.  Does not change the span's state. */
static inline int64_t span_of(const void *p, const char *what)
{
    uintptr_t off;
    size_t idx;
    uint32_t h1, h;
    if (__builtin_expect(!secretjit_arena_owns(p), 0)) {
        warn_once(&warned_foreign, what, p, "not a secret arena block");
        return -1;
    }
    off = (uintptr_t)p - (uintptr_t)AC.base;
    idx = off >> AC.pshift;
    h1 = idx < AC.npages ? __atomic_load_n(&AC.pagehead[idx], __ATOMIC_RELAXED) : 0;
    h = h1 - 1;
    if (__builtin_expect(h1 == 0 || block_of(h, AC.spans[h].req) != p, 0)) {
        warn_once(&warned_bad, what, p, "not the start of a secret arena block");
        return -1;
    }
    return h;
}

static inline __attribute__((always_inline))
void free_in(struct tcache *t, void *p)
{
    struct span *s;
    struct freelist *l;
    int64_t h;
    size_t lb;
    if (p == NULL)
        return;
    if ((h = span_of(p, "secretjit_arena_free")) < 0)
        return;
    s = &AC.spans[h];
    /* The exchange makes a double free harmless: only one caller gets the
     * span back, so it can never be handed out twice. */
    if (__atomic_exchange_n(&s->state, SPAN_FREE, __ATOMIC_ACQ_REL) != SPAN_USED) {
        warn_once(&warned_double, "secretjit_arena_free", p,
                  "block already freed");
        return;
    }
    secretjit__wipe(p, (s->req + 15) & ~(size_t)15);
    if (__builtin_expect(t->mode != T_LIVE, 0)) {
        count_in_use(t, -(((size_t)s->pages + 1) << AC.pshift));
        pthread_mutex_lock(&AG.lock);
        secretjit__arena_cache_global((uint32_t)h, s->cls);
        pthread_mutex_unlock(&AG.lock);
        return;
    }
    count_in_use(t, -(((size_t)s->pages + 1) << AC.pshift));
    lb = locked_of((uint32_t)h);
    if (__builtin_expect(lb != 0 && t->locked_cached + lb > LOCKED_CACHE_THREAD, 0)) {
        secretjit__arena_unlock_span((uint32_t)h);       /* back to RLIMIT_MEMLOCK */
        lb = 0;
    }
    l = &t->fl[s->cls];
    push(l, (uint32_t)h);
    t->locked_cached += lb;
    if (__builtin_expect(l->count > SPILL_COUNT
                         || ((size_t)l->pages << AC.pshift) > SPILL_BYTES, 0))
        secretjit__arena_spill(l, s->cls, t);
}

static inline __attribute__((always_inline))
void *realloc_in(struct tcache *t, void *p, size_t size)
{
    void *q;
    int64_t h;
    size_t old;
    if (p == NULL)
        return alloc_in(t, size);
    if ((h = span_of(p, "secretjit_arena_realloc")) < 0
        || __atomic_load_n(&AC.spans[h].state, __ATOMIC_ACQUIRE) != SPAN_USED) {
        __atomic_add_fetch(&AG.failures, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    old = AC.spans[h].req;
    q = alloc_in(t, size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    free_in(t, p);
    return q;
}

/* The public entries (Python's secret buffers, C callers): the thread enrols
 * on its first call. */
void *secretjit_arena_alloc(size_t size)
{
    ensure_init();
    return alloc_in(my_cache(), size);
}

void secretjit_arena_free(void *p)
{
    if (p != NULL)
        free_in(my_cache(), p);
}

void *secretjit_arena_realloc(void *p, size_t size)
{
    ensure_init();
    return realloc_in(my_cache(), p, size);
}

/* The kernel path's (slab.c): never enrol (see kernel_cache); the library's
 * constructor has set the arena up (before it, AC.npages == 0: a failure). */
void *secretjit__arena_alloc_kernel(size_t size)
{
    return alloc_in(kernel_cache(), size);
}

void secretjit__arena_free_kernel(void *p)
{
    if (p != NULL)
        free_in(kernel_cache(), p);
}

void *secretjit__arena_realloc_kernel(void *p, size_t size)
{
    return realloc_in(kernel_cache(), p, size);
}

int secretjit_arena_owns(const void *p)
{
    char *b = __atomic_load_n(&AC.base, __ATOMIC_ACQUIRE);
    return b != NULL && (const char *)p >= b
           && (uintptr_t)((const char *)p - b) < (AC.npages << AC.pshift);
}

void secretjit__arena_stats(struct secretjit_memstats *out)
{
    ensure_init();
    out->arena_start = (uintptr_t)AC.base;
    out->arena_end = (uintptr_t)AC.base + (AC.npages << AC.pshift);
    out->arena_limit = AC.npages << AC.pshift;
    out->arena_carved = __atomic_load_n(&AG.carved_bytes, __ATOMIC_RELAXED);
    {
        struct tcache *t;
        size_t sum;
        pthread_mutex_lock(&AG.lock);
        sum = __atomic_load_n(&AG.retired_in_use, __ATOMIC_RELAXED);
        for (t = AG.threads; t; t = t->next)
            sum += __atomic_load_n(&t->in_use, __ATOMIC_RELAXED);
        out->arena_in_use = sum;
        sum = sum_locked(AG.global);
        for (t = AG.threads; t; t = t->next)
            sum += __atomic_load_n(&t->locked_cached, __ATOMIC_RELAXED);
        out->locked_cached = sum;
        pthread_mutex_unlock(&AG.lock);
    }
    out->arena_failures = __atomic_load_n(&AG.failures, __ATOMIC_RELAXED);
}

