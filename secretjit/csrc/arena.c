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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secretmem.h"

#define DEFAULT_ARENA_SIZE ((size_t)256 << 20)
#define MIN_ARENA_SIZE ((size_t)8 << 10)
#define MAX_ARENA_SIZE ((size_t)4 << 40)
#define NCLASS 34               /* k up to 2^32 pages */
#define SPILL_COUNT 32u         /* a thread keeps at most this many spans ... */
#define SPILL_BYTES ((size_t)8 << 20)   /* ... or bytes of spans per class */
#define REFILL_COUNT 8u         /* spans taken from a global list at once */
#define REFILL_BYTES ((size_t)1 << 20)
/* Freed spans keep their pages mlock'ed for reuse up to these bounds (per
 * thread, and in the global lists); beyond, a span is munlock'ed when it is
 * cached, so that freed memory returns to RLIMIT_MEMLOCK. */
#define LOCKED_CACHE_THREAD ((size_t)1 << 20)
#define LOCKED_CACHE_GLOBAL ((size_t)2 << 20)
#define MAX_LOCK_BACKOFF 1024u

enum { SPAN_FREE = 0, SPAN_USED = 1 };

/* Indexed by the span's first page.  Links are page index + 1 (0: none). */
struct span {
    uint32_t next;              /* free-list link */
    uint32_t pages;             /* k data pages (the guard page follows) */
    uint32_t locked;            /* top data pages mlock'ed (or tried) ... */
    uint32_t lockgen;           /* ... while lock_gen had this value */
    uint8_t cls;
    uint8_t state;              /* SPAN_FREE / SPAN_USED */
    uint16_t pad;
    size_t req;                 /* bytes requested for the current block */
};

/* 16 bytes: the thread caches live in static TLS (see my_cache). */
struct freelist {
    uint32_t head;
    uint32_t count;
    uint32_t pages;             /* data pages of the spans on the list */
    uint32_t locked;            /* those of their pages that are mlock'ed */
};

enum { T_NEW = 0, T_LIVE, T_DEAD };

