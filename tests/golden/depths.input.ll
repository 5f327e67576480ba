@__secretjit.depth.kernel = external global i8

define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %x) {
entry:
  ret i32 0
}

define internal i32 @__secretjit.boundary.kernel(ptr %a0, ptr %a1, i64 %a2) noinline nounwind {
entry:
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2) noinline
  call void asm sideeffect "movq %rsp, %rdi", "r,~{rdi}"(i64 ptrtoint (ptr @__secretjit.depth.kernel to i64))
  ret i32 %status
}
