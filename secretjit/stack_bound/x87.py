"""Whether x86-64 assembly touches the x87 register stack (x87 or MMX code).

The boundary's register epilogue (:mod:`passes.epilogue`) zeroes the x87
stack (8 ``fldz`` + 8 ``fstp``, 2.2 ns a call) in case the call tree left a
secret there.  numba's code uses SSE for floating point and never x87 (no
``long double``); a tree without any x87 or MMX instruction (MMX registers
are the x87 registers) cannot leave anything in them, so
:mod:`passes.exact_call` drops that part for an exact tree (no external
callee: nothing outside the scanned code runs) where nothing the boundary
reaches has one (:mod:`.vregs`, which applies :func:`x87_instruction` with
the vector registers, and counts the epilogue's own ``fldz`` / ``fstp
%st(0)`` as no write).

    x87_instruction(mnem, ops) -> whether an instruction is x87 (mnemonic
        ``f...``), ``emms``/``femms``, or names ``%st``/``%mm``

Conservative by construction: every x87 mnemonic starts with ``f`` (and no
SSE/AVX one does), and any instruction naming an x87 or MMX register counts;
a false positive only keeps the zeroing.  The machine-code audit checks the
same on the object the JIT loaded (:mod:`secretjit.audit.x86_64`).
"""

import re

_X87_OPERAND = re.compile(r'%(?:st\b|st\(|mm[0-7]\b)')
_PREFIXES = ('lock', 'rep', 'repe', 'repne', 'repz', 'repnz', 'data16', 'rex64')


def x87_mnemonic(m):
    """Whether mnemonic ``m`` is x87 or MMX state code (the rule the
    machine-code audit applies too, :mod:`secretjit.audit.x86_64`)."""
    return m.startswith('f') or m in ('emms', 'femms')


def x87_instruction(mnem, ops):
    """Whether one instruction of the assembly text (``mnem``, its operand
    strings) is x87 or MMX code (prefixes such as ``lock`` skipped)."""
    words = [mnem] + ' '.join(ops).split()
    while words and words[0] in _PREFIXES:
        words = words[1:]
    return (x87_mnemonic(words[0] if words else '')
            or any(_X87_OPERAND.search(o) for o in ops))
