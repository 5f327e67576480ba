; ModuleID = '<string>'
source_filename = "<string>"

declare void @NRT_MemInfo_call_dtor(ptr)

; Function Attrs: nounwind
declare i8 @llvm.x86.atomic.sub.cc.i64(ptr, i64, i32 immarg) #0

; Function Attrs: noinline
define linkonce_odr void @NRT_incref(ptr %p) #1 {
entry:
  %isnull = icmp eq ptr %p, null
  br i1 %isnull, label %done, label %inc

done:                                             ; preds = %inc, %entry
  ret void

inc:                                              ; preds = %entry
  %old = atomicrmw add ptr %p, i64 1 monotonic, align 8
  br label %done
}

; Function Attrs: noinline
define linkonce_odr void @NRT_decref(ptr %p) #1 {
entry:
  %isnull = icmp eq ptr %p, null
  br i1 %isnull, label %done, label %dec

done:                                             ; preds = %free, %dec, %entry
  ret void

dec:                                              ; preds = %entry
  fence release
  %old = atomicrmw sub ptr %p, i64 1 monotonic, align 8
  %last = icmp eq i64 %old, 1
  br i1 %last, label %free, label %done

free:                                             ; preds = %dec
  fence acquire
  call void @NRT_MemInfo_call_dtor(ptr %p)
  br label %done
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
attributes #1 = { noinline }
attributes #2 = { "target-cpu"="skylake-avx512" "target-features"="+avx,+avx2" }
