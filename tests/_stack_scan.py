"""How deep one secret call wrote on the thread's secret stack (stack-bound tests)."""
import ctypes

import numpy as np

from secretjit import secretmem


def deepest_write(kernel, *args):
    """Bytes below the secret stack's top down to the deepest non-zero word
    one call ``kernel(*args)`` leaves, with the runtime's below-depth scrub
    off (the thread's secret stack must exist: call the kernel once first)."""
    lo, hi = secretmem.stack_range()
    was = secretmem.test_deep_scrub(False)
    try:
        ctypes.memset(lo, 0, hi - lo)
        kernel(*args)
        words = np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64)
    finally:
        secretmem.test_deep_scrub(was)
    nz = np.flatnonzero(words)
    return 0 if nz.size == 0 else (hi - lo) - 8 * int(nz[0])
