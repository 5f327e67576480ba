"""One kernel per channel through which nopython code can hold or move data.

Used by tests/test_channels.py (and its child, tests/_channel_child.py).
Written the way numba's documentation and tests write code.  Every kernel
derives fresh key words inside itself, ``derive(seed, kid, c)`` (SplitMix64
over the seed words, the kernel's id and the call number: the parent
recomputes them with :func:`expected_keys`), pushes them through one
channel, and returns or stores only a one-bit digest.

``ERASED``: kernels that compile under ``secret_jit``; a ``gcore`` dump of the
child after the calls must hold none of their key words (the plain-``@njit``
control must hold some).  ``REFUSED``: kernels ``secret_jit`` must refuse
with the named rule, at the line marked ``# refused here``.

Each entry: ``(name, function, argument builder, options)``; the builder
takes ``(seed, kid, c)`` and returns the argument tuple.
"""

import cmath
import ctypes
import math
import random

import numpy as np
from numba import njit, objmode, prange, typed, types

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
GOLD = np.uint64(0x9E3779B97F4A7C15)
S30, S27, S31 = np.uint64(30), np.uint64(27), np.uint64(31)
ONE = np.uint64(1)


@njit
def mix(z):
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


@njit
def derive(s, kid, c):
    """Four key words from the seed words ``s``, kernel id and call number."""
    x = s[0] ^ (np.uint64(kid) * GOLD) ^ (np.uint64(c) << np.uint64(20))
    k0 = mix(x ^ s[1])
    k1 = mix(k0 ^ s[2])
    k2 = mix(k1 ^ s[3])
    k3 = mix(k2 + s[0])
    return k0, k1, k2, k3


def _mix(z):
    m = (1 << 64) - 1
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    return z ^ (z >> 31)


def expected_keys(seed_words, kid, c):
    """The parent's copy of ``derive``: 32 key bytes."""
    m = (1 << 64) - 1
    s = [int(w) for w in seed_words]
    x = s[0] ^ ((kid * 0x9E3779B97F4A7C15) & m) ^ ((c << 20) & m)
    k0 = _mix(x ^ s[1])
    k1 = _mix(k0 ^ s[2])
    k2 = _mix(k1 ^ s[3])
    k3 = _mix((k2 + s[0]) & m)
    return b''.join(k.to_bytes(8, 'little') for k in (k0, k1, k2, k3))


# -- erased channels ----------------------------------------------------------

