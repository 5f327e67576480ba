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
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2, { ptr, i64 } %a3)
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
  ret i32 %status

fallback:                                         ; preds = %entry
  %r0 = load ptr, ptr %p0, align 8
  %r1 = load ptr, ptr %p1, align 8
  %r2 = load i64, ptr %p2, align 4
  %r3 = load { ptr, i64 }, ptr %p3, align 8
  %status2 = call i32 @kernel(ptr %r0, ptr %r1, i64 %r2, { ptr, i64 } %r3) #3
  call void asm sideeffect "movq %rsp, %rdi\0Asubq $0, %rdi\0Amovq $0, %rcx\0Ashrq $$3, %rcx\0Axorl %eax, %eax\0Arep stosq", "r,~{rdi},~{rcx},~{rax},~{memory},~{dirflag},~{fpsr},~{flags}"(i64 ptrtoint (ptr @__secretjit.depth.kernel to i64))
  ret i32 %status2
}

declare i32 @secretjit_secret_call(ptr, ptr, i64)

attributes #0 = { nounwind }
attributes #1 = { noinline nounwind }
attributes #2 = { noinline nounwind "zero-call-used-regs"="all" }
attributes #3 = { noinline }

!0 = !{!"branch_weights", i32 2000, i32 1}
