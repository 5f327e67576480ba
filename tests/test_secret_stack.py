"""The secret stack: a kernel's call tree runs on it and leaves it zeroed.

Each secret call switches to the calling thread's secret stack (mlock'ed,
MADV_DONTDUMP, MADV_WIPEONFORK, guard page below) and zeroes the part its
call tree could write before switching back.  The probes read that stack
directly.  Controls: the same detector on the same region finds a plain
@njit kernel's secrets when it runs there without the scrub, and on the
thread's own stack when it runs as plain numba.
"""

import ctypes
import os
import textwrap

import numpy as np
from numba import carray, cfunc, njit, types

from secretjit import secret_jit, secretmem
from secretjit.testing import probes

import _backing
from _child import run_python
from _kernels import N, derived_words, stack_kernel

HERE = os.path.dirname(__file__)


def _secret_stack():
    lo, hi = secretmem.stack_range()
    return lo, hi, ctypes.string_at(lo, hi - lo)


def _poison_secret_stack():
    lo, hi = secretmem.stack_range()
    ctypes.memset(lo, 0x5A, hi - lo)


def test_kernel_runs_on_the_secret_stack_and_leaves_it_zeroed(key):
    kernel = secret_jit(stack_kernel)
    expected = njit(stack_kernel)(key)
    assert kernel(key) == expected             # compiles; sets up the stack
    depth = kernel.stack_bound(kernel.signatures[0]).depth
    window = secretmem.signal_window()
    # Poison where the call tree runs, and far below it; leave the window
    # just below the depth zero, as every call leaves it.
    lo, hi = secretmem.stack_range()
    ctypes.memset(hi - depth, 0x5A, depth)
    far = hi - depth - window - lo
    ctypes.memset(lo, 0x5A, far)
    scrubs = secretmem.memory_status()['signal_scrubs']
    result, stack = probes.stack_after_call(kernel, key)
    assert result == expected
    lo, hi, secret = _secret_stack()
    words = derived_words(key)
    assert probes.count_words(secret, words) == 0
    assert probes.count_words(stack, words) == 0     # nor on the thread's stack
    # The call tree did run there: its region went from poison to zeros.
    used = secret[len(secret) - depth:]
    assert used == bytes(depth)
    assert depth > 8 * N                       # two 4 KiB frames of secrets
    # It stayed within its computed depth (nothing in the window below it),
    # and the scrub did not touch the rest of the stack.
    assert secretmem.memory_status()['signal_scrubs'] == scrubs
    assert secret[:far].count(0x5A) == far
    ctypes.memset(lo, 0, far)                  # zero again, as between calls


# Control: the same kernel under plain numba, run on the secret stack
# without the scrub.
_plain_stack_kernel = njit(stack_kernel)


@cfunc(types.void(types.voidptr))
def _plain_on_secret_stack(p):
    key = carray(p, 4, np.uint64)
    key[0] = _plain_stack_kernel(key)


def test_control_detector_finds_secrets_left_on_the_secret_stack(key):
    secret_jit(stack_kernel)(key)              # the thread has a secret stack
    lib = secretmem.lib()
    lib.secretjit_secret_call.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                          ctypes.c_size_t]
    lib.secretjit_secret_call.restype = ctypes.c_int
    buf = key.copy()
    # Without the scrub of writes below the depth (0 here), which would
    # find the plain kernel's frames and zero them.
    secretmem.test_deep_scrub(False)
    try:
        assert lib.secretjit_secret_call(_plain_on_secret_stack.address,
                                         buf.ctypes.data, 0) == 0
    finally:
        secretmem.test_deep_scrub(True)
    lo, hi, secret = _secret_stack()
    hits = probes.count_words(secret, derived_words(key))
    ctypes.memset(lo, 0, hi - lo)              # zero again, as between calls
    assert hits > 256, \
        "control failed: the detector cannot see secrets on the secret stack"


def test_secret_stack_is_per_thread(key):
    import threading
    kernel = secret_jit(stack_kernel)
    expected = njit(stack_kernel)(key)
    ranges, results = [], []
    alive = threading.Barrier(4)       # all four stacks exist at once

    def run():
        results.append(kernel(key))
        ranges.append(secretmem.stack_range())
        alive.wait()
    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4
    assert len(set(ranges)) == 4 and None not in ranges


def test_fallback_without_a_secret_stack_still_scrubs(tmp_path):
    """No address space for a secret stack: run in place, scrub below sp."""
    script = textwrap.dedent('''
        import resource, sys
        sys.path.insert(0, %r)
        import numba
        import numpy as np
        from numba import njit
        from secretjit import secret_jit, secretmem
        from secretjit.testing import probes
        from _kernels import derived_words, stack_kernel
        key = np.array([0x0123456789abcdef, 0x1111111111111111,
                        0x2222222222222222, 0x3333333333333333], np.uint64)
        kernel = secret_jit(stack_kernel)
        kernel.compile((numba.typeof(key),))
        control = njit(stack_kernel)
        expected = control(key)
        _, stack = probes.stack_after_call(control, key)
        assert probes.count_words(stack, derived_words(key)) > 256
        # Leave no room for a 256 KiB mapping.
        vm = int(open('/proc/self/statm').read().split()[0]) * 4096
        resource.setrlimit(resource.RLIMIT_AS, (vm + 64 * 1024, resource.RLIM_INFINITY))
        result, stack = probes.stack_after_call(kernel, key)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY,) * 2)
        assert result == expected, (result, expected)
        assert secretmem.stack_range() is None
        assert secretmem.memory_status()['stack_fallbacks'] >= 1
        print('leaks', probes.count_words(stack, derived_words(key)))
    ''' % HERE)
    out = run_python(code=script)
    assert out.returncode == 0, out.stderr
    assert 'leaks 0' in out.stdout, out.stdout


def test_secret_stack_is_locked_and_left_out_of_core_dumps(key):
    secret_jit(stack_kernel)(key)
    lo, hi = secretmem.stack_range()
    flags, locked_kib, _ = secretmem.mapping_flags(lo, hi)
    assert 'dd' in flags                       # MADV_DONTDUMP
    assert _backing.fork_flag() in flags      # MADV_WIPEONFORK, or memfd_secret
    # Locked on fault: every page a call touched is resident and locked.
    _, _, rss_kib = secretmem.mapping_flags(lo, hi)
    assert 'lo' in flags and 0 < locked_kib == rss_kib
