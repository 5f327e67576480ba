/* The secret heap's small-block front end: size classes carved from slabs.
 * See secretmem.h for the API (secretjit_slab_*).
 *
 * A block of at most SLAB_MAX bytes is one slot of a size class (16, 32, 64,
 * ... 2048 bytes) in a slab: a SLAB_BYTES block of the secret arena
 * (arena.c), so it is locked, left out of core dumps, zeroed in forked
 * children and followed by a guard page, like every arena block.  Larger
 * blocks are arena spans (secretjit_arena_*), each with its own guard page.
 *
 * Every free wipes the whole slot (every byte handed out) before the slot is
 * cached, so a slot that is handed out is all zero, as an arena block is.
 * Slabs are never given back to the arena (their number is bounded by the
 * peak number of live small blocks per class).
 *
 * What changes for small blocks: an overrun of a small block within its
 * slab reaches the next slot of the same class (freed slots are zero; live
 * ones belong to other secret buffers), not a guard page; only an overrun
 * past the slab's last slot faults.  Secrets stay inside the locked,
 * undumped arena either way.
 *
 * Metadata (slot states, slab classes, the slab of each arena page, the
 * depot's batches) lives outside the arena, in ordinary private memory, so
 * that a forked child (whose arena MADV_WIPEONFORK zeroes) can still free
 * what it inherited, and so that a freed slot reads zero.
 *
 * Reuse.  Each thread keeps a stack of up to BIN_CAP free slots per class
 * (__thread, no lock); a full stack gives BATCH slots to the class's depot,
 * an empty one takes a batch back (one mutex), or carves fresh slots from the
 * class's current slab.  Any thread may free any block: the slot goes to the
 * freeing thread's stack.  An exiting thread's stacks go to the depot
 * (pthread key destructor); in a forked child, so do those of the parent's
 * other threads.  A double free is caught by the slot's state byte (a plain
 * load and store, not an atomic exchange: two threads freeing the same block
 * at the same instant, a data race in the program, could cache it twice).
 */
#define _GNU_SOURCE
#include <string.h>

#include "slab.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

struct slab_shared SL = { .lock = PTHREAD_MUTEX_INITIALIZER };
__thread struct tbins *tbp __attribute__((tls_model("initial-exec")));
/* The bins of a thread that has not enrolled: no cache, the depots. */
static struct tbins unenrolled = { .mode = B_DEAD };
static int warned_double;


/* An empty batch.  Caller holds SL.lock. */
static struct batch *new_batch(void)
{
    struct batch *b = SL.spare;
    unsigned i;
    if (b == NULL) {
        b = secretjit__map_meta(BATCH_CHUNK * sizeof *b);
        if (b == NULL)
            return NULL;
        for (i = 1; i < BATCH_CHUNK; i++) {
            b[i].next = SL.spare;
            SL.spare = &b[i];
        }
    } else
        SL.spare = b->next;
    b->n = 0;
    return b;
}

/* Move the top n slots of bin l to the depot of class c.  Caller holds
 * SL.lock.  Returns the number moved (0 if no batch could be mapped). */
unsigned secretjit__slab_to_depot(struct bin *l, unsigned c, unsigned n)
{
    struct batch *b = new_batch();
    unsigned i;
    if (b == NULL)
        return 0;
    for (i = 0; i < n; i++)
        b->slot[i] = l->slot[l->n - n + i];
    b->n = n;
    b->next = SL.depot[c];
    SL.depot[c] = b;
    SL.depot_slots[c] += n;
    __atomic_store_n(&l->n, l->n - n, __ATOMIC_RELEASE);
    return n;
}

/* -- slabs --------------------------------------------------------------------- */

/* A fresh slab for class c.  Caller holds SL.lock. */
static int new_slab(unsigned c)
{
    size_t i, first;
    char *p;
    struct slabmeta *m;
    if (SL.nslabs >= MAX_SLABS)
        return -1;
    p = secretjit__arena_alloc_kernel(SLAB_BYTES);      /* page-aligned: a whole span */
    if (p == NULL)
        return -1;
    m = &CFG.meta[SL.nslabs];
    m->base = p;
    m->cls = c;
    first = (size_t)(p - CFG.abase) >> CFG.pshift;
    SL.nslabs++;
    for (i = 0; i < (SLAB_BYTES >> CFG.pshift); i++)
        __atomic_store_n(&CFG.slab_of_page[first + i], (uint32_t)SL.nslabs, __ATOMIC_RELEASE);
    SL.cur_meta[c] = m;
    SL.cur[c] = p;
    SL.cur_left[c] = SLAB_BYTES / slot_size(c);
    return 0;
}

/* Fill bin l of class c with up to BATCH slots (a depot batch, else fresh
 * slots).  Caller holds SL.lock.  Returns the number added. */
