; ModuleID = '<string>'
source_filename = "<string>"

declare void @NRT_MemInfo_call_dtor(ptr)

; Function Attrs: nounwind
declare i8 @llvm.x86.atomic.sub.cc.i64(ptr, i64, i32 immarg) #0

; Function Attrs: mustprogress nofree norecurse nounwind willreturn
define linkonce_odr void @NRT_incref(ptr %.1) local_unnamed_addr #1 {
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
define linkonce_odr void @NRT_decref(ptr %.1) local_unnamed_addr #1 {
.3:
  %.4 = icmp eq ptr %.1, null
  br i1 %.4, label %.6, label %.5

.5:                                               ; preds = %.3
  fence release
  %0 = tail call i8 @llvm.x86.atomic.sub.cc.i64(ptr nonnull %.1, i64 1, i32 4)
  %.not = icmp eq i8 %0, 0
  br i1 %.not, label %.6, label %.8

.6:                                               ; preds = %.8, %.5, %.3
  ret void

.8:                                               ; preds = %.5
  fence acquire
  tail call void @NRT_MemInfo_call_dtor(ptr nonnull %.1)
  br label %.6
}

define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %mi) #2 {
entry:
  %0 = tail call i8 @llvm.x86.atomic.sub.cc.i64(ptr nonnull %mi, i64 1, i32 4)
  %1 = tail call i8 @llvm.x86.atomic.add.cc.i32(ptr %mi, i32 2, i32 5)
  ret i32 0
}

; Function Attrs: nounwind
declare i8 @llvm.x86.atomic.add.cc.i32(ptr, i32, i32 immarg) #0

attributes #0 = { nounwind }
attributes #1 = { mustprogress nofree norecurse nounwind willreturn }
attributes #2 = { "secretjit-emptied" }
