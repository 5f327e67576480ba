; ModuleID = '<string>'
source_filename = "<string>"

define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %arg.x) {
entry:
  ret i32 0
}

define ptr @cpython.kernel(ptr %closure, ptr %args, ptr %kws) {
entry:
  ret ptr null
}
