define i32 @kernel(ptr %retptr, ptr %excinfo, ptr %arg.key.0, ptr %arg.key.1, i64 %arg.key.2, i64 %arg.key.3, ptr %arg.key.4, i64 %arg.key.5.0, i64 %arg.key.6.0, ptr %arg.table) !dbg !3 {
entry:
  %k = load <4 x i64>, ptr %arg.key.4, align 8, !dbg !11
  %idx = and <4 x i64> %k, splat (i64 255), !dbg !11
  %ptrs = getelementptr i8, ptr %arg.table, <4 x i64> %idx, !dbg !11
  %v = call <4 x i8> @llvm.masked.gather.v4i8.v4p0(<4 x ptr> align 1 %ptrs, <4 x i1> splat (i1 true), <4 x i8> poison), !dbg !11
  %pub = getelementptr i8, ptr %arg.table, <4 x i64> <i64 0, i64 1, i64 2, i64 3>, !dbg !12
  call void @llvm.masked.scatter.v4i8.v4p0(<4 x i8> %v, <4 x ptr> align 1 %pub, <4 x i1> splat (i1 true)), !dbg !12
  ret i32 0
}
declare <4 x i8> @llvm.masked.gather.v4i8.v4p0(<4 x ptr>, <4 x i1>, <4 x i8>)
declare void @llvm.masked.scatter.v4i8.v4p0(<4 x i8>, <4 x ptr>, <4 x i1>)

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
