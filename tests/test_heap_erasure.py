"""Heap: buffers a secret kernel allocates are wiped when freed.

Like Go's heap test: read a freed object's memory and look for key material.
Plain @njit frees without wiping: the control that must leak.  Each call and
read runs in a heap-log window (``secretjit.testing.heaplog``): a block
freed inside it is held back, so what the read sees does not depend on
whether the allocator would have reused the block.
"""

import numpy as np
from numba import njit

from secretjit import secret_jit
from secretjit.testing import probes
from secretjit.testing.heaplog import heap_log

from _kernels import (derived_words, heap_expr_kernel, heap_return_kernel,
                      heap_temp_kernel, MIX)


def _count(addr, nbytes, words):
    return probes.count_words(probes.freed_memory(addr, nbytes), words)


def test_temporary_freed_in_kernel(key, decorator):
    name, dec = decorator
    kernel = dec(heap_temp_kernel)
    kernel(key)
    with heap_log().window():
        addr, _ = kernel(key)
        leaks = _count(addr, 384 * 8, derived_words(key, 384))
    if name == 'njit':
        assert leaks > 300, "control failed: the probe cannot see a heap leak"
    else:
        assert leaks == 0


def test_array_expression_temporaries(key, decorator):
    name, dec = decorator
    kernel = dec(heap_expr_kernel)
    kernel(key)
    words = {int((int(k) * int(MIX)) % 2**64 ^ 0xA5A5A5A5A5A5A5A5) for k in key}
    with heap_log().window():
        u, t, _ = kernel(key)
        leaks = _count(u, 32, words) + _count(t, 32, words)
    if name == 'njit':
        assert leaks >= 4, "control failed: the probe cannot see a heap leak"
    else:
        assert leaks == 0


def test_returned_array_wiped_when_dropped(key, decorator):
    name, dec = decorator
    out = dec(heap_return_kernel)(key)
    expected = njit(heap_return_kernel)(key)
    np.testing.assert_array_equal(out, expected)
    addr, nbytes = out.ctypes.data, out.nbytes
    words = derived_words(key, 384)
    assert _count(addr, nbytes, words) == 384        # alive: the data is there
    with heap_log().window():
        del out
        leaks = _count(addr, nbytes, words)
    if name == 'njit':
        assert leaks > 300, "control failed: the probe cannot see a heap leak"
    else:
        assert leaks == 0


def test_plain_numba_keeps_its_allocator(key):
    """Compiling secret kernels does not change what plain numba code does."""
    secret_jit(heap_temp_kernel)(key)
    plain = njit(heap_temp_kernel)
    plain(key)
    with heap_log().window():
        addr, _ = plain(key)
        assert _count(addr, 384 * 8, derived_words(key, 384)) > 300


def test_lists_and_strings_in_secret_kernels(key):
    def build(key):
        xs = []
        for i in range(64):
            xs.append(key[i % 4] ^ np.uint64(i))
        s = 0
        for x in xs:
            s += x & np.uint64(0xFF)
        return s

    assert secret_jit(build)(key) == njit(build)(key)
