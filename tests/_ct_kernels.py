"""Kernels for the constant-time check: must-fire and must-not-fire cases.

Plain Python functions; the tests compile each with
``secret_jit(secret=SECRET[name])`` and with ``njit``.  A must-fire
kernel marks the line the check must name with ``# CT: <kind>``; a
must-not-fire kernel must compile and give njit's result.
"""

import inspect
import re

import numpy as np
from numba import njit

from secretjit import declassify

SBOX = np.array([(i * 7 + 3) % 256 for i in range(256)], dtype=np.uint8)


# -- must not fire ------------------------------------------------------------

def or_accumulated_compare(key, tag):
    acc = np.uint8(0)
    for i in range(key.size):
        acc |= key[i] ^ tag[i]
    return acc == 0                     # returned, not branched on


def mask_select(a, b, bits):
    out = np.empty(a.size, np.uint64)
    for i in range(a.size):
        m = np.uint64(0) - (bits[i] & np.uint64(1))
        out[i] = (a[i] & m) | (b[i] & ~m)
    return out


def public_index_and_bounds(key, x):
    acc = np.uint64(0)
    for i in range(x.size):
        acc ^= key[i % 4] * x[i]
    return acc


def rotations_and_multiplications(key):
    h = np.uint64(0x9E3779B97F4A7C15)
    for i in range(key.size):
        v = np.uint64(key[i])
        h = (h ^ v) * np.uint64(0x100000001B3)
        h = (h << np.uint64(13)) | (h >> np.uint64(51))
    return h


def branch_on_public_scalar(key, rounds):
    acc = np.uint64(1)
    for i in range(key.size):
        acc = acc * np.uint64(3) + np.uint64(key[i])
    if rounds > 2:                      # rounds is public
        acc ^= np.uint64(rounds)
    return acc


def branch_on_declassified(key, tag, out):
    acc = np.uint8(0)
    for i in range(key.size):
        acc |= key[i] ^ tag[i]
    if declassify(acc == 0):            # the verdict is public
        for i in range(out.size):
            out[i] = key[i]
    else:
        out[:] = 0
    return acc == 0


# -- must fire ----------------------------------------------------------------

def early_exit_compare(key, tag):
    for i in range(key.size):
        if key[i] != tag[i]:            # CT: branch
            return False
    return True


def sbox_lookup(key, out):
    for i in range(key.size):
        out[i] = SBOX[key[i]]           # CT: secret-index


def scratch_array_taint(key):
    tmp = np.empty(key.size, np.uint8)
    tmp[:] = key
    for i in range(tmp.size):
        if tmp[i] == 0:                 # CT: branch
            return i
    return -1


def loop_invariant_mask_select(a, b, bit):
    # The textbook swap mask, but -O3 unswitches the loop on it: the
    # optimized code branches on the secret bit.
    m = np.uint64(0) - np.uint64(bit & 1)   # CT: branch
    out = np.empty(a.size, np.uint64)
    for i in range(a.size):
        out[i] = (a[i] & m) | (b[i] & ~m)
    return out


def secret_division(key, d):
    return np.uint64(key[0]) // d       # CT: division


def secret_trip_count(key):
    acc = 0
    for i in range(key[0]):             # CT: branch
        acc += i
    return acc


@njit
def _leaky_helper(x):
    return SBOX[x]                      # CT: secret-index


def violation_in_helper(key):
    s = np.uint8(0)
    for i in range(key.size):
        s ^= _leaky_helper(key[i])
    return s


# Not checked (no secret=): the select x86's cmov converter makes a branch
# of without the hardened backend (tests/test_constant_time.py, the AOT tests).
def select_loop(a, b, s):
    acc = np.uint64(0)
    for i in range(a.size):
        va = a[i]
        vb = b[i]
        acc += va if (va >> s) & np.uint64(1) else vb
    return acc


SECRET = {
    'or_accumulated_compare': ('key',),
    'mask_select': ('a', 'b', 'bits'),
    'loop_invariant_mask_select': ('a', 'b', 'bit'),
    'public_index_and_bounds': ('key',),
    'rotations_and_multiplications': ('key',),
    'branch_on_public_scalar': ('key',),
    'branch_on_declassified': ('key',),
    'early_exit_compare': ('key',),
    'sbox_lookup': ('key',),
    'scratch_array_taint': ('key',),
    'secret_division': ('key',),
    'secret_trip_count': ('key',),
    'violation_in_helper': ('key',),
}

K = np.arange(16, dtype=np.uint8) * np.uint8(37)
ARGS = {
    'or_accumulated_compare': lambda: (K.copy(), K.copy()),
    'mask_select': lambda: (np.arange(8, dtype=np.uint64),
                            np.arange(8, dtype=np.uint64) * np.uint64(5),
                            np.arange(8, dtype=np.uint64) * np.uint64(3)),
    'loop_invariant_mask_select': lambda: (np.arange(8, dtype=np.uint64),
                                           np.arange(8, dtype=np.uint64) * np.uint64(5), 1),
    'public_index_and_bounds': lambda: (np.arange(4, dtype=np.uint64) + np.uint64(3),
                                        np.arange(10, dtype=np.uint64)),
    'rotations_and_multiplications': lambda: (K.copy(),),
    'branch_on_public_scalar': lambda: (K.copy(), 5),
    'branch_on_declassified': lambda: (K.copy(), K.copy(), np.empty(16, np.uint8)),
    'early_exit_compare': lambda: (K.copy(), K.copy()),
    'sbox_lookup': lambda: (K.copy(), np.empty(16, np.uint8)),
    'scratch_array_taint': lambda: (K.copy(),),
    'secret_division': lambda: (K.copy(), np.uint64(7)),
    'secret_trip_count': lambda: (K.copy(),),
    'violation_in_helper': lambda: (K.copy(),),
}
MUST_NOT_FIRE = ['or_accumulated_compare', 'mask_select', 'public_index_and_bounds',
                 'rotations_and_multiplications', 'branch_on_public_scalar',
                 'branch_on_declassified']
MUST_FIRE = ['early_exit_compare', 'sbox_lookup', 'scratch_array_taint',
             'loop_invariant_mask_select',
             'secret_division', 'secret_trip_count', 'violation_in_helper']


def marked_lines(path=None, marker='CT'):
    """{function name: [(kind, line)]} from the ``# CT: kind`` markers.

    ``path``: this file by default; ``marker``: ``CT-WARN`` for warnings.
    """
    lines = open(path or inspect.getsourcefile(marked_lines)).read().splitlines()
    marks, current = {}, None
    for no, text in enumerate(lines, 1):
        m = re.match(r'def (\w+)\(', text)
        if m:
            current = m.group(1)
        m = re.search(r'# %s: ([\w-]+)' % marker, text)
        if m:
            marks.setdefault(current, []).append((m.group(1), no))
    return marks
