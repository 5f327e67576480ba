define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %arg.key.0, ptr %arg.key.1, i64 %arg.key.2, i64 %arg.key.3, ptr %arg.key.4, i64 %arg.key.5.0, i64 %arg.key.6.0, i64 %arg.n, ptr %arg.tag) !dbg !3 {
entry:
  %empty = icmp slt i64 %arg.key.2, 1, !dbg !10
  br i1 %empty, label %done, label %loop, !dbg !10
loop:
  %i = phi i64 [ 0, %entry ], [ %i1, %next ]
  %acc = phi i8 [ 0, %entry ], [ %acc1, %next ]
  %pk = getelementptr i8, ptr %arg.key.4, i64 %i, !dbg !11
  %k = load i8, ptr %pk, align 1, !dbg !11
  %pt = getelementptr i8, ptr %arg.tag, i64 %i, !dbg !11
  %t = load i8, ptr %pt, align 1, !dbg !11
  %x = xor i8 %k, %t, !dbg !11
  %acc1 = or i8 %acc, %x, !dbg !11
  br label %next
next:
  %i1 = add nuw nsw i64 %i, 1, !dbg !10
  %more = icmp slt i64 %i1, %arg.key.2, !dbg !10
  br i1 %more, label %loop, label %done, !dbg !10
done:
  %r = phi i8 [ 0, %entry ], [ %acc1, %next ]
  %ok = icmp eq i8 %r, 0, !dbg !12
  %okb = zext i1 %ok to i8, !dbg !12
  store i8 %okb, ptr %retptr, align 1, !dbg !12
  ret i32 0
}

!llvm.dbg.cu = !{!0}
!llvm.module.flags = !{!5}
!0 = distinct !DICompileUnit(language: DW_LANG_Python, file: !1, producer: "golden", isOptimized: true, runtimeVersion: 0, emissionKind: DebugDirectivesOnly)
!1 = !DIFile(filename: "k.py", directory: "/src")
!2 = !DISubroutineType(types: !{})
!3 = distinct !DISubprogram(name: "kernel", scope: !1, file: !1, line: 1, type: !2, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!4 = distinct !DISubprogram(name: "helper", scope: !6, file: !6, line: 20, type: !2, spFlags: DISPFlagDefinition | DISPFlagOptimized, unit: !0)
!5 = !{i32 2, !"Debug Info Version", i32 3}
!6 = !DIFile(filename: "h.py", directory: "/src")
!10 = !DILocation(line: 10, scope: !3)
!11 = !DILocation(line: 11, scope: !3)
!12 = !DILocation(line: 12, scope: !3)
!13 = !DILocation(line: 13, scope: !3)
!21 = !DILocation(line: 21, scope: !4)
