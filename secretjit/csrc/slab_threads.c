/* The small-block allocator's threads, fork handlers, setup and stats.
 * See slab.c. */
#define _GNU_SOURCE
#include <string.h>
#include <unistd.h>

#include "slab.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

struct slab_cfg CFG;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static unsigned lock_gen;               /* arena's, when the slabs were locked */
static pthread_key_t key;
static int key_ok;
static struct tbins dead = { .mode = B_DEAD };  /* bins of an exiting thread */

/* -- threads and fork ------------------------------------------------------------ */

/* Give every slot of t's bins to the depots (validated: in a forked child
 * they may be a snapshot of a thread caught mid-push).  Caller holds SL.lock. */
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
        while (l->n && secretjit__slab_to_depot(l, c, l->n < BATCH ? l->n : BATCH))
            ;
        l->n = 0;                       /* the rest (no batch): leaked */
    }
}

static void thread_exit(void *arg)
{
    struct tbins *t = arg;
    pthread_mutex_lock(&SL.lock);
    give_all(t);
    if (t->prev)
        t->prev->next = t->next;
    else
        SL.threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->mode = B_NEW;
    t->next = SL.spare_bins;
    SL.spare_bins = t;
    tbp = &dead;                        /* later frees bypass the cache */
    pthread_mutex_unlock(&SL.lock);
}

/* Bins for a new thread.  Caller holds SL.lock. */
static struct tbins *new_bins(void)
{
    struct tbins *t = SL.spare_bins;
    unsigned i;
    if (t == NULL) {
        t = secretjit__map_meta(BATCH_CHUNK / 16 * sizeof *t);
        if (t == NULL)
            return NULL;
        for (i = 1; i < BATCH_CHUNK / 16; i++) {
            t[i].next = SL.spare_bins;
            SL.spare_bins = &t[i];
        }
    } else
        SL.spare_bins = t->next;
    memset(t, 0, sizeof *t);
    return t;
}

/* This thread's bins, registered, with the destructor that hands them back
 * armed; &dead when that is not possible (then nothing is cached). */
struct tbins *secretjit__slab_enroll(void)
{
    struct tbins *t;
    if (tbp)
        return tbp;
    pthread_mutex_lock(&SL.lock);
    t = key_ok ? new_bins() : NULL;
    if (t && pthread_setspecific(key, t) == 0) {
        t->owner = pthread_self();
        t->mode = B_LIVE;
        t->next = SL.threads;
        if (SL.threads)
            SL.threads->prev = t;
        SL.threads = t;
    } else if (t) {
        t->next = SL.spare_bins;
        SL.spare_bins = t;
        t = NULL;
    }
    pthread_mutex_unlock(&SL.lock);
    return tbp = t ? t : &dead;
}

/* See secretmem.h. */
void secretjit_arena_thread_enroll(void)
{
    secretjit__arena_enroll_thread();
    secretjit__slab_init();
    (void)secretjit__slab_enroll();
}

static void fork_prepare(void) { pthread_mutex_lock(&SL.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&SL.lock); }

/* Runs after arena_setup.c's handler (registered later): if the arena
 * could not re-lock its whole carved range, lock the slabs here. */
static void fork_child(void)
{
    pthread_t me = pthread_self();
    struct tbins *t, *next, *mine = NULL;
    size_t i;
    for (t = SL.threads; t; t = next) {
        next = t->next;
        if (pthread_equal(t->owner, me))
            mine = t;
        else {
            give_all(t);
            t->next = SL.spare_bins;
            SL.spare_bins = t;
        }
    }
    if (mine)
        mine->prev = mine->next = NULL;
    SL.threads = mine;
    if (secretjit__arena_lock_gen() != lock_gen) {
        lock_gen = secretjit__arena_lock_gen();
        for (i = 0; i < SL.nslabs; i++)
            secretjit__lock(CFG.meta[i].base, SLAB_BYTES);
    }
    pthread_mutex_unlock(&SL.lock);
}

static void init(void)
{
    struct secretjit_memstats st;
    long ps = sysconf(_SC_PAGESIZE);
    secretjit__arena_stats(&st);
    CFG.pshift = (unsigned)__builtin_ctzl(ps > 0 ? (size_t)ps : 4096);
    CFG.apages = (st.arena_end - st.arena_start) >> CFG.pshift;
    if (CFG.apages && (SLAB_BYTES >> CFG.pshift) > 0) {
        CFG.slab_of_page = secretjit__map_meta(CFG.apages * sizeof *CFG.slab_of_page);
        CFG.meta = secretjit__map_meta(MAX_SLABS * sizeof *CFG.meta);
    }
    if (CFG.slab_of_page == NULL || CFG.meta == NULL)
        CFG.apages = 0;                     /* no slabs: every block is a span */
    CFG.abase = (char *)st.arena_start;
    lock_gen = secretjit__arena_lock_gen();
    key_ok = pthread_key_create(&key, thread_exit) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&CFG.ready, 1, __ATOMIC_RELEASE);
}


void secretjit__slab_stats(struct secretjit_memstats *out)
{
    struct tbins *t;
    size_t used = 0, c;
    secretjit__slab_init();             /* first run: the library's constructor */
    pthread_mutex_lock(&SL.lock);
    out->slab_bytes = SL.nslabs * SLAB_BYTES;
    for (c = 0; c < NSC; c++) {
        size_t n = SL.carved_slots[c] - SL.depot_slots[c];
        for (t = SL.threads; t; t = t->next)
            n -= __atomic_load_n(&t->bin[c].n, __ATOMIC_ACQUIRE);
        used += n * slot_size((unsigned)c);
    }
    out->slab_in_use = used;
    /* arena_in_use: the slabs' spans (data + guard) are not handed out to
     * anyone; the slots in them are. */
    out->arena_in_use += used - SL.nslabs * (SLAB_BYTES + ((size_t)1 << CFG.pshift));
    pthread_mutex_unlock(&SL.lock);
}


void secretjit__slab_init(void)
{
    pthread_once(&once, init);
}
