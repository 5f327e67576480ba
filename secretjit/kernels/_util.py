"""Input conversion and validation shared by the Python-level kernel APIs.

The public functions call buffer-typed API kernels through :class:`Entry`
(the compiled overloads' entry points, no dispatch): exact ``bytes`` arguments
pass as they are to the ``BytesArg`` overload (``Entry.fast``), other
bytes-like arguments go through :func:`as_buf` (validated, never copied) to the
buffer overload (``Entry.call``), and the result is written by the kernel
straight into a fresh ``bytes`` object from :func:`new_bytes`.  :func:`as_u8` (a zero-copy,
read-only 1-D C-contiguous ``uint8`` array view) serves callers of the
array-typed entry kernels.  Sizes and integers are validated with the helpers
below, so that wrong input raises ``TypeError`` or ``ValueError`` naming the
parameter instead of reaching a kernel.
"""
import ctypes
import operator
import sys

import numpy as np
from numba import types
from numba.core.caching import FunctionCache

if sys.byteorder != "little":  # pragma: no cover - the kernels view byte buffers as LE words
    raise ImportError("secretjit.kernels requires a little-endian host")

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _check_u8_array(value, name):
    """The errors for a numpy argument that is not a 1-D C-contiguous uint8 array."""
    if value.dtype != np.uint8:
        raise TypeError(f"{name} must be a uint8 array, got dtype {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must be a 1-D uint8 array, got {value.ndim}-D")
    if not value.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous array")


def as_u8(value, name):
    """Return ``value`` as a read-only 1-D C-contiguous uint8 array without copying.

    Accepts bytes, bytearray, memoryview (C-contiguous, any format: the raw bytes
    are used) and 1-D C-contiguous ``uint8`` numpy arrays.
    """
    if isinstance(value, np.ndarray):
        _check_u8_array(value, name)
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


# -- the API kernels' calling convention ---------------------------------------
#
# An API kernel takes its byte arguments as numba ``Buffer`` values: numba's
# wrapper unboxes any object with the buffer protocol through
# ``PyObject_GetBuffer`` (a few ns, no numpy array object), and the kernel views
# them with ``np.frombuffer``, which gives exactly the array types the entry
# kernels are compiled for.  Inputs are read-only buffers (``IN``); the output
# (``OUT``) is typed as a writable buffer but is always a fresh ``bytes`` object
# from :func:`new_bytes`: nothing else holds a reference to it before it is
# returned, which is how CPython's own C code fills the ``bytes`` it creates.
# The wrapper copies ``ndim`` shapes and strides of the exported buffer into a
# structure that holds one of each, and ``np.frombuffer`` assumes contiguous
# bytes, so every object passed must be a 1-D, C-contiguous buffer of single
# bytes: bytes, or what :func:`as_buf` returns.  Exact ``bytes`` objects go to a
# second overload instead (``Entry.fast``, ``BytesArg`` types), which reads them
# without the buffer protocol.

IN = types.Buffer(types.uint8, 1, "C", readonly=True)
OUT = types.Buffer(types.uint8, 1, "C")

ZERO = b"\0"      # ZERO * n: a fresh zeroed bytes object for n >= 2 (n == 1 returns ZERO itself)
SMALL = 4096     # below this, bytes(n) (zero-filled) is cheaper than a ctypes call
uninit_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize    # uninit_bytes(None, n)
uninit_bytes.restype = ctypes.py_object
uninit_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def new_bytes(n):
    """A fresh ``bytes`` object of ``n`` bytes for a kernel to fill (no extra pass when large).

    ``n`` > 0 gives a new object every time (CPython shares only the empty and the
    one-character objects made from existing data); ``n`` == 0 gives the shared
    empty ``bytes``, which a kernel never writes to.  The hot API functions
    inline this (``bytes(n) if n < SMALL else uninit_bytes(None, n)``).
    """
    if n < SMALL:
        return bytes(n)                 # calloc'd: the memset is shorter than the call below
    return uninit_bytes(None, n)        # uninitialised: the kernel overwrites every byte


def as_buf(value, name):
    """Validate a bytes-like argument for an ``IN`` parameter and return it, never copied.

    Same accepted types and errors as :func:`as_u8`; the result is the object
    itself (bytes, bytearray, a uint8 array) or a 1-D byte view (memoryview).
    """
    if isinstance(value, (bytes, bytearray)):
        return value
    if isinstance(value, memoryview):
        if not value.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous buffer")
        if value.format != "B" or value.ndim != 1:
            value = value.cast("B")
        return value
    if isinstance(value, np.ndarray):
        _check_u8_array(value, name)
        return value
    raise TypeError(
        f"{name} must be bytes, bytearray, memoryview or a uint8 numpy array, "
        f"got {type(value).__name__}")


def as_buf_sized(value, name, size):
    """:func:`as_buf` plus an exact length check (``ValueError`` naming the size)."""
    if type(value) is not bytes:
        value = as_buf(value, name)
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    return value


