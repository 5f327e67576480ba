"""Point the boundaries of kernels with an exact stack bound at the runtime's
exact entry.

A call tree whose depth :mod:`secretjit.stack_bound` derived from its own
machine code alone (no external callee, so no measured allowance, and no
indirect call) has an exact bound: nothing in it can write below the depth,
and ``secretjit_secret_call_exact`` (``secretjit/csrc/secretstack.c``) skips
the 1 KiB frame-window check below it that covers allowances (the
rseq-gated signal-window check stays).  After :mod:`passes.stack_depth`
wrote the depths in::

    %ran = call i32 @secretjit_secret_call(ptr @"__secretjit.thunk.K", ptr %frame, i64 160)
    ==>
    %ran = call i32 @secretjit_secret_call_exact(ptr @"__secretjit.thunk.K", ptr %frame, i64 160)

in the boundary of each kernel :func:`exact_kernels` names, plus the
declaration; where no function of the module but the boundaries has x87 or
MMX code, also without the x87 part of the boundary's register epilogue
(``fldz`` x 8, ``fstp %st(0)`` x 8: 2.2 ns): an exact tree runs no code
outside the module's, and code without x87 instructions leaves the x87
stack as the caller left it, with no secret in it.  The machine-code audit (:mod:`secretjit.audit`) checks the
same fact on the object and fails a boundary whose exact call runs a tree
with any external or indirect call.
"""

from .boundary import SECRET_CALL, boundary_name
from .epilogue import X87_ASM, X87_CLOBBERS
from .report import PassReport
from .textir import text_pass

SECRET_CALL_EXACT = 'secretjit_secret_call_exact'


def exact_kernels(bounds):
    """Kernels of ``{kernel: StackBound}`` whose bound counts no allowance:
    ``externals`` (every external callee and indirect call the bound
    counted) is empty."""
    return sorted(k for k, b in bounds.items() if not b.externals)


def _without_x87(line):
    """The epilogue's asm call without its x87 part (unchanged if it has none)."""
    if 'asm sideeffect "' + X87_ASM not in line or X87_CLOBBERS not in line:
        return line
    return line.replace('asm sideeffect "' + X87_ASM, 'asm sideeffect "', 1).replace(
        X87_CLOBBERS, '', 1)


@text_pass
def use_exact_calls(mod, kernels, x87_free=False):
    """Route the boundaries of ``kernels`` to ``secretjit_secret_call_exact``;
    ``x87_free``: no function of the module but the boundaries has x87 or
    MMX code (:func:`secretjit.stack_bound.x87.x87_functions`), so their
    epilogues (:mod:`passes.epilogue`) leave the x87 stack alone."""
    report = PassReport('use_exact_calls')
    old, new = '@%s(' % SECRET_CALL, '@%s(' % SECRET_CALL_EXACT
    for kernel in kernels:
        fn = mod.functions.get(boundary_name(kernel))
        if fn is None:
            continue
        for i, line in enumerate(fn.body):
            if ' call ' in line and old in line:
                fn.body[i] = line.replace(old, new)
                report.count('calls_exact')
            elif x87_free and 'asm sideeffect' in line and _without_x87(line) != line:
                fn.body[i] = _without_x87(line)
                report.count('x87_dropped')
    if report.counters and not any(line.startswith('declare') and new in line
                                   for _, line in mod.top_level()):
        mod.append_text('declare i32 %sptr, ptr, i64)\n' % new)
    return mod, report
