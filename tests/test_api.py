"""secret_jit is a drop-in for @njit: call forms, options, dispatcher surface."""

import math
import textwrap

import numpy as np
import pytest
from numba import njit, types

import secretjit
from secretjit import SecretDispatcher, enabled, secret_jit

from _child import run_python


def test_bare_decorator():
    @secret_jit
    def add(a, b):
        return a + b

    assert isinstance(add, SecretDispatcher)
    assert add(2, 3) == 5
    assert add(2.5, 1) == 3.5
    assert len(add.signatures) == 2


def test_signature_and_list_of_signatures():
    @secret_jit('int64(int64, int64)')
    def add(a, b):
        return a + b

    assert add.signatures == [(types.int64, types.int64)]
    with pytest.raises(TypeError):
        add('a', 'b')                  # compilation is disabled, as in numba

    @secret_jit(['int32(int32)', 'float64(float64)'], nogil=True)
    def twice(x):
        return x * 2

    assert twice(np.int32(4)) == 8 and twice(1.25) == 2.5
    assert len(twice.overloads) == 2


@pytest.mark.parametrize('options', [
    dict(nogil=True), dict(fastmath=True), dict(boundscheck=True),
    dict(error_model='numpy'), dict(cache=False)])
def test_numba_options(options):
    @secret_jit(**options)
    def k(a):
        s = 0.0
        for i in range(a.shape[0]):
            s += a[i] / 2.0
        return s

    assert k(np.arange(6.0)) == 7.5


def test_boundscheck_raises_in_secret_kernel():
    @secret_jit(boundscheck=True)
    def k(a, i):
        return a[i]

    with pytest.raises(IndexError):
        k(np.arange(3), 5)


def test_inspection_shows_the_secret_code():
    @secret_jit
    def k(x):
        return x + 1

    k(1)
    sig = k.signatures[0]
    ir = k.inspect_llvm(sig)
    # the boundary zeroes every register: LLVM's "all", or "all-gpr" and the
    # vector/x87 epilogue of passes.epilogue (x86-64 with AVX; without its x87
    # part here: x + 1 is an exact tree without x87 code, passes.exact_call)
    assert '"zero-call-used-regs"="all"' in ir or (
        '"zero-call-used-regs"="all-gpr"' in ir and 'vxorps %xmm15' in ir)
    assert 'secretjit_secret_call_exact(' in ir
    assert '__secretjit.boundary.' in ir
    assert '__secretjit.thunk.' in ir and 'secretjit_secret_call' in ir
    asm = k.inspect_asm(sig)
    assert 'rep' in asm and 'stosq' in asm        # the fallback's stack scrub
    assert k.inspect_llvm()[sig] == ir
    reports = k.pass_reports(sig)
    assert [r.name for r in reports] == ['insert_boundaries',
                                         'internalize_linkonce',
                                         'zero_call_used_regs', 'use_exact_calls',
                                         'write_depths']
    assert reports[0]['boundaries_added'] == 1
    # the exact call's depth (its hot one, here the whole bound), then the
    # fallback's scrub
    assert reports[-2]['calls_exact'] == reports[-2]['hot_depths'] == 1
    assert reports[-1]['depths_written'] == 1
    bound = k.stack_bound(sig)
    assert 16 <= bound.depth <= 512, bound       # a tiny leaf: tiny bound


def test_enabled():
    def probe():
        return enabled()

    assert enabled() is False
    assert njit(probe)() is False
    assert secret_jit(probe)() is True


def test_plain_helpers_are_compiled_in_secret_mode():
    @njit
    def helper():
        return enabled()

    @secret_jit
    def k():
        return helper()

    assert k() is True
    assert helper() is False            # the original stays plain


def test_nopython_features_work():
    @njit
    def norm(v):
        return math.sqrt((v * v).sum())

    @secret_jit
    def k(a, t):
        b = np.sort(a)[::-1].copy()
        c = np.empty_like(b)
        for i in range(b.size):
            c[i] = math.sin(b[i]) + math.exp(-b[i]) + t[0] * t[1]
        words = 'secret ' * 3
        return norm(c), len(words.strip()), (b[0], c.argmax())

    a = np.linspace(0, 3, 17)
    expected = njit(k.py_func)(a, (2.0, 3.0))
    assert k(a, (2.0, 3.0)) == expected


def test_wipe_from_python_and_bad_input():
    a = np.arange(8, dtype=np.uint8)
    secretjit.wipe(a)
    assert not a.any()
    with pytest.raises(TypeError, match='numpy array'):
        secretjit.wipe(b'abc')
    with pytest.raises(ValueError, match='contiguous'):
        secretjit.wipe(np.arange(8)[::2])

    @secret_jit
    def k(a):
        secretjit.wipe(a[::2])

    with pytest.raises(Exception, match='contiguous'):
        k(np.arange(8))


def test_secret_jit_rejects_a_foreign_target():
    with pytest.raises(TypeError, match='secret target'):
        secret_jit(_target='cpu')(lambda x: x)


CACHE_SCRIPT = textwrap.dedent('''
    import sys
    sys.path.insert(0, {tests!r})
    import numpy as np
    from secretjit import secret_jit
    from secretjit.testing import probes
    import _kernels

    kernel = secret_jit(cache=True)(_kernels.stack_kernel)
    key = np.arange(4, dtype=np.uint64) * np.uint64(0x0101010101010101)
    result, stack = probes.stack_after_call(kernel, key)
    hits = probes.count_words(stack, _kernels.derived_words(key))
    print(len(kernel.stats.cache_hits), hits, int(result))
''')


def test_cache_across_processes_still_erases(tmp_path):
    """cache=True: a second process loads the object code, which still scrubs."""
    import os
    tests = os.path.dirname(__file__)
    script = tmp_path / 'cached.py'
    script.write_text(CACHE_SCRIPT.format(tests=tests))
    env = {'NUMBA_CACHE_DIR': str(tmp_path / 'cache')}
    runs = [run_python(script, env=env) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    first = runs[0].stdout.split()
    second = runs[1].stdout.split()
    assert first[0] == '0' and int(second[0]) >= 1     # second run: cache hit
    assert first[1] == second[1] == '0'                # no leak either time
    assert first[2] == second[2]
    # the cache keeps secret entries apart from plain ones
    from secretjit.codegen import SecretCodegen
    assert 'secretjit' in SecretCodegen('x').magic_tuple()
