/* The secret arena's setup: reserving it, fork and thread exit (see the
 * "Fork" and "Reuse" paragraphs at the top of arena.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arena_internal.h"
/* last: the C library calls below go through the marking wrappers */
#define SECRETJIT_MARK_CALLS
#include "marked.h"

static pthread_key_t tkey;
static int tkey_ok;

/* -- fork ------------------------------------------------------------------ */

static void fork_prepare(void) { pthread_mutex_lock(&AG.lock); }
static void fork_parent(void) { pthread_mutex_unlock(&AG.lock); }

static void give_all(struct freelist *from, unsigned c);

static void fork_child(void)
{
    size_t carved = __atomic_load_n(&AG.next_page, __ATOMIC_RELAXED);
    pthread_t me = pthread_self();
    struct tcache *t, *next, *mine = NULL;
    unsigned c;
    /* Still under AG.lock (taken in fork_prepare), so the registry and the
     * global lists are whole; the other threads' TLS is still mapped. */
    for (t = AG.threads; t; t = next) {
        next = t->next;
        if (pthread_equal(t->owner, me)) {
            mine = t;
            continue;
        }
        for (c = 0; c < NCLASS; c++)
            give_all(&t->fl[c], c);
        AG.retired_in_use += t->in_use;
    }
    if (mine)
        mine->prev = mine->next = NULL;
    AG.threads = mine;
    pthread_mutex_unlock(&AG.lock);
    if (carved == 0)
        return;
#ifdef MLOCK_ONFAULT
    /* Guard pages are included: they are PROT_NONE and never faulted in. */
    if (mlock2(AC.base, carved << AC.pshift, MLOCK_ONFAULT) == 0)
        return;
#endif
    /* Nothing of the arena is locked here: re-lock lazily, and count so. */
    __atomic_add_fetch(&AC.lock_gen, 1, __ATOMIC_RELAXED);
    secretjit__unlocked(AG.locked_total);
    AG.locked_total = 0;
    for (c = 0; c < NCLASS; c++) {
        AG.global[c].locked = 0;
        if (mine)
            mine->fl[c].locked = 0;
    }
    if (mine)
        mine->locked_cached = 0;
}

/* -- thread exit ------------------------------------------------------------ */

/* Move every span on thread list `from` to the global list of class c.
 * Caller holds AG.lock.  In a forked child the list may be a snapshot of
 * another thread caught in the middle of a push or pop: push publishes the
 * head with a release store after the link, so the chain is whole, and a
 * span that was being handed out is either still on it (and free: the
 * child never got it) or already off it.  Still, stop at anything that is
 * not a free span, and after more links than there can be spans. */
static void give_all(struct freelist *from, unsigned c)
{
    size_t n = 0;
    uint32_t h1 = from->head;
    while (h1 != 0 && h1 <= AC.npages && n++ < AC.npages) {
        uint32_t h = h1 - 1;
        if (AC.spans[h].state != SPAN_FREE || AC.spans[h].cls != c)
            break;
        h1 = AC.spans[h].next;
        secretjit__arena_cache_global(h, c);
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
    pthread_mutex_lock(&AG.lock);
    for (c = 0; c < NCLASS; c++)
        give_all(&t->fl[c], c);
    t->locked_cached = 0;
    if (t->prev)
        t->prev->next = t->next;
    else
        AG.threads = t->next;
    if (t->next)
        t->next->prev = t->prev;
    __atomic_add_fetch(&AG.retired_in_use, t->in_use, __ATOMIC_RELAXED);
    t->in_use = 0;
    t->mode = T_DEAD;
    pthread_mutex_unlock(&AG.lock);
}

/* See arena_internal.h. */
int secretjit__arena_enroll(struct tcache *t)
{
    if (t->mode != T_NEW)
        return t->mode;
    if (!tkey_ok || pthread_setspecific(tkey, t) != 0) {
        t->mode = T_DEAD;               /* no destructor: never cache */
        return T_DEAD;
    }
    pthread_mutex_lock(&AG.lock);
    t->owner = pthread_self();
    t->prev = NULL;
    t->next = AG.threads;
    if (AG.threads)
        AG.threads->prev = t;
    AG.threads = t;
    t->mode = T_LIVE;
    pthread_mutex_unlock(&AG.lock);
    return T_LIVE;
}

/* -- setup ------------------------------------------------------------------ */

void *secretjit__map_meta(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void secretjit__arena_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t want, pages, max_pages = (size_t)UINT32_MAX - 1;
    void *p = MAP_FAILED;

    AC.page = ps > 0 ? (size_t)ps : 4096;
    AC.pshift = (unsigned)__builtin_ctzl(AC.page);
    want = secretjit__env_size("SECRETJIT_ARENA_SIZE", DEFAULT_ARENA_SIZE,
                               MIN_ARENA_SIZE, MAX_ARENA_SIZE);
    pages = want / AC.page + (want % AC.page != 0);
    if (pages > max_pages)
        pages = max_pages;
    if (pages > (SIZE_MAX >> AC.pshift))
        pages = SIZE_MAX >> AC.pshift;
    if (pages < 2)
        pages = 2;                      /* one page and its guard */

    /* A smaller arena beats none when the address space is limited. */
    for (; pages >= 2; pages /= 2) {
        p = secretjit__map_secret(pages << AC.pshift, PROT_NONE, MAP_NORESERVE);
        if (p != MAP_FAILED)
            break;
    }
    if (p != MAP_FAILED) {
        AC.spans = secretjit__map_meta(pages * sizeof *AC.spans);
        AC.pagehead = secretjit__map_meta(pages * sizeof *AC.pagehead);
        if (AC.spans == NULL || AC.pagehead == NULL) {
            secretjit__unmap_secret(p, pages << AC.pshift);
            p = MAP_FAILED;
        }
    }
    if (p == MAP_FAILED) {
        fprintf(stderr, "secretjit: could not reserve the secret arena (%s); "
                "every secret heap allocation will fail\n", strerror(errno));
        AC.npages = 0;
    } else {
        if ((pages << AC.pshift) < want)
            fprintf(stderr, "secretjit: warning: SECRETJIT_ARENA_SIZE=%zu "
                    "could not be reserved; the secret arena has %zu bytes\n",
                    want, pages << AC.pshift);
        AC.npages = pages;
        __atomic_store_n(&AC.base, (char *)p, __ATOMIC_RELEASE);
    }
    tkey_ok = pthread_key_create(&tkey, thread_exit) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    __atomic_store_n(&AC.ready, 1, __ATOMIC_RELEASE);
}

/* Bumped when a forked child could not re-lock the carved range at once. */
unsigned secretjit__arena_lock_gen(void)
{
    return __atomic_load_n(&AC.lock_gen, __ATOMIC_RELAXED);
}
