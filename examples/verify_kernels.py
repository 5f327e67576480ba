"""Sample arguments for ``python -m secretjit verify examples/verify_kernels.py``.

Declare the arguments next to each kernel: ``sample_args(kernel, *args)``
(or a callable returning them), or a module-level ``__secretjit_samples__``
dict mapping kernel names to argument tuples.
"""

import numpy as np

from secretjit import secret_jit
from secretjit.demo import derive_session
from secretjit.kernels import chacha20
from secretjit.testing import sample_args

derive = secret_jit(derive_session)
sample_args(derive, np.uint64(0x5EC2E7D00DF00D42))

chacha20_xor = chacha20.chacha20_xor
__secretjit_samples__ = {
    'chacha20_xor': lambda: (np.arange(32, dtype=np.uint8), np.arange(12, dtype=np.uint8),
                             np.uint32(1), np.zeros(200, np.uint8), np.empty(200, np.uint8)),
}


@secret_jit
def no_samples(x):
    """Listed by verify as having no sample arguments."""
    return x + 1
