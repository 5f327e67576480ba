define i32 @kernel(ptr noalias %retptr, ptr noalias %excinfo, i64 %arg.x) #0 {
entry:
  store i64 %arg.x, ptr %retptr, align 8
  ret i32 0
}

define ptr @cpython.kernel(ptr %closure, ptr %args, ptr %kws) {
entry:
  %ret = alloca i64, align 8
  %exc = alloca ptr, align 8
  %status = call i32 @kernel(ptr nonnull %ret, ptr nonnull %exc, i64 41)
  ret ptr null
}

define i64 @cfunc.kernel(i64 %x) {
entry:
  %ret = alloca i64, align 8
  %exc = alloca ptr, align 8
  %status = call i32 @kernel(ptr nonnull %ret, ptr nonnull %exc, i64 %x)
  %r = load i64, ptr %ret, align 8
  ret i64 %r
}

attributes #0 = { nounwind }
