"""secret_jit as a drop-in for njit where numba's own tests found gaps (issue 18).

F1 numba's allocation statistics balance, F2 stable sorts compile (no
recursion), F3 mangled names read back as written, F4 generators consumed
inside kernels.  ``tools/numba_dropin.py`` runs numba's own test modules the
same way (too slow for CI).
"""

import gc

import numpy as np
import pytest
from numba import njit
from numba.core.itanium_mangler import mangle_identifier
from numba.core.runtime import _nrt_python as _nrt
from numba.core.runtime import rtsys

from secretjit import SecretPolicyError, secret_jit
from secretjit.stack_bound import readable


# -- F1: numba's allocation statistics -----------------------------------

def _temporaries(n):
    a = np.arange(n)
    b = a * 2 + 1                       # array-expression temporary
    return b.sum()


def _returned(n):
    return np.ones(n)


def _list_and_sort(n):
    lst = [0]                           # varsize payload, grown
    for i in range(n):
        lst.append(i)
    a = np.arange(n)[::-1].copy()
    a.sort()
    return len(lst) + a[0]


def _string(n):
    s = 'ab' * n                        # unicode payload
    return len(s)


def _stats_delta(fn, n):
    _nrt.memsys_enable_stats()
    try:
        gc.collect()
        before = rtsys.get_allocation_stats()
        out = fn(n)
        del out
        gc.collect()
        after = rtsys.get_allocation_stats()
    finally:
        _nrt.memsys_disable_stats()
    return tuple(a - b for a, b in zip(after, before))


@pytest.mark.parametrize('pyfunc', [_temporaries, _returned, _list_and_sort,
                                    _string])
def test_allocation_stats_count_secret_blocks_like_numba(pyfunc):
    plain, secret = njit(pyfunc), secret_jit(pyfunc)
    plain(3), secret(3)                 # compile outside the measurement
    expected = _stats_delta(plain, 40)
    got = _stats_delta(secret, 40)
    # The control: numba's own counters see plain numba's blocks.
    assert expected[0] > 0 and expected[2] > 0, expected
    assert got == expected, (
        'secret (alloc, free, mi_alloc, mi_free) %s, njit %s' % (got, expected))
    assert got[0] == got[1] and got[2] == got[3]


def test_allocation_stats_see_a_secret_array_kept_alive():
    # must fire: numba's leak check still sees a secret leak
    kernel = secret_jit(_returned)
    kernel(3)
    _nrt.memsys_enable_stats()
    try:
        gc.collect()
        before = rtsys.get_allocation_stats()
        kept = kernel(10)
        after = rtsys.get_allocation_stats()
        del kept
        gc.collect()
        freed = rtsys.get_allocation_stats()
    finally:
        _nrt.memsys_disable_stats()
    alloc, free, mi_alloc, mi_free = (a - b for a, b in zip(after, before))
    assert (alloc - free, mi_alloc - mi_free) == (1, 1)
    assert [a - b for a, b in zip(freed, before)][1] == alloc


def test_allocation_stats_disabled_as_numba():
    kernel = secret_jit(_returned)
    kernel(3)
    assert not _nrt.memsys_stats_enabled()
    with pytest.raises(RuntimeError, match='NRT stats are disabled'):
        rtsys.get_allocation_stats()


# -- F2: kind='mergesort' / 'stable' -----------------------------------

def _stable_sorts(a):
    s1 = a.copy()
    s1.sort(kind='mergesort')
    s2 = a.copy()
    s2.sort(kind='stable')
    return s1, s2, np.argsort(a, kind='mergesort'), a.argsort(kind='stable')


def _sample(dtype, n, rng):
    a = rng.integers(0, 6, n).astype(dtype)      # many ties: stability shows
    if np.issubdtype(dtype, np.floating):
        a[rng.random(n) < 0.2] = np.nan
        a[rng.random(n) < 0.2] = -0.0
        a[rng.random(n) < 0.1] = -np.inf
    if np.issubdtype(dtype, np.complexfloating):
        a = a + 1j * rng.integers(0, 3, n)
        a[rng.random(n) < 0.1] = complex(np.nan, 1)
        a[rng.random(n) < 0.1] = complex(1, np.nan)
    return a


