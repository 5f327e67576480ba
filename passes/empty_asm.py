"""Emit the boundary's inline asm empty, for a cross JIT object (AArch64 on another host).

llvmlite's LLVM parses inline asm for the host only, so a JIT object for
another architecture (:mod:`secretjit.audit.cross`) cannot be emitted with the
scrub's or the ``declassify`` markers' asm.  This pass makes both empty with
the same constraints (an empty template needs no parser; LLVM prints
``//APP``/``//NO_APP`` where it is), the scrub's depth operand in a fixed
register, and :func:`restore_scrubs` puts the scrub's instructions back into
LLVM's assembly at those markers::

    call void asm sideeffect "mov x9, sp\\0Asub x10, x9, $0...", "r,~{x9},..."(i64 %d)
    %p = call i8 asm "${:comment} secretjit.declassify", "=r,0"(i8 %z)
    ==>
    call void asm sideeffect "", "{x8},~{x9},..."(i64 %d)
    %p = call i8 asm "", "=r,0"(i8 %z)

Any other inline asm is an error (the object could not be emitted).
"""

import re

from .boundary import BOUNDARY_PREFIX, SCRUB_ASM
from .declassify import DECLASSIFY_ASM
from .report import PassReport
from .textir import text_pass

DEPTH_REG = 'x8'
_DECLASSIFY = 'asm "%s", "=r,0"' % DECLASSIFY_ASM
_OTHER_ASM = re.compile(r' asm (?:sideeffect |alignstack |inteldialect )*"[^"]')


def _needle(arch):
    asm, constraints = SCRUB_ASM[arch]
    return ('asm sideeffect "%s", "%s"(' % (asm, constraints),
            'asm sideeffect "", "{%s}%s"(' % (DEPTH_REG, constraints[1:]))


@text_pass
def empty_inline_asm(mod, arch):
    """Make the scrubs and ``declassify`` markers of ``arch`` empty inline asm."""
    report = PassReport('empty_inline_asm')
    old, new = _needle(arch)
    for fn in mod.defined():
        for i, line in enumerate(fn.body):
            if old in line:
                line = line.replace(old, new)
                report.count('scrubs_emptied')
            if _DECLASSIFY in line:
                line = line.replace(_DECLASSIFY, 'asm "", "=r,0"')
                report.count('declassify_emptied')
            if _OTHER_ASM.search(line):
                raise ValueError("inline asm other than the scrub and declassify in "
                                 "%s: %s" % (fn.name, line.strip()))
            fn.body[i] = line
    return mod, report


def restore_scrubs(asm, arch, expected):
    """LLVM's assembly ``asm`` with the scrub's instructions after each
    ``//APP`` of a boundary (``expected``: how many the pass emptied)."""
    body = SCRUB_ASM[arch][0].replace('\\0A', '\n\t').replace('$0', DEPTH_REG)
    out, inside, seen = [], False, 0
    for line in asm.splitlines():
        if re.match(r'^"?[\w.$]+"?:', line) and not line.startswith('.L'):
            inside = line.lstrip('"').startswith(BOUNDARY_PREFIX)
        if inside and line.strip() == '//APP':
            seen += 1
            line += '\n\t' + body
        out.append(line)
    if seen != expected:
        raise ValueError('%d empty asm blocks in the boundaries, %d scrubs emptied'
                         % (seen, expected))
    return '\n'.join(out) + '\n'
