"""Measure the stack the external C functions of a secret call tree write.

The stack bound trusts a measured allowance for each external C function
(:mod:`secretjit.stack_bound.allowances`).  The functions here call each of
them with :func:`secretjit.testing.probes.c_call_depth` (a poisoned stack,
then the deepest overwritten word) on arguments that drive it down its slow
paths: glibc's ``malloc``/``free`` on every size class with bins filled and
consolidated, and numba's C helpers (``_helperlib``: typed-list and typed-dict
storage through resizes, the random state's regeneration, array reshapes of
32 dimensions, the math helpers on huge, subnormal and NaN arguments).  Used
by ``tests/test_allowance_calibration.py`` and, on AArch64 under qemu, by
``tests/test_aarch64.py``: one measurement for both architectures.
"""

import ctypes
import math
import struct

import numpy as np

from . import probes

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_NAN, _SUB, _HUGE = float('nan'), 5e-324, 1e300


def symbol(lib, name):
    """Address of ``name`` in the ctypes library ``lib``."""
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def malloc_free_depths(sizes, rounds):
    """Depths of ``rounds`` mallocs of each size, then of freeing them all."""
    depths = []
    for size in sizes:
        blocks = []
        for _ in range(rounds):        # fill bins, then free them all (consolidation)
            depths.append(probes.c_call_depth(symbol(_libc, 'malloc'), [size]))
            blocks.append(_libc.malloc(size))
        for b in blocks:
            depths.append(probes.c_call_depth(symbol(_libc, 'free'), [b]))
    return depths


def _helper(name):
    from numba import _helperlib
    return _helperlib.c_helpers[name]


class _Worst(dict):
    """``{numba C symbol: deepest write measured}``."""

    def call(self, name, ints=(), floats=()):
        d = probes.c_call_depth(_helper(name), ints, floats)
        key = 'numba_' + name
        self[key] = max(self.get(key, 0), d)
        return d


def _float_bits(x):
    """A double whose low 32 bits are the float ``x`` (an xmm/s-register float)."""
    return struct.unpack('<d', struct.pack('<fI', x, 0))[0]


def _ptr(arr):
    return arr.ctypes.data


def _math(w):
    out = np.zeros(4, np.float64)
    exp = np.zeros(1, np.int32)
    args = (0.5, -2.5, 171.5, 1e-310, _SUB, _HUGE, -_HUGE, _NAN, 0.0, -0.0,
            math.inf, 1e22, 3.0)
    for x in args:
        for name in ('gamma', 'lgamma', 'erf', 'erfc'):
            w.call(name, floats=[x])
            w.call(name + 'f', floats=[_float_bits(min(max(x, -3e38), 3e38))])
        w.call('frexp', [_ptr(exp)], [x])
        w.call('frexpf', [_ptr(exp)], [_float_bits(min(max(x, -3e38), 3e38))])
        for e in (0, 1, -1074, 2000, -2000):
            w.call('ldexp', [e & 0xFFFFFFFF], [x])
            w.call('ldexpf', [e & 0xFFFFFFFF], [_float_bits(1.5)])
        for y in (x, 0.0, math.inf, _NAN, 1e-320):
            w.call('nextafter', floats=[x, y])
            w.call('nextafterf', floats=[_float_bits(1.5), _float_bits(2.5)])
        w.call('fptoui', floats=[abs(x) if x == x else 1.0])
        w.call('fptouif', floats=[_float_bits(1e19)])
        w.call('round', floats=[x])
        w.call('roundf', floats=[_float_bits(2.5)])
    for a, b in ((3, 7), (-9, 2), (1 << 62, -3), (5, 1)):
        for name in ('sdiv', 'srem', 'udiv', 'urem'):
            w.call(name, [a & (2**64 - 1), b & (2**64 - 1)])
    for za, zb in ((0.3 + 0.4j, 2.5 - 1j), (1e300 + 1e300j, 1e10 + 0j),
                   (0j, -1 + 0j), (1e-310 + 0j, 0.5 + 0.5j), (2 + 0j, 3 + 0j),
                   (complex(_NAN, 1), 2j), (-1 + 0j, 0.5 + 0j)):
        a = np.array([za], np.complex128)
        b = np.array([zb], np.complex128)
        w.call('cpow', [_ptr(a), _ptr(b), _ptr(out)])
        with np.errstate(over='ignore'):        # 1e300 -> inf in complex64
            af, bf = a.astype(np.complex64), b.astype(np.complex64)
        w.call('cpowf', [_ptr(af), _ptr(bf), _ptr(out)])


