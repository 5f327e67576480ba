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
declaration.  The machine-code audit (:mod:`secretjit.audit`) checks the
same fact on the object and fails a boundary whose exact call runs a tree
with any external or indirect call.
"""

from .boundary import SECRET_CALL, boundary_name
from .report import PassReport
from .textir import text_pass

SECRET_CALL_EXACT = 'secretjit_secret_call_exact'


def exact_kernels(bounds):
    """Kernels of ``{kernel: StackBound}`` whose bound counts no allowance:
    ``externals`` (every external callee and indirect call the bound
    counted) is empty."""
    return sorted(k for k, b in bounds.items() if not b.externals)


@text_pass
def use_exact_calls(mod, kernels):
    """Route the boundaries of ``kernels`` to ``secretjit_secret_call_exact``."""
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
    if report.counters and not any(line.startswith('declare') and new in line
                                   for _, line in mod.top_level()):
        mod.append_text('declare i32 %sptr, ptr, i64)\n' % new)
    return mod, report
