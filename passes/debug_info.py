"""The line tables the constant-time check reads: removed, or made DWARF-ready.

:func:`strip_debug_info` (every secret build, after the check)::

    define i32 @k(i8 %x) !dbg !4 {        ->   define i32 @k(i8 %x) {
      #dbg_value(i8 %x, !5, ...)          ->     (removed)
      ret i32 0, !dbg !6                  ->     ret i32 0
    !llvm.dbg.cu = !{!0}                  ->   (removed)

:func:`line_tables_for_dwarf` (``ctcheck``'s line maps only)::

    !0 = distinct !DICompileUnit(..., emissionKind: DebugDirectivesOnly, ...)
    ->  !0 = distinct !DICompileUnit(..., emissionKind: LineTablesOnly, ...)

Golden cases: ``tests/test_ct_golden.py::test_strip_debug_info_*`` and
``::test_line_tables_for_dwarf_*``.
"""

import re

from .report import PassReport

_STRIP_NAMED = re.compile(r'^!llvm\.dbg\.cu\s*=')
_DBG_CALL = re.compile(r'^(tail |notail )?call void @llvm\.dbg\.')


def _rewrite_lines(text, report, rewrite):
    """``text`` with ``rewrite(line)`` (None drops it); unchanged if no counter."""
    out = []
    for line in text.splitlines():
        new = rewrite(line)
        if new is not None:
            out.append(new)
    if not report.counters:
        return text, report
    return '\n'.join(out) + '\n', report


def strip_debug_info(text):
    """Remove ``!dbg`` attachments, debug records and the compile unit.

    What stays is the module a build without line tables produces: code
    generation emits no debug sections and no location-driven differences.
    The "Debug Info Version" module flag is harmless without a compile
    unit; DILocations kept alive by loop metadata are plain metadata.
    Returns ``(text, report)``.
    """
    report = PassReport('strip_debug_info')

    def rewrite(line):
        s = line.lstrip()
        if s.startswith('#dbg_') or _DBG_CALL.match(s) or \
                line.startswith('declare void @llvm.dbg.') or \
                _STRIP_NAMED.match(line):
            report.count('removed_lines')
            return None
        new = re.sub(r',\s*!dbg\s+!\d+', '', line)
        if line.startswith('define '):
            new = re.sub(r'\s!dbg\s+!\d+', '', new)
        if new != line:
            report.count('removed_attachments')
        return new
    return _rewrite_lines(text, report, rewrite)


def line_tables_for_dwarf(text):
    """numba's "directives only" line tables as "line tables only".

    Directives-only units emit no ``.debug_info`` unit, which DWARF readers
    need; the line program is the same.  Debug records go (a line-tables-only
    unit must not describe variables).  Used by ``ctcheck`` for its line
    maps, never for code that runs.  Returns ``(text, report)``.
    """
    report = PassReport('line_tables_for_dwarf')

    def rewrite(line):
        if line.lstrip().startswith('#dbg_'):
            report.count('removed_records')
            return None
        new = line.replace('emissionKind: DebugDirectivesOnly',
                           'emissionKind: LineTablesOnly')
        if new != line:
            report.count('units')
        return new
    return _rewrite_lines(text, report, rewrite)
