"""Stack: nothing the call tree wrote below the caller's stack pointer survives.

Modelled on Go's runtime/secret stack test: poison the stack below the
probe's stack pointer, call, snapshot the region, count derived key words.
The plain @njit run is the control: it must leak, or the probe proves nothing.
"""

import threading

import numpy as np
from numba import njit

from secretjit import secret_jit
from secretjit.testing import probes

from _kernels import (derived_words, stack_kernel, stack_kernel_raises,
                      dead_store_kernel, wipe_kernel)


def _leaks(dispatcher, *args):
    result, stack = probes.stack_after_call(dispatcher, *args)
    return result, probes.count_words(stack, derived_words(args[0]))


def test_stack_control_njit_leaks(key):
    _, leaks = _leaks(njit(stack_kernel), key)
    # the kernel's 4 KiB frame buffer and the helper's both stay behind
    assert leaks > 256, "control failed: the probe cannot see a stack leak"


def test_stack_secret_is_clean(key):
    kernel = secret_jit(stack_kernel)
    result, leaks = _leaks(kernel, key)
    assert result == njit(stack_kernel)(key)
    assert leaks == 0


def test_stack_secret_clean_when_kernel_raises(key):
    control = njit(stack_kernel_raises)
    exc, leaks = _leaks(control, key, True)
    assert isinstance(exc, ValueError)
    # raising runs Python code below the wrapper, which overwrites much of
    # the region, but part of the kernel's frame survives
    assert leaks > 32, "control failed: the probe cannot see a stack leak"
    kernel = secret_jit(stack_kernel_raises)
    exc, leaks = _leaks(kernel, key, True)
    assert isinstance(exc, ValueError)
    assert "after touching secrets" in str(exc)
    assert leaks == 0


def test_nested_secret_kernels(key):
    inner = secret_jit(stack_kernel)

    def outer(key):
        return inner(key) + np.uint64(1)

    control_inner = njit(stack_kernel)

    def control_outer(key):
        return control_inner(key) + np.uint64(1)

    _, leaks = _leaks(njit(control_outer), key)
    assert leaks > 256, "control failed: the probe cannot see a stack leak"
    result, leaks = _leaks(secret_jit(outer), key)
    assert result == control_inner(key) + 1
    assert leaks == 0
    # the inner kernel called on its own is protected by its own boundary
    _, leaks = _leaks(inner, key)
    assert leaks == 0


def test_dead_store_is_removed_but_wipe_survives(key):
    """-O3 deletes a trailing ``s[:] = 0`` on a dead stack buffer; wipe stays.

    Both run under plain @njit, so the secret scrub does not hide the result.
    """
    _, leaks = _leaks(njit(dead_store_kernel), key)
    assert leaks > 256, "the trailing zeroing was not removed: check the kernel"
    _, leaks = _leaks(njit(wipe_kernel), key)
    assert leaks == 0
    ir = njit(wipe_kernel)
    ir(key)
    text = ir.inspect_llvm(ir.signatures[0])
    assert 'i1 true)' in text and 'llvm.memset' in text


def test_threads_nogil_results_and_clean_stacks(key):
    kernel = secret_jit(nogil=True)(stack_kernel)
    expected = njit(stack_kernel)(key)
    errors = []

    def work(tid):
        try:
            k = key ^ np.uint64(tid)
            want = njit(stack_kernel)(k)
            for i in range(1000):
                if kernel(k) != want:
                    errors.append((tid, i, 'wrong result'))
                    return
            _, stack = probes.stack_after_call(kernel, k)
            n = probes.count_words(stack, derived_words(k))
            if n:
                errors.append((tid, 'leaked %d words' % n))
        except Exception as exc:      # pragma: no cover - reported below
            errors.append((tid, repr(exc)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert kernel(key) == expected
