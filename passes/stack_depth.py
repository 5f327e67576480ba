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

# LLVM quotes a name only when it needs quotes: accept both spellings.
_NAME = r'@"?' + re.escape(DEPTH_PREFIX) + r'([^"\s]+?)"?'
_USE = re.compile(r'i64 ptrtoint \(ptr ' + _NAME + r' to i64\)')
_DECL = re.compile(r'^' + _NAME + r' = external global i8\s*$')


def placeholders(ir_text):
    """Kernel names whose boundary still waits for a depth."""
    return sorted(set(_USE.findall(ir_text)))


def write_depths(ir_text, depths):
    report = PassReport('write_depths')
    missing = [k for k in placeholders(ir_text) if k not in depths]
    if missing:
        raise ValueError("no stack depth computed for boundaries of %s"
                         % ', '.join(missing))

    def use(m):
        report.count('depths_written')
        return 'i64 %d' % depths[m.group(1)]

    text = _USE.sub(use, ir_text)
    lines = []
    for line in text.splitlines():
        if _DECL.match(line):
            report.count('placeholders_dropped')
            continue
        lines.append(line)
    return '\n'.join(lines) + '\n', report
