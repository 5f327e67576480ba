declare i8 @llvm.x86.atomic.sub.cc.i64(ptr, i64, i32 immarg)

define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %mi) {
entry:
  %0 = tail call i8 @llvm.x86.atomic.sub.cc.i64(ptr %mi, i64 1, i32 7)
  ret i32 0
}
