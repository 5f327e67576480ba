define i32 @_ZN8__main__6kernelB2v1B38c8tJTIcFKzyF2ILShI4CrgQElQb6HczSBAA_3dEx(ptr noalias writeonly captures(none) %retptr, ptr noalias %excinfo, i64 %arg.x) local_unnamed_addr #0 {
entry:
  %y = add i64 %arg.x, 1
  store i64 %y, ptr %retptr, align 8
  ret i32 0
}

define ptr @_ZN7cpython8__main__6kernelB2v1B38c8tJTIcFKzyF2ILShI4CrgQElQb6HczSBAA_3dEx(ptr %closure, ptr %args, ptr %kws) {
entry:
  %ret = alloca i64, align 8
  %exc = alloca ptr, align 8
  %status = call i32 @_ZN8__main__6kernelB2v1B38c8tJTIcFKzyF2ILShI4CrgQElQb6HczSBAA_3dEx(ptr nonnull %ret, ptr nonnull %exc, i64 41) #1
  ret ptr null
}

attributes #0 = { nounwind }
attributes #1 = { noinline }
