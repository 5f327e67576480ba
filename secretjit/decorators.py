"""``secret_jit``: numba's ``@njit`` for kernels whose secrets must not outlive them."""

from numba.core.decorators import jit

from . import policy
from .target import TARGET


def secret_jit(*args, **kws):
    """Compile a numba nopython kernel whose registers, stack and heap are erased.

    A drop-in for ``numba.njit``: ``@secret_jit``, ``@secret_jit(sig)``,
    ``@secret_jit([sig, ...], **options)`` with numba's options (``nogil``,
    ``cache``, ``fastmath``, ``boundscheck``, ``error_model``, ...).  The
    dispatcher it returns is numba's (``signatures``, ``overloads``,
    ``inspect_llvm``, ``inspect_asm`` showing the code after the secret
    passes) plus ``stack_bound()`` and ``pass_reports()``.

    What a secret call guarantees when it returns (registers, stack, heap,
    the secret memory it runs in) and its limitations are stated once, in
    the README's section "The contract" (README.md, "## The contract").
    Policy violations (recursion, variable-sized frames, ``parallel=True``,
    object mode, calls into the interpreter, jitclass, a secret kernel called
    from plain numba code, a secret generator called from Python) fail at
    compile time with :class:`~secretjit.SecretPolicyError`.
    """
    policy.check_options(kws)
    if kws.pop('_target', TARGET) != TARGET:
        raise TypeError("secret_jit always compiles for the secret target; "
                        "drop the _target option")
    return jit(*args, _target=TARGET, **kws)
