"""How deep one secret call wrote on the thread's secret stack (stack-bound tests)."""
import ctypes
import platform

import numpy as np

from secretjit import pipeline, secretmem
from secretjit.stack_bound import native


class _MarkedSlack:
    """The runtime's marked slack as an attribute, for monkeypatch to restore."""
    value = property(lambda self: secretmem.marked_slack(),
                     lambda self, n: secretmem.set_marked_slack(n))


def zero_scrub_depths(monkeypatch):
    """Control: every boundary compiled after this passes a scrub depth of
    0, to its secret call (an exact call's hot depth included) and to its
    in-place scrub, and the exact entry adds no marked slack (until the
    test ends)."""
    native.runtime_bounds(platform.machine())    # sets the slack: before
    monkeypatch.setattr(_MarkedSlack(), 'value', 0)
    write, use = pipeline.passes.write_depths, pipeline.passes.use_exact_calls
    monkeypatch.setattr(pipeline.passes, 'write_depths',
                        lambda mod, depths: write(mod, dict.fromkeys(depths, 0)))
    monkeypatch.setattr(pipeline.passes, 'use_exact_calls',
                        lambda mod, kernels, depths=None, **kw: use(
                            mod, kernels, depths=dict.fromkeys(depths or {}, 0), **kw))


def deepest_write(kernel, *args):
    """Bytes below the secret stack's top down to the deepest non-zero word
    one call ``kernel(*args)`` leaves, with the runtime's below-depth scrub
    off (the thread's secret stack must exist: call the kernel once first)."""
    lo, hi = secretmem.stack_range()
    was = secretmem.test_deep_scrub(False)
    try:
        ctypes.memset(lo, 0, hi - lo)
        kernel(*args)
        words = np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64)
    finally:
        secretmem.test_deep_scrub(was)
    nz = np.flatnonzero(words)
    return 0 if nz.size == 0 else (hi - lo) - 8 * int(nz[0])