def _reshape(w):
    itemsize = 8
    for nd, newnd in ((1, 2), (2, 1), (3, 3), (32, 1), (1, 32), (32, 32), (0, 1)):
        dims = np.full(max(nd, 1), 2, np.intp)
        strides = np.array([itemsize * 2 ** i for i in range(max(nd, 1))][::-1], np.intp)
        newdims = np.full(max(newnd, 1), 2 ** max(nd - newnd + 1, 1), np.intp)
        newdims[:] = 1
        newdims[0] = int(np.prod(dims[:nd])) if nd else 1
        newstrides = np.zeros(max(newnd, 1), np.intp)
        for f_order in (0, 1):
            w.call('attempt_nocopy_reshape',
                   [nd, _ptr(dims), _ptr(strides), newnd, _ptr(newdims),
                    _ptr(newstrides), itemsize, f_order])
        strides[::2] *= 3                 # non-contiguous: the copy path
        w.call('attempt_nocopy_reshape',
               [nd, _ptr(dims), _ptr(strides), newnd, _ptr(newdims),
                _ptr(newstrides), itemsize, 0])


def _list(w):
    out = np.zeros(1, np.uintp)
    table = np.zeros(8, np.uintp)           # no incref/decref callbacks
    item = np.arange(4, dtype=np.uint64)
    buf = np.zeros(4, np.uint64)
    it = np.zeros(16, np.uint64)
    itemp = np.zeros(1, np.uintp)
    for size in (8, 32):
        w.call('list_new', [_ptr(out), size, 0])
        lp = int(out[0])
        w.call('list_set_method_table', [lp, _ptr(table)])
        for i in range(3000):               # growth: many reallocations
            w.call('list_append', [lp, _ptr(item)])
        for name in ('list_base_ptr', 'list_size_address', 'list_length',
                     'list_allocated', 'list_is_mutable'):
            w.call(name, [lp])
        w.call('list_set_is_mutable', [lp, 1])
        for i in (0, 5, 2999):
            w.call('list_setitem', [lp, i, _ptr(item)])
            w.call('list_getitem', [lp, i, _ptr(buf)])
        w.call('list_iter_sizeof')
        w.call('list_iter', [_ptr(it), lp])
        for _ in range(3):
            w.call('list_iter_next', [_ptr(it), _ptr(itemp)])
        for _ in range(200):
            w.call('list_delitem', [lp, 0])
        w.call('list_delete_slice', [lp, 0, 2000, 3])   # shrinks: realloc
        w.call('list_delete_slice', [lp, 0, 2000, 1])
        w.call('list_free', [lp])


def _dict(w):
    out = np.zeros(1, np.uintp)
    table = np.zeros(8, np.uintp)           # memcmp keys, no callbacks
    key = np.zeros(1, np.uint64)
    val = np.zeros(2, np.uint64)
    old = np.zeros(2, np.uint64)
    it = np.zeros(16, np.uint64)
    kp, vp = np.zeros(1, np.uintp), np.zeros(1, np.uintp)
    for n_keys in (1, 1000):
        w.call('dict_new_sized', [_ptr(out), n_keys, 8, 16])
        d = int(out[0])
        w.call('dict_set_method_table', [d, _ptr(table)])
        for i in range(3000):               # resizes
            key[0] = i * 0x9E3779B97F4A7C15 % 2**64
            w.call('dict_insert', [d, _ptr(key), i * 31, _ptr(val), _ptr(old)])
            w.call('dict_lookup', [d, _ptr(key), i * 31, _ptr(old)])
        w.call('dict_length', [d])
        w.call('dict_iter_sizeof')
        w.call('dict_iter', [_ptr(it), d])
        for _ in range(3):
            w.call('dict_iter_next', [_ptr(it), _ptr(kp), _ptr(vp)])
        for i in range(100):
            key[0] = i * 0x9E3779B97F4A7C15 % 2**64
            ix = _helper_call_lookup(d, key, i * 31, old)
            w.call('dict_delitem', [d, i * 31, ix])
        for _ in range(50):
            w.call('dict_popitem', [d, _ptr(key), _ptr(val)])
        w.call('dict_free', [d])


def _helper_call_lookup(d, key, h, old):
    fn = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p,
                          ctypes.c_ssize_t, ctypes.c_void_p)(_helper('dict_lookup'))
    return fn(d, _ptr(key), h, _ptr(old))


def _random(w):
    # (numba_get_*_random_state are not measured: on first use they seed
    # the state through the interpreter, and the stack bound refuses them)
    from numba import _helperlib
    state = _helperlib.rnd_get_np_state_ptr()
    for seed in (0, 1, 0xFFFFFFFF):
        w.call('rnd_init', [state, seed])
        w.call('rnd_shuffle', [state])      # regenerates all 624 words


def _unicode(w):
    out = np.zeros(8, np.int32)
    small = np.zeros(4, np.uint8)
    flags = np.zeros(2, np.uint16)
    for code in (0x41, 0xDF, 0x130, 0x1E9E, 0x10400, 0x10FFFF, 0xFB03):
        w.call('gettyperecord', [code, _ptr(out), _ptr(out[1:]), _ptr(out[2:]),
                                 _ptr(small), _ptr(small[1:]), _ptr(flags)])
    for code in (0, 5, 100):
        w.call('get_PyUnicode_ExtendedCase', [code])


def numba_helper_depths():
    """``{numba C helper: deepest write measured}`` over their slow paths."""
    w = _Worst()
    for family in (_math, _reshape, _list, _dict, _random, _unicode):
        family(w)
    return dict(w)
