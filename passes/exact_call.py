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
declaration; and, for the kernels ``written`` maps to the registers their
boundary and its tree can write (:func:`secretjit.stack_bound.vregs.tree_registers`
on the module's assembly), the boundary's register epilogue
(:mod:`passes.epilogue`) narrowed to those (here with ``keep_vex_xmm``
off; by default the VEX zeroing of xmm0-15 stays, a speed choice,
:data:`passes.epilogue.KEEP_VEX_XMM`)::

    %stz = call i32 asm sideeffect "fldz\\0A...\\0Avxorps %xmm0, ...\\0A...vxorps %xmm15, ...",
                                   "={ax},0,~{xmm0},...,~{xmm15},~{st},...,~{fpsr},..."(i32 %st)
    ==> (written: {'xmm0', 'xmm1'})
    %stz = call i32 asm sideeffect "vxorps %xmm0, %xmm0, %xmm0\\0Avxorps %xmm1, %xmm1, %xmm1",
                                   "={ax},0,~{xmm0},~{xmm1},~{fpsr},~{flags},~{dirflag}"(i32 %st)

An exact tree runs no code outside the module's (and the runtime's exact
entry, which leaves no secret in a vector register: see
:mod:`secretjit.stack_bound.vregs`), so a register none of that code writes
holds what the caller left there, with no secret in it.  The machine-code
audit (:mod:`secretjit.audit`) checks the same facts on the object: it
fails a boundary whose exact call runs a tree with any external or indirect
call, and requires the zeroing of every register it finds written.
"""

import re

from .boundary import SECRET_CALL, boundary_name
from .epilogue import X87, narrowed, zeroed_registers
from .report import PassReport
from .stack_depth import DEPTH_USE
from .textir import text_pass

SECRET_CALL_EXACT = 'secretjit_secret_call_exact'
# The x86-64 exact entry's fast path (secretjit/csrc/secretstack.c) scrubs 32
# bytes a step and sends any other depth to its C path (4.6 ns more a call):
# an exact call's depth is rounded up to the step (16 bytes more to zero at
# most; a 16-byte tree is a thunk with the kernel inlined, issue 15).
EXACT_DEPTH_STEP = {'x86_64': 32}


def exact_depth(hot, arch):
    """The scrub depth of an exact call of a tree whose hot depth is ``hot``."""
    step = EXACT_DEPTH_STEP.get(arch, 16)
    return -(-int(hot) // step) * step


def exact_kernels(bounds):
    """Kernels of ``{kernel: StackBound}`` whose bound counts no allowance
    but marked ones: every external callee (and indirect call) the bound
    counted, if any, is one of :func:`secretjit.stack_bound.native.markable`
    with a :class:`~secretjit.stack_bound.core.MarkedDepth` (the secret
    runtime's entries, exact but for C library calls that set the thread's
    flag: the exact entry then checks the frame window, issue 15)."""
    from secretjit.stack_bound.core import MarkedDepth
    from secretjit.stack_bound.native import markable
    names = markable() if any(b.externals for b in bounds.values()) else frozenset()
    return sorted(k for k, b in bounds.items()
                  if all(n in names and isinstance(d, MarkedDepth)
                         for n, d in b.externals.items()))


_ASM_CALL = re.compile(r'asm sideeffect "([^"]*)", "([^"]*)"')


def _narrowed_line(line, keep, keep_vex_xmm):
    """The epilogue's asm call in ``line`` zeroing only ``keep``, and the
    registers dropped (``line`` unchanged, ``()``, where it is no epilogue)."""
    m = _ASM_CALL.search(line)
    if not m or not m.group(2).startswith('={ax},0,'):
        return line, ()
    head = '={ax},0,'
    out = narrowed(m.group(1), m.group(2)[len(head):], keep, keep_vex_xmm)
    if out is None:
        return line, ()
    kept = zeroed_registers(out[0]) if out[0] else set()
    dropped = sorted(zeroed_registers(m.group(1)) - kept)
    new = 'asm sideeffect "%s", "%s%s"' % (out[0], head, out[1])
    return line[:m.start()] + new + line[m.end():], dropped


@text_pass
def use_exact_calls(mod, kernels, written=None, keep_vex_xmm=None, depths=None):
    """Route the boundaries of ``kernels`` to ``secretjit_secret_call_exact``;
    ``written``: ``{kernel: registers}`` (contract names such as ``'xmm3'``,
    ``'k1'``, ``'x87'``) its tree and boundary can write, for kernels whose
    epilogue zeroes only those (a kernel missing from it keeps them all);
    ``keep_vex_xmm``: keep the VEX zeroing of xmm0-15 anyway (default
    :data:`passes.epilogue.KEEP_VEX_XMM`, a speed choice); ``depths``:
    ``{kernel: bytes}`` written into the exact call in place of the depth
    placeholder (a tree's hot depth, ``StackBound.hot``: valid for the exact
    entry only, which adds the marked slack when a marked call ran; the
    in-place fallback's scrub keeps the placeholder, for
    :func:`passes.write_depths`' whole bound)."""
    report = PassReport('use_exact_calls')
    old, new = '@%s(' % SECRET_CALL, '@%s(' % SECRET_CALL_EXACT
    written, depths = written or {}, depths or {}
    for kernel in kernels:
        fn = mod.functions.get(boundary_name(kernel))
        if fn is None:
            continue
        for i, line in enumerate(fn.body):
            if ' call ' in line and old in line:
                line = line.replace(old, new)
                if kernel in depths:
                    line, n = DEPTH_USE.subn('i64 %d' % depths[kernel], line)
                    report.count('hot_depths', n)
                fn.body[i] = line
                report.count('calls_exact')
            elif kernel in written and 'asm sideeffect' in line:
                fn.body[i], dropped = _narrowed_line(line, set(written[kernel]),
                                                     keep_vex_xmm)
                for r in dropped:
                    report.count('x87_dropped' if r == X87 else
                                 'masks_dropped' if r.startswith('k') else
                                 'vectors_dropped')
    if report.counters and not any(line.startswith('declare') and new in line
                                   for _, line in mod.top_level()):
        mod.append_text('declare i32 %sptr, ptr, i64)\n' % new)
    return mod, report
