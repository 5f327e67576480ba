"""secretjit._firstline: numba's def-line lookup with one parse per file gives numba's answers."""

import importlib
import inspect
import os

from numba.core import lowering
from numba.core.dispatcher import Dispatcher
from numba.misc import firstlinefinder

import secretjit  # noqa: F401  (installs the lookup)
from secretjit import _firstline

KERNEL_MODULES = ('aead', 'blake2b', 'chacha20', 'hmac', 'poly1305', 'sha256', 'x25519',
                  '_simd', '_poly_simd', '_poly_ifma', '_blake2b_simd', '_util', '_bytesarg')


def _functions(mod):
    for obj in vars(mod).values():
        if isinstance(obj, Dispatcher):
            obj = obj.py_func
        if inspect.isfunction(obj) and obj.__module__ == mod.__name__:
            yield obj


def test_installed_in_numbas_lowering():
    assert lowering.get_func_body_first_lineno is _firstline.get_func_body_first_lineno


def test_same_lines_as_numba_for_every_vetted_kernel_function():
    n = 0
    for name in KERNEL_MODULES:
        mod = importlib.import_module('secretjit.kernels.' + name)
        for fn in _functions(mod):
            assert (_firstline.get_func_body_first_lineno(fn)
                    == firstlinefinder.get_func_body_first_lineno(fn)), fn
            n += 1
    assert n > 50, n


def test_an_edited_file_is_parsed_again(tmp_path):
    path = tmp_path / 'edited_mod.py'
    path.write_text('def f(x):\n    return x\n')
    ns = {}
    exec(compile(path.read_text(), str(path), 'exec'), ns)
    assert _firstline.get_func_body_first_lineno(ns['f']) == 2
    path.write_text('\n\n\ndef f(x):\n    """doc"""\n    return x\n')
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))   # a new mtime
    ns = {}
    exec(compile(path.read_text(), str(path), 'exec'), ns)
    assert _firstline.get_func_body_first_lineno(ns['f']) == 6 \
        == firstlinefinder.get_func_body_first_lineno(ns['f'])


def test_unreadable_source_falls_back_to_numba():
    ns = {}
    exec(compile('def g(x):\n    return x\n', '<no file>', 'exec'), ns)
    assert _firstline.get_func_body_first_lineno(ns['g']) \
        == firstlinefinder.get_func_body_first_lineno(ns['g'])
