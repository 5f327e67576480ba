"""Kernels the erasure tests compile under both plain @njit and @secret_jit.

Each writes words derived from the key (never the key words themselves, so a
hit cannot come from the caller's copy) to a place the test then inspects.
"""

import numpy as np
from numba import njit

from secretjit import wipe
from secretjit.testing import probes

MIX = np.uint64(0x9E3779B97F4A7C15)
N = 512


def derived_words(key, rounds=N):
    """The words :func:`mix` produces for ``key``, computed in Python."""
    out = set()
    for i in range(rounds):
        k = int(key[i % 4])
        out.add((k ^ (int(MIX) * (i + 1))) & 0xFFFFFFFFFFFFFFFF)
    return out


@njit
def mix(key, i):
    return key[i % 4] ^ (MIX * np.uint64(i + 1))


@njit
def helper_deep(key):
    """A helper with its own 4 KiB stack buffer of secrets."""
    s = probes.stack_scratch(512)
    for i in range(N):
        s[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(N):
        acc ^= s[(i * 7) % N]
    return acc


def stack_kernel(key):
    """Secrets in the kernel's frame and, deeper, in a helper's frame."""
    s = probes.stack_scratch(512)
    for i in range(N):
        s[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(N):
        acc += s[(i * 5) % N]
    return acc ^ helper_deep(key)


def stack_kernel_raises(key, fail):
    s = probes.stack_scratch(512)
    for i in range(N):
        s[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(N):
        acc += s[(i * 5) % N]
    if fail:
        raise ValueError("kernel failed after touching secrets")
    return acc


def dead_store_kernel(key):
    """Zeroes its stack buffer at the end: a store -O3 may delete."""
    s = probes.stack_scratch(512)
    for i in range(N):
        s[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(N):
        acc += s[(i * 5) % N]
    s[:] = 0
    return acc


def wipe_kernel(key):
    """Same as :func:`dead_store_kernel` but with ``wipe``."""
    s = probes.stack_scratch(512)
    for i in range(N):
        s[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(N):
        acc += s[(i * 5) % N]
    wipe(s)
    return acc


def heap_temp_kernel(key):
    """A heap temporary that dies inside the kernel; returns its address."""
    tmp = np.empty(384, np.uint64)
    for i in range(384):
        tmp[i] = mix(key, i)
    acc = np.uint64(0)
    for i in range(384):
        acc += tmp[(i * 5) % 384]
    return tmp.ctypes.data, acc


def heap_return_kernel(key):
    out = np.empty(384, np.uint64)
    for i in range(384):
        out[i] = mix(key, i)
    return out


def heap_expr_kernel(key):
    """Array-expression temporaries (key * MIX, then ^ ...) die in the kernel."""
    t = (key * MIX) ^ np.uint64(0xA5A5A5A5A5A5A5A5)
    u = t.copy()
    return u.ctypes.data, t.ctypes.data, u.sum()


def register_kernel(x):
    probes.fill_registers(x)
    return np.uint64(0)


def register_kernel_raises(x):
    probes.fill_registers(x)
    if x != 0:
        raise ValueError("kernel failed with secrets in registers")
    return np.uint64(0)


def list_of_arrays(key):
    """Key words in a list of eight 8-word arrays: a varsize MemInfo (the
    list) whose destructor frees plain ones."""
    rows = [np.empty(8, np.uint64) for _ in range(8)]
    for j in range(8):
        for i in range(8):
            rows[j][i] = mix(key, 8 * j + i)
    acc = np.uint64(0)
    for r in rows:
        acc ^= r.sum()
    return acc
