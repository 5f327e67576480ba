"""Call the boundary's stack scrub as a function instead of inline asm.

llvmlite's LLVM has an assembly parser for the host only, and LLVM cannot
emit inline asm for a target without one.  Cross builds (AOT for another
architecture) therefore call the scrub as a frameless leaf function of the C
runtime (``secretjit_aot_scrub`` in ``secretjit/csrc/nrt_aot.c``)::

    call void asm sideeffect "mov x9, sp...", "r,~{x9},..."(i64 %depth)
    ==>
    call void @secretjit_aot_scrub(i64 %depth)
    declare void @secretjit_aot_scrub(i64)

On AArch64 a call leaves sp unchanged, so it zeroes exactly the bytes the
inline asm would; on x86-64 (built on another host; untested) it skips the
slot of its own return address.  Inline asm other than the scrub is left
alone (the build refuses it for a cross target).
"""

from .boundary import SCRUB_ASM
from .report import PassReport
from .textir import text_pass

SCRUB_FN = 'secretjit_aot_scrub'


@text_pass
def outline_scrub(mod, arch):
    """Replace the inline scrub of ``arch`` by a call to :data:`SCRUB_FN`."""
    report = PassReport('outline_scrub')
    asm, constraints = SCRUB_ASM[arch]
    needle = 'call void asm sideeffect "%s", "%s"(' % (asm, constraints)
    call = 'call void @%s(' % SCRUB_FN
    for fn in mod.defined():
        for i, line in enumerate(fn.body):
            if needle in line:
                fn.body[i] = line.replace(needle, call)
                report.count('scrubs_outlined')
    if report['scrubs_outlined']:
        mod.append_text('declare void @%s(i64)\n' % SCRUB_FN)
    return mod, report
