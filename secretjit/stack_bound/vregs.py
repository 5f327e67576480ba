"""Which vector, mask and x87 registers an exact call tree can write (x86-64).

The boundary's register epilogue (:mod:`passes.epilogue`) zeroes every
vector register of the contract (:mod:`secretjit.contract`): xmm0-15 with
AVX2, zmm0-31 and k0-k7 with AVX-512, and the x87 stack.  A trivial tree
(``x + 1``) writes none of them.  For an *exact* tree (its stack bound
counts no external callee and no indirect call: only the module's own
machine code runs in it) :mod:`passes.exact_call` keeps only the zeroing of
the registers that something the boundary runs can write:

    tree_registers(asm, functions, boundary) -> the contract's names
        ('xmm3', 'k1', 'x87') that the boundary or any function it reaches
        writes, or None where that cannot be told (keep every register)

What else runs between the boundary's entry and its return, and why it
leaves no secret in a register the epilogue no longer zeroes:

- the runtime's exact entry (``secretjit_secret_call_exact``, C in
  ``secretjit/csrc/secretstack.c``): the stack switch (general-purpose
  registers only), the rseq check, and the scrub, libc ``memset`` or the
  runtime's ``zero_range``: they write zero vectors (the fill value), no
  secret.  Only when the call was interrupted (rseq) does it read the
  secret stack: ``any_nonzero`` over the signal window and ``deepest_write``
  load stack bytes (a signal frame holds the tree's whole register state)
  into vector registers.  When that finds something, the runtime calls
  ``secretjit__clear_vregs`` (``secretjit/csrc/common.c``: xmm/ymm/zmm0-31
  and k0-k7, what the CPU has) before it scrubs and returns; when it finds
  nothing, every byte it loaded was zero.  ``tests/test_used_vregs.py``
  checks this on the C runtime, with its control (built without the
  clearing, a canary from the window is in a vector register afterwards).
- signal handlers that interrupt the tree: ``sigreturn`` restores the
  registers the kernel saved, so a handler's vector values do not survive it;
- the general-purpose registers stay LLVM's ``"all-gpr"`` (the runtime's C
  writes them, and in the interrupted path loads stack words into them;
  LLVM's ``"used-gpr"`` would only see the boundary's own code, not the
  thunk's and the kernel's, which are separate functions behind the
  runtime; and zeroing idioms on GPRs cost next to nothing).

The scan.  A function's registers are every vector or mask register any of
its instructions names (a read counts too: an over-approximation), plus the
ones written implicitly (``pcmpestrm``/``pcmpistrm``: xmm0; the other
register of a ``vp2intersect`` pair; every register for ``xrstor``/
``fxrstor`` and the Key Locker instructions), and ``'x87'`` for x87 or MMX
code (:mod:`.x87`).  Not counted, because they cannot put a secret in a
register: the zeroing idioms (``vxorps %xmmA, %xmmA, %xmmB``, ``xorps %xmmA,
%xmmA``, ``kxorw %kA, %kA, %kB`` and their ``pxor``/``vpxord``/... forms,
unmasked), ``fldz`` (pushes a zero) and ``fstp %st(0)`` (pops), which is all
the epilogue itself is made of.  ymm/zmm names count as their xmm register.
The functions are the boundary and everything it reaches, where any operand
naming a function of the module counts as an edge (calls, tail calls,
address loads such as the thunk's, passed to the runtime): a superset of
the call tree.  A reachable function without a body in ``asm`` gives None.

Not every unwritten register is dropped: the VEX zeroing of xmm0-15 stays
(:data:`passes.epilogue.KEEP_VEX_XMM`, measured faster on an AVX2 machine
than leaving it out); the rest (x87, zmm16-31, k0-k7, and legacy-SSE
xmm0-15 in AOT baseline builds) goes, and so does the export's
``secretjit_aot_clear_vregs`` in AOT builds without AVX-512
(:func:`passes.drop_clears`: their code cannot write upper bits, zmm16-31
or k0-k7).

The machine-code audit (:mod:`secretjit.audit.x86_64`, ``optional()``)
checks the same on the object the JIT loaded, with capstone, and requires
the zeroing of every register it finds written.
"""

import re