_secret_stable_sorts = secret_jit(_stable_sorts)     # compiled once per dtype


@pytest.mark.parametrize('dtype', [np.int64, np.uint8, np.float64, np.float32,
                                   np.complex128, np.bool_])
def test_stable_sorts_match_numpy(dtype):
    kernel = _secret_stable_sorts
    rng = np.random.default_rng(18)
    for n in (0, 1, 2, 19, 20, 21, 40, 41, 61, 300, 1025):
        a = _sample(dtype, n, rng)
        s1, s2, i1, i2 = kernel(a)
        np.testing.assert_array_equal(s1, np.sort(a, kind='stable'))
        np.testing.assert_array_equal(s2, np.sort(a, kind='stable'))
        np.testing.assert_array_equal(i1, np.argsort(a, kind='stable'))
        np.testing.assert_array_equal(i2, np.argsort(a, kind='stable'))


def test_stable_sort_is_the_bottom_up_one_and_bounded():
    kernel = _secret_stable_sorts
    kernel(np.zeros(3))
    sig = next(s for s in kernel.signatures if str(s[0].dtype) == 'float64')
    bound = kernel.stack_bound(sig)
    assert bound.depth < 16384, bound
    llvm = kernel.inspect_llvm(sig)
    assert 'bottom_up' in llvm           # must fire: the secret target's sort
    assert 'argmergesort_inner' not in llvm
    # must not fire: plain numba keeps its own (recursive) mergesort
    plain = njit(_stable_sorts)
    plain(np.zeros(3))
    assert 'argmergesort_inner' in plain.inspect_llvm(plain.signatures[0])


def test_stable_sort_multidimensional_sorts_the_last_axis():
    @secret_jit
    def k(a):
        b = a.copy()
        b.sort(kind='mergesort')
        return b
    a = _sample(np.float64, 150, np.random.default_rng(2)).reshape(3, 50)
    np.testing.assert_array_equal(k(a), np.sort(a, kind='stable'))


# -- F3: readable names ---------------------------------------------------

@pytest.mark.parametrize('qualname', [
    'test_bulk_use_cases', 'decode_base_fe', 'f_ca_fe_de_be',
    'outer.<locals>.inner', 'café', '日本語', 'f_c3', 'g_e6_97',
])
def test_readable_undoes_numbas_mangling(qualname):
    name = '_Z' + mangle_identifier('pkg.mod.' + qualname) + 'B2v1E5Array'
    assert readable(name) == 'pkg.mod.' + qualname


def test_policy_message_names_the_function_as_written():
    @njit
    def walk_use_cases(n):
        return n if n < 2 else walk_use_cases(n - 1) + 1

    @secret_jit
    def kernel(n):
        return walk_use_cases(n)

    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\]') as exc:
        kernel(3)
    assert 'walk_use_cases' in str(exc.value)


# -- F4: generators -------------------------------------------------------

def test_secret_generator_consumed_inside_a_kernel():
    @secret_jit
    def frange(start, stop, step):
        i = start
        while i < stop:
            yield i
            i += step

    @secret_jit
    def kernel(n):
        total = 0.0
        for x in frange(0.0, n, 0.5):
            total += x
        return total, min(frange(1.1, 3.3, 0.1)), max(frange(1, 4, 1))

    assert kernel(3.0) == (7.5, 1.1, 3)
    # must fire: from Python, even for a signature compiled for the kernel
    for args in ((0.0, 3.0, 0.5), (1, 4, 1)):
        with pytest.raises(SecretPolicyError,
                           match=r'\[no-generators\].*frange.*called from '
                                 r'Python'):
            frange(*args)
