"""Evidence for secret kernels: erasure assertions and the detectors behind them.

``assert_erased(kernel, *args)`` runs a ``@secret_jit`` kernel and its
plain-numba control under the stack, register and heap detectors
(:mod:`secretjit.testing.erasure`); ``sample_args`` declares the arguments
``python -m secretjit verify`` calls a kernel with.  The probes the
detectors are built on are in :mod:`secretjit.testing.probes` (their
machine code in ``probe_engine``, the test intrinsics in ``intrinsics``),
the heap detector's allocator hook in :mod:`secretjit.testing.heaplog`.
"""

from .erasure import MECHANISMS, Report, assert_erased, check_erased
from .samples import sample_args, samples_of

__all__ = ['MECHANISMS', 'Report', 'assert_erased', 'check_erased',
           'sample_args', 'samples_of']
