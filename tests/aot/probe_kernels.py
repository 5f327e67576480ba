"""Exports for the AOT erasure and ABI tests (built by tests/test_aot.py)."""
import os
import sys

import numpy as np

from secretjit.aot import export

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _kernels import stack_kernel, stack_kernel_raises  # noqa: E402

# The stack kernels are the JIT erasure tests' own (tests/_kernels.py).
export("stack_kernel", "uint64(uint64[::1])")(stack_kernel)
export("stack_kernel_raises", "uint64(uint64[::1], boolean)")(stack_kernel_raises)


@export("reg_kernel", "uint64(uint64[::1], uint64[::1])")
def reg_kernel(key, out):
    """Moves the key through vector and general registers, returns its size.

    Nothing runs after the copy (no free, no call) that would overwrite the
    registers of a build without register zeroing.
    """
    for i in range(key.size):
        out[i] = key[i]
    return np.uint64(key.size)


@export("vec_kernel", "uint64(uint64[::1], uint64[::1])")
def vec_kernel(key, out):
    """Six reductions and a select over the key: vectorized for AVX-512 it
    keeps more than 16 vectors live (zmm16-31) and compares into masks (k1-k7),
    so a --cpu host boundary must zero those (the audit test drops one)."""
    a = np.uint64(0)
    b = np.uint64(0)
    c = np.uint64(0)
    d = np.uint64(1)
    e = np.uint64(0)
    f = np.uint64(0)
    for i in range(key.size):
        v = key[i]
        w = v * np.uint64(3) if v > out[i] else out[i] ^ np.uint64(5)
        a += w
        b ^= v * np.uint64(3)
        c |= v >> np.uint64(5)
        d *= v | np.uint64(1)
        e += v & np.uint64(0xff)
        f ^= v << np.uint64(3)
    return a + b + c + d + e + f


@export("toy_mix", "int64(uint8[::1], uint8[::1])")
def toy_mix(key, out):
    """Sum of key ^ 0x5a; out[i] = key[i % len] ^ 0x5a."""
    t = np.empty(key.size, np.uint8)
    s = 0
    for i in range(key.size):
        t[i] = key[i] ^ 0x5a
        s += t[i]
    if key.size == 0:
        raise ValueError("empty key")
    for i in range(out.size):
        out[i] = t[i % key.size]
    return s


@export("scalars", "float64(float64, int32, boolean, uint8, int16)")
def scalars(x, n, neg, b, h):
    y = x * n + b + h
    return -y if neg else y


@export("is_even", "boolean(int64)")
def is_even(n):
    return n % 2 == 0


@export("fill_f32", "void(float32[::1], float32)")
def fill_f32(a, v):
    for i in range(a.size):
        a[i] = v + i


HEAPMIX = np.uint64(0xA5A5A5A55A5A5A5A)


@export("heap_kernel", "uint64(uint64[::1])")
def heap_kernel(key):
    """Derived words in a heap temporary that dies at the end of the call."""
    t = np.empty(256, np.uint64)
    for i in range(256):
        t[i] = key[i % 4] ^ (HEAPMIX * np.uint64(i + 1))
    acc = np.uint64(0)
    for i in range(256):
        acc += t[(i * 3) % 256]
    return acc
