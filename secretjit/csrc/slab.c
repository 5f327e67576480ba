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
 * other threads.  A double free is caught by the slot's state byte (an
 * atomic exchange), so a slot can never be cached twice.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "secretmem.h"

#define SLAB_BYTES ((size_t)64 << 10)
#define MIN_SHIFT 4u                    /* 16-byte slots, 16-byte aligned */
#define NSC 8u                          /* 16 ... 2048 */
#define SLAB_MAX ((size_t)1 << (MIN_SHIFT + NSC - 1))
#define SLOTS_MAX (SLAB_BYTES >> MIN_SHIFT)
#define MAX_SLABS ((size_t)1 << 16)     /* 4 GiB of slabs */
#define BIN_CAP 64u
#define BATCH 32u
#define BATCH_CHUNK 256u                /* batches mapped at once */

enum { SLOT_FREE = 0, SLOT_USED = 1 };
enum { B_NEW = 0, B_LIVE, B_DEAD };

struct slabmeta {
    char *base;
    unsigned cls;
    uint8_t state[SLOTS_MAX];           /* SLOT_FREE / SLOT_USED */
};

/* A free slot and its state byte (so that alloc need not look it up). */
struct ent {
    void *p;
    uint8_t *state;
};

struct batch {
    struct batch *next;
    unsigned n;
    struct ent slot[BATCH];
};

struct bin {
    unsigned n;                          /* published with a release store */
    struct ent slot[BIN_CAP];
};

struct tbins {
    struct bin bin[NSC];
    struct tbins *prev, *next;           /* registry of B_LIVE threads */
    pthread_t owner;
    int mode;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ready;
static char *abase;                     /* the arena's address range */
static size_t apages;
static unsigned pshift;
static uint32_t *slab_of_page;          /* [apages]: slab index + 1, or 0 */
static struct slabmeta *meta;           /* [MAX_SLABS] */
static unsigned lock_gen;               /* arena's, when the slabs were locked */
static pthread_key_t key;
static int key_ok;
static int warned_double;

static struct {
    pthread_mutex_t lock;               /* guards everything below */
    size_t nslabs;
    struct batch *depot[NSC];           /* full batches of free slots */
    size_t depot_slots[NSC];
    struct batch *spare;                /* empty batches */
    struct tbins *spare_bins;           /* of exited threads, for new ones */
    struct slabmeta *cur_meta[NSC];     /* the class's current slab ... */
    char *cur[NSC];
    size_t cur_left[NSC];               /* ... and its slots never handed out */
    size_t carved_slots[NSC];
    struct tbins *threads;
} __attribute__((aligned(128))) s = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* This thread's bins (from a pool outside the arena; NULL until its first
 * slow path).  initial-exec, as secretstack.c's: one %fs-relative load, and
 * only 8 bytes of the library's static TLS block. */
static __thread struct tbins *tbp __attribute__((tls_model("initial-exec")));
static struct tbins dead = { .mode = B_DEAD };  /* bins of an exiting thread */

static inline size_t slot_size(unsigned c) { return (size_t)1 << (MIN_SHIFT + c); }

static inline unsigned class_of(size_t size)
{
    if (size <= ((size_t)1 << MIN_SHIFT))
        return 0;
    return (unsigned)(64 - __builtin_clzll((unsigned long long)(size - 1))) - MIN_SHIFT;
}

/* -- metadata: slots, batches ------------------------------------------------ */

/* The slab holding p, or NULL (p is not in a slab).  *idx: p's slot, or
 * SIZE_MAX when p is inside a slab but not at the start of a slot. */
static inline struct slabmeta *slab_lookup(const void *p, size_t *idx)
{
    size_t off, pg;
    uint32_t s1;
    struct slabmeta *m;
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE) || (const char *)p < abase)
        return NULL;
    pg = (size_t)((const char *)p - abase) >> pshift;
    if (pg >= apages || (s1 = __atomic_load_n(&slab_of_page[pg], __ATOMIC_ACQUIRE)) == 0)
        return NULL;
    m = &meta[s1 - 1];
    off = (size_t)((const char *)p - m->base);
    *idx = off & (slot_size(m->cls) - 1) ? SIZE_MAX : off >> (MIN_SHIFT + m->cls);
    return m;
}

/* An empty batch.  Caller holds s.lock. */
static struct batch *new_batch(void)
{
    struct batch *b = s.spare;
    unsigned i;
    if (b == NULL) {
        b = secretjit__map_meta(BATCH_CHUNK * sizeof *b);
        if (b == NULL)
            return NULL;
        for (i = 1; i < BATCH_CHUNK; i++) {
            b[i].next = s.spare;
            s.spare = &b[i];
        }
    } else
        s.spare = b->next;
    b->n = 0;
    return b;
}

