; ModuleID = '<string>'
source_filename = "<string>"

@__secretjit.depth.kernel = external global i8

; Function Attrs: nounwind
define i32 @kernel(ptr noalias writeonly captures(none) %retptr, ptr noalias %excinfo, i64 %arg.x, { ptr, i64 } %arg.t) local_unnamed_addr #0 {
entry:
  %y = add i64 %arg.x, 1
  store i64 %y, ptr %retptr, align 8
  ret i32 0
}

define ptr @cpython.kernel(ptr %closure, ptr %args, ptr %kws) {
entry:
  %ret = alloca i64, align 8
  %exc = alloca ptr, align 8
  %status = call i32 @__secretjit.boundary.kernel(ptr nonnull %ret, ptr nonnull %exc, i64 41, { ptr, i64 } zeroinitializer) #3
  ret ptr null
}

; Function Attrs: noinline nounwind
define internal void @__secretjit.thunk.kernel(ptr %frame) #1 {
entry:
  %p0 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 0
  %a0 = load ptr, ptr %p0, align 8
  %p1 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 1
  %a1 = load ptr, ptr %p1, align 8
  %p2 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 2
  %a2 = load i64, ptr %p2, align 4
  %p3 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 3
  %a3 = load { ptr, i64 }, ptr %p3, align 8
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2, { ptr, i64 } %a3) #3
  %ps = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 4
  store i32 %status, ptr %ps, align 4
  ret void
}

; Function Attrs: noinline nounwind
define internal i32 @__secretjit.boundary.kernel(ptr %a0, ptr %a1, i64 %a2, { ptr, i64 } %a3) #2 {
entry:
  %frame = alloca { ptr, ptr, i64, { ptr, i64 }, i32 }, align 16
  %p0 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 0
  store ptr %a0, ptr %p0, align 8
  %p1 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 1
  store ptr %a1, ptr %p1, align 8
  %p2 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 2
  store i64 %a2, ptr %p2, align 4
  %p3 = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 3
  store { ptr, i64 } %a3, ptr %p3, align 8
  %ran = call i32 @secretjit_secret_call(ptr @__secretjit.thunk.kernel, ptr %frame, i64 ptrtoint (ptr @__secretjit.depth.kernel to i64))
  %onstack = icmp eq i32 %ran, 0
  br i1 %onstack, label %done, label %fallback, !prof !0

done:                                             ; preds = %entry
  %ps = getelementptr inbounds { ptr, ptr, i64, { ptr, i64 }, i32 }, ptr %frame, i32 0, i32 4
  %status = load i32, ptr %ps, align 4
  br label %exit

fallback:                                         ; preds = %entry
  %r0 = load ptr, ptr %p0, align 8
  %r1 = load ptr, ptr %p1, align 8
  %r2 = load i64, ptr %p2, align 4
  %r3 = load { ptr, i64 }, ptr %p3, align 8
  %status2 = call i32 @kernel(ptr %r0, ptr %r1, i64 %r2, { ptr, i64 } %r3) #3
  call void asm sideeffect "movq %rsp, %rdi\0Asubq $0, %rdi\0Amovq $0, %rcx\0Ashrq $$3, %rcx\0Axorl %eax, %eax\0Arep stosq", "r,~{rdi},~{rcx},~{rax},~{memory},~{dirflag},~{fpsr},~{flags}"(i64 ptrtoint (ptr @__secretjit.depth.kernel to i64))
  br label %exit

exit:                                             ; preds = %fallback, %done
  %st = phi i32 [ %status, %done ], [ %status2, %fallback ]
  %stz = call i32 asm sideeffect "fldz\0Afldz\0Afldz\0Afldz\0Afldz\0Afldz\0Afldz\0Afldz\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Afstp %st(0)\0Avxorps %xmm0, %xmm0, %xmm0\0Avxorps %xmm1, %xmm1, %xmm1\0Avxorps %xmm2, %xmm2, %xmm2\0Avxorps %xmm3, %xmm3, %xmm3\0Avxorps %xmm4, %xmm4, %xmm4\0Avxorps %xmm5, %xmm5, %xmm5\0Avxorps %xmm6, %xmm6, %xmm6\0Avxorps %xmm7, %xmm7, %xmm7\0Avxorps %xmm8, %xmm8, %xmm8\0Avxorps %xmm9, %xmm9, %xmm9\0Avxorps %xmm10, %xmm10, %xmm10\0Avxorps %xmm11, %xmm11, %xmm11\0Avxorps %xmm12, %xmm12, %xmm12\0Avxorps %xmm13, %xmm13, %xmm13\0Avxorps %xmm14, %xmm14, %xmm14\0Avxorps %xmm15, %xmm15, %xmm15\0Avpxord %zmm16, %zmm16, %zmm16\0Avpxord %zmm17, %zmm17, %zmm17\0Avpxord %zmm18, %zmm18, %zmm18\0Avpxord %zmm19, %zmm19, %zmm19\0Avpxord %zmm20, %zmm20, %zmm20\0Avpxord %zmm21, %zmm21, %zmm21\0Avpxord %zmm22, %zmm22, %zmm22\0Avpxord %zmm23, %zmm23, %zmm23\0Avpxord %zmm24, %zmm24, %zmm24\0Avpxord %zmm25, %zmm25, %zmm25\0Avpxord %zmm26, %zmm26, %zmm26\0Avpxord %zmm27, %zmm27, %zmm27\0Avpxord %zmm28, %zmm28, %zmm28\0Avpxord %zmm29, %zmm29, %zmm29\0Avpxord %zmm30, %zmm30, %zmm30\0Avpxord %zmm31, %zmm31, %zmm31\0Akxorw %k0, %k0, %k0\0Akxorw %k0, %k0, %k1\0Akxorw %k0, %k0, %k2\0Akxorw %k0, %k0, %k3\0Akxorw %k0, %k0, %k4\0Akxorw %k0, %k0, %k5\0Akxorw %k0, %k0, %k6\0Akxorw %k0, %k0, %k7", "={ax},0,~{xmm0},~{xmm1},~{xmm2},~{xmm3},~{xmm4},~{xmm5},~{xmm6},~{xmm7},~{xmm8},~{xmm9},~{xmm10},~{xmm11},~{xmm12},~{xmm13},~{xmm14},~{xmm15},~{xmm16},~{xmm17},~{xmm18},~{xmm19},~{xmm20},~{xmm21},~{xmm22},~{xmm23},~{xmm24},~{xmm25},~{xmm26},~{xmm27},~{xmm28},~{xmm29},~{xmm30},~{xmm31},~{k0},~{k1},~{k2},~{k3},~{k4},~{k5},~{k6},~{k7},~{st},~{st(1)},~{st(2)},~{st(3)},~{st(4)},~{st(5)},~{st(6)},~{st(7)},~{fpsr},~{flags},~{dirflag}"(i32 %st)
  ret i32 %stz
}

declare i32 @secretjit_secret_call(ptr, ptr, i64)

attributes #0 = { nounwind }
attributes #1 = { noinline nounwind }
attributes #2 = { noinline nounwind "zero-call-used-regs"="all-gpr" }
attributes #3 = { noinline }

!0 = !{!"branch_weights", i32 2000, i32 1}
