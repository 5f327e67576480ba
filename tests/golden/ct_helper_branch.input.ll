define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %arg.key.0, ptr %arg.key.1, i64 %arg.key.2, i64 %arg.key.3, ptr %arg.key.4, i64 %arg.key.5.0, i64 %arg.key.6.0, i64 %arg.n) !dbg !3 {
entry:
  %k = load i8, ptr %arg.key.4, align 1, !dbg !11
  %r = call i8 @helper(i8 %k), !dbg !11
  store i8 %r, ptr %retptr, align 1, !dbg !12
  ret i32 0
}
define internal i8 @helper(i8 %x) !dbg !4 {
entry:
  %odd = trunc i8 %x to i1, !dbg !21
  br i1 %odd, label %a, label %b, !dbg !21
a:
  ret i8 1
b:
  ret i8 0
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