static unsigned refill(struct bin *l, unsigned c)
{
    struct batch *b = SL.depot[c];
    unsigned i, n = 0;
    if (b) {
        SL.depot[c] = b->next;
        SL.depot_slots[c] -= b->n;
        for (i = 0; i < b->n; i++)
            l->slot[l->n + i] = b->slot[i];
        n = b->n;
        b->next = SL.spare;
        SL.spare = b;
    } else {
        if (SL.cur_left[c] == 0 && new_slab(c) != 0)
            return 0;
        for (; n < BATCH && SL.cur_left[c]; n++, SL.cur_left[c]--) {
            struct slabmeta *m = SL.cur_meta[c];
            l->slot[l->n + n].p = SL.cur[c];
            l->slot[l->n + n].state = &m->state[(size_t)(SL.cur[c] - m->base) >> (MIN_SHIFT + c)];
            SL.cur[c] += slot_size(c);
        }
        SL.carved_slots[c] += n;
    }
    __atomic_store_n(&l->n, l->n + n, __ATOMIC_RELEASE);
    return n;
}

/* -- API ----------------------------------------------------------------------- */

/* 16-byte stores of zero over [p, p + n), n a multiple of 64 (the asm in
 * the loop keeps GCC from turning it into a memset call, or `rep stos`). */
typedef uint64_t slot_v16 __attribute__((vector_size(16), aligned(16)));
static inline void zero_slot_vectors(char *p, size_t n)
{
    const slot_v16 zero = {0};
    size_t i;
    for (i = 0; i < n; i += 64) {
        __asm__ __volatile__("" : : : "memory");
        *(slot_v16 *)(p + i) = zero;
        *(slot_v16 *)(p + i + 16) = zero;
        *(slot_v16 *)(p + i + 32) = zero;
        *(slot_v16 *)(p + i + 48) = zero;
    }
}

/* Zero slot p of class c: up to 256 bytes with inline stores, larger slots
 * with libc's memset (a marked call, marked.h: an exact secret call that
 * frees one checks its frame window).  Inline for 128 and 256 since issue
 * 15 so that the hot path of a 64-byte temporary (MemInfo + data: class
 * 128) calls no C library code; the asm keeps the stores (the slot is
 * dead). */
