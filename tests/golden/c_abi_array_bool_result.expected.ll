; ModuleID = '<string>'
source_filename = "<string>"
target triple = "unknown-unknown-unknown"

declare i32 @_ZN8__main__7toy_mixB2v1E5ArrayIhLi1E1C7mutable7alignedE(ptr, ptr, ptr, ptr, i64, i64, ptr, i64, i64, i1)

define i32 @toy_mix(ptr %key, i64 %key_len, i8 %flag, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  %key.neg = icmp slt i64 %key_len, 0
  %.6 = icmp eq ptr %key, null
  %.7 = icmp sgt i64 %key_len, 0
  %key.null = and i1 %.6, %.7
  %flag.bool = icmp ne i8 %flag, 0
  %ret.null = icmp eq ptr %ret, null
  %.8 = or i1 false, %key.neg
  %.9 = or i1 %.8, %key.null
  %.10 = or i1 %.9, %ret.null
  br i1 %.10, label %einval, label %call, !prof !0

einval:                                           ; preds = %entry
  ret i32 2

call:                                             ; preds = %entry
  store ptr null, ptr %exc, align 8
  %status = call i32 @_ZN8__main__7toy_mixB2v1E5ArrayIhLi1E1C7mutable7alignedE(ptr %retslot, ptr %exc, ptr null, ptr null, i64 %key_len, i64 1, ptr %key, i64 %key_len, i64 1, i1 %flag.bool)
  call void @secretjit_aot_clear_vregs()
  %.15 = add i32 %status, 2
  %.16 = and i32 %.15, -3
  %ok = icmp eq i32 %.16, 0
  br i1 %ok, label %done, label %raised, !prof !1

raised:                                           ; preds = %call
  ret i32 1

done:                                             ; preds = %call
  %r = load i64, ptr %retslot, align 8
  store i64 %r, ptr %ret, align 1
  ret i32 0
}

declare void @secretjit_aot_clear_vregs()

!0 = !{!"branch_weights", i32 1, i32 2000}
!1 = !{!"branch_weights", i32 2000, i32 1}