from ..contract import X86_64_MASKS, x86_64_vectors
from .core import ARCHES, function_bodies
from .x87 import x87_instruction

X87 = 'x87'
# every register the epilogue can zero: the widest contract
ALL = frozenset(x86_64_vectors(True) + X86_64_MASKS + (X87,))

_VECTOR = re.compile(r'%[xyz]mm(\d+)\b')
_MASK = re.compile(r'%k([0-7])\b')
_REGISTER = re.compile(r'^%(?:[xyz]mm\d+|k[0-7])$')
_SYMBOL = re.compile(r'"((?:[^"\\]|\\.)*)"|([A-Za-z_.$][\w.$]*)')
_XOR2 = ('xorps', 'xorpd', 'pxor')
_XOR3 = ('vxorps', 'vxorpd', 'vpxor', 'vpxord', 'vpxorq')
_KXOR = ('kxorb', 'kxorw', 'kxord', 'kxorq')
_WRITES_XMM0 = ('pcmpestrm', 'pcmpistrm', 'vpcmpestrm', 'vpcmpistrm')
_WRITES_ALL = ('xrstor', 'fxrstor', 'encodekey', 'aesencwide', 'aesdecwide')


def _canon_vector(n):
    return 'xmm%d' % int(n)


def zeroing_idiom(mnem, ops):
    """Whether the instruction only sets a register to zero (or, for x87,
    pushes a zero or pops): it cannot leave a secret anywhere."""
    if mnem == 'fldz' and not ops:
        return True
    if mnem == 'fstp' and [o.replace(' ', '') for o in ops] == ['%st(0)']:
        return True
    if not ops or not all(_REGISTER.match(o) for o in ops):
        return False                    # masked ({%k1}), memory or immediate
    if mnem in _XOR2:
        return len(ops) == 2 and ops[0] == ops[1]
    if mnem in _XOR3 or mnem in _KXOR:
        return len(ops) == 3 and ops[0] == ops[1]
    return False


def instruction_registers(mnem, ops):
    """The contract's registers one instruction of the assembly text may
    write (every vector or mask register it names, and the implicit ones)."""
    if zeroing_idiom(mnem, ops):
        return set()
    text = ' '.join(ops)
    named = ({_canon_vector(n) for n in _VECTOR.findall(text)}
             | {'k' + n for n in _MASK.findall(text)})
    out = named | implicit_registers(mnem, named)
    if x87_instruction(mnem, ops):
        out.add(X87)
    return out


def implicit_registers(mnem, named):
    """The contract's registers instruction ``mnem`` writes without naming
    them, given the ones it names (contract names): the rule the audit
    applies to capstone's decoding too (:mod:`secretjit.audit.x86_64`)."""
    mnem = mnem.lower()
    if mnem.startswith(_WRITES_ALL):
        return set(ALL)
    out = set()
    if mnem.startswith('vp2intersect'):         # writes a pair k(2n), k(2n+1)
        out |= {'k%d' % (int(r[1:]) ^ 1) for r in named if r in X86_64_MASKS}
    if mnem in _WRITES_XMM0:
        out.add('xmm0')
    return out


def _referenced(ops, functions):
    """The functions of ``functions`` that operands ``ops`` name."""
    out = set()
    for op in ops:
        for quoted, bare in _SYMBOL.findall(op):
            name = quoted if quoted else bare.lstrip('$')
            if name in functions:
                out.add(name)
    return out


def tree_registers(asm, functions, boundary, opaque=()):
    """The contract's registers (``'xmm3'``, ``'k1'``, ``'x87'``) that
    ``boundary`` and every function of ``functions`` it reaches may write,
    from LLVM's x86-64 assembly text ``asm``; None when some reachable
    function has no body there or is ``opaque`` (a stub standing in for the
    real code: fail closed, keep every register)."""
    functions, opaque = set(functions), set(opaque)
    bodies = function_bodies(asm, functions, ARCHES['x86_64'])
    seen, todo, out = set(), [boundary], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = bodies.get(name)
        if body is None or name in opaque:
            return None
        for mnem, ops in body:
            if mnem == ':label':
                continue
            out |= instruction_registers(mnem, ops)
            todo += _referenced(ops, functions) - seen
    return out
