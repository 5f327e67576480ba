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
  %status = call i32 @__secretjit.boundary.kernel(ptr nonnull %ret, ptr nonnull %exc, i64 41, { ptr, i64 } zeroinitializer) #2
  ret ptr null
}

; Function Attrs: noinline nounwind
define internal i32 @__secretjit.boundary.kernel(ptr %a0, ptr %a1, i64 %a2, { ptr, i64 } %a3) #1 {
entry:
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2, { ptr, i64 } %a3) #2
  call void asm sideeffect "mov x9, sp\0Asub x10, x9, $0\0Ab 2f\0A1:\0Astp xzr, xzr, [x10], #16\0A2:\0Acmp x10, x9\0Ab.lo 1b", "r,~{x9},~{x10},~{memory},~{nzcv}"(i64 ptrtoint (ptr @__secretjit.depth.kernel to i64))
  ret i32 %status
}

attributes #0 = { nounwind }
attributes #1 = { noinline nounwind "zero-call-used-regs"="all" }
attributes #2 = { noinline }