struct tcache {
    struct freelist fl[NCLASS];
    size_t locked_cached;       /* sum of fl[].locked */
    unsigned lock_skip;         /* allocations left before a failed mlock is */
    unsigned lock_backoff;      /* retried, and the next such wait */
    size_t in_use;              /* this thread's share of arena_in_use: alloc
                                 * adds, free subtracts (wraps; only the sum
                                 * over all threads means anything) */
    struct tcache *prev, *next; /* registry of T_LIVE threads, under g.lock */
    pthread_t owner;
    int mode;                   /* T_NEW, T_LIVE (registered, destructor
                                 * armed) or T_DEAD (the destructor ran, or
                                 * could not be armed: bypass the cache) */
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ready;
static char *base;              /* arena start */
static size_t npages;           /* pages reserved */
static size_t page;             /* page size */
static unsigned pshift;
static struct span *spans;      /* [npages], by head page */
static uint32_t *pagehead;      /* [npages]: head page + 1 of a data page, or 0 */
static uint32_t lock_gen = 1;   /* bumped in a forked child that must re-lock */

static pthread_key_t tkey;
static int tkey_ok;

/* Written by many threads, but off the hot path (which writes only this
 * thread's cache and the span's own metadata): kept on cache lines of their
 * own, away from the read-mostly settings above that every call reads. */
static struct {
    size_t next_page;               /* bump index: pages carved so far */
    size_t carved_bytes;
    uint64_t failures;
    size_t retired_in_use;          /* in_use of T_DEAD threads */
    size_t locked_total;            /* arena bytes mlock'ed (and counted) */
    pthread_mutex_t lock;           /* guards the rest */
    struct freelist global[NCLASS];
    struct tcache *threads;         /* registry of T_LIVE threads */
} __attribute__((aligned(128))) g = { .lock = PTHREAD_MUTEX_INITIALIZER };

static __thread struct tcache tc;

/* This thread's cache.  The empty asm makes the compiler keep the address
 * instead of calling __tls_get_addr again at every use (it does that in a
 * shared library otherwise). */
static inline struct tcache *my_cache(void)
{
    struct tcache *t = &tc;
    __asm__("" : "+r"(t));
    return t;
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

/* -- fork ------------------------------------------------------------------ */

static void fork_prepare(void) { pthread_mutex_lock(&g.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&g.lock); }

static void give_all(struct freelist *from, unsigned c);
static void cache_global(uint32_t h, unsigned c);

static void fork_child(void)
{
    size_t carved = __atomic_load_n(&g.next_page, __ATOMIC_RELAXED);
    pthread_t me = pthread_self();
    struct tcache *t, *next, *mine = NULL;
    unsigned c;
    /* Still under g.lock (taken in fork_prepare), so the registry and the
     * global lists are whole; the other threads' TLS is still mapped. */
    for (t = g.threads; t; t = next) {
        next = t->next;
        if (pthread_equal(t->owner, me)) {
            mine = t;
            continue;
        }
        for (c = 0; c < NCLASS; c++)
            give_all(&t->fl[c], c);
        g.retired_in_use += t->in_use;
    }
    if (mine)
        mine->prev = mine->next = NULL;
    g.threads = mine;
    pthread_mutex_unlock(&g.lock);
    if (carved == 0)
        return;
#ifdef MLOCK_ONFAULT
    /* Guard pages are included: they are PROT_NONE and never faulted in. */
    if (mlock2(base, carved << pshift, MLOCK_ONFAULT) == 0)
        return;
#endif
    /* Nothing of the arena is locked here: re-lock lazily, and count so. */
    __atomic_add_fetch(&lock_gen, 1, __ATOMIC_RELAXED);
    secretjit__unlocked(g.locked_total);
    g.locked_total = 0;
    for (c = 0; c < NCLASS; c++) {
        g.global[c].locked = 0;
        if (mine)
            mine->fl[c].locked = 0;
    }
    if (mine)
        mine->locked_cached = 0;
}

/* -- thread exit ------------------------------------------------------------ */

/* Move every span on thread list `from` to the global list of class c.
 * Caller holds g.lock.  In a forked child the list may be a snapshot of
 * another thread caught in the middle of a push or pop: push publishes the
 * head with a release store after the link, so the chain is whole, and a
 * span that was being handed out is either still on it (and free: the
 * child never got it) or already off it.  Still, stop at anything that is
 * not a free span, and after more links than there can be spans. */
static void give_all(struct freelist *from, unsigned c)
{
    size_t n = 0;
    uint32_t h1 = from->head;
    while (h1 != 0 && h1 <= npages && n++ < npages) {
        uint32_t h = h1 - 1;
        if (spans[h].state != SPAN_FREE || spans[h].cls != c)
            break;
        h1 = spans[h].next;
        cache_global(h, c);
    }
    from->head = 0;
    from->count = 0;
    from->pages = 0;
    from->locked = 0;
}

static void thread_exit(void *arg)
{
    struct tcache *t = arg;
    unsigned c;
    pthread_mutex_lock(&g.lock);
    for (c = 0; c < NCLASS; c++)
        give_all(&t->fl[c], c);
    t->locked_cached = 0;
    if (t->prev)
        t->prev->next = t->next;
    else
        g.threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    __atomic_add_fetch(&g.retired_in_use, t->in_use, __ATOMIC_RELAXED);
    t->in_use = 0;
    t->mode = T_DEAD;
    pthread_mutex_unlock(&g.lock);
}

/* First use of the arena by this thread: register its counter and arm the
 * destructor that hands its cache back.  Returns t->mode. */
static int enroll(struct tcache *t)
{
    if (t->mode != T_NEW)
        return t->mode;
    if (!tkey_ok || pthread_setspecific(tkey, t) != 0) {
        t->mode = T_DEAD;               /* no destructor: never cache */
        return T_DEAD;
    }
    pthread_mutex_lock(&g.lock);
    t->owner = pthread_self();
    t->prev = NULL;
    t->next = g.threads;
    if (g.threads)
        g.threads->prev = t;
    g.threads = t;
    t->mode = T_LIVE;
    pthread_mutex_unlock(&g.lock);
    return T_LIVE;
}

/* Count `bytes` more (or, negated, fewer) spans handed out. */
static inline void count_in_use(struct tcache *t, size_t bytes)
{
    if (__builtin_expect(t->mode == T_LIVE, 1))
        __atomic_store_n(&t->in_use, t->in_use + bytes, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&g.retired_in_use, bytes, __ATOMIC_RELAXED);
}

/* -- setup ------------------------------------------------------------------ */

void *secretjit__map_meta(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t want, pages, max_pages = (size_t)UINT32_MAX - 1;
    void *p = MAP_FAILED;

    page = ps > 0 ? (size_t)ps : 4096;
    pshift = (unsigned)__builtin_ctzl(page);
    want = secretjit__env_size("SECRETJIT_ARENA_SIZE", DEFAULT_ARENA_SIZE,
                               MIN_ARENA_SIZE, MAX_ARENA_SIZE);
    pages = want / page + (want % page != 0);
    if (pages > max_pages)
        pages = max_pages;
    if (pages > (SIZE_MAX >> pshift))
        pages = SIZE_MAX >> pshift;
    if (pages < 2)
        pages = 2;                      /* one page and its guard */

    /* A smaller arena beats none when the address space is limited. */
    for (; pages >= 2; pages /= 2) {
        p = secretjit__map_secret(pages << pshift, PROT_NONE, MAP_NORESERVE);
        if (p != MAP_FAILED)
            break;
    }
    if (p != MAP_FAILED) {
        spans = secretjit__map_meta(pages * sizeof *spans);
        pagehead = secretjit__map_meta(pages * sizeof *pagehead);
        if (spans == NULL || pagehead == NULL) {
            secretjit__unmap_secret(p, pages << pshift);
            p = MAP_FAILED;
        }
    }
    if (p == MAP_FAILED) {
        fprintf(stderr, "secretjit: could not reserve the secret arena (%s); "
                "every secret heap allocation will fail\n", strerror(errno));
        npages = 0;
    } else {
        if ((pages << pshift) < want)
            fprintf(stderr, "secretjit: warning: SECRETJIT_ARENA_SIZE=%zu "
                    "could not be reserved; the secret arena has %zu bytes\n",
                    want, pages << pshift);
        npages = pages;
        __atomic_store_n(&base, (char *)p, __ATOMIC_RELEASE);
    }
    tkey_ok = pthread_key_create(&tkey, thread_exit) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_init(void)
{
    if (__builtin_expect(!__atomic_load_n(&ready, __ATOMIC_ACQUIRE), 0))
        pthread_once(&once, init);
}

/* Bumped when a forked child could not re-lock the carved range at once. */
unsigned secretjit__arena_lock_gen(void)
{
    return __atomic_load_n(&lock_gen, __ATOMIC_RELAXED);
}

/* -- spans ------------------------------------------------------------------ */

static inline size_t class_pages(unsigned c)
{
    return c < 4 ? (size_t)c + 1 : (size_t)1 << (c - 1);
}

static inline unsigned class_of(size_t pages)
{
    if (pages <= 4)
        return (unsigned)pages - 1;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)(pages - 1))) + 1;
}

