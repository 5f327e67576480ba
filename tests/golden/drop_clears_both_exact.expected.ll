; ModuleID = '<string>'
source_filename = "<string>"

declare i32 @__secretjit.boundary.kernel(ptr, ptr, i64)

declare i32 @__secretjit.boundary.other(ptr, ptr, i64)

declare void @secretjit_aot_clear_vregs()

define i32 @exact_export(i64 %x, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  store ptr null, ptr %exc, align 8
  %status = call i32 @__secretjit.boundary.kernel(ptr %retslot, ptr %exc, i64 %x)
  %ok = icmp eq i32 %status, 0
  br i1 %ok, label %done, label %raised

raised:                                           ; preds = %entry
  ret i32 1

done:                                             ; preds = %entry
  %r = load i64, ptr %retslot, align 8
  store i64 %r, ptr %ret, align 1
  ret i32 0
}

define i32 @other_export(i64 %x, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  store ptr null, ptr %exc, align 8
  %status = call i32 @__secretjit.boundary.other(ptr %retslot, ptr %exc, i64 %x)
  %ok = icmp eq i32 %status, 0
  br i1 %ok, label %done, label %raised

raised:                                           ; preds = %entry
  ret i32 1

done:                                             ; preds = %entry
  %r = load i64, ptr %retslot, align 8
  store i64 %r, ptr %ret, align 1
  ret i32 0
}
