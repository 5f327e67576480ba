"""secretjit: a numba JIT for kernels whose secrets must not outlive the call.

``@secret_jit`` compiles numba nopython kernels so that, when a call returns,
the registers it used are zero, the stack its call tree wrote is zero, and
every buffer it allocated is wiped when freed.  See :func:`secret_jit` for the
exact contract and its limitations.
"""

import llvmlite.binding as _ll

# Inline asm in the secret passes needs LLVM's assembly parser, which numba
# does not initialize; without it LLVM aborts the process.
_ll.initialize_native_target()
_ll.initialize_native_asmprinter()
_ll.initialize_native_asmparser()

from .errors import ConstantTimeWarning, SecretPolicyError  # noqa: E402
from .intrinsics import declassify, enabled, wipe  # noqa: E402
from .target import SecretDispatcher  # noqa: E402
from .decorators import secret_jit  # noqa: E402
from .secretmem import memory_status  # noqa: E402

__version__ = '0.1.0'
__all__ = ['ConstantTimeWarning', 'SecretDispatcher', 'SecretPolicyError',
           'declassify', 'enabled',
           'memory_status', 'random_bytes', 'secret_jit', 'wipe', '__version__']
from .secretbuf import *  # noqa: E402,F401,F403  secret buffers (issue 17)
__all__ += secretbuf.__all__  # noqa: F405


def __getattr__(name):
    # random_bytes registers libc symbols on import: load it on first use.
    if name == 'random_bytes':
        from .kernels._random import random_bytes
        return random_bytes
    raise AttributeError("module 'secretjit' has no attribute %r" % name)