def body_of(kernel):
    """An entry kernel's Python function as a plain helper, for API kernels to call.

    Secret kernels compile it again for the secret target (one twin per helper), so
    the API kernel runs the entry kernel's exact code inside its own boundary;
    ``inline="always"`` saves a call that passes every array's fields (~50 ns).
    """
    from numba import njit
    return njit(getattr(kernel, "py_func", kernel), inline="always")


_API_SOURCE = "def {name}({params}):\n    return _body({args})\n"


def api_entry(kernel, name, *argtypes):
    """The :class:`Entry` of an API kernel generated from the entry kernel ``kernel``.

    The API kernel ``name`` (``Entry.kernel``) has the entry kernel's parameters,
    ``secret=`` declaration, constant-time mode and ``cache``/``nogil`` options; it
    views each ``IN``/``OUT`` argument with ``np.frombuffer`` (exactly the uint8
    array type the entry kernel is compiled for), passes the others as they are, and
    runs the entry kernel's body (:func:`body_of`) inside its own secret boundary.
    Its code object names the entry kernel's file and ``def`` line, so numba's
    cache keeps it next to the entry kernel and tracebacks point there.
    """
    import inspect
    from ..decorators import secret_jit
    func = getattr(kernel, "py_func", kernel)
    params = list(inspect.signature(func).parameters)
    if len(params) != len(argtypes):
        raise TypeError(f"api_entry({func.__qualname__}): {len(argtypes)} argument types "
                        f"for {len(params)} parameters ({', '.join(params)})")
    args = [f"_frombuffer({p}, _u8)" if t is IN or t is OUT else p
            for p, t in zip(params, argtypes)]
    code = func.__code__
    src = "\n" * (code.co_firstlineno - 1) + _API_SOURCE.format(
        name=name, params=", ".join(params), args=", ".join(args))
    scope = {"__name__": func.__module__, "_body": body_of(kernel),
             "_frombuffer": np.frombuffer, "_u8": np.uint8}
    exec(compile(src, code.co_filename, "exec"), scope)
    api = scope[name]
    cache = getattr(kernel, "_cache", None)         # none with NUMBA_DISABLE_JIT=1
    opts = {"cache": cache is None or isinstance(cache, FunctionCache),
            "nogil": getattr(kernel, "targetoptions", {}).get("nogil", True)}
    policy = getattr(kernel, "_ct_policy", None)
    if policy is not None:
        opts.update(secret=policy.secret, constant_time=policy.mode)
    return Entry(secret_jit(**opts)(api), *argtypes)


class Entry:
    """Call one overload of an API kernel directly: ``Entry(kernel, IN, IN, OUT)``.

    ``call(...)`` runs the overload for buffer arguments (``IN``/``OUT``: bytes,
    bytearray, what :func:`as_buf` returns); ``fast(...)`` the overload for exact
    ``bytes`` arguments (``IN_BYTES``/``OUT_BYTES``, unboxed without the buffer
    protocol, see :mod:`secretjit.kernels._bytesarg`).  The first call of each
    compiles (or loads from the cache) that one signature; later calls go to its
    entry point, skipping numba's type dispatch, which for non-array arguments
    falls back to Python-level ``typeof``.  The entry points do not check argument
    types: callers pass only what the signature says (exact ``bytes`` to
    ``fast``, fresh :func:`new_bytes` objects as outputs), Python ints for integer
    parameters.
    """

    __slots__ = ("kernel", "sig", "fast_sig", "call", "fast")

    def __init__(self, kernel, *argtypes):
        from ._bytesarg import AVAILABLE, IN_BYTES, OUT_BYTES
        self.kernel = kernel
        self.sig = tuple(argtypes)
        self.fast_sig = tuple(IN_BYTES if t is IN else OUT_BYTES if t is OUT else t
                              for t in argtypes) if AVAILABLE else self.sig
        self.call = self._first_call
        self.fast = self._first_fast

    def _compile(self, sig):
        if hasattr(self.kernel, "compile"):
            return self.kernel.compile(sig)
        return self._python_call                # NUMBA_DISABLE_JIT=1: the plain function

    def _first_call(self, *args):
        self.call = self._compile(self.sig)
        return self.call(*args)

    def _first_fast(self, *args):
        self.fast = self._compile(self.fast_sig)
        return self.fast(*args)

    def _python_call(self, *args):
        conv = []
        outs = []
        for ty, a in zip(self.sig, args):      # (self.sig: the same positions as fast_sig)
            if ty is OUT:
                o = np.zeros(len(a), np.uint8)
                outs.append((a, o))
                conv.append(o)
            elif ty is IN:
                conv.append(np.frombuffer(a, np.uint8))
            else:
                conv.append(a)
        r = self.kernel(*conv)
        for a, o in outs:
            if len(a):
                ctypes.memmove(ctypes.cast(id(a) + bytes.__basicsize__ - 1, ctypes.c_void_p),
                               o.ctypes.data, len(a))
        return r