/* Move the top n slots of bin l to the depot of class c.  Caller holds
 * s.lock.  Returns the number moved (0 if no batch could be mapped). */
static unsigned to_depot(struct bin *l, unsigned c, unsigned n)
{
    struct batch *b = new_batch();
    unsigned i;
    if (b == NULL)
        return 0;
    for (i = 0; i < n; i++)
        b->slot[i] = l->slot[l->n - n + i];
    b->n = n;
    b->next = s.depot[c];
    s.depot[c] = b;
    s.depot_slots[c] += n;
    __atomic_store_n(&l->n, l->n - n, __ATOMIC_RELEASE);
    return n;
}

/* -- slabs --------------------------------------------------------------------- */

/* A fresh slab for class c.  Caller holds s.lock. */
static int new_slab(unsigned c)
{
    size_t i, first;
    char *p;
    struct slabmeta *m;
    if (s.nslabs >= MAX_SLABS)
        return -1;
    p = secretjit_arena_alloc(SLAB_BYTES);      /* page-aligned: a whole span */
    if (p == NULL)
        return -1;
    m = &meta[s.nslabs];
    m->base = p;
    m->cls = c;
    first = (size_t)(p - abase) >> pshift;
    s.nslabs++;
    for (i = 0; i < (SLAB_BYTES >> pshift); i++)
        __atomic_store_n(&slab_of_page[first + i], (uint32_t)s.nslabs, __ATOMIC_RELEASE);
    s.cur_meta[c] = m;
    s.cur[c] = p;
    s.cur_left[c] = SLAB_BYTES / slot_size(c);
    return 0;
}

/* Fill bin l of class c with up to BATCH slots (a depot batch, else fresh
 * slots).  Caller holds s.lock.  Returns the number added. */
static unsigned refill(struct bin *l, unsigned c)
{
    struct batch *b = s.depot[c];
    unsigned i, n = 0;
    if (b) {
        s.depot[c] = b->next;
        s.depot_slots[c] -= b->n;
        for (i = 0; i < b->n; i++)
            l->slot[l->n + i] = b->slot[i];
        n = b->n;
        b->next = s.spare;
        s.spare = b;
    } else {
        if (s.cur_left[c] == 0 && new_slab(c) != 0)
            return 0;
        for (; n < BATCH && s.cur_left[c]; n++, s.cur_left[c]--) {
            struct slabmeta *m = s.cur_meta[c];
            l->slot[l->n + n].p = s.cur[c];
            l->slot[l->n + n].state = &m->state[(size_t)(s.cur[c] - m->base) >> (MIN_SHIFT + c)];
            s.cur[c] += slot_size(c);
        }
        s.carved_slots[c] += n;
    }
    __atomic_store_n(&l->n, l->n + n, __ATOMIC_RELEASE);
    return n;
}

/* -- threads and fork ------------------------------------------------------------ */

/* Give every slot of t's bins to the depots (validated: in a forked child
 * they may be a snapshot of a thread caught mid-push).  Caller holds s.lock. */
static void give_all(struct tbins *t)
{
    unsigned c, i, n, keep;
    for (c = 0; c < NSC; c++) {
        struct bin *l = &t->bin[c];
        n = l->n > BIN_CAP ? BIN_CAP : l->n;
        for (i = keep = 0; i < n; i++) {
            size_t idx;
            struct slabmeta *m = slab_lookup(l->slot[i].p, &idx);
            if (m && idx != SIZE_MAX && m->cls == c && m->state[idx] == SLOT_FREE)
                l->slot[keep++] = l->slot[i];
        }
        l->n = keep;
        while (l->n && to_depot(l, c, l->n < BATCH ? l->n : BATCH))
            ;
        l->n = 0;                       /* the rest (no batch): leaked */
    }
}

