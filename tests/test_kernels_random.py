"""random_bytes: OS CSPRNG bytes from Python and from inside nopython kernels."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from secretjit.kernels._random import random_bytes


@njit
def _fresh(n):
    out = np.zeros(n, np.uint8)
    random_bytes(out)
    return out


@njit
def _fill_slice(buf, lo, hi):
    random_bytes(buf[lo:hi])


def test_fills_from_python():
    a = np.zeros(4096, np.uint8)
    random_bytes(a)
    counts = np.bincount(a, minlength=256)
    assert counts.min() > 0 and counts.max() < 60          # ~16 expected per value
    b = np.zeros(4096, np.uint8)
    random_bytes(b)
    assert not np.array_equal(a, b)


def test_callable_inside_a_kernel():
    a, b = _fresh(64), _fresh(64)
    assert a.any() and not np.array_equal(a, b)


def test_fills_only_the_given_slice():
    buf = np.zeros(100, np.uint8)
    _fill_slice(buf, 10, 90)
    assert not buf[:10].any() and not buf[90:].any() and buf[10:90].any()


def test_sizes():
    random_bytes(np.zeros(0, np.uint8))
    one = np.zeros(1, np.uint8)
    for _ in range(64):                                      # 1 byte is zero w.p. 1/256 per draw
        random_bytes(one)
        if one[0]:
            break
    assert one[0]
    big = np.zeros(33554432 + 1000, np.uint8)                # > getrandom's per-call maximum
    random_bytes(big)
    assert big[-1000:].any() and big[:1000].any() and big[33554431:33554431 + 1000].any()


def test_bytearray():
    b = bytearray(32)
    random_bytes(b)
    assert any(b)


@pytest.mark.parametrize("bad", [np.zeros(4, np.int32), np.zeros((2, 2), np.uint8)])
def test_rejects_non_uint8_1d(bad):
    with pytest.raises(TypingError):
        random_bytes(bad)


def test_rejects_read_only():
    ro = np.zeros(8, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(TypingError):
        random_bytes(ro)


def test_callable_inside_a_secret_kernel():
    from secretjit import secret_jit, wipe

    @secret_jit
    def draw(n):
        buf = np.zeros(n, np.uint8)
        random_bytes(buf)
        nonzero = 0
        for i in range(n):
            nonzero += buf[i] != 0
        wipe(buf)
        return nonzero

    assert draw(256) > 200                                   # ~255 expected
