"""Input conversion and validation shared by the Python-level kernel APIs.

Every public function converts its bytes-like arguments with :func:`as_u8` (a
zero-copy, read-only 1-D C-contiguous ``uint8`` view) and validates sizes and
integers with the helpers below, so that wrong input raises ``TypeError`` or
``ValueError`` naming the parameter instead of reaching a kernel.
"""
import operator
import sys

import numpy as np

if sys.byteorder != "little":  # pragma: no cover - the kernels view byte buffers as LE words
    raise ImportError("secretjit.kernels requires a little-endian host")

_BYTES_LIKE = (bytes, bytearray, memoryview)


def as_u8(value, name):
    """Return ``value`` as a read-only 1-D C-contiguous uint8 array without copying.

    Accepts bytes, bytearray, memoryview (C-contiguous, any format: the raw bytes
    are used) and 1-D C-contiguous ``uint8`` numpy arrays.
    """
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array, got dtype {value.dtype}")
        if value.ndim != 1:
            raise ValueError(f"{name} must be a 1-D uint8 array, got {value.ndim}-D")
        if not value.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous array")
        arr = value.view()
    elif isinstance(value, _BYTES_LIKE):
        mv = value if isinstance(value, memoryview) else memoryview(value)
        if not mv.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous buffer")
        if mv.format != "B" or mv.ndim != 1:
            mv = mv.cast("B")
        arr = np.frombuffer(mv, dtype=np.uint8)
    else:
        raise TypeError(
            f"{name} must be bytes, bytearray, memoryview or a uint8 numpy array, "
            f"got {type(value).__name__}")
    arr.flags.writeable = False   # one kernel signature for every input kind
    return arr


def as_u8_sized(value, name, size):
    """:func:`as_u8` plus an exact length check (``ValueError`` naming the size)."""
    arr = as_u8(value, name)
    if arr.size != size:
        raise ValueError(f"{name} must be {size} bytes, got {arr.size}")
    return arr


def as_int(value, name, lo, hi):
    """Return ``value`` as a Python int in ``[lo, hi]`` (TypeError / ValueError otherwise)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {v}")
    return v


def take_bytes(out, wipe_after=True):
    """Copy a result array into ``bytes`` and (by default) zero the array."""
    b = out.tobytes()
    if wipe_after:
        out[:] = 0
    return b