def reflected_list(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    words = []
    for w in (k0, k1, k2, k3):
        words.append(w)
        words.append(w ^ ONE)
    acc = np.uint64(0)
    for w in words:
        acc ^= w
    out[0] = acc & ONE


def list_of_tuples(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    pairs = [(k0, k1), (k2, k3)]
    pairs.append((k1, k0))
    acc = np.uint64(0)
    for a, b in pairs:
        acc += a ^ b
    out[0] = acc & ONE


def list_of_arrays(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    arrays = []
    for w in (k0, k1, k2, k3):
        a = np.empty(4, np.uint64)
        a[:] = w
        arrays.append(a)
    out[0] = arrays[2][1] & ONE


def set_of_words(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    seen = set()
    seen.add(k0)
    seen.add(k1)
    seen.add(k2)
    seen.add(k3)
    out[0] = np.uint64(len(seen)) & ONE


@njit
def _swap(t):
    return t[3], t[2], t[1], t[0]


def tuple_through_helper(s, kid, c, out):
    t = _swap(derive(s, kid, c))
    u = _swap(t)
    out[0] = (u[0] ^ t[0]) & ONE


REC = np.dtype([('hi', np.uint64), ('lo', np.uint64)])


def structured_records(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    recs = np.empty(2, dtype=REC)
    recs[0].hi = k0
    recs[0].lo = k1
    recs[1].hi = k2
    recs[1].lo = k3
    out[0] = (recs[1].lo ^ recs[0].hi) & ONE


def closure(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)

    def inner(x):
        return (x ^ k0) + k1

    acc = np.uint64(0)
    for w in (k2, k3):
        acc ^= inner(w)
    out[0] = acc & ONE


@njit
def _words(k0, k1, k2, k3):
    yield k0
    yield k1
    yield k2
    yield k3


def generator_consumed(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    acc = np.uint64(0)
    for w in _words(k0, k1, k2, k3):
        acc += w
    out[0] = acc & ONE


@njit
def _key_text(k0, k1, k2, k3):
    """The 32 key bytes as a str (one latin-1 character per byte: numba stores
    it one byte per character, so the key's bytes are the string's data)."""
    text = ''
    for w in (k0, k1, k2, k3):
        for i in range(8):
            text += chr(np.int64((w >> np.uint64(8 * i)) & np.uint64(255)))
    return text


def string_building(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    text = _key_text(k0, k1, k2, k3)
    out[0] = np.uint64(ord(text[5])) & ONE


def string_slicing(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    text = _key_text(k0, k1, k2, k3)
    part = text[8:] + text[:8]
    out[0] = np.uint64(len(part) + ord(part[0])) & ONE


def str_of_int(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    text = str(np.int64(k0 >> ONE)) + _key_text(k0, k1, k2, k3)
    out[0] = np.uint64(len(text)) & ONE


def hash_tuple(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(hash((k0, k1, k2, k3)) & 1)


def hash_str(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(hash(_key_text(k0, k1, k2, k3)) & 1)


def float_keys(seed_words, kid, c):
    """For the libm/cmath kernels the secret is float(k >> 11) of each key word."""
    key = expected_keys(seed_words, kid, c)
    return np.array([float(int.from_bytes(key[i:i + 8], 'little') >> 11)
                     for i in range(0, 32, 8)], np.float64).tobytes()


def libm(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    acc = 0.0
    for w in (k0, k1, k2, k3):
        x = float(w >> np.uint64(11))
        acc += math.sin(x) + math.log1p(x) + math.exp(-x) + math.atan2(x, 7.0)
    out[0] = np.uint64(acc > 0.0)


def cmath_functions(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    z = complex(float(k0 >> np.uint64(11)), float(k1 >> np.uint64(11)))
    w = cmath.exp(z * 1e-20) + cmath.sqrt(z)
    out[0] = np.uint64(w.real > 0.0)


def sort_words(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    a = np.empty(64, np.uint64)
    for i in range(64):
        a[i] = mix(k0 + np.uint64(i)) ^ k1
    a[10], a[20], a[30], a[40] = k0, k1, k2, k3
    b = np.sort(a)
    out[0] = b[0] & ONE


def argsort_words(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    a = np.empty(64, np.uint64)
    for i in range(64):
        a[i] = mix(k2 + np.uint64(i)) ^ k3
    a[10], a[20], a[30], a[40] = k0, k1, k2, k3
    idx = np.argsort(a)
    out[0] = np.uint64(idx[0]) & ONE


def unique_words(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    a = np.empty(16, np.uint64)
    for i in range(16):
        a[i] = (k0, k1, k2, k3)[i % 4]
    u = np.unique(a)
    out[0] = np.uint64(u.size) & ONE


def array_expressions(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    a = np.full(32, k0)
    b = np.full(32, k1)
    d = (a ^ b) + (a & b) * np.uint64(3)
    e = np.concatenate((d, a))
    out[0] = e[40] & ONE


def reshape_transpose(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    a = np.empty(16, np.uint64)
    for i in range(16):
        a[i] = (k0, k1, k2, k3)[i % 4] ^ np.uint64(i)
    m = a.reshape((4, 4)).T.copy()
    out[0] = m[1, 2] & ONE


def static_exception(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    buf = np.empty(4, np.uint64)
    buf[0] = k0
    buf[1] = k1
    buf[2] = k2
    buf[3] = k3
    if buf[1] != np.uint64(0):
        raise ValueError("the key does not fit")
    out[0] = buf[0] & ONE


def caught_exception(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    buf = np.empty(4, np.uint64)
    buf[:] = k2
    try:
        if buf[3] != np.uint64(0):
            raise KeyError("not here")
        out[0] = ONE
    except Exception:
        out[0] = buf[1] & ONE


def bounds_checked(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    buf = np.empty(4, np.uint64)
    buf[:] = k3
    out[0] = buf[np.int64(4 + (k0 & ONE))]      # IndexError with boundscheck


def zero_division(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    buf = np.empty(4, np.uint64)
    buf[:] = k1
    out[0] = buf[0] // (k2 & np.uint64(0))      # ZeroDivisionError


def returned_array(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    r = np.empty(8, np.uint64)
    r[0], r[1], r[2], r[3] = k0, k1, k2, k3
    r[4], r[5], r[6], r[7] = k3, k2, k1, k0
    out[0] = r[2] & ONE
    return r                                    # the caller drops it


def _build(seed, kid, c):
    return (seed, kid, c, np.zeros(1, np.uint64))


# name, function, argument builder, options, exception the call raises[,
# what the dump is searched for when it is not expected_keys]
ERASED = [
    ('reflected list', reflected_list, _build, {}, None),
    ('list of tuples', list_of_tuples, _build, {}, None),
    ('list of arrays', list_of_arrays, _build, {}, None),
    ('set', set_of_words, _build, {}, None),
    ('tuple through a helper', tuple_through_helper, _build, {}, None),
    ('structured records', structured_records, _build, {}, None),
    ('closure', closure, _build, {}, None),
    ('generator consumed inside', generator_consumed, _build, {}, None),
    ('str(int) + str', str_of_int, _build, {}, None),
    ('string building', string_building, _build, {}, None),
    ('string slicing', string_slicing, _build, {}, None),
    ('hash(tuple)', hash_tuple, _build, {}, None),
    ('hash(str)', hash_str, _build, {}, None),
    ('math/libm', libm, _build, {}, None, float_keys),
    ('cmath', cmath_functions, _build, {}, None, float_keys),
    ('np.sort', sort_words, _build, {}, None),
    ('np.argsort', argsort_words, _build, {}, None),
    ('np.unique', unique_words, _build, {}, None),
    ('array expressions', array_expressions, _build, {}, None),
    ('reshape/transpose copy', reshape_transpose, _build, {}, None),
    ('static exception', static_exception, _build, {}, ValueError),
    ('caught exception', caught_exception, _build, {}, None),
    ('boundscheck IndexError', bounds_checked, _build, {'boundscheck': True}, IndexError),
    ('ZeroDivisionError', zero_division, _build, {}, ZeroDivisionError),
    ('returned array, dropped', returned_array, _build, {}, None),
]


# Channels whose data stays in registers even under plain njit: measured with
# the poisoned-stack probe (secretjit.testing.probes.stack_after_call) and the core
# dump, the njit control leaves none of their key words in memory, so for
# them the dump's 0 shows nothing about memory; their registers are what
# tests/test_register_erasure.py covers.  Every other erased channel's
# control must leak.
REGISTER_ONLY = frozenset(['tuple through a helper', 'closure', 'generator consumed inside',
                           'hash(tuple)', 'math/libm', 'cmath'])


# -- refused channels ---------------------------------------------------------

def dynamic_exception(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    if k0 != np.uint64(0):
        raise ValueError("bad key", k0)  # refused here
    out[0] = k1 & ONE


@njit
def _check(k):
    if k == np.uint64(0):
        raise ValueError("zero word", k)  # refused here
    return k & ONE


def dynamic_exception_in_helper(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = _check(k0)


def typed_list(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    words = typed.List()  # refused here
    words.append(k0)
    out[0] = words[0] & ONE


def typed_dict(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    d = typed.Dict.empty(key_type=types.int64, value_type=types.uint64)  # refused here
    d[1] = k1
    out[0] = d[1] & ONE


def dict_literal(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    d = {0: k0, 1: k1}  # refused here
    out[0] = d[1] & ONE


def np_random_seed(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    np.random.seed(np.int64(k0 >> np.uint64(33)))  # refused here
    out[0] = np.uint64(np.random.randint(0, 2))


def np_random_draw(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(np.random.random() > 0.5)  # refused here


def python_random(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    random.seed(np.int64(k1 >> np.uint64(33)))  # refused here
    out[0] = np.uint64(random.random() > 0.5)


def generator_argument(rng, out):  # refused here
    out[0] = np.uint64(rng.random() > 0.5)


_libc = ctypes.CDLL(None)
c_labs = _libc.labs
c_labs.restype = ctypes.c_long
c_labs.argtypes = [ctypes.c_long]


def ctypes_call(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(c_labs(np.int64(k0 >> ONE)) & 1)  # refused here


try:
    import cffi
    _ffi = cffi.FFI()
    _ffi.cdef("long labs(long);")
    cffi_labs = _ffi.dlopen(None).labs
except ImportError:         # cffi is a test dependency; without it the case is skipped
    cffi_labs = None


def cffi_call(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(cffi_labs(np.int64(k0 >> ONE)) & 1)  # refused here


ext_labs = types.ExternalFunction('labs', types.int64(types.int64))


def external_function(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = np.uint64(ext_labs(np.int64(k1 >> ONE)) & 1)  # refused here


@njit
def _twice(x):
    return x + x


def function_argument(f, s, kid, c, out):  # refused here
    k0, k1, k2, k3 = derive(s, kid, c)
    out[0] = f(k0) & ONE


def linalg_norm(a, out):
    out[0] = np.uint64(np.linalg.norm(a) > 1.0)  # refused here


def matmul(a, out):
    out[0] = np.uint64((a @ a) > 1.0)  # refused here


def dot(a, out):
    out[0] = np.uint64(np.dot(a, a) > 1.0)  # refused here


def print_call(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    print(k0)  # refused here
    out[0] = k1 & ONE


def prange_loop(s, kid, c, out):
    acc = np.uint64(0)
    for i in prange(4):  # refused here
        acc += s[i]
    out[0] = acc & ONE


def objmode_block(s, kid, c, out):
    k0, k1, k2, k3 = derive(s, kid, c)
    with objmode(y='int64'):  # refused here
        y = 1
    out[0] = k0 & np.uint64(y)


def generator_kernel(s, kid, c):  # refused here
    k0, k1, k2, k3 = derive(s, kid, c)
    yield k0
    yield k1


def _floats(seed, kid, c):
    return (np.arange(4.0), np.zeros(1, np.uint64))


# name, function, argument builder, options, rule[, function holding the
# "# refused here" line when it is not the kernel itself]
REFUSED = [
    ('raise E(runtime value)', dynamic_exception, _build, {}, 'static-exceptions'),
    ('raise E(runtime value) in a helper', dynamic_exception_in_helper, _build, {},
     'static-exceptions', _check),
    ('numba.typed.List', typed_list, _build, {}, 'no-typed-containers'),
    ('numba.typed.Dict', typed_dict, _build, {}, 'no-typed-containers'),
    ('{k: v} literal (a typed dict)', dict_literal, _build, {}, 'no-typed-containers'),
    ('np.random.seed', np_random_seed, _build, {}, 'no-np-random'),
    ('np.random.random', np_random_draw, _build, {}, 'no-np-random'),
    ('random.seed/random', python_random, _build, {}, 'no-np-random'),
    ('np.random.Generator argument', generator_argument,
     lambda seed, kid, c: (np.random.default_rng(1), np.zeros(1, np.uint64)), {},
     'no-np-random'),
    ('ctypes function pointer', ctypes_call, _build, {}, 'no-foreign-calls'),
    ('cffi function pointer', cffi_call, _build, {}, 'no-foreign-calls'),
    ('types.ExternalFunction', external_function, _build, {}, 'no-foreign-calls'),
    ('@njit function as an argument', function_argument,
     lambda seed, kid, c: (_twice,) + _build(seed, kid, c), {}, 'no-function-arguments'),
    ('np.linalg.norm', linalg_norm, _floats, {}, 'no-foreign-calls'),
    ('@ (matmul)', matmul, _floats, {}, 'no-foreign-calls'),
    ('np.dot', dot, _floats, {}, 'no-foreign-calls'),
    ('print()', print_call, _build, {}, 'no-interpreter-calls'),
    ('prange', prange_loop, _build, {}, 'no-parallel'),
    ('objmode', objmode_block, _build, {}, 'no-objmode'),
    ('generator kernel', generator_kernel, lambda seed, kid, c: (seed, kid, c), {},
     'no-generators'),
]
