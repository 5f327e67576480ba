"""A leaf's red zone is in the bound exactly when its machine code reaches
below rsp (issue 15: ``stack_bound.x86_64.below_sp``).

x86-64 leaves may use 128 bytes below rsp without moving it.  The bound
counts them only for a leaf whose code addresses memory below rsp or copies
rsp; ``x + 1`` does neither and is bounded by the return addresses and the
thunk's frame.  Checked on the secret stack, with the scrub depth forced to
0 (the control: every byte the tree wrote stays there) and the runtime's
below-depth scrub off: the deepest write lies within the bound; for a leaf
that spills below rsp it lies deeper than the bound without the red zone,
so keeping the red zone there is what covers it.  With the real depth the
call leaves nothing on the secret stack.
"""
import platform

import numpy as np
import pytest

from secretjit import secret_jit

from _stack_scan import deepest_write, zero_scrub_depths

pytestmark = pytest.mark.skipif(platform.machine() != 'x86_64',
                                reason='the red zone is x86-64 only')


def plus_one(a):
    return a[0] + np.uint64(1)


def spills(a):
    """Sixteen live words: LLVM spills some into the leaf's red zone."""
    x0, x1, x2, x3, x4, x5, x6, x7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    y0, y1, y2, y3, y4, y5, y6, y7 = a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]
    for _ in range(4):
        x0 += y7 * x1; x1 ^= y6 + x2; x2 += y5 ^ x3; x3 ^= y4 * x4  # noqa: E702
        x4 += y3 ^ x5; x5 ^= y2 * x6; x6 += y1 ^ x7; x7 ^= y0 * x0  # noqa: E702
        y0 += x7 ^ y1; y1 ^= x6 * y2; y2 += x5 ^ y3; y3 ^= x4 * y4  # noqa: E702
        y4 += x3 ^ y5; y5 ^= x2 * y6; y6 += x1 ^ y7; y7 ^= x0 * y0  # noqa: E702
    return x0 ^ x1 ^ x2 ^ x3 ^ x4 ^ x5 ^ x6 ^ x7 ^ y0 ^ y1 ^ y2 ^ y3 ^ y4 ^ y5 ^ y6 ^ y7


def _python(py_func, a):
    with np.errstate(over='ignore'):            # uint64 wraps, as in the kernel
        return py_func(a)


def _depth(kernel):
    (b,) = kernel.overloads[kernel.signatures[0]].library.stack_bounds.values()
    return b


def _deepest_write(kernel, a):
    kernel(a)                           # compiled; the thread's stack exists
    return deepest_write(kernel, a)


@pytest.fixture
def words():
    return np.arange(1, 17, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)


@pytest.mark.parametrize('py_func, red_zone', [(plus_one, False), (spills, True)])
def test_red_zone_is_counted_where_the_leaf_reaches_it(py_func, red_zone, words,
                                                       monkeypatch):
    kernel = secret_jit(py_func)
    assert kernel(words) == _python(py_func, words)
    bound = _depth(kernel)
    leaf_depth = bound.path[-1][1]
    assert (leaf_depth >= 128) == red_zone, bound.path
    assert _deepest_write(kernel, words) == 0           # the real depth
    zero_scrub_depths(monkeypatch)
    control = secret_jit(py_func)
    assert control(words) == _python(py_func, words)
    deepest = _deepest_write(control, words)
    assert 0 < deepest <= bound.depth, (deepest, bound.path)
    if red_zone:       # the leaf's code did write below its rsp
        assert deepest > bound.depth - 128, (deepest, bound.path)
