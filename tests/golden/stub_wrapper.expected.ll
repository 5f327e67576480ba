; ModuleID = '<string>'
source_filename = "<string>"

; Function Attrs: nounwind
define i32 @kernel(ptr noalias writeonly captures(none) %retptr, ptr noalias %excinfo, i64 %arg.x, { ptr, i64 } %arg.t) local_unnamed_addr #0 {
entry:
  %y = add i64 %arg.x, 1
  store i64 %y, ptr %retptr, align 8
  ret i32 0
}

define ptr @cpython.kernel(ptr %closure, ptr %args, ptr %kws) {
  unreachable
}

attributes #0 = { nounwind }
