/* Internal to the secret stacks (secretstack.c, secretstack_setup.c): a
 * thread's stack, the settings, and the setup the call path uses.  The design
 * is described at the top of secretstack.c. */
#ifndef SECRETJIT_SECRETSTACK_INTERNAL_H
#define SECRETJIT_SECRETSTACK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "secretmem.h"
/* secretjit__inexact: set by the heap's marked C library calls (marked.h). */
#include "marked.h"

struct secret_stack {
    char *map;          /* guard page + stack */
    size_t map_len;
    char *lo, *hi;      /* usable [lo, hi); hi is 16-byte aligned */
    size_t room;        /* largest scrub depth a call may have */
    size_t used;        /* deepest span [hi - used, hi) a call zeroed, at
                         * least fast_room once the gate opened */
    /* The x86-64 exact entry's gate (secretstack.c): the largest depth its
     * fast path takes on this thread (min(room, INLINE_SCRUB)), 0 until a
     * call through the C path found the stack mapped and locked and the
     * thread's rseq area registered, and again 0 whenever the stack is
     * unmapped, handed on or re-locked (secretjit__stack_gate_off). */
    size_t fast_room;
    char *rseq;         /* this thread's rseq area, when fast_room != 0 */
    int active;         /* a secret call is running on this stack */
    int failed;         /* setup failed once: do not retry on every call */
    int locked;         /* the stack is mlock'ed (and counted) */
    unsigned lock_skip, lock_backoff;   /* retrying a failed mlock */
    struct secret_stack *prev, *next;   /* registry, under reg_lock */
};

/* The settings (secretstack_setup.c's init writes them once) and the count
 * of stacks set up. */
struct stack_cfg {
    size_t stack_size, page_size, sig_window, sig_reserve;
    uint64_t stacks_created;
};

#define SC secretjit__stack_cfg
#define tls_stack secretjit__stack_tls

/* The exact entry's fast path may not take s until the C path opens it
 * again: after anything that changes map, locked or the thread owning s. */
static inline void secretjit__stack_gate_off(struct secret_stack *s)
{
    s->fast_room = 0;
    s->rseq = NULL;
}

#pragma GCC visibility push(hidden)
/* secretstack.c */
extern struct stack_cfg SC;
/* This thread's stack.  initial-exec: no __tls_get_addr call on every secret
 * call (the struct is small enough for the static TLS surplus glibc keeps
 * for dlopen). */
extern __thread struct secret_stack tls_stack
    __attribute__((tls_model("initial-exec")));
void secretjit__stack_rseq_init(void);
/* secretjit_test_deep_scrub(0) is in effect (tests only). */
int secretjit__deep_scrub_off(void);

/* secretstack_setup.c */
void secretjit__stack_once(void);       /* read the settings, once */
/* Map this thread's stack into s (its guard page, lock, registry, exit
 * destructor); 0, or -1 when it cannot be set up. */
int secretjit__stack_setup(struct secret_stack *s);
/* The stack could not be locked when it was set up: retry, less and less
 * often while it keeps failing (the warning named the budget). */
void secretjit__stack_retry_lock(struct secret_stack *s);
#pragma GCC visibility pop

#endif
