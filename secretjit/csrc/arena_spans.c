/* The secret arena's spans: carving them, the free lists (this thread's and
 * the global ones), and locking their pages (see arena.c's top comment). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "arena_internal.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

/* A new span of `pages` data pages (+ guard) for the free lists of class c
 * (pages >= class_pages(c)), or -1. */
static int64_t carve(size_t pages, unsigned c)
{
    size_t need = pages + 1, old, i;
    char *data;
    old = __atomic_load_n(&AG.next_page, __ATOMIC_RELAXED);
    do {
        if (old > AC.npages || AC.npages - old < need)
            return -1;
    } while (!__atomic_compare_exchange_n(&AG.next_page, &old, old + need, 1,
                                          __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    data = AC.base + (old << AC.pshift);
    if (mprotect(data, pages << AC.pshift, PROT_READ | PROT_WRITE) != 0) {
        /* Usually ENOMEM from vm.max_map_count.  Give the pages back if
         * nobody carved after us; otherwise they stay unused. */
        size_t expect = old + need;
        __atomic_compare_exchange_n(&AG.next_page, &expect, old, 0,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
        return -1;
    }
    for (i = 0; i < pages; i++)
        AC.pagehead[old + i] = (uint32_t)old + 1;
    AC.spans[old].pages = (uint32_t)pages;
    AC.spans[old].cls = (uint8_t)c;
    AC.spans[old].next = 0;
    AC.spans[old].state = SPAN_FREE;
    AC.spans[old].locked = 0;              /* alloc locks what it hands out */
    AC.spans[old].lockgen = __atomic_load_n(&AC.lock_gen, __ATOMIC_RELAXED);
    __atomic_add_fetch(&AG.carved_bytes, need << AC.pshift, __ATOMIC_RELAXED);
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

/* Unlink the span after `prev` (0: the head) from l. */
static uint32_t unlink_after(struct freelist *l, uint32_t prev1)
{
    uint32_t h;
    if (prev1 == 0)
        return pop(l);
    h = AC.spans[prev1 - 1].next - 1;
    AC.spans[prev1 - 1].next = AC.spans[h].next;
    l->count--;
    l->pages -= AC.spans[h].pages;
    l->locked -= locked_pages(h);
    return h;
}

/* munlock the pages of free span h (on no list) and count them out. */
__attribute__((noinline))
void secretjit__arena_unlock_span(uint32_t h)
{
    size_t lb = locked_of(h);
    struct span *s = &AC.spans[h];
    if (lb) {
        char *end = AC.base + (((size_t)h + s->pages) << AC.pshift);
        secretjit__unlock(end - lb, lb);
        /* The pages are zero (wiped on free): give them back as well, so
         * that no unlocked copy of them stays resident. */
        madvise(end - lb, lb, MADV_DONTNEED);
        __atomic_sub_fetch(&AG.locked_total, lb, __ATOMIC_RELAXED);
    }
    s->locked = 0;
}

/* Put free span h on the global list of class c, munlock'ed if the global
 * lists already keep LOCKED_CACHE_GLOBAL bytes locked.  Caller holds AG.lock. */
void secretjit__arena_cache_global(uint32_t h, unsigned c)
{
    size_t lb = locked_of(h);
    if (lb && sum_locked(AG.global) + lb > LOCKED_CACHE_GLOBAL)
        secretjit__arena_unlock_span(h);
    push(&AG.global[c], h);
}

/* Take a span of class c from the global list, moving up to a small batch
 * more into this thread's list.  -1 if the global list is empty. */
static int64_t refill(unsigned c, struct tcache *t)
{
    int64_t got = -1;
    struct freelist *gl = &AG.global[c];
    if (__atomic_load_n(&gl->head, __ATOMIC_RELAXED) == 0)
        return -1;                      /* racy peek; fine either way */
    pthread_mutex_lock(&AG.lock);
    if (gl->head) {
        got = pop(gl);
        if (t->mode == T_LIVE) {
            unsigned n = 1;
            size_t bytes = (size_t)AC.spans[got].pages << AC.pshift;
            while (gl->head && n < REFILL_COUNT && bytes < REFILL_BYTES) {
                uint32_t h = pop(gl);
                push(&t->fl[c], h);
                bytes += (size_t)AC.spans[h].pages << AC.pshift;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&AG.lock);
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
    pthread_mutex_lock(&AG.lock);
    for (d = c + 1; d < NCLASS && got < 0; d++)
        if (AG.global[d].head)
            got = pop(&AG.global[d]);
    pthread_mutex_unlock(&AG.lock);
    return got;
}

/* First fit among the free spans of list l for a block of `pages` pages. */
static int64_t fit_in(struct freelist *l, size_t pages)
{
    uint32_t prev1 = 0, h1 = l->head;
    size_t n = 0;
    while (h1 != 0 && n++ < l->count) {
        if (AC.spans[h1 - 1].pages >= pages)
            return unlink_after(l, prev1);
        prev1 = h1;
        h1 = AC.spans[h1 - 1].next;
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
    pthread_mutex_lock(&AG.lock);
    got = fit_in(&AG.global[c - 1], pages);
    pthread_mutex_unlock(&AG.lock);
    return got;
}

/* Give this thread's list of class c back down to half its cap. */
void secretjit__arena_spill(struct freelist *l, unsigned c, struct tcache *t)
{
    pthread_mutex_lock(&AG.lock);
    while (l->head && (l->count > SPILL_COUNT / 2
                       || ((size_t)l->pages << AC.pshift) > SPILL_BYTES / 2))
        secretjit__arena_cache_global(pop(l), c);
    pthread_mutex_unlock(&AG.lock);
    t->locked_cached = sum_locked(t->fl);
}

/* mlock the top `pages` pages of span h (the ones a block of that size
 * covers) where an earlier block has not.  A failure has warned (naming the
 * budget); the block is handed out anyway, and the lock is retried on later
 * allocations of this thread, less and less often while it keeps failing. */
__attribute__((noinline))
void secretjit__arena_lock_block(struct tcache *t, uint32_t h, size_t pages)
{
    struct span *s = &AC.spans[h];
    char *end = AC.base + (((size_t)h + s->pages) << AC.pshift);
    size_t len = (pages - s->locked) << AC.pshift;
    int own = t->mode == T_LIVE;        /* not the shared no-cache state */
    if (own && t->lock_skip) {
        t->lock_skip--;
        return;
    }
    if (secretjit__lock(end - (pages << AC.pshift), len) == 0) {
        s->locked = (uint32_t)pages;
        __atomic_add_fetch(&AG.locked_total, len, __ATOMIC_RELAXED);
        if (own)
            t->lock_backoff = 0;
        return;
    }
    if (!own)
        return;
    t->lock_skip = t->lock_backoff;
    t->lock_backoff = t->lock_backoff * 2 + 1 > MAX_LOCK_BACKOFF
                      ? MAX_LOCK_BACKOFF : t->lock_backoff * 2 + 1;
}

/* The slow path of alloc: global list -> carve -> a free span of a larger
 * class (see arena_internal.h). */
int64_t secretjit__arena_take(size_t pages, unsigned c, struct tcache *t)
{
    int64_t h;
    if ((h = refill(c, t)) < 0 && (h = carve(class_pages(c), c)) < 0
        && (h = carve_exact(pages, c)) < 0
        && (h = take_fitting(pages, c, t)) < 0)
        h = take_larger(c, t);
    return h;
}
