; ModuleID = '<string>'
source_filename = "<string>"

define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %x) {
entry:
  ret i32 0
}

; Function Attrs: noinline nounwind
define internal i32 @__secretjit.boundary.kernel(ptr %a0, ptr %a1, i64 %a2) #0 {
entry:
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2) #1
  call void asm sideeffect "movq %rsp, %rdi", "r,~{rdi}"(i64 4160)
  ret i32 %status
}

attributes #0 = { noinline nounwind }
attributes #1 = { noinline }
