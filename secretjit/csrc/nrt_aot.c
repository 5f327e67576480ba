/* The pieces of numba's C runtime (NRT) that AOT-compiled kernels reference.
 *
 * In the JIT these come from numba's _nrt_python extension; an AOT library
 * has no numba at run time, so they are defined here and compiled with the
 * target's C compiler into every lib<stem>.so (hidden: only the exported
 * kernels are visible).  Every MemInfo of an AOT library is made by the
 * secret runtime (secretjit/arena_nrt.py) and records its wiping allocator, so
 * destroying one goes back through that allocator.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>

#include "secretmem.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* numba/core/runtime/nrt.cpp: the layouts numba's generated code assumes. */
typedef void (*NRT_dtor_function)(void *ptr, size_t size, void *info);
typedef struct {
    void *(*malloc)(size_t size, void *opaque);
    void *(*realloc)(void *ptr, size_t new_size, void *opaque);
    void (*free)(void *ptr, void *opaque);
    void *opaque;
} NRT_ExternalAllocator;
typedef struct {
    size_t refct;
    NRT_dtor_function dtor;
    void *dtor_info;
    void *data;
    size_t size;
    NRT_ExternalAllocator *external_allocator;
} NRT_MemInfo;

/* Called by NRT_decref when the last reference dies: run the destructor,
 * then free the MemInfo (and the data allocated with it) through the
 * allocator that made it. */
HIDDEN void NRT_MemInfo_call_dtor(NRT_MemInfo *mi)
{
    if (mi->dtor)
        mi->dtor(mi->data, mi->size, mi->dtor_info);
    NRT_ExternalAllocator *a = mi->external_allocator;
    if (a == NULL)
        abort();    /* not made by the secret runtime: cannot happen */
    a->free(mi, a->opaque);
}

/* secretjit.random_bytes: libc entry points under the names the kernels use
 * (the JIT registers them with llvmlite.binding.add_symbol). */
HIDDEN ssize_t secretjit_libc_getrandom(void *buf, size_t len,
                                        unsigned int flags)
{
    return getrandom(buf, len, flags);
}

HIDDEN int *secretjit_libc_errno_location(void)
{
    return &errno;
}

#if defined(__aarch64__)
#include <sys/auxv.h>
#ifndef HWCAP_SVE
#define HWCAP_SVE (1 << 22)
#endif

/* AArch64 libraries are compiled without SVE, so LLVM's register zeroing
 * clears v0-v31 (which also clears the upper bits of z0-z7 and z16-z31 on an
 * SVE CPU) but not the predicate registers or FFR, which libc's SVE routines
 * may use.  Each export calls this right after its boundary. */
HIDDEN int secretjit_aot_sve = 0;

__attribute__((constructor)) static void secretjit_aot_detect(void)
{
    secretjit_aot_sve = (getauxval(AT_HWCAP) & HWCAP_SVE) != 0;
}

__asm__(
    ".text\n"
    ".arch_extension sve\n"
    ".p2align 2\n"
    ".globl secretjit_aot_clear_vregs\n"
    ".hidden secretjit_aot_clear_vregs\n"
    ".type secretjit_aot_clear_vregs, %function\n"
    "secretjit_aot_clear_vregs:\n"
    "    adrp x9, secretjit_aot_sve\n"
    "    ldr w9, [x9, :lo12:secretjit_aot_sve]\n"
    "    cbz w9, 1f\n"
    "    pfalse p0.b\n"
    "    wrffr p0.b\n"
    "    pfalse p1.b\n    pfalse p2.b\n    pfalse p3.b\n    pfalse p4.b\n"
    "    pfalse p5.b\n    pfalse p6.b\n    pfalse p7.b\n    pfalse p8.b\n"
    "    pfalse p9.b\n    pfalse p10.b\n    pfalse p11.b\n    pfalse p12.b\n"
    "    pfalse p13.b\n    pfalse p14.b\n    pfalse p15.b\n"
    "1:  mov x9, xzr\n"
    "    ret\n"
    ".size secretjit_aot_clear_vregs, .-secretjit_aot_clear_vregs\n");

/* The boundary's stack scrub for libraries cross-compiled to AArch64 (the
 * build's LLVM cannot assemble inline asm there): zero [sp - depth, sp) of the
 * caller.  Frameless leaf, so sp is the caller's; depth (x0) is a multiple of
 * 16; a depth of 0 stores nothing.  Same instructions as SCRUB_ASM['aarch64']
 * in passes/boundary.py. */
__asm__(
    ".text\n"
    ".p2align 2\n"
    ".globl secretjit_aot_scrub\n"
    ".hidden secretjit_aot_scrub\n"
    ".type secretjit_aot_scrub, %function\n"
    "secretjit_aot_scrub:\n"
    "    mov x9, sp\n"
    "    sub x10, x9, x0\n"
    "    b 2f\n"
    "1:  stp xzr, xzr, [x10], #16\n"
    "2:  cmp x10, x9\n"
    "    b.lo 1b\n"
    "    ret\n"
    ".size secretjit_aot_scrub, .-secretjit_aot_scrub\n");
#endif

