"""Build the plain-@njit control of a kernel whose call tree uses secret kernels.

A plain function cannot call a secret kernel (policy ``no-secret-from-plain``),
so the control recompiles the whole tree: every secret kernel a function's
globals name is replaced by ``njit`` of its Python source, recursively.
"""

import types

from numba import njit
from numba.core.dispatcher import Dispatcher

from .. import SecretDispatcher, wipe

_cache = {}


@njit
def _no_wipe(array):
    pass


def plain_function(py_func, keep_wipe=True):
    """``py_func`` with every secret kernel in its globals made plain.

    With ``keep_wipe=False`` calls to ``secretjit.wipe`` become no-ops too:
    the code as plain numba runs it without any of secretjit's help.
    """
    key = (py_func, keep_wipe)
    if key in _cache:
        return _cache[key]
    names = py_func.__code__.co_names
    globs = dict(py_func.__globals__)
    for name in names:
        value = globs.get(name)
        if value is wipe and not keep_wipe:
            globs[name] = _no_wipe
        elif isinstance(value, SecretDispatcher):
            globs[name] = plain_kernel(value, keep_wipe)
        elif isinstance(value, Dispatcher) and not isinstance(value, SecretDispatcher):
            inner = plain_function(value.py_func, keep_wipe)
            if inner is not value.py_func:
                globs[name] = njit(inner)
    if all(globs.get(n) is py_func.__globals__.get(n) for n in names):
        out = py_func
    else:
        out = types.FunctionType(py_func.__code__, globs, py_func.__name__,
                                 py_func.__defaults__, py_func.__closure__)
        out.__qualname__ = py_func.__qualname__
    _cache[key] = out
    return out


def plain_kernel(dispatcher, keep_wipe=True):
    """The plain @njit control of a secret kernel and its whole call tree."""
    return njit(plain_function(dispatcher.py_func, keep_wipe))
