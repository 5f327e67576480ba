; ModuleID = '<string>'
source_filename = "<string>"
target triple = "unknown-unknown-unknown"

declare i32 @kernel(ptr, ptr, double, i32)

define i32 @f_double(double %x, i32 %n, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  %ret.null = icmp eq ptr %ret, null
  %.5 = or i1 false, %ret.null
  br i1 %.5, label %einval, label %call, !prof !0

einval:                                           ; preds = %entry
  ret i32 2

call:                                             ; preds = %entry
  store ptr null, ptr %exc, align 8
  %status = call i32 @kernel(ptr %retslot, ptr %exc, double %x, i32 %n)
  %.9 = add i32 %status, 2
  %.10 = and i32 %.9, -3
  %ok = icmp eq i32 %.10, 0
  br i1 %ok, label %done, label %raised, !prof !1

raised:                                           ; preds = %call
  ret i32 1

done:                                             ; preds = %call
  %r = load i1, ptr %retslot, align 8
  %.13 = zext i1 %r to i8
  store i8 %.13, ptr %ret, align 1
  ret i32 0
}

define i32 @f_void(double %x, i32 %n) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  br i1 false, label %einval, label %call, !prof !0

einval:                                           ; preds = %entry
  ret i32 2

call:                                             ; preds = %entry
  store ptr null, ptr %exc, align 8
  %status = call i32 @kernel(ptr %retslot, ptr %exc, double %x, i32 %n)
  %.7 = add i32 %status, 2
  %.8 = and i32 %.7, -3
  %ok = icmp eq i32 %.8, 0
  br i1 %ok, label %done, label %raised, !prof !1

raised:                                           ; preds = %call
  ret i32 1

done:                                             ; preds = %call
  ret i32 0
}

declare i32 @kernel2(ptr, ptr, ptr, ptr, i64, i64, ptr, i64, i64)

define i32 @f_int_as_bool(ptr %words, i64 %words_len, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  %words.neg = icmp slt i64 %words_len, 0
  %.5 = icmp eq ptr %words, null
  %.6 = icmp sgt i64 %words_len, 0
  %words.null = and i1 %.5, %.6
  %ret.null = icmp eq ptr %ret, null
  %.7 = or i1 false, %words.neg
  %.8 = or i1 %.7, %words.null
  %.9 = or i1 %.8, %ret.null
  br i1 %.9, label %einval, label %call, !prof !0

einval:                                           ; preds = %entry
  ret i32 2

call:                                             ; preds = %entry
  store ptr null, ptr %exc, align 8
  %status = call i32 @kernel2(ptr %retslot, ptr %exc, ptr null, ptr null, i64 %words_len, i64 8, ptr %words, i64 %words_len, i64 8)
  %.13 = add i32 %status, 2
  %.14 = and i32 %.13, -3
  %ok = icmp eq i32 %.14, 0
  br i1 %ok, label %done, label %raised, !prof !1

raised:                                           ; preds = %call
  ret i32 1

done:                                             ; preds = %call
  %r = load i64, ptr %retslot, align 8
  %.17 = icmp ne i64 %r, 0
  %.18 = zext i1 %.17 to i8
  store i8 %.18, ptr %ret, align 1
  ret i32 0
}

!0 = !{!"branch_weights", i32 1, i32 2000}
!1 = !{!"branch_weights", i32 2000, i32 1}