#if defined(__x86_64__)
/* LLVM's register zeroing (zero-call-used-regs) in each boundary clears the
 * vector registers of the ISA the library was built for: xmm0-15 with legacy
 * SSE for the baseline build (the upper ymm/zmm bits stay), ymm0-15 with VEX
 * for an AVX build (VEX writes zero the bits up to the widest register), and
 * zmm0-31 and k0-7 for an AVX-512 build (--cpu, secretjit/aot/cpu.py:
 * SECRETJIT_AOT_VLEVEL 0, 1, 2).  libc's memcpy/memset (AVX2/AVX-512
 * variants) may have left data in what the CPU has beyond that.  Each export
 * calls this right after its boundary: it zeroes what this CPU has and the
 * build's zeroing does not, decided once at load:
 *   bit 1: the upper bits of ymm/zmm0-15 (16 VEX vpxor: a quarter of the
 *          cost of vzeroall, measured in benchmarks/aot.py);
 *   bit 2: zmm16-31 and k0-k7.
 * (A CPU without AVX has only xmm0-15, which every boundary zeroes itself.) */
#ifndef SECRETJIT_AOT_VLEVEL
#define SECRETJIT_AOT_VLEVEL 0
#endif
HIDDEN int secretjit_aot_vneed = 0;

__attribute__((constructor)) static void secretjit_aot_detect(void)
{
    int cpu;
    __builtin_cpu_init();
    cpu = __builtin_cpu_supports("avx512f") ? 2
        : __builtin_cpu_supports("avx") ? 1 : 0;
    secretjit_aot_vneed = (cpu >= 1 && SECRETJIT_AOT_VLEVEL < 1 ? 1 : 0)
                        | (cpu >= 2 && SECRETJIT_AOT_VLEVEL < 2 ? 2 : 0);
}

__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl secretjit_aot_clear_vregs\n"
    ".hidden secretjit_aot_clear_vregs\n"
    ".type secretjit_aot_clear_vregs, @function\n"
    "secretjit_aot_clear_vregs:\n"
    "    movl secretjit_aot_vneed(%rip), %eax\n"
    "    testl $2, %eax\n"
    "    jz 1f\n"
    "    vpxord %xmm16, %xmm16, %xmm16\n    vpxord %xmm17, %xmm17, %xmm17\n"
    "    vpxord %xmm18, %xmm18, %xmm18\n    vpxord %xmm19, %xmm19, %xmm19\n"
    "    vpxord %xmm20, %xmm20, %xmm20\n    vpxord %xmm21, %xmm21, %xmm21\n"
    "    vpxord %xmm22, %xmm22, %xmm22\n    vpxord %xmm23, %xmm23, %xmm23\n"
    "    vpxord %xmm24, %xmm24, %xmm24\n    vpxord %xmm25, %xmm25, %xmm25\n"
    "    vpxord %xmm26, %xmm26, %xmm26\n    vpxord %xmm27, %xmm27, %xmm27\n"
    "    vpxord %xmm28, %xmm28, %xmm28\n    vpxord %xmm29, %xmm29, %xmm29\n"
    "    vpxord %xmm30, %xmm30, %xmm30\n    vpxord %xmm31, %xmm31, %xmm31\n"
    "    kxorw %k0, %k0, %k0\n    kxorw %k1, %k1, %k1\n"
    "    kxorw %k2, %k2, %k2\n    kxorw %k3, %k3, %k3\n"
    "    kxorw %k4, %k4, %k4\n    kxorw %k5, %k5, %k5\n"
    "    kxorw %k6, %k6, %k6\n    kxorw %k7, %k7, %k7\n"
    "1:  testl $1, %eax\n"
    "    jz 2f\n"
    SECRETJIT_VPXOR_XMM0_15
    "2:  xorl %eax, %eax\n"
    "    ret\n"
    ".size secretjit_aot_clear_vregs, .-secretjit_aot_clear_vregs\n");

/* The boundary's stack scrub for x86-64 libraries built on another
 * architecture (no x86 assembly parser in that LLVM): zero the depth (rdi)
 * bytes below the caller's stack pointer, except the slot of this call's own
 * return address, which holds no secret.  Used only by such cross builds. */
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".globl secretjit_aot_scrub\n"
    ".hidden secretjit_aot_scrub\n"
    ".type secretjit_aot_scrub, @function\n"
    "secretjit_aot_scrub:\n"
    "    movq %rdi, %rcx\n"
    "    shrq $3, %rcx\n"
    "    jz 1f\n"
    "    leaq 8(%rsp), %rax\n"
    "    subq %rdi, %rax\n"
    "    movq %rax, %rdi\n"
    "    decq %rcx\n"
    "    xorl %eax, %eax\n"
    "    rep stosq\n"
    "1:  ret\n"
    ".size secretjit_aot_scrub, .-secretjit_aot_scrub\n");
#endif

#if defined(SECRETJIT_AOT_CONTROL)
/* Tests only (secretjit.aot's _secret=False control builds): the secret
 * arena replaced by plain malloc/free without any wiping, so the heap probe
 * can show what the arena prevents.  Never part of a real library. */
#include <string.h>
#include "secretmem.h"

void *secretjit_arena_alloc(size_t size) { return malloc(size); }
void secretjit_arena_free(void *p) { free(p); }
void *secretjit_arena_realloc(void *p, size_t size) { return realloc(p, size); }
int secretjit_arena_owns(const void *p) { (void)p; return 0; }
void secretjit__arena_stats(struct secretjit_memstats *out) { (void)out; }
void *secretjit_slab_alloc(size_t size) { return malloc(size); }
void secretjit_slab_free(void *p) { free(p); }
void *secretjit_slab_realloc(void *p, size_t size) { return realloc(p, size); }
void secretjit__slab_stats(struct secretjit_memstats *out) { (void)out; }
#endif
