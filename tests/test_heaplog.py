"""The heap log behind the heap detector: what it records, holds back and lets go.

Must-fire: a plain kernel's freed temporary is logged with its size, still
holds the kernel's words when read, and is not handed out again before
``release``; a block grown by ``realloc`` (a typed list) moves to a logged
block and the old one is held back too.  Must-not-fire: blocks allocated
before the window are freed normally (not logged), the hook is removed
after each window, and a secret kernel's temporaries (secret arena) never
reach it.
"""

import ctypes

import numpy as np
import pytest
from numba import njit

from secretjit import secret_jit
from secretjit.testing import probes
from secretjit.testing.detectors import _unboxed, _wrapper
from secretjit.testing.heaplog import HeapLog, _Allocator, heap_log

KEY = np.array([0x0123456789ABCDEF, 0xF1E2D3C4B5A69788,
                0x13579BDF02468ACE, 0x7766554433221100], np.uint64)


def _temp(key):
    tmp = np.empty(300, np.uint64)
    for i in range(300):
        tmp[i] = key[i % 4] * np.uint64(2 * i + 1)
    return tmp.sum()


def _words(n=300):
    return {(int(KEY[i % 4]) * (2 * i + 1)) & 0xFFFFFFFFFFFFFFFF for i in range(n)}


def _call(log, dispatcher, *args):
    return _unboxed(log.call(_wrapper(dispatcher, args), args))


def test_plain_temporary_is_logged_held_back_and_released():
    plain = njit(_temp)
    log = heap_log()
    with np.errstate(over='ignore'):
        expected = plain.py_func(KEY)
    assert _call(log, plain, KEY) == expected
    try:
        freed = log.freed()
        big = [(a, n) for a, n in freed if n >= 300 * 8]
        assert len(big) == 1, log.blocks()
        addr, size = big[0]
        assert probes.count_words(probes.freed_memory(addr, size), _words()) == 300
        # held back: same-size allocations now get other blocks
        others = [np.empty(300, np.uint64) for _ in range(8)]
        assert all(not (addr <= o.ctypes.data < addr + size) for o in others)
    finally:
        log.release()
    assert log.blocks() == [] and log.freed() == []


def test_realloc_of_a_logged_block_holds_the_old_block_back():
    @njit
    def grow(key):
        xs = [np.uint64(0)]
        for i in range(200):
            xs.append(key[i % 4] * np.uint64(2 * i + 1))
        s = np.uint64(0)
        for x in xs:
            s ^= x
        return s

    grow(KEY)
    log = heap_log()
    _call(log, grow, KEY)
    try:
        freed = log.freed()
        hits = [probes.count_words(probes.freed_memory(a, n), _words(200))
                for a, n in freed]
        # the list's storage (numba's NRT varsize block) grew several times: each
    # old copy was held back
        assert sum(1 for h in hits if h) >= 3, (hits, log.blocks())
        assert max(hits) >= 100
    finally:
        log.release()


def test_blocks_from_before_the_window_are_freed_normally():
    log = heap_log()
    # bytes objects this large come from CPython's raw allocator, as NRT's do
    # (numpy's own arrays do not: it calls malloc)
    old = bytes([7]) * 4000                      # allocated before the window
    addr = id(old)
    with log.window():
        del old
        assert not any(a <= addr < a + n for a, n, _ in log.blocks())
        new = bytes([9]) * 4000
        assert any(a <= id(new) < a + n for a, n, f in log.blocks() if not f)
        del new
    assert log.blocks() == []


def test_overflow_is_reported():
    @njit
    def many(n):
        s = 0
        for i in range(n):
            a = np.empty(8 + i % 3, np.uint64)
            a[0] = i
            s += a[0]
        return s

    many(10)
    log = HeapLog(capacity=16)
    assert _call(log, many, 100) == sum(range(100))
    assert log.overflowed and log.count() == 16
    log.release()
    _call(log, many, 3)
    assert not log.overflowed
    log.release()


def test_secret_kernel_temporaries_never_reach_the_log():
    secret = secret_jit(_temp)
    secret(KEY)
    log = heap_log()
    with np.errstate(over='ignore'):
        expected = _temp(KEY)
    assert _call(log, secret, KEY) == expected
    try:
        assert all(n < 300 * 8 for _, n, _ in log.blocks()), log.blocks()
        for a, n in log.freed():
            assert probes.count_words(probes.freed_memory(a, n), _words()) == 0
    finally:
        log.release()


def test_window_holds_back_blocks_freed_by_python_code():
    log = heap_log()
    with log.window():
        a = (0x1122334455667788).to_bytes(8, 'little') * 1000
        addr = id(a)
        del a
        assert any(x <= addr < x + n for x, n in log.freed())
        assert probes.count_words(probes.freed_memory(addr, 8000),
                                  [0x1122334455667788]) > 900
    assert log.blocks() == []


def test_a_second_window_needs_the_first_released():
    log = HeapLog()
    plain = njit(_temp)
    plain(KEY)
    _call(log, plain, KEY)
    with pytest.raises(RuntimeError, match='release'):
        _call(log, plain, KEY)
    log.release()
    now = _Allocator()
    ctypes.pythonapi.PyMem_GetAllocator(0, ctypes.byref(now))
    assert now.malloc != log.hooks.malloc and now.malloc == log.saved.malloc
