/* Probes for AOT exports on x86-64 (SysV).  Both take the export's address and
 * up to five integer arguments.
 *
 * uint64_t stack_probe(fn, a0, a1, a2, a3, a4, uint64_t *dump, uint64_t nwords)
 *   fills the nwords words below its stack pointer with POISON, calls
 *   fn(a0..a4) from that stack pointer, copies the same words to dump.
 * uint64_t reg_probe(fn, a0, a1, a2, a3, a4, uint64_t *save, uint64_t canary,
 *                    int level)
 *   fills r9-r11 and every vector register (level 0: xmm0-15, 1: ymm0-15,
 *   2: zmm0-31 and k0-7) with canary, calls fn, then spills rax, rcx, rdx,
 *   rsi, rdi, r8-r11 (save[0..8]), the vector registers (save[9 + 8*i],
 *   64 bytes each) and k0-k7 (save[265 + i]) before anything else runs.
 */
    .text
    .globl stack_probe
    .type stack_probe, @function
stack_probe:
    pushq %rbx
    pushq %r12
    pushq %r13
    movq 32(%rsp), %rbx          /* dump */
    movq 40(%rsp), %r12          /* nwords */
    movq %rdi, %r13
    movabsq $0x5050505050505050, %rax
    movq %rsp, %r10
    movq %r12, %r11
1:  subq $8, %r10
    movq %rax, (%r10)
    decq %r11
    jnz 1b
    movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %rcx
    movq %r9, %r8
    call *%r13
    movq %rsp, %r10
    movq %r12, %r11
    movq %rbx, %rcx
2:  subq $8, %r10
    movq (%r10), %rdx
    movq %rdx, (%rcx)
    addq $8, %rcx
    decq %r11
    jnz 2b
    popq %r13
    popq %r12
    popq %rbx
    ret
    .size stack_probe, .-stack_probe

    .globl reg_probe
    .type reg_probe, @function
reg_probe:
    pushq %rbx
    pushq %r12
    pushq %r13
    movq 32(%rsp), %rbx          /* save */
    movq 40(%rsp), %r12          /* canary */
    movl 48(%rsp), %eax          /* level */
    movq %rdi, %r13
    movq %r12, %xmm0
    punpcklqdq %xmm0, %xmm0
    movdqa %xmm0, %xmm1
    movdqa %xmm0, %xmm2
    movdqa %xmm0, %xmm3
    movdqa %xmm0, %xmm4
    movdqa %xmm0, %xmm5
    movdqa %xmm0, %xmm6
    movdqa %xmm0, %xmm7
    movdqa %xmm0, %xmm8
    movdqa %xmm0, %xmm9
    movdqa %xmm0, %xmm10
    movdqa %xmm0, %xmm11
    movdqa %xmm0, %xmm12
    movdqa %xmm0, %xmm13
    movdqa %xmm0, %xmm14
    movdqa %xmm0, %xmm15
    cmpl $1, %eax
    jb 3f
    vinsertf128 $1, %xmm0, %ymm0, %ymm0
    .irp i, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    vmovdqa %ymm0, %ymm\i
    .endr
    cmpl $2, %eax
    jb 3f
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    vpbroadcastq %r12, %zmm\i
    .endr
    .irp i, 0,1,2,3,4,5,6,7
    kmovw %r12d, %k\i
    .endr
3:  movq %rsi, %rdi
    movq %rdx, %rsi
    movq %rcx, %rdx
    movq %r8, %rcx
    movq %r9, %r8
    movq %r12, %r9
    movq %r12, %r10
    movq %r12, %r11
    pushq %rax                   /* level; keeps the stack aligned to 16 */
    subq $8, %rsp
    call *%r13
    movq %rax, 0(%rbx)
    movq %rcx, 8(%rbx)
    movq %rdx, 16(%rbx)
    movq %rsi, 24(%rbx)
    movq %rdi, 32(%rbx)
    movq %r8, 40(%rbx)
    movq %r9, 48(%rbx)
    movq %r10, 56(%rbx)
    movq %r11, 64(%rbx)
    addq $8, %rsp
    popq %rax                    /* level */
    cmpl $2, %eax
    jb 4f
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    vmovdqu64 %zmm\i, 72+64*\i(%rbx)
    .endr
    .irp i, 0,1,2,3,4,5,6,7
    kmovw %k\i, %ecx
    movq %rcx, 72+64*32+8*\i(%rbx)
    .endr
    jmp 6f
4:  cmpl $1, %eax
    jb 5f
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    vmovdqu %ymm\i, 72+64*\i(%rbx)
    .endr
    jmp 6f
5:
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    movdqu %xmm\i, 72+64*\i(%rbx)
    .endr
6:  movq 0(%rbx), %rax
    popq %r13
    popq %r12
    popq %rbx
    ret
    .size reg_probe, .-reg_probe
    .section .note.GNU-stack,"",@progbits
