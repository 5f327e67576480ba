"""The registers the erasure contract names, per architecture: one list.

The README's "The contract" states in prose what these tuples hold; the
probes (``secretjit.testing``), the machine-code audit and the stack-bound
analysis import them from here instead of spelling them out again.

x86-64 (System V): the call-clobbered general-purpose registers are rax, rcx,
rdx, rsi, rdi and r8-r11; rax carries numba's status code back to the
wrapper, so the contract zeroes the others.  Vector registers are xmm/ymm/zmm
0-15 (0-31 with AVX-512), the mask registers k0-k7 (AVX-512) and the x87
stack.

AArch64 (AAPCS64): x0-x18 are call-clobbered (x16/x17 are the intra-procedure
scratch registers, x18 the platform register, which Linux user code may use),
x0 carries the status, and x30 is the link register (written by every call).
v0-v31 are the vector registers (v8-v15 callee-saved in their low 64 bits),
z0-z31 and p0-p15 with SVE.
"""

X86_64_RETURN = 'rax'
X86_64_CALL_CLOBBERED = ('rax', 'rcx', 'rdx', 'rsi', 'rdi',
                         'r8', 'r9', 'r10', 'r11')
X86_64_ZEROED = tuple(r for r in X86_64_CALL_CLOBBERED if r != X86_64_RETURN)
X86_64_MASKS = tuple('k%d' % i for i in range(8))


def x86_64_vectors(avx512):
    """The xmm registers the contract zeroes (their ymm/zmm widths too)."""
    return tuple('xmm%d' % i for i in range(32 if avx512 else 16))


AARCH64_RETURN = 'x0'
AARCH64_LINK = 'x30'
AARCH64_CALL_CLOBBERED = tuple('x%d' % i for i in range(19))
AARCH64_ZEROED = tuple(r for r in AARCH64_CALL_CLOBBERED if r != AARCH64_RETURN)
AARCH64_VECTORS = tuple('v%d' % i for i in range(32))
AARCH64_CALLEE_SAVED_VECTORS = tuple('v%d' % i for i in range(8, 16))
AARCH64_SVE_VECTORS = tuple('z%d' % i for i in range(32))
AARCH64_SVE_PREDICATES = tuple('p%d' % i for i in range(16))
