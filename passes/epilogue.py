"""The boundary's vector and x87 zeroing as inline assembly (x86-64 with AVX).

LLVM's ``"zero-call-used-regs"="all"`` on an AVX-512 machine zeroes xmm0-15
three times (once per register class, LLVM issue #191911) and ends with a
``vzeroupper``: 5.1 ns a call here, against 3.6 ns for each register once
(``benchmarks/boundary.py``).  Given an epilogue, :func:`insert_boundaries`
leaves LLVM the general-purpose registers (``"all-gpr"``) and puts this
before each of the boundary's returns, the status tied to eax::

    ret i32 %status      ==>   %statusz = call i32 asm sideeffect "fldz ... kxorq ...",
                                   "={ax},0,~{xmm0},...,~{k7},~{st},...,~{fpsr}"(i32 %status)
                               ret i32 %statusz

    fldz x 8, fstp %st(0) x 8    the x87 stack: eight zeros pushed, then popped
    vxorps %xmmN, %xmmN, %xmmN   xmm0-15 (the VEX form clears the whole ymm/zmm)
    vpxord %zmmN, %zmmN, %zmmN   zmm16-31 with AVX-512 (AVX512F alone suffices)
    kxorw %k0, %k0, %kN          k0-k7 with AVX-512 (a VEX mask write zeroes the
                                 register's upper bits; kxorq would need AVX512BW)

The registers are the contract's (:mod:`secretjit.contract`); the audit
checks the result like LLVM's own epilogue.  Without AVX (and on AArch64)
there is no epilogue: LLVM's ``"all"`` stays.

For an exact call tree, :mod:`passes.exact_call` narrows the epilogue with
:func:`narrowed` to the registers the tree and the boundary can write
(:func:`secretjit.stack_bound.vregs.tree_registers`): each line of the
sequence zeroes one register ('x87' for the ``fldz``/``fstp`` lines) and
each clobber names one, so the lines and clobbers of the others are dropped;
an asm string with any other line is not this module's and stays as it is.
"""

from secretjit.contract import X86_64_MASKS, x86_64_vectors


def _zero_vector(reg):
    """One zeroing idiom for ``reg`` that clears the whole zmm register with
    AVX-512F alone: VEX ``vxorps`` for xmm0-15; xmm16-31 have no VEX form and
    EVEX ``vxorps``/``kxorq`` need AVX512DQ/VL/BW, so ``vpxord`` on the zmm
    register (what LLVM itself uses on AVX512F-only targets)."""
    n = int(reg[3:])
    if n < 16:
        return 'vxorps %{0}, %{0}, %{0}'.format(reg)
    return 'vpxord %zmm{0}, %zmm{0}, %zmm{0}'.format(n)


# The x87 part of the epilogue: its instructions and clobbers.
_X87_LINES = ['fldz'] * 8 + ['fstp %st(0)'] * 8
_X87_CLOBBER_LIST = ['~{st}'] + ['~{st(%d)}' % i for i in range(1, 8)]
X87 = 'x87'


def register_epilogue(arch, features, sse=False):
    """``(asm, clobbers)`` for ``arch`` with LLVM target ``features``
    (``'+avx,+avx512f,...'``), or None where LLVM's ``"all"`` stays.
    ``sse``: without AVX too, with legacy ``xorps`` on xmm0-15, which leaves
    any upper bits alone: only for code whose caller clears those (an AOT
    baseline export, ``secretjit_aot_clear_vregs``)."""
    flags = set(features.split(','))
    if arch != 'x86_64' or ('+avx' not in flags and not sse):
        return None
    if '+avx' not in flags:
        vectors = x86_64_vectors(False)
        lines = _X87_LINES + ['xorps %{0}, %{0}'.format(r) for r in vectors]
        clobbers = (['~{%s}' % r for r in vectors]
                    + _X87_CLOBBER_LIST + ['~{fpsr}', '~{flags}', '~{dirflag}'])
        return '\\0A'.join(lines), ','.join(clobbers)
    avx512 = '+avx512f' in flags
    vectors = x86_64_vectors(avx512)
    masks = X86_64_MASKS if avx512 else ()
    lines = (_X87_LINES
             + [_zero_vector(r) for r in vectors]
             + ['kxorw %k0, %k0, %{0}'.format(k) for k in masks])
    clobbers = (['~{%s}' % r for r in vectors + masks]
                + _X87_CLOBBER_LIST + ['~{fpsr}', '~{flags}', '~{dirflag}'])
    return '\\0A'.join(lines), ','.join(clobbers)


def _line_registers():
    """{asm line: the register it zeroes} for every line register_epilogue
    writes (VEX, EVEX and legacy SSE forms, masks, x87)."""
    out = {line: X87 for line in _X87_LINES}
    for r in x86_64_vectors(True):
        out[_zero_vector(r)] = r
        if int(r[3:]) < 16:
            out['xorps %{0}, %{0}'.format(r)] = r
    for k in X86_64_MASKS:
        out['kxorw %k0, %k0, %{0}'.format(k)] = k
    return out


_LINE_REGISTER = _line_registers()
_CLOBBER_REGISTER = dict(
    [('~{%s}' % r, r) for r in x86_64_vectors(True) + X86_64_MASKS]
    + [(c, X87) for c in _X87_CLOBBER_LIST])


def zeroed_registers(asm):
    """The registers (contract names, ``'x87'``) an epilogue register_epilogue
    wrote zeroes, from its asm string; None for any other asm."""
    lines = asm.split('\\0A')
    if not all(line in _LINE_REGISTER for line in lines):
        return None
    return {_LINE_REGISTER[line] for line in lines}


# A speed choice, not a security one (zeroing more is always safe): the VEX
# zeroing of xmm0-15 stays in a narrowed epilogue even where the tree writes
# none of them.  On this project's AVX2 machine (AMD EPYC) the trivial call
# took about 1 ns *more* without those 16 vxorps than with them, also with
# the same bytes of padding in their place, and more again with legacy xorps
# or vzeroupper instead (benchmarks/used_vregs.py, RESULTS.md "usedregs").
# The legacy SSE form (AOT baseline builds) is narrowed, and AOT builds
# pass keep_vex_xmm=False (secretjit.pipeline.aot_module: on an Intel
# AVX-512 host the trivial --cpu host export was 0.7 ns faster without).
KEEP_VEX_XMM = True


def narrowed(asm, clobbers, keep, keep_vex_xmm=None):
    """``(asm, clobbers)`` of an epilogue register_epilogue wrote (as they
    appear in the IR's asm and constraint strings) with only the zeroing of
    the registers in ``keep`` (contract names, ``'x87'``), and of xmm0-15
    where they are zeroed with VEX and ``keep_vex_xmm`` (default
    :data:`KEEP_VEX_XMM`); None where ``asm`` has a line that is not one of
    this module's (not an epilogue)."""
    if zeroed_registers(asm) is None:
        return None
    lines = asm.split('\\0A')
    if KEEP_VEX_XMM if keep_vex_xmm is None else keep_vex_xmm:
        keep = set(keep) | {_LINE_REGISTER[line] for line in lines
                            if line.startswith('vxorps ')}
    kept = [line for line in lines if _LINE_REGISTER[line] in keep]
    constraints = [c for c in clobbers.split(',')
                   if c not in _CLOBBER_REGISTER or _CLOBBER_REGISTER[c] in keep]
    return '\\0A'.join(kept), ','.join(constraints)
