/* Internal to the secret heap (arena.c, arena_spans.c, arena_setup.c): its
 * settings, shared state and the small helpers of the hot path.  The design
 * is described at the top of arena.c. */
#ifndef SECRETJIT_ARENA_INTERNAL_H
#define SECRETJIT_ARENA_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

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

/* 16 bytes: the thread caches live in static TLS (see arena.c's my_cache). */
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
    struct tcache *prev, *next; /* registry of T_LIVE threads, under AG.lock */
    pthread_t owner;
    int mode;                   /* T_NEW, T_LIVE (registered, destructor
                                 * armed) or T_DEAD (the destructor ran, or
                                 * could not be armed: bypass the cache) */
};

/* Read-mostly settings: arena_setup.c's init writes them once (lock_gen
 * also in a forked child), every call reads them. */
struct arena_cfg {
    int ready;
    char *base;                 /* arena start */
    size_t npages;              /* pages reserved */
    size_t page;                /* page size */
    unsigned pshift;
    struct span *spans;         /* [npages], by head page */
    uint32_t *pagehead;         /* [npages]: head page + 1 of a data page, or 0 */
    uint32_t lock_gen;          /* bumped in a forked child that must re-lock */
};

/* Written by many threads, but off the hot path (which writes only this
 * thread's cache and the span's own metadata): kept on cache lines of their
 * own, away from the read-mostly settings above that every call reads. */
struct arena_shared {
    size_t next_page;               /* bump index: pages carved so far */
    size_t carved_bytes;
    uint64_t failures;
    size_t retired_in_use;          /* in_use of T_DEAD threads */
    size_t locked_total;            /* arena bytes mlock'ed (and counted) */
    pthread_mutex_t lock;           /* guards the rest */
    struct freelist global[NCLASS];
    struct tcache *threads;         /* registry of T_LIVE threads */
} __attribute__((aligned(128)));

#define AC secretjit__arena_cfg
#define AG secretjit__arena_shared

#pragma GCC visibility push(hidden)
extern struct arena_cfg AC;             /* arena.c */
extern struct arena_shared AG;          /* arena.c */

/* arena_setup.c */
void secretjit__arena_init(void);       /* once, through arena.c's ensure_init */
/* First use of the arena by this thread: register its counter and arm the
 * destructor that hands its cache back.  Returns t->mode. */
int secretjit__arena_enroll(struct tcache *t);

/* arena_spans.c */
/* A free span for a block of `pages` data pages of class c when this
 * thread's own list of class c is empty, or -1 (the arena is exhausted). */
int64_t secretjit__arena_take(size_t pages, unsigned c, struct tcache *t);
void secretjit__arena_cache_global(uint32_t h, unsigned c);
void secretjit__arena_unlock_span(uint32_t h);
void secretjit__arena_spill(struct freelist *l, unsigned c, struct tcache *t);
void secretjit__arena_lock_block(struct tcache *t, uint32_t h, size_t pages);
#pragma GCC visibility pop

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
    return AC.base + (((size_t)h + AC.spans[h].pages) << AC.pshift)
           - ((size + 15) & ~(size_t)15);
}

/* Pages of span h that are mlock'ed (and counted in locked_bytes). */
static inline uint32_t locked_pages(uint32_t h)
{
    if (__builtin_expect(AC.spans[h].lockgen != __atomic_load_n(&AC.lock_gen, __ATOMIC_RELAXED), 0))
        return 0;
    return AC.spans[h].locked;
}

static inline size_t locked_of(uint32_t h)
{
    return (size_t)locked_pages(h) << AC.pshift;
}

static inline uint32_t pop(struct freelist *l)
{
    uint32_t h = l->head - 1;
    /* atomic for refill's unlocked peek at global lists (a plain store) */
    __atomic_store_n(&l->head, AC.spans[h].next, __ATOMIC_RELAXED);
    l->count--;
    l->pages -= AC.spans[h].pages;
    l->locked -= locked_pages(h);
    return h;
}

static inline void push(struct freelist *l, uint32_t h)
{
    AC.spans[h].next = l->head;
    /* release: a forked child that sees the new head sees the link too */
    __atomic_store_n(&l->head, h + 1, __ATOMIC_RELEASE);
    l->count++;
    l->pages += AC.spans[h].pages;
    l->locked += locked_pages(h);
}

static inline size_t sum_locked(const struct freelist *fl)
{
    size_t sum = 0;
    unsigned c;
    for (c = 0; c < NCLASS; c++)
        sum += (size_t)fl[c].locked << AC.pshift;
    return sum;
}

/* Count `bytes` more (or, negated, fewer) spans handed out. */
static inline void count_in_use(struct tcache *t, size_t bytes)
{
    if (__builtin_expect(t->mode == T_LIVE, 1))
        __atomic_store_n(&t->in_use, t->in_use + bytes, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&AG.retired_in_use, bytes, __ATOMIC_RELAXED);
}

#endif
