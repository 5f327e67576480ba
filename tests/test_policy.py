"""Policy: constructs that would break the erasure contract fail at compile time."""

import numpy as np
import pytest
from numba import njit, objmode, prange

from secretjit import SecretPolicyError, secret_jit


def test_parallel_option_rejected():
    with pytest.raises(SecretPolicyError, match=r'\[no-parallel\].*parallel=True'):
        @secret_jit(parallel=True)
        def k(x):
            return x


def test_prange_rejected():
    @secret_jit
    def k(a):
        s = 0
        for i in prange(a.shape[0]):
            s += a[i]
        return s

    with pytest.raises(SecretPolicyError, match=r'\[no-parallel\].*prange') as ei:
        k(np.arange(4))
    assert 'Fix: use range' in str(ei.value)


def test_parallel_helper_rejected():
    @njit(parallel=True)
    def helper(a):
        return a.sum()

    @secret_jit
    def k(a):
        return helper(a)

    with pytest.raises(SecretPolicyError, match=r'\[no-parallel\]'):
        k(np.arange(4))


def test_objmode_rejected():
    @secret_jit
    def k(x):
        with objmode(y='int64'):
            y = x + 1
        return y

    with pytest.raises(SecretPolicyError, match=r'\[no-objmode\]'):
        k(1)


def test_forceobj_rejected():
    with pytest.raises(SecretPolicyError, match=r'\[no-objmode\]'):
        secret_jit(forceobj=True)(lambda x: x)


def test_secret_kernel_called_from_plain_njit_rejected():
    @secret_jit
    def inner(x):
        return x + 1

    @njit
    def outer(x):
        return inner(x)

    with pytest.raises(Exception) as ei:
        outer(1)
    assert '[no-secret-from-plain]' in str(ei.value)
    assert 'decorate the caller with @secret_jit' in str(ei.value)


def test_recursion_rejected():
    with pytest.raises(SecretPolicyError,
                       match=r'\[bounded-stack\].*recursion.*fact -> .*fact'):
        @secret_jit('int64(int64)')
        def fact(n):
            if n <= 1:
                return 1
            return n * fact(n - 1)


@njit('int64(int64)')
def _recursive_helper(n):
    if n <= 0:
        return 0
    return _recursive_helper(n - 1) + n


def test_recursion_in_a_plain_helper_rejected():
    @secret_jit
    def k(n):
        return _recursive_helper(n)

    assert _recursive_helper(10) == 55       # plain numba: fine
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\].*_recursive_helper'):
        k(10)


def test_print_rejected():
    @secret_jit
    def k(x):
        print(x)
        return x

    with pytest.raises(SecretPolicyError, match=r'\[no-interpreter-calls\]'):
        k(1)


def test_error_is_a_numba_typing_error():
    from numba.core.errors import TypingError
    assert issubclass(SecretPolicyError, TypingError)
    err = SecretPolicyError('rule', 'what broke', 'the way out')
    assert str(err) == 'secretjit policy [rule]: what broke. Fix: the way out.'
    assert err.rule == 'rule'


def test_generator_kernel_called_from_python_rejected():
    @secret_jit
    def gen(n):
        for i in range(n):
            yield i

    with pytest.raises(SecretPolicyError, match=r'\[no-generators\]'):
        gen(3)


def test_generator_helper_consumed_inside_is_fine():
    @njit
    def counter(n):
        for i in range(n):
            yield i

    @secret_jit
    def k(n):
        s = 0
        for v in counter(n):
            s += v
        return s

    assert k(5) == 10


def test_jitclass_rejected_with_a_clear_message():
    from numba import int64
    from numba.experimental import jitclass

    @jitclass([('x', int64)])
    class Box:
        def __init__(self, x):
            self.x = x

    @secret_jit
    def k(y):
        return Box(y).x

    with pytest.raises(SecretPolicyError, match=r'\[no-jitclass\].*Box'):
        k(1)
