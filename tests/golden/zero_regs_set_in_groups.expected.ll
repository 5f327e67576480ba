; ModuleID = '<string>'
source_filename = "<string>"

; Function Attrs: nounwind
define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %x) #0 {
entry:
  %y = call i64 @helper(i64 %x) #3
  ret i32 0
}

define internal i64 @helper(i64 %x) #1 {
entry:
  ret i64 %x
}

; Function Attrs: noinline nounwind
define internal i32 @__secretjit.boundary.kernel(ptr %a0, ptr %a1, i64 %a2) #2 {
entry:
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2) #4
  ret i32 %status
}

attributes #0 = { nounwind "target-cpu"="skylake-avx512" "target-features"="+avx" "zero-call-used-regs"="used" }
attributes #1 = { "target-cpu"="skylake-avx512" "zero-call-used-regs"="used" }
attributes #2 = { noinline nounwind "zero-call-used-regs"="all" }
attributes #3 = { nounwind }
attributes #4 = { noinline }
