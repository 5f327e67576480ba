declare i32 @external_helper(i64)

define linkonce_odr void @NRT_decref(ptr %p) local_unnamed_addr #0 {
entry:
  ret void
}

define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %x) #0 {
entry:
  call void @NRT_decref(ptr null)
  ret i32 0
}

define internal i32 @"__secretjit.boundary.kernel"(ptr %a0, ptr %a1, i64 %a2) noinline nounwind {
entry:
  %status = call i32 @kernel(ptr %a0, ptr %a1, i64 %a2) noinline
  ret i32 %status
}

define i32 @already(i64 %x) "zero-call-used-regs"="used-gpr" {
entry:
  ret i32 0
}

define ptr @cpython.kernel(ptr %closure, ptr %args, ptr %kws) {
entry:
  ret ptr null
}

attributes #0 = { nounwind }
