/* Internal to the small-block allocator (slab.c, slab_threads.c). */
#ifndef SECRETJIT_SLAB_H
#define SECRETJIT_SLAB_H

#include <pthread.h>
#include <stdint.h>

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

/* Read-mostly settings (slab_threads.c's init writes them once). */
struct slab_cfg {
    int ready;
    char *abase;                        /* the arena's address range */
    size_t apages;
    unsigned pshift;
    uint32_t *slab_of_page;             /* [apages]: slab index + 1, or 0 */
    struct slabmeta *meta;              /* [MAX_SLABS] */
};

/* Shared state, under its mutex (off the fast path). */
struct slab_shared {
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
    struct tbins *threads;              /* registry of B_LIVE threads */
} __attribute__((aligned(128)));

#define CFG secretjit__slab_cfg
#define SL secretjit__slab_shared
#define tbp secretjit__slab_tbp
extern struct slab_cfg CFG;
extern struct slab_shared SL;
/* This thread's bins (from a pool outside the arena; NULL until its first
 * slow path).  initial-exec, as secretstack.c's: one %fs-relative load, and
 * only 8 bytes of the library's static TLS block. */
extern __thread struct tbins *tbp __attribute__((tls_model("initial-exec")));

/* slab.c */
unsigned secretjit__slab_to_depot(struct bin *l, unsigned c, unsigned n);
/* slab_threads.c: set up once (from the library's constructor) */
void secretjit__slab_init(void);
/* This thread's bins, registered, their destructor armed; bins of mode
 * B_DEAD (which cache nothing) when that is not possible. */
struct tbins *secretjit__slab_enroll(void);

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
    if (!__atomic_load_n(&CFG.ready, __ATOMIC_ACQUIRE) || (const char *)p < CFG.abase)
        return NULL;
    pg = (size_t)((const char *)p - CFG.abase) >> CFG.pshift;
    if (pg >= CFG.apages || (s1 = __atomic_load_n(&CFG.slab_of_page[pg], __ATOMIC_ACQUIRE)) == 0)
        return NULL;
    m = &CFG.meta[s1 - 1];
    off = (size_t)((const char *)p - m->base);
    *idx = off & (slot_size(m->cls) - 1) ? SIZE_MAX : off >> (MIN_SHIFT + m->cls);
    return m;
}

#endif
