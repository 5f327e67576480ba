/* Probes for AOT exports on AArch64 (AAPCS64); see probe_x86_64.S.
 * With SVE (probe_sve_vl != 0, set by the harness) reg_probe also fills
 * z0-z31 with the canary and p0-p15 with all-true before the call, and
 * spills them to probe_zsave / probe_psave after it.
 * uint64_t stack_probe(fn, a0, a1, a2, a3, a4, uint64_t *dump, uint64_t nwords)
 * uint64_t reg_probe(fn, a0, a1, a2, a3, a4, uint64_t *save, uint64_t canary)
 *   fills x5-x18 and v0-v31 with canary, calls fn, then spills x0-x18
 *   (save[0..18]) and q0-q31 (save[19 + 2*i]).
 */
    .arch_extension sve
    .text
    .globl stack_probe
    .type stack_probe, %function
stack_probe:
    stp x29, x30, [sp, #-48]!
    mov x29, sp
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    mov x19, x6
    mov x20, x7
    mov x21, x0
    mov x9, sp
    mov x10, x20
    ldr x11, =0x5050505050505050
1:  str x11, [x9, #-8]!
    subs x10, x10, #1
    b.ne 1b
    mov x0, x1
    mov x1, x2
    mov x2, x3
    mov x3, x4
    mov x4, x5
    blr x21
    mov x9, sp
    mov x10, x20
    mov x12, x19
2:  ldr x11, [x9, #-8]!
    str x11, [x12], #8
    subs x10, x10, #1
    b.ne 2b
    ldp x21, x22, [sp, #32]
    ldp x19, x20, [sp, #16]
    ldp x29, x30, [sp], #48
    ret
    .size stack_probe, .-stack_probe

    .globl reg_probe
    .type reg_probe, %function
reg_probe:
    stp x29, x30, [sp, #-48]!
    mov x29, sp
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    mov x19, x6
    mov x21, x0
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    dup v\i\().2d, x7
    .endr
    adrp x9, probe_sve_vl
    ldr w9, [x9, :lo12:probe_sve_vl]
    cbz w9, 7f
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    dup z\i\().d, x7
    .endr
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    ptrue p\i\().b
    .endr
7:
    mov x0, x1
    mov x1, x2
    mov x2, x3
    mov x3, x4
    mov x4, x5
    .irp i, 5,6,8,9,10,11,12,13,14,15,16,17,18
    mov x\i, x7
    .endr
    blr x21
    stp x0, x1, [x19]
    stp x2, x3, [x19, #16]
    stp x4, x5, [x19, #32]
    stp x6, x7, [x19, #48]
    stp x8, x9, [x19, #64]
    stp x10, x11, [x19, #80]
    stp x12, x13, [x19, #96]
    stp x14, x15, [x19, #112]
    stp x16, x17, [x19, #128]
    str x18, [x19, #144]
    add x9, x19, #152
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    str q\i, [x9], #16
    .endr
    adrp x10, probe_sve_vl
    ldr w10, [x10, :lo12:probe_sve_vl]
    cbz w10, 8f
    adrp x9, probe_zsave
    add x9, x9, :lo12:probe_zsave
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    str z\i, [x9, #\i, mul vl]
    .endr
    adrp x9, probe_psave
    add x9, x9, :lo12:probe_psave
    .irp i, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    str p\i, [x9, #\i, mul vl]
    .endr
8:
    ldp x21, x22, [sp, #32]
    ldp x19, x20, [sp, #16]
    ldp x29, x30, [sp], #48
    ret
    .size reg_probe, .-reg_probe
    .section .note.GNU-stack,"",@progbits
