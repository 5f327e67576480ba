"""The constant-time check over optimized LLVM IR: :func:`find_ct_violations`.

It propagates taint from a kernel's secret parameters through the whole
call tree of the optimized module (:mod:`passes.ct_taint`) and reports
every place where timing or the cache footprint could depend on a secret
(:mod:`passes.ct_findings`), with the Python line::

    define i32 @kernel(ptr %retptr, ..., ptr %arg.key.4, ...)   ; secret=("key",)
      %b = load i8, ptr %arg.key.4              ; %b tainted (key contents)
      %c = icmp eq i8 %b, 0
      br i1 %c, label %a, label %b, !dbg !7     -> branch at kernel.py:12
      %p = getelementptr i8, ptr @sbox, i64 %i  ; %i tainted
      %s = load i8, ptr %p                      -> secret-index at kernel.py:13

The passes that go with it: :mod:`passes.debug_info` (the line tables it
reads, stripped after it), :mod:`passes.declassify` (the marker it treats
as public).  Golden cases: ``tests/test_ct_golden.py`` with
``tests/golden/ct_cases.json`` and ``tests/golden/ct_*.input.ll``.
"""

from .ct_findings import FIX_HINTS, WARNING_KINDS, Finding, findings, locator
from .ct_taint import Taint
from .report import PassReport
from .textir import Module

__all__ = ['FIX_HINTS', 'WARNING_KINDS', 'Finding', 'find_ct_violations']


def find_ct_violations(text, kernels, signatures=None):
    """Constant-time findings for ``kernels`` (LLVM name -> secret params).

    ``text`` is the optimized module (text or a parsed :class:`Module`,
    which the check only reads); ``signatures`` (optional) module texts
    holding the kernels as numba emitted them, whose complete parameter
    lists say which parameters are secret where -O3 changed the kernel's
    (see :func:`passes.ct_taint.secret_seeds`).  Returns ``(findings, report)``:
    a list of :class:`Finding` in module order and a report counting
    the functions checked and findings by kind.
    """
    mod = _parsed(text)
    report = PassReport('constant_time')
    for k in kernels:
        if k not in mod.functions:
            raise ValueError("constant-time check: kernel %s is not defined "
                             "in the module" % k)
    full = {}
    for other in signatures or ():
        funcs = _parsed(other).functions
        full.update({k: funcs[k] for k in kernels if k in funcs})
    taint = Taint(mod, {k: tuple(v) for k, v in kernels.items()}, full)
    taint.run()
    found = findings(taint, locator(mod.lines))
    report.count('functions_checked', len(taint.reach))
    for f in found:
        report.count(f.kind)
    return found, report


def _parsed(text):
    return text if isinstance(text, Module) else Module.parse(text)
