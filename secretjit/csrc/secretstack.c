/* The secret stack: each thread that makes a secret call gets a stack of its
 * own, SECRETJIT_STACK_SIZE bytes, mlock'ed, left out of core dumps, zeroed in
 * forked children, with a PROT_NONE guard page below it.  secretjit_secret_call
 * switches to it, runs the kernel's call tree there and zeroes the bytes the
 * tree could have written before it switches back.  See secretmem.h. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "secretmem.h"

#define DEFAULT_STACK (256u << 10)

struct secret_stack {
    char *map;          /* guard page + stack */
    size_t map_len;
    char *lo, *hi;      /* usable [lo, hi); hi is 16-byte aligned */
    int active;         /* a secret call is running on this stack */
    int failed;         /* setup failed once: do not retry on every call */
    int locked;         /* the stack is mlock'ed */
};

/* initial-exec: no __tls_get_addr call on every secret call (the struct is
 * small enough for the static TLS surplus glibc keeps for dlopen). */
static __thread struct secret_stack tls_stack
    __attribute__((tls_model("initial-exec")));
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static size_t stack_size, page_size;
static uint64_t stacks_created, stack_fallbacks;

/* Switch to the stack whose top is `top`, call fn(arg), switch back. */
void secretjit__call_on(void (*fn)(void *), void *arg, void *top);
#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".type secretjit__call_on,@function\n"
    "secretjit__call_on:\n"
    ".cfi_startproc\n"
    "    pushq %rbp\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset %rbp, -16\n"
    "    movq %rsp, %rbp\n"
    ".cfi_def_cfa_register %rbp\n"
    "    movq %rdx, %rsp\n"
    "    movq %rdi, %rax\n"
    "    movq %rsi, %rdi\n"
    "    callq *%rax\n"
    "    movq %rbp, %rsp\n"
    "    popq %rbp\n"
    ".cfi_def_cfa %rsp, 8\n"
    "    retq\n"
    ".cfi_endproc\n"
    ".size secretjit__call_on, .-secretjit__call_on\n");
#elif defined(__aarch64__)
__asm__(
    ".text\n"
    ".p2align 2\n"
    ".type secretjit__call_on,%function\n"
    "secretjit__call_on:\n"
    ".cfi_startproc\n"
    "    stp x29, x30, [sp, #-16]!\n"
    ".cfi_def_cfa_offset 16\n"
    ".cfi_offset x29, -16\n"
    ".cfi_offset x30, -8\n"
    "    mov x29, sp\n"
    ".cfi_def_cfa_register x29\n"
    "    mov sp, x2\n"
    "    mov x9, x0\n"
    "    mov x0, x1\n"
    "    blr x9\n"
    "    mov sp, x29\n"
    "    ldp x29, x30, [sp], #16\n"
    ".cfi_def_cfa sp, 0\n"
    "    ret\n"
    ".cfi_endproc\n"
    ".size secretjit__call_on, .-secretjit__call_on\n");
#else
#error "secretjit's secret stack supports x86-64 and AArch64"
#endif

static void release(void *unused)
{
    struct secret_stack *s = &tls_stack;
    (void)unused;
    if (s->map) {
        /* Nothing is left to wipe (every call zeroes what it wrote), and
         * unmapped pages reach no one: the kernel zeroes them for reuse. */
        munmap(s->map, s->map_len);
        if (s->locked)
            secretjit__unlocked(s->hi - s->lo);
        s->map = s->lo = s->hi = NULL;
    }
}

static void init(void)
{
    long p = sysconf(_SC_PAGESIZE);
    page_size = p > 0 ? (size_t)p : 4096;
    stack_size = secretjit__env_size("SECRETJIT_STACK_SIZE", DEFAULT_STACK);
    stack_size = (stack_size + page_size - 1) & ~(page_size - 1);
    pthread_key_create(&exit_key, release);
}

static int setup(struct secret_stack *s)
{
    char *m;
    size_t len;
    pthread_once(&once, init);
    len = stack_size + page_size;
    m = mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED)
        return -1;
    if (mprotect(m, page_size, PROT_NONE) != 0) {       /* the guard page */
        munmap(m, len);
        return -1;
    }
    secretjit__exclude(m, len);
    s->map = m;
    s->map_len = len;
    s->lo = m + page_size;
    s->hi = m + len;
    s->locked = secretjit__lock(s->lo, stack_size) == 0;
    /* Touch every page now, so that a stack without mlock does not fault in
     * pages in the middle of a call, and the thread's exit releases it. */
    secretjit__wipe(s->lo, stack_size);
    pthread_setspecific(exit_key, s);
    __atomic_add_fetch(&stacks_created, 1, __ATOMIC_RELAXED);
    return 0;
}

int secretjit_secret_call(void (*fn)(void *), void *arg, size_t scrub)
{
    struct secret_stack *s = &tls_stack;
    if (s->active) {                    /* nested: already on the secret stack */
        fn(arg);
        return 0;
    }
    if (s->map == NULL && (s->failed || setup(s) != 0)) {
        s->failed = 1;
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    if (scrub > (size_t)(s->hi - s->lo)) {
        __atomic_add_fetch(&stack_fallbacks, 1, __ATOMIC_RELAXED);
        return -1;
    }
    s->active = 1;
    secretjit__call_on(fn, arg, s->hi);
    s->active = 0;
    secretjit__wipe(s->hi - scrub, scrub);
    return 0;
}

int secretjit_stack_range(uintptr_t *lo, uintptr_t *hi)
{
    struct secret_stack *s = &tls_stack;
    if (s->map == NULL)
        return 0;
    *lo = (uintptr_t)s->lo;
    *hi = (uintptr_t)s->hi;
    return 1;
}

void secretjit__stack_stats(struct secretjit_memstats *out)
{
    pthread_once(&once, init);
    out->stack_size = stack_size;
    out->stacks_created = __atomic_load_n(&stacks_created, __ATOMIC_RELAXED);
    out->stack_fallbacks = __atomic_load_n(&stack_fallbacks, __ATOMIC_RELAXED);
}
