; ModuleID = '<string>'
source_filename = "<string>"

@counter = common global i64 0
@table = linkonce_odr constant [2 x i64] [i64 1, i64 2]
@kept = private constant i64 3
@imported = external global i64

define internal i64 @helper_linkonce_odr(i64 %x) {
entry:
  ret i64 %x
}

define weak_odr i64 @helper_weak_odr(i64 %x) {
entry:
  ret i64 %x
}

define linkonce i64 @helper_linkonce(i64 %x) {
entry:
  ret i64 %x
}

define available_externally i64 @helper_available_externally(i64 %x) {
entry:
  ret i64 %x
}

define private i64 @helper_private(i64 %x) {
entry:
  ret i64 %x
}

define i32 @kernel(ptr %retptr, ptr %excinfo, i64 %x) {
entry:
  %a = call i64 @helper_linkonce_odr(i64 %x)
  %b = call i64 @helper_weak_odr(i64 %a)
  %c = call i64 @helper_linkonce(i64 %b)
  %d = call i64 @helper_available_externally(i64 %c)
  %e = call i64 @helper_private(i64 %d)
  store i64 %e, ptr %retptr, align 8
  ret i32 0
}

define i32 @toy_mix(ptr %p, i64 %n) {
entry:
  ret i32 0
}

declare i64 @external_fn(i64)
