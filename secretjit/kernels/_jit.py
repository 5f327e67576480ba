"""Decorators for the vetted kernels: ``secret_kernel`` for entry kernels, ``wipe`` for scratch.

Entry kernels (the ones the Python API calls) are decorated with
``secret_kernel``; internal helpers use plain ``numba.njit`` and are
recompiled for the secret target when a secret kernel calls them.
"""

from secretjit.decorators import secret_jit
from secretjit.intrinsics import declassify, wipe


def secret_kernel(*args, **kwargs):
    """Decorate an entry kernel (same call forms as ``numba.njit``)."""
    return secret_jit(*args, **kwargs)


__all__ = ["declassify", "secret_kernel", "wipe"]
