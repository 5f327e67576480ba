; ModuleID = '<string>'
source_filename = "<string>"

define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %arg.key.0, ptr %arg.key.1, i64 %arg.key.2, i64 %arg.key.3, ptr %arg.key.4, i64 %arg.key.5.0, i64 %arg.key.6.0, i64 %arg.n) !dbg !3 {
entry:
  %big = icmp sgt i64 %arg.n, 2, !dbg !6
  br i1 %big, label %check, label %done, !dbg !6

check:                                            ; preds = %entry
  %k = load i8, ptr %arg.key.4, align 1, !dbg !7
  %z = icmp eq i8 %k, 0, !dbg !7
  %zb = zext i1 %z to i8, !dbg !7
  %pub = call i8 asm "", "=r,0"(i8 %zb), !dbg !8
  %c = icmp ne i8 %pub, 0, !dbg !8
  br i1 %c, label %done, label %other, !dbg !8

other:                                            ; preds = %check
  store i8 1, ptr %retptr, align 1, !dbg !9
  br label %done

done:                                             ; preds = %other, %check, %entry
  ret i32 0
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!2}

!0 = distinct !DICompileUnit(language: DW_LANG_Python, file: !1, producer: "golden", isOptimized: true, runtimeVersion: 0, emissionKind: DebugDirectivesOnly)
!1 = !DIFile(filename: "k.py", directory: "/src")
!2 = !{i32 2, !"Debug Info Version", i32 3}
!3 = distinct !DISubprogram(name: "kernel", scope: !1, file: !1, line: 1, type: !4, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!4 = !DISubroutineType(types: !5)
!5 = !{}
!6 = !DILocation(line: 10, scope: !3)
!7 = !DILocation(line: 11, scope: !3)
!8 = !DILocation(line: 12, scope: !3)
!9 = !DILocation(line: 13, scope: !3)
