"""Write each boundary's computed scrub depth into its inline asm.

:mod:`passes.boundary` leaves the depth as the address of an undefined
symbol, so that -O3 cannot fold it; once the depth is known from the machine
code, this pass replaces it by the number::

    call void asm sideeffect "...", "..."(i64 ptrtoint (ptr @"__secretjit.depth.K" to i64))
    ==>
    call void asm sideeffect "...", "..."(i64 4160)

and drops the placeholder's declaration.  A boundary whose depth is missing
from ``depths`` is an error: an unscrubbed boundary must never reach the JIT.
"""

import re

from .boundary import DEPTH_PREFIX
from .report import PassReport
from .textir import Module, text_pass

# LLVM quotes a name only when it needs quotes: accept both spellings.
_NAME = r'@"?' + re.escape(DEPTH_PREFIX) + r'([^"\s]+?)"?'
DEPTH_USE = re.compile(r'i64 ptrtoint \(ptr ' + _NAME + r' to i64\)')
_DECL = re.compile(r'^' + _NAME + r' = external global i8\s*$')


def placeholders(ir):
    """Kernel names whose boundary still waits for a depth (text or Module)."""
    if isinstance(ir, Module):
        return sorted({k for fn in ir.defined() for line in fn.body
                       if DEPTH_PREFIX in line for k in DEPTH_USE.findall(line)})
    return sorted(set(DEPTH_USE.findall(ir)))


@text_pass
def write_depths(mod, depths):
    """Replace each placeholder by ``depths[kernel]`` and drop its declaration."""
    report = PassReport('write_depths')
    missing = [k for k in placeholders(mod) if k not in depths]
    if missing:
        raise ValueError("no stack depth computed for boundaries of %s"
                         % ', '.join(missing))

    def use(m):
        report.count('depths_written')
        return 'i64 %d' % depths[m.group(1)]

    for fn in mod.defined():
        fn.body = [DEPTH_USE.sub(use, line) if DEPTH_PREFIX in line else line
                   for line in fn.body]
    for i, line in mod.top_level():
        if _DECL.match(line):
            report.count('placeholders_dropped')
            mod.lines[i] = ''
    return mod, report
