; Two C ABI wrappers after -O3 (AOT baseline build): each calls a kernel's
; boundary, then the export's clear of the vector registers the build's ISA
; cannot name.  drop_clears removes the clear where the boundary's tree is
; exact with known written registers.

declare i32 @"__secretjit.boundary.kernel"(ptr, ptr, i64)

declare i32 @"__secretjit.boundary.other"(ptr, ptr, i64)

declare void @secretjit_aot_clear_vregs()

define i32 @exact_export(i64 %x, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  store ptr null, ptr %exc, align 8
  %status = call i32 @"__secretjit.boundary.kernel"(ptr %retslot, ptr %exc, i64 %x)
  tail call void @secretjit_aot_clear_vregs()
  %ok = icmp eq i32 %status, 0
  br i1 %ok, label %done, label %raised

raised:
  ret i32 1

done:
  %r = load i64, ptr %retslot, align 8
  store i64 %r, ptr %ret, align 1
  ret i32 0
}

define i32 @other_export(i64 %x, ptr %ret) {
entry:
  %retslot = alloca [64 x i8], align 16
  %exc = alloca ptr, align 8
  store ptr null, ptr %exc, align 8
  %status = call i32 @"__secretjit.boundary.other"(ptr %retslot, ptr %exc, i64 %x)
  call void @secretjit_aot_clear_vregs()
  %ok = icmp eq i32 %status, 0
  br i1 %ok, label %done, label %raised

raised:
  ret i32 1

done:
  %r = load i64, ptr %retslot, align 8
  store i64 %r, ptr %ret, align 1
  ret i32 0
}
