; ModuleID = '<string>'
source_filename = "<string>"

declare void @NRT_MemInfo_call_dtor(ptr)

; Function Attrs: mustprogress nofree norecurse nounwind willreturn
define linkonce_odr void @NRT_incref(ptr %.1) local_unnamed_addr #0 {
.3:
  %.4 = icmp eq ptr %.1, null
  br i1 %.4, label %.6, label %.5

.5:                                               ; preds = %.3
  %.2 = atomicrmw add ptr %.1, i64 1 monotonic, align 8
  br label %.6

.6:                                               ; preds = %.5, %.3
  ret void
}

; Function Attrs: mustprogress nofree norecurse nounwind willreturn
define linkonce_odr void @NRT_decref(ptr %.1) local_unnamed_addr #0 {
.3:
  %.4 = icmp eq ptr %.1, null
  br i1 %.4, label %.6, label %.5

.5:                                               ; preds = %.3
  fence release
  %__sj_atomic1.old = atomicrmw sub ptr %.1, i64 1 seq_cst, align 8
  %__sj_atomic1.new = sub i64 %__sj_atomic1.old, 1
  %__sj_atomic1.test = icmp eq i64 %__sj_atomic1.new, 0
  %0 = zext i1 %__sj_atomic1.test to i8
  %.not = icmp eq i8 %0, 0
  br i1 %.not, label %.6, label %.8

.6:                                               ; preds = %.8, %.5, %.3
  ret void

.8:                                               ; preds = %.5
  fence acquire
  tail call void @NRT_MemInfo_call_dtor(ptr nonnull %.1)
  br label %.6
}

define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %mi) #1 {
entry:
  %__sj_atomic2.old = atomicrmw sub ptr %mi, i64 1 seq_cst, align 8
  %__sj_atomic2.new = sub i64 %__sj_atomic2.old, 1
  %__sj_atomic2.test = icmp eq i64 %__sj_atomic2.new, 0
  %0 = zext i1 %__sj_atomic2.test to i8
  %__sj_atomic3.old = atomicrmw add ptr %mi, i32 2 seq_cst, align 4
  %__sj_atomic3.new = add i32 %__sj_atomic3.old, 2
  %__sj_atomic3.test = icmp ne i32 %__sj_atomic3.new, 0
  %1 = zext i1 %__sj_atomic3.test to i8
  ret i32 0
}

attributes #0 = { mustprogress nofree norecurse nounwind willreturn "target-cpu"="skylake-avx512" "target-features"="+avx,+avx2,+sse4.2" }
attributes #1 = { "target-cpu"="skylake-avx512" "target-features"="+avx,+avx2" }
