define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %arg.key.0, ptr %arg.key.1, i64 %arg.key.2, i64 %arg.key.3, ptr %arg.key.4, i64 %arg.key.5.0, i64 %arg.key.6.0, i64 %arg.n, i64 %arg.a, i64 %arg.b) !dbg !3 {
entry:
  %k = load i64, ptr %arg.key.4, align 8, !dbg !11
  %bit = and i64 %k, 1, !dbg !11
  %m = sub i64 0, %bit, !dbg !11
  %nm = xor i64 %m, -1, !dbg !11
  %x = and i64 %arg.a, %m, !dbg !12
  %y = and i64 %arg.b, %nm, !dbg !12
  %s = or i64 %x, %y, !dbg !12
  %c = icmp ne i64 %bit, 0, !dbg !12
  %sel = select i1 %c, i64 %s, i64 %k, !dbg !12
  %r = call i64 @llvm.fshl.i64(i64 %sel, i64 %sel, i64 13), !dbg !13
  %p = mul i64 %r, 1099511628211, !dbg !13
  store i64 %p, ptr %retptr, align 8, !dbg !13
  ret i32 0
}
declare i64 @llvm.fshl.i64(i64, i64, i64)

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
