"""A new thread reuses an exited thread's secret stack, wiped.

Thread A makes a deep secret call, then a word pattern is planted inside the
span its calls zeroed (as if something had been left there), a marker near
the stack's bottom, and A exits.
Thread B, started after, gets the same stack (the marker is there), and before anything of its own
can overwrite the spot (its first call is shallow, run with the runtime's
below-depth scrub off) the pattern is gone: the release zeroed the span the
calls used.  The control plants the same pattern with the scrubs off
(``secretmem.test_deep_scrub(False)`` also skips the release's wipe): B then
finds it, so the stack was reused and the scan can see what is left.
"""
import ctypes
import threading

import numpy as np

from secretjit import secret_jit, secretmem

from _kernels import list_of_arrays

PATTERN = np.array([0x5EC2E75EC2E75EC2 ^ i for i in range(8)], dtype=np.uint64)
# Planted near the stack's bottom, below every span a call zeroed: the
# release does not wipe there (the limitation the README states), so finding
# it in thread B shows that B got A's pages, not a fresh mapping.
MARKER = np.array([0x0DDBA11C0FFEE000 ^ i for i in range(4)], dtype=np.uint64)


def shallow(x):
    return x + 1


def _in_thread(fn):
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def _run(key, wipe):
    kernel, first = secret_jit(list_of_arrays), secret_jit(shallow)
    kernel(key)
    first(1)
    lib = kernel.overloads[kernel.signatures[0]].library
    (bound,) = lib.stack_bounds.values()

    def thread_a():
        kernel(key)
        lo, hi = secretmem.stack_range()
        spot = hi - bound.depth + 64         # inside the span the call zeroed
        ctypes.memmove(spot, PATTERN.ctypes.data, PATTERN.nbytes)
        ctypes.memmove(lo + 4096, MARKER.ctypes.data, MARKER.nbytes)
        secretmem.test_deep_scrub(wipe)      # read at A's exit
        return lo, hi

    def thread_b():
        secretmem.test_deep_scrub(False)
        first(1)
        lo, hi = secretmem.stack_range()
        words = np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64)
        return lo, hi, int(np.isin(words, PATTERN).sum()), int(np.isin(words, MARKER).sum())

    try:
        a = _in_thread(thread_a)
        b = _in_thread(thread_b)
    finally:
        secretmem.test_deep_scrub(True)
    assert b[:2] == a and b[3] == len(MARKER), "thread B got a new stack, not A's"
    return b[2]


def test_reused_stack_was_wiped(key):
    assert _run(key, wipe=True) == 0


def test_control_without_the_release_wipe_the_pattern_survives(key):
    assert _run(key, wipe=False) == len(PATTERN), \
        "control failed: the scan cannot see what a reused stack kept"
