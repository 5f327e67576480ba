/* The secret stacks' setup: the settings, mapping a thread's stack, its
 * release at thread exit, and fork (see secretstack.c's top comment).
 *
 * Fork: the child's stack is re-locked (mlock is not inherited), the stacks
 * of the parent's other threads (which do not exist in the child) are
 * unmapped, and locked_bytes counts what the child really has locked. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secretstack_internal.h"

#define DEFAULT_STACK ((size_t)256 << 10)
#define MIN_STACK ((size_t)4 << 10)
#define MAX_STACK ((size_t)1 << 30)
#ifndef AT_MINSIGSTKSZ
#define AT_MINSIGSTKSZ 51
#endif
#if defined(__x86_64__)
#define RED_ZONE 128
#else
#define RED_ZONE 0
#endif
/* Slack for the kernel's alignment of the frame (16 bytes, -8 on x86-64). */
#define WINDOW_MARGIN 64
/* Stack for the handler's own frames, in the reserve (CPython's C handler
 * and glibc's write() use a few hundred bytes). */
#define HANDLER_ALLOWANCE 4096
/* When neither the kernel (AT_MINSIGSTKSZ) nor libc knows the frame size. */
#define FALLBACK_SIGFRAME 16384
#define MAX_LOCK_BACKOFF 1024u

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int key_ok;

/* Every thread's mapped stack, for fork (setup and thread exit only). */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct secret_stack *registry;