static inline void wipe_slot(void *p, unsigned c)
{
    switch (c) {
    case 0: __builtin_memset(p, 0, 16); break;
    case 1: __builtin_memset(p, 0, 32); break;
    case 2: __builtin_memset(p, 0, 64); break;
    case 3: zero_slot_vectors(p, 128); break;
    case 4: zero_slot_vectors(p, 256); break;
    default: memset(p, 0, slot_size(c)); break;
    }
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* One slot of class c for a thread without bins (exiting): from the depot,
 * else fresh.  Caller holds SL.lock.  NULL if there is none. */
static struct ent *depot_take(unsigned c, struct ent *out)
{
    struct batch *b = SL.depot[c];
    if (b == NULL) {
        if (SL.cur_left[c] == 0 && new_slab(c) != 0)
            return NULL;
        out->p = SL.cur[c];
        out->state = &SL.cur_meta[c]->state[(size_t)(SL.cur[c] - SL.cur_meta[c]->base)
                                           >> (MIN_SHIFT + c)];
        SL.cur[c] += slot_size(c);
        SL.cur_left[c]--;
        SL.carved_slots[c]++;
        return out;
    }
    *out = b->slot[--b->n];
    SL.depot_slots[c]--;
    if (b->n == 0) {
        SL.depot[c] = b->next;
        b->next = SL.spare;
        SL.spare = b;
    }
    return out;
}

/* The reverse, for a free on such a thread.  Caller holds SL.lock. */
static void depot_put(unsigned c, void *p, uint8_t *state)
{
    struct batch *b = SL.depot[c];
    if (b == NULL || b->n == BATCH) {
        if ((b = new_batch()) == NULL)
            return;                     /* no metadata memory: slot leaked */
        b->next = SL.depot[c];
        SL.depot[c] = b;
    }
    b->slot[b->n].p = p;
    b->slot[b->n++].state = state;
    SL.depot_slots[c]++;
}

/* Slow path of alloc: bin c of this thread is empty (or it has none). */
__attribute__((noinline))
static void *alloc_slow(unsigned c)
{
    struct tbins *t;
    struct ent e, *got = NULL;
    /* The library's constructor set the slabs up; this thread enrolled at
     * its first secret call (secretjit__thread_enroll), or gets no cache
     * here: nothing on the kernel path enrols (pthread_setspecific). */
    if (!__atomic_load_n(&CFG.ready, __ATOMIC_ACQUIRE) || CFG.apages == 0)
        return NULL;
    t = tbp ? tbp : &unenrolled;
    pthread_mutex_lock(&SL.lock);
    if (t->mode != B_LIVE)
        got = depot_take(c, &e);        /* exiting: no cache */
    else if (refill(&t->bin[c], c))
        got = &t->bin[c].slot[--t->bin[c].n];
    if (got)
        __atomic_store_n(got->state, SLOT_USED, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&SL.lock);
    return got ? got->p : NULL;
}

/* The slow paths, called through marking functions (marked.h): each sets
 * the thread's secretjit__inexact first, so that the exact secret call's
 * hot depth can leave their frames out (it scrubs the marked slack more
 * when one ran). */
SECRETJIT_COLD static void *secretjit__cold_alloc_slow(unsigned c)
{ SECRETJIT_MARK(); return alloc_slow(c); }
SECRETJIT_COLD static void *secretjit__cold_arena_alloc(size_t size)
{ SECRETJIT_MARK(); return secretjit__arena_alloc_kernel(size); }
SECRETJIT_COLD static void secretjit__cold_arena_free(void *p)
{ SECRETJIT_MARK(); secretjit__arena_free_kernel(p); }
SECRETJIT_COLD static void *secretjit__cold_arena_realloc(void *p, size_t size)
{ SECRETJIT_MARK(); return secretjit__arena_realloc_kernel(p, size); }
SECRETJIT_COLD static void secretjit__cold_misuse(void *p)
{ SECRETJIT_MARK(); secretjit__misuse("secretjit_slab_free", p, "block already freed"); }

void *secretjit_slab_alloc(size_t size)
{
    struct tbins *t = tbp;
    struct bin *l;
    struct ent *e;
    unsigned c, n;
    void *p;
    if (size == 0 || size > SLAB_MAX)
        return secretjit__cold_arena_alloc(size);
    c = class_of(size);
    if (__builtin_expect(t == NULL || (n = (l = &t->bin[c])->n) == 0, 0)) {
        p = secretjit__cold_alloc_slow(c);
        /* no slab to be had: a span (or NULL, counted in arena_failures) */
        return p ? p : secretjit__cold_arena_alloc(size);
    }
    e = &l->slot[n - 1];
    __atomic_store_n(&l->n, n - 1, __ATOMIC_RELEASE);
    __atomic_store_n(e->state, SLOT_USED, __ATOMIC_RELAXED);
    return e->p;
}

__attribute__((noinline))
static void free_slow(unsigned c, void *p, uint8_t *state)
{
    struct tbins *t = tbp ? tbp : &unenrolled;
    struct bin *l = &t->bin[c];
    pthread_mutex_lock(&SL.lock);
    if (t->mode != B_LIVE)
        depot_put(c, p, state);         /* exiting: no cache */
    else {
        if (l->n == BIN_CAP)
            secretjit__slab_to_depot(l, c, BATCH);
        if (l->n < BIN_CAP) {
            l->slot[l->n].p = p;
            l->slot[l->n].state = state;
            __atomic_store_n(&l->n, l->n + 1, __ATOMIC_RELEASE);
        } else
            depot_put(c, p, state);
    }
    pthread_mutex_unlock(&SL.lock);
}

SECRETJIT_COLD static void secretjit__cold_free_slow(unsigned c, void *p, uint8_t *state)
{ SECRETJIT_MARK(); free_slow(c, p, state); }

void secretjit_slab_free(void *p)
{
    struct slabmeta *m;
    struct tbins *t;
    struct bin *l;
    size_t idx;
    unsigned c, n;
    uint8_t *state;
    if (p == NULL)
        return;
    if ((m = slab_lookup(p, &idx)) == NULL || idx == SIZE_MAX) {
        secretjit__cold_arena_free(p);          /* a span, or warned as a bad free */
        return;
    }
    state = &m->state[idx];
    /* A plain check, not an atomic exchange (which costs more than the rest
     * of free): it catches every double free but two racing ones. */
    if (__builtin_expect(__atomic_load_n(state, __ATOMIC_RELAXED) != SLOT_USED, 0)) {
        if (!__atomic_exchange_n(&warned_double, 1, __ATOMIC_RELAXED))
            secretjit__cold_misuse(p);
        return;
    }
    __atomic_store_n(state, SLOT_FREE, __ATOMIC_RELAXED);
    c = m->cls;
    wipe_slot(p, c);
    t = tbp;
    if (__builtin_expect(t == NULL || (n = (l = &t->bin[c])->n) >= BIN_CAP
                         || t->mode != B_LIVE, 0)) {
        secretjit__cold_free_slow(c, p, state);
        return;
    }
    l->slot[n].p = p;                   /* the slot first, then the count */
    l->slot[n].state = state;
    __atomic_store_n(&l->n, n + 1, __ATOMIC_RELEASE);
}

void *secretjit_slab_realloc(void *p, size_t size)
{
    struct slabmeta *m;
    size_t idx, old;
    void *q;
    if (p == NULL)
        return secretjit_slab_alloc(size);
    if ((m = slab_lookup(p, &idx)) == NULL || idx == SIZE_MAX
        || __atomic_load_n(&m->state[idx], __ATOMIC_ACQUIRE) != SLOT_USED)
        return secretjit__cold_arena_realloc(p, size);  /* a span, or a counted failure */
    old = slot_size(m->cls);
    q = secretjit_slab_alloc(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    secretjit_slab_free(p);
    return q;
}