static void thread_exit(void *arg)
{
    struct tbins *t = arg;
    pthread_mutex_lock(&s.lock);
    give_all(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        s.threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->mode = B_NEW;
    t->next = s.spare_bins;
    s.spare_bins = t;
    tbp = &dead;                        /* later frees bypass the cache */
    pthread_mutex_unlock(&s.lock);
}

/* Bins for a new thread.  Caller holds s.lock. */
static struct tbins *new_bins(void)
{
    struct tbins *t = s.spare_bins;
    unsigned i;
    if (t == NULL) {
        t = secretjit__map_meta(BATCH_CHUNK / 16 * sizeof *t);
        if (t == NULL)
            return NULL;
        for (i = 1; i < BATCH_CHUNK / 16; i++) {
            t[i].next = s.spare_bins;
            s.spare_bins = &t[i];
        }
    } else
        s.spare_bins = t->next;
    memset(t, 0, sizeof *t);
    return t;
}

/* This thread's bins, registered, with the destructor that hands them back
 * armed; &dead when that is not possible (then nothing is cached). */
static struct tbins *enroll(void)
{
    struct tbins *t;
    if (tbp)
        return tbp;
    pthread_mutex_lock(&s.lock);
    t = key_ok ? new_bins() : NULL;
    if (t && pthread_setspecific(key, t) == 0) {
        t->owner = pthread_self();
        t->mode = B_LIVE;
        t->next = s.threads;
        if (s.threads)
            s.threads->prev = t;
        s.threads = t;
    } else if (t) {
        t->next = s.spare_bins;
        s.spare_bins = t;
        t = NULL;
    }
    pthread_mutex_unlock(&s.lock);
    return tbp = t ? t : &dead;
}

static void fork_prepare(void) { pthread_mutex_lock(&s.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&s.lock); }

/* Runs after arena.c's handler (registered later): if the arena could not
 * re-lock its whole carved range, lock the slabs here. */
static void fork_child(void)
{
    pthread_t me = pthread_self();
    struct tbins *t, *next, *mine = NULL;
    size_t i;
    for (t = s.threads; t; t = next) {
        next = t->next;
        if (pthread_equal(t->owner, me))
            mine = t;
        else {
            give_all(t);
            t->next = s.spare_bins;
            s.spare_bins = t;
        }
    }
    if (mine)
        mine->prev = mine->next = NULL;
    s.threads = mine;
    if (secretjit__arena_lock_gen() != lock_gen) {
        lock_gen = secretjit__arena_lock_gen();
        for (i = 0; i < s.nslabs; i++)
            secretjit__lock(meta[i].base, SLAB_BYTES);
    }
    pthread_mutex_unlock(&s.lock);
}

static void init(void)
{
    struct secretjit_memstats st;
    long ps = sysconf(_SC_PAGESIZE);
    secretjit__arena_stats(&st);
    pshift = (unsigned)__builtin_ctzl(ps > 0 ? (size_t)ps : 4096);
    apages = (st.arena_end - st.arena_start) >> pshift;
    if (apages && (SLAB_BYTES >> pshift) > 0) {
        slab_of_page = secretjit__map_meta(apages * sizeof *slab_of_page);
        meta = secretjit__map_meta(MAX_SLABS * sizeof *meta);
    }
    if (slab_of_page == NULL || meta == NULL)
        apages = 0;                     /* no slabs: every block is a span */
    abase = (char *)st.arena_start;
    lock_gen = secretjit__arena_lock_gen();
    key_ok = pthread_key_create(&key, thread_exit) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
}

/* -- API ----------------------------------------------------------------------- */

/* Zero slot p of class c: up to 64 bytes with inline stores, larger slots
 * with libc's memset (its vector loop beats the `rep stos` GCC inlines for
 * 128 and 256); the asm keeps the stores (the slot is dead). */
static inline void wipe_slot(void *p, unsigned c)
{
    switch (c) {
    case 0: __builtin_memset(p, 0, 16); break;
    case 1: __builtin_memset(p, 0, 32); break;
    case 2: __builtin_memset(p, 0, 64); break;
    default: memset(p, 0, slot_size(c)); break;
    }
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

/* One slot of class c for a thread without bins (exiting): from the depot,
 * else fresh.  Caller holds s.lock.  NULL if there is none. */
static struct ent *depot_take(unsigned c, struct ent *out)
{
    struct batch *b = s.depot[c];
    if (b == NULL) {
        if (s.cur_left[c] == 0 && new_slab(c) != 0)
            return NULL;
        out->p = s.cur[c];
        out->state = &s.cur_meta[c]->state[(size_t)(s.cur[c] - s.cur_meta[c]->base)
                                           >> (MIN_SHIFT + c)];
        s.cur[c] += slot_size(c);
        s.cur_left[c]--;
        s.carved_slots[c]++;
        return out;
    }
    *out = b->slot[--b->n];
    s.depot_slots[c]--;
    if (b->n == 0) {
        s.depot[c] = b->next;
        b->next = s.spare;
        s.spare = b;
    }
    return out;
}

/* The reverse, for a free on such a thread.  Caller holds s.lock. */
static void depot_put(unsigned c, void *p, uint8_t *state)
{
    struct batch *b = s.depot[c];
    if (b == NULL || b->n == BATCH) {
        if ((b = new_batch()) == NULL)
            return;                     /* no metadata memory: slot leaked */
        b->next = s.depot[c];
        s.depot[c] = b;
    }
    b->slot[b->n].p = p;
    b->slot[b->n++].state = state;
    s.depot_slots[c]++;
}

/* Slow path of alloc: bin c of this thread is empty (or it has none). */
__attribute__((noinline))
static void *alloc_slow(unsigned c)
{
    struct tbins *t;
    struct ent e, *got = NULL;
    pthread_once(&once, init);
    if (apages == 0)
        return NULL;
    t = enroll();
    pthread_mutex_lock(&s.lock);
    if (t->mode != B_LIVE)
        got = depot_take(c, &e);        /* exiting: no cache */
    else if (refill(&t->bin[c], c))
        got = &t->bin[c].slot[--t->bin[c].n];
    if (got)
        __atomic_store_n(got->state, SLOT_USED, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s.lock);
    return got ? got->p : NULL;
}

void *secretjit_slab_alloc(size_t size)
{
    struct tbins *t = tbp;
    struct bin *l;
    struct ent *e;
    unsigned c, n;
    void *p;
    if (size == 0 || size > SLAB_MAX)
        return secretjit_arena_alloc(size);
    c = class_of(size);
    if (__builtin_expect(t == NULL || (n = (l = &t->bin[c])->n) == 0, 0)) {
        p = alloc_slow(c);
        /* no slab to be had: a span (or NULL, counted in arena_failures) */
        return p ? p : secretjit_arena_alloc(size);
    }
    e = &l->slot[n - 1];
    __atomic_store_n(&l->n, n - 1, __ATOMIC_RELEASE);
    __atomic_store_n(e->state, SLOT_USED, __ATOMIC_RELAXED);
    return e->p;
}

__attribute__((noinline))
static void free_slow(unsigned c, void *p, uint8_t *state)
{
    struct tbins *t = enroll();
    struct bin *l = &t->bin[c];
    pthread_mutex_lock(&s.lock);
    if (t->mode != B_LIVE)
        depot_put(c, p, state);         /* exiting: no cache */
    else {
        if (l->n == BIN_CAP)
            to_depot(l, c, BATCH);
        if (l->n < BIN_CAP) {
            l->slot[l->n].p = p;
            l->slot[l->n].state = state;
            __atomic_store_n(&l->n, l->n + 1, __ATOMIC_RELEASE);
        } else
            depot_put(c, p, state);
    }
    pthread_mutex_unlock(&s.lock);
}

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
        secretjit_arena_free(p);        /* a span, or warned as a bad free */
        return;
    }
    state = &m->state[idx];
    /* A plain check, not an atomic exchange (which costs more than the rest
     * of free): it catches every double free but two racing ones. */
    if (__builtin_expect(__atomic_load_n(state, __ATOMIC_RELAXED) != SLOT_USED, 0)) {
        if (!__atomic_exchange_n(&warned_double, 1, __ATOMIC_RELAXED))
            secretjit__misuse("secretjit_slab_free", p, "block already freed");
        return;
    }
    __atomic_store_n(state, SLOT_FREE, __ATOMIC_RELAXED);
    c = m->cls;
    wipe_slot(p, c);
    t = tbp;
    if (__builtin_expect(t == NULL || (n = (l = &t->bin[c])->n) >= BIN_CAP
                         || t->mode != B_LIVE, 0)) {
        free_slow(c, p, state);
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
        return secretjit_arena_realloc(p, size);  /* a span, or a counted failure */
    old = slot_size(m->cls);
    q = secretjit_slab_alloc(size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    secretjit_slab_free(p);
    return q;
}

void secretjit__slab_stats(struct secretjit_memstats *out)
{
    struct tbins *t;
    size_t used = 0, c;
    pthread_once(&once, init);          /* first run: the library's constructor */
    pthread_mutex_lock(&s.lock);
    out->slab_bytes = s.nslabs * SLAB_BYTES;
    for (c = 0; c < NSC; c++) {
        size_t n = s.carved_slots[c] - s.depot_slots[c];
        for (t = s.threads; t; t = t->next)
            n -= __atomic_load_n(&t->bin[c].n, __ATOMIC_ACQUIRE);
        used += n * slot_size((unsigned)c);
    }
    out->slab_in_use = used;
    /* arena_in_use: the slabs' spans (data + guard) are not handed out to
     * anyone; the slots in them are. */
    out->arena_in_use += used - s.nslabs * (SLAB_BYTES + ((size_t)1 << pshift));
    pthread_mutex_unlock(&s.lock);
}