static void unregister(struct secret_stack *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (registry == s)
        registry = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

static void unmap(struct secret_stack *s)
{
    /* Nothing is left to wipe (every call zeroes what it wrote), and
     * unmapped pages reach no one: the kernel zeroes them for reuse. */
    secretjit__unmap_secret(s->map, s->map_len);
    if (s->locked)
        secretjit__unlocked(s->hi - s->lo);
    s->map = s->lo = s->hi = NULL;
    s->locked = 0;
    secretjit__stack_gate_off(s);
}

/* Stacks of exited threads, kept for the next new thread (issue 15: a
 * fresh memfd_secret stack costs its mapping and tens of microseconds per
 * first-touched page).  Every call zeroed what its tree wrote, down to the
 * deepest write it found, so a stack is all zero between calls; release
 * zeroes the span the calls used, [hi - used, hi), once more before the
 * stack goes here (not under secretjit_test_deep_scrub(0), the tests'
 * control).  Under reg_lock. */
#define MAX_SPARE 8
static struct secret_stack spare[MAX_SPARE];
static int n_spare;

static void release(void *unused)
{
    struct secret_stack *s = &tls_stack;
    int keep;
    (void)unused;
    if (!s->map)
        return;
    if (!secretjit__deep_scrub_off())
        secretjit__wipe(s->hi - s->used, s->used);
    pthread_mutex_lock(&reg_lock);
    unregister(s);
    keep = n_spare < MAX_SPARE;
    if (keep) {
        spare[n_spare++] = *s;
        s->map = s->lo = s->hi = NULL;
        s->locked = 0;
        secretjit__stack_gate_off(s);
    }
    pthread_mutex_unlock(&reg_lock);
    if (!keep)
        unmap(s);
}

/* A spare stack for s (its fields; registry and exit key are the caller's),
 * or 0 when there is none.  Under reg_lock. */
static int take_spare(struct secret_stack *s)
{
    if (n_spare == 0)
        return 0;
    *s = spare[--n_spare];
    secretjit__stack_gate_off(s);      /* the exited thread's rseq area */
    return 1;
}

static void fork_prepare(void) { pthread_mutex_lock(&reg_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&reg_lock); }

static void fork_child(void)
{
    struct secret_stack *s, *next, *mine = &tls_stack;
    /* The other threads do not exist here: their stacks (zero, by
     * MADV_WIPEONFORK, and not locked: mlock is not inherited) go. */
    for (s = registry; s; s = next) {
        next = s->next;
        if (s != mine) {
            unregister(s);
            unmap(s);
        }
    }
    while (n_spare > 0)         /* no thread of the child will use them */
        unmap(&spare[--n_spare]);
    if (mine->map && mine->locked) {
        secretjit__unlocked(mine->hi - mine->lo);
        mine->locked = secretjit__lock_onfault(mine->lo, mine->hi - mine->lo) == 0;
        secretjit__stack_gate_off(mine);
    }
    pthread_mutex_init(&reg_lock, NULL);
}

static size_t signal_frame_size(void)
{
    size_t f = (size_t)getauxval(AT_MINSIGSTKSZ);
#ifdef _SC_MINSIGSTKSZ
    long c = sysconf(_SC_MINSIGSTKSZ);
    if (c > 0 && (size_t)c > f)
        f = (size_t)c;
#endif
    if (f == 0)
        f = FALLBACK_SIGFRAME;
    return f;
}

static void init(void)
{
    long p = sysconf(_SC_PAGESIZE);
    int err;
    SC.page_size = p > 0 ? (size_t)p : 4096;
    SC.stack_size = secretjit__env_size("SECRETJIT_STACK_SIZE", DEFAULT_STACK,
                                     MIN_STACK, MAX_STACK);
    SC.stack_size = (SC.stack_size + SC.page_size - 1) & ~(SC.page_size - 1);
    SC.sig_window = (RED_ZONE + signal_frame_size() + WINDOW_MARGIN + 63)
                 & ~(size_t)63;
    SC.sig_reserve = SC.sig_window + HANDLER_ALLOWANCE;
    secretjit__stack_rseq_init();
    err = pthread_key_create(&exit_key, release);
    key_ok = err == 0;
    if (!key_ok)
        fprintf(stderr, "secretjit: error: pthread_key_create failed (%s): "
                "the process has used up its PTHREAD_KEYS_MAX thread-specific "
                "keys, so a thread's secret stack could not be released when "
                "it exits.  Secret calls run on the calling thread's own "
                "stack instead, which is zeroed in place after each call "
                "(counted in memory_status()['stack_fallbacks']); that stack "
                "is not locked or left out of core dumps.  Fix: load "
                "secretjit before the code that creates so many keys.\n",
                strerror(err));
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* Map a new stack into s: guard page, lock; 0, or -1 when it cannot. */
static int map_stack(struct secret_stack *s)
{
    size_t len = SC.stack_size + SC.page_size;
    char *m = secretjit__map_secret(len, PROT_READ | PROT_WRITE,
                                    MAP_NORESERVE | MAP_STACK);
    if (m == MAP_FAILED)
        return -1;
    if (mprotect(m, SC.page_size, PROT_NONE) != 0) {       /* the guard page */
        secretjit__unmap_secret(m, len);
        return -1;
    }
    s->map = m;
    s->map_len = len;
    s->lo = m + SC.page_size;
    s->hi = m + len;
    s->room = SC.stack_size > SC.sig_reserve ? SC.stack_size - SC.sig_reserve : 0;
    s->used = 0;
    /* Locked on fault: a page is locked when a call first touches it, so a
     * thread's first call does not fault in (and zero) all 256 KiB, only
     * the pages its call tree uses (issue 15: the first call went from about
     * 23 to about 3.5 us).  Fresh anonymous pages are zero. */
    s->locked = secretjit__lock_onfault(s->lo, SC.stack_size) == 0;
    s->lock_skip = 0;
    s->lock_backoff = s->locked ? 0 : 1;
    /* A stack without mlock: touch every page now, so that it does not
     * fault in pages in the middle of a call. */
    if (!s->locked)
        secretjit__wipe(s->lo, SC.stack_size);
    return 0;
}

/* Put s in the registry of mapped stacks.  Under reg_lock. */
static void enlist(struct secret_stack *s)
{
    s->prev = NULL;
    s->next = registry;
    if (registry)
        registry->prev = s;
    registry = s;
}

/* The arena's (absent from a control AOT build: weak). */
extern void secretjit_arena_thread_enroll(void) __attribute__((weak));

int secretjit__stack_setup(struct secret_stack *s)
{
    int reused;
    secretjit__stack_once();
    if (secretjit_arena_thread_enroll)  /* off the kernel path (issue 15) */
        secretjit_arena_thread_enroll();
    if (!key_ok || pthread_setspecific(exit_key, s) != 0)
        return -1;
    pthread_mutex_lock(&reg_lock);
    reused = take_spare(s);     /* an exited thread's stack, wiped */
    if (reused)
        enlist(s);
    pthread_mutex_unlock(&reg_lock);
    if (!reused) {
        if (map_stack(s) != 0)
            return -1;
        pthread_mutex_lock(&reg_lock);
        enlist(s);
        pthread_mutex_unlock(&reg_lock);
    }
    __atomic_add_fetch(&SC.stacks_created, 1, __ATOMIC_RELAXED);
    return 0;
}

/* The stack could not be locked when it was set up: retry, less and less
 * often while it keeps failing (the warning named the budget). */
__attribute__((cold, noinline))
void secretjit__stack_retry_lock(struct secret_stack *s)
{
    if (s->lock_skip) {
        s->lock_skip--;
        return;
    }
    if (secretjit__lock_onfault(s->lo, (size_t)(s->hi - s->lo)) == 0) {
        s->locked = 1;
        s->lock_backoff = 0;
        return;
    }
    s->lock_skip = s->lock_backoff;
    s->lock_backoff = s->lock_backoff * 2 > MAX_LOCK_BACKOFF
                      ? MAX_LOCK_BACKOFF : s->lock_backoff * 2 + 1;
}

void secretjit__stack_once(void)
{
    pthread_once(&once, init);
}
