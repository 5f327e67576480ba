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
entry:
  %ret = alloca i64, align 8
  %exc = alloca ptr, align 8
  %status = call i32 @kernel(ptr nonnull %ret, ptr nonnull %exc, i64 41, { ptr, i64 } zeroinitializer) #1
  ret ptr null
}

attributes #0 = { nounwind }
attributes #1 = { noinline }