static inline void *block_of(uint32_t h, size_t size)
{
    return base + (((size_t)h + spans[h].pages) << pshift)
           - ((size + 15) & ~(size_t)15);
}

/* A new span of `pages` data pages (+ guard) for the free lists of class c
 * (pages >= class_pages(c)), or -1. */
static int64_t carve(size_t pages, unsigned c)
{
    size_t need = pages + 1, old, i;
    char *data;
    old = __atomic_load_n(&g.next_page, __ATOMIC_RELAXED);
    do {
        if (old > npages || npages - old < need)
            return -1;
    } while (!__atomic_compare_exchange_n(&g.next_page, &old, old + need, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    data = base + (old << pshift);
    if (mprotect(data, pages << pshift, PROT_READ | PROT_WRITE) != 0) {
        /* Usually ENOMEM from vm.max_map_count.  Give the pages back if
         * nobody carved after us; otherwise they stay unused. */
        size_t expect = old + need;
        __atomic_compare_exchange_n(&g.next_page, &expect, old, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        return -1;
    }
    for (i = 0; i < pages; i++)
        pagehead[old + i] = (uint32_t)old + 1;
    spans[old].pages = (uint32_t)pages;
    spans[old].cls = (uint8_t)c;
    spans[old].next = 0;
    spans[old].state = SPAN_FREE;
    spans[old].locked = 0;              /* alloc locks what it hands out */
    spans[old].lockgen = __atomic_load_n(&lock_gen, __ATOMIC_RELAXED);
    __atomic_add_fetch(&g.carved_bytes, need << pshift, __ATOMIC_RELAXED);
    return (int64_t)old;
}

/* Near exhaustion a span of exactly `pages` may fit where one of the class
 * size does not.  It is smaller than class c's spans, so it is filed under
 * class c - 1 (whose requests it can always serve). */
static int64_t carve_exact(size_t pages, unsigned c)
{
    if (pages == class_pages(c))
        return -1;                      /* already tried */
    return carve(pages, c - 1);
}

/* Pages of span h that are mlock'ed (and counted in locked_bytes). */
static inline uint32_t locked_pages(uint32_t h)
{
    if (__builtin_expect(spans[h].lockgen != __atomic_load_n(&lock_gen, __ATOMIC_RELAXED), 0))
        return 0;
    return spans[h].locked;
}

static inline size_t locked_of(uint32_t h)
{
    return (size_t)locked_pages(h) << pshift;
}

static inline uint32_t pop(struct freelist *l)
{
    uint32_t h = l->head - 1;
    /* atomic for refill's unlocked peek at global lists (a plain store) */
    __atomic_store_n(&l->head, spans[h].next, __ATOMIC_RELAXED);
    l->count--;
    l->pages -= spans[h].pages;
    l->locked -= locked_pages(h);
    return h;
}

static inline void push(struct freelist *l, uint32_t h)
{
    spans[h].next = l->head;
    /* release: a forked child that sees the new head sees the link too */
    __atomic_store_n(&l->head, h + 1, __ATOMIC_RELEASE);
    l->count++;
    l->pages += spans[h].pages;
    l->locked += locked_pages(h);
}

/* Unlink the span after `prev` (0: the head) from l. */
static uint32_t unlink_after(struct freelist *l, uint32_t prev1)
{
    uint32_t h;
    if (prev1 == 0)
        return pop(l);
    h = spans[prev1 - 1].next - 1;
    spans[prev1 - 1].next = spans[h].next;
    l->count--;
    l->pages -= spans[h].pages;
    l->locked -= locked_pages(h);
    return h;
}

/* munlock the pages of free span h (on no list) and count them out. */
__attribute__((noinline))
static void unlock_span(uint32_t h)
{
    size_t lb = locked_of(h);
    struct span *s = &spans[h];
    if (lb) {
        char *end = base + (((size_t)h + s->pages) << pshift);
        secretjit__unlock(end - lb, lb);
        /* The pages are zero (wiped on free): give them back as well, so
         * that no unlocked copy of them stays resident. */
        madvise(end - lb, lb, MADV_DONTNEED);
        __atomic_sub_fetch(&g.locked_total, lb, __ATOMIC_RELAXED);
    }
    s->locked = 0;
}

static size_t sum_locked(const struct freelist *fl)
{
    size_t sum = 0;
    unsigned c;
    for (c = 0; c < NCLASS; c++)
        sum += (size_t)fl[c].locked << pshift;
    return sum;
}

/* Put free span h on the global list of class c, munlock'ed if the global
 * lists already keep LOCKED_CACHE_GLOBAL bytes locked.  Caller holds g.lock. */
static void cache_global(uint32_t h, unsigned c)
{
    size_t lb = locked_of(h);
    if (lb && sum_locked(g.global) + lb > LOCKED_CACHE_GLOBAL)
        unlock_span(h);
    push(&g.global[c], h);
}

/* Take a span of class c from the global list, moving up to a small batch
 * more into this thread's list.  -1 if the global list is empty. */
static int64_t refill(unsigned c, struct tcache *t)
{
    int64_t got = -1;
    struct freelist *gl = &g.global[c];
    if (__atomic_load_n(&gl->head, __ATOMIC_RELAXED) == 0)
        return -1;                      /* racy peek; fine either way */
    pthread_mutex_lock(&g.lock);
    if (gl->head) {
        got = pop(gl);
        if (t->mode == T_LIVE) {
            unsigned n = 1;
            size_t bytes = (size_t)spans[got].pages << pshift;
            while (gl->head && n < REFILL_COUNT && bytes < REFILL_BYTES) {
                uint32_t h = pop(gl);
                push(&t->fl[c], h);
                bytes += (size_t)spans[h].pages << pshift;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&g.lock);
    t->locked_cached = sum_locked(t->fl);
    return got;
}

/* Out of address space: any free span of a larger class will do. */
static int64_t take_larger(unsigned c, struct tcache *t)
{
    unsigned d;
    int64_t got = -1;
    for (d = c + 1; d < NCLASS; d++)
        if (t->fl[d].head) {
            got = pop(&t->fl[d]);
            t->locked_cached = sum_locked(t->fl);
            return got;
        }
    pthread_mutex_lock(&g.lock);
    for (d = c + 1; d < NCLASS && got < 0; d++)
        if (g.global[d].head)
            got = pop(&g.global[d]);
    pthread_mutex_unlock(&g.lock);
    return got;
}

/* First fit among the free spans of list l for a block of `pages` pages. */
static int64_t fit_in(struct freelist *l, size_t pages)
{
    uint32_t prev1 = 0, h1 = l->head;
    size_t n = 0;
    while (h1 != 0 && n++ < l->count) {
        if (spans[h1 - 1].pages >= pages)
            return unlink_after(l, prev1);
        prev1 = h1;
        h1 = spans[h1 - 1].next;
    }
    return -1;
}

/* A span of exactly the requested size (carve_exact's, filed one class
 * down) can serve that size again: look for one in class c - 1. */
static int64_t take_fitting(size_t pages, unsigned c, struct tcache *t)
{
    int64_t got;
    if (c == 0 || pages == class_pages(c))
        return -1;
    if ((got = fit_in(&t->fl[c - 1], pages)) >= 0) {
        t->locked_cached = sum_locked(t->fl);
        return got;
    }
    pthread_mutex_lock(&g.lock);
    got = fit_in(&g.global[c - 1], pages);
    pthread_mutex_unlock(&g.lock);
    return got;
}

/* Give this thread's list of class c back down to half its cap. */
static void spill(struct freelist *l, unsigned c, struct tcache *t)
{
    pthread_mutex_lock(&g.lock);
    while (l->head && (l->count > SPILL_COUNT / 2
                       || ((size_t)l->pages << pshift) > SPILL_BYTES / 2))
        cache_global(pop(l), c);
    pthread_mutex_unlock(&g.lock);
    t->locked_cached = sum_locked(t->fl);
}

/* mlock the top `pages` pages of span h (the ones a block of that size
 * covers) where an earlier block has not.  A failure has warned (naming the
 * budget); the block is handed out anyway, and the lock is retried on later
 * allocations of this thread, less and less often while it keeps failing. */
__attribute__((noinline))
static void lock_block(struct tcache *t, uint32_t h, size_t pages)
{
    struct span *s = &spans[h];
    char *end = base + (((size_t)h + s->pages) << pshift);
    size_t len = (pages - s->locked) << pshift;
    if (t->lock_skip) {
        t->lock_skip--;
        return;
    }
    if (secretjit__lock(end - (pages << pshift), len) == 0) {
        s->locked = (uint32_t)pages;
        __atomic_add_fetch(&g.locked_total, len, __ATOMIC_RELAXED);
        t->lock_backoff = 0;
        return;
    }
    t->lock_skip = t->lock_backoff;
    t->lock_backoff = t->lock_backoff * 2 + 1 > MAX_LOCK_BACKOFF
                      ? MAX_LOCK_BACKOFF : t->lock_backoff * 2 + 1;
}

/* -- API --------------------------------------------------------------------- */

void *secretjit_arena_alloc(size_t size)
{
    struct tcache *t = my_cache();
    size_t pages;
    unsigned c;
    int64_t h;
    struct span *s;
    uint32_t gen;

    ensure_init();
    if (size == 0 || size > SIZE_MAX - 15 - page)
        goto fail;
    pages = (((size + 15) & ~(size_t)15) + page - 1) >> pshift;
    if (pages >= npages)
        goto fail;
    c = class_of(pages);
    if (__builtin_expect(t->mode != T_LIVE, 0))
        enroll(t);
    if (t->fl[c].head) {
        h = pop(&t->fl[c]);
        t->locked_cached -= locked_of((uint32_t)h);
    } else if ((h = refill(c, t)) < 0 && (h = carve(class_pages(c), c)) < 0
               && (h = carve_exact(pages, c)) < 0
               && (h = take_fitting(pages, c, t)) < 0
               && (h = take_larger(c, t)) < 0)
        goto fail;
    s = &spans[h];
    s->req = size;
    __atomic_store_n(&s->state, SPAN_USED, __ATOMIC_RELAXED);
    /* mlock the pages this block covers (the top `pages` of the span) if an
     * earlier block has not.  Locking the whole span instead would make an
     * allocation of 2^n + 1 pages pin 2^(n+1) pages of RAM. */
    gen = __atomic_load_n(&lock_gen, __ATOMIC_RELAXED);
    if (__builtin_expect(s->lockgen != gen, 0)) {
        s->locked = 0;                  /* in a forked child */
        s->lockgen = gen;
    }
    if (__builtin_expect(pages > s->locked, 0))
        lock_block(t, (uint32_t)h, pages);
    count_in_use(t, ((size_t)s->pages + 1) << pshift);
    return block_of((uint32_t)h, size);
fail:
    __atomic_add_fetch(&g.failures, 1, __ATOMIC_RELAXED);
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
    off = (uintptr_t)p - (uintptr_t)base;
    idx = off >> pshift;
    h1 = idx < npages ? __atomic_load_n(&pagehead[idx], __ATOMIC_RELAXED) : 0;
    h = h1 - 1;
    if (__builtin_expect(h1 == 0 || block_of(h, spans[h].req) != p, 0)) {
        warn_once(&warned_bad, what, p, "not the start of a secret arena block");
        return -1;
    }
    return h;
}

void secretjit_arena_free(void *p)
{
    struct tcache *t;
    struct span *s;
    struct freelist *l;
    int64_t h;
    size_t lb;
    if (p == NULL)
        return;
    if ((h = span_of(p, "secretjit_arena_free")) < 0)
        return;
    s = &spans[h];
    /* The exchange makes a double free harmless: only one caller gets the
     * span back, so it can never be handed out twice. */
    if (__atomic_exchange_n(&s->state, SPAN_FREE, __ATOMIC_ACQ_REL) != SPAN_USED) {
        warn_once(&warned_double, "secretjit_arena_free", p,
                  "block already freed");
        return;
    }
    secretjit__wipe(p, (s->req + 15) & ~(size_t)15);
    t = my_cache();
    if (__builtin_expect(t->mode != T_LIVE, 0) && enroll(t) != T_LIVE) {
        count_in_use(t, -(((size_t)s->pages + 1) << pshift));
        pthread_mutex_lock(&g.lock);
        cache_global((uint32_t)h, s->cls);
        pthread_mutex_unlock(&g.lock);
        return;
    }
    count_in_use(t, -(((size_t)s->pages + 1) << pshift));
    lb = locked_of((uint32_t)h);
    if (__builtin_expect(lb != 0 && t->locked_cached + lb > LOCKED_CACHE_THREAD, 0)) {
        unlock_span((uint32_t)h);       /* back to RLIMIT_MEMLOCK */
        lb = 0;
    }
    l = &t->fl[s->cls];
    push(l, (uint32_t)h);
    t->locked_cached += lb;
    if (__builtin_expect(l->count > SPILL_COUNT
                         || ((size_t)l->pages << pshift) > SPILL_BYTES, 0))
        spill(l, s->cls, t);
}

void *secretjit_arena_realloc(void *p, size_t size)
{
    void *q;
    int64_t h;
    size_t old;
    if (p == NULL)
        return secretjit_arena_alloc(size);
    if ((h = span_of(p, "secretjit_arena_realloc")) < 0
        || __atomic_load_n(&spans[h].state, __ATOMIC_ACQUIRE) != SPAN_USED) {
        __atomic_add_fetch(&g.failures, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    old = spans[h].req;
    q = secretjit_arena_alloc(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    secretjit_arena_free(p);
    return q;
}

int secretjit_arena_owns(const void *p)
{
    char *b = __atomic_load_n(&base, __ATOMIC_ACQUIRE);
    return b != NULL && (const char *)p >= b
           && (uintptr_t)((const char *)p - b) < (npages << pshift);
}

void secretjit__arena_stats(struct secretjit_memstats *out)
{
    ensure_init();
    out->arena_start = (uintptr_t)base;
    out->arena_end = (uintptr_t)base + (npages << pshift);
    out->arena_limit = npages << pshift;
    out->arena_carved = __atomic_load_n(&g.carved_bytes, __ATOMIC_RELAXED);
    {
        struct tcache *t;
        size_t sum;
        pthread_mutex_lock(&g.lock);
        sum = __atomic_load_n(&g.retired_in_use, __ATOMIC_RELAXED);
        for (t = g.threads; t; t = t->next)
            sum += __atomic_load_n(&t->in_use, __ATOMIC_RELAXED);
        out->arena_in_use = sum;
        sum = sum_locked(g.global);
        for (t = g.threads; t; t = t->next)
            sum += __atomic_load_n(&t->locked_cached, __ATOMIC_RELAXED);
        out->locked_cached = sum;
        pthread_mutex_unlock(&g.lock);
    }
    out->arena_failures = __atomic_load_n(&g.failures, __ATOMIC_RELAXED);
}
