"""NRT_MemInfo_call_dtor's stack bound follows the MemInfos a module makes.

A module that names none of numba's varsize entries only makes plain
MemInfos, destroyed by the arena's free: its kernels get the shallow bound
(``stack_bound.destructors.CALL_DTOR_PLAIN``).  A module that makes varsize
MemInfos (a list of arrays) keeps the deep one, whose destructor calls the
payload's destructor through a pointer.  Each bound is checked on the secret
stack with the runtime's below-depth scrub off, so the computed depth alone
must cover the teardown; the control compiles the same kernels with no
allowance for the destructor path, and the same scan finds its frames.
"""
import ctypes

import numpy as np
import pytest

from secretjit import secret_jit, secretmem
from secretjit.stack_bound import CALL_DTOR
from secretjit.stack_bound.destructors import (CALL_DTOR_OWN, CALL_DTOR_PLAIN,
                                               closed_arguments, for_module)

from _kernels import derived_words, list_of_arrays, mix
from _stack_scan import deepest_write, zero_scrub_depths
from secretjit.testing import probes


def plain_temporaries(key):
    tmp = np.empty(64, np.uint64)
    for i in range(64):
        tmp[i] = mix(key, i)
    return tmp.sum()


def _bound(kernel):
    lib = kernel.overloads[kernel.signatures[0]].library
    (b,) = lib.stack_bounds.values()
    return lib.codegen.runtime_depths, b


def _left_on_secret_stack(kernel, key):
    """(non-zero words, key words) on the secret stack after one call, with
    the runtime's below-depth scrub off."""
    kernel(key)                         # compiled; the thread's stack exists
    lo, hi = secretmem.stack_range()
    was = secretmem.test_deep_scrub(False)
    try:
        ctypes.memset(lo, 0, hi - lo)
        kernel(key)
        raw = ctypes.string_at(lo, hi - lo)
    finally:
        secretmem.test_deep_scrub(was)
    words = np.frombuffer(raw, dtype=np.uint64)
    return int(np.count_nonzero(words)), probes.count_words(raw, derived_words(key, 64))


@pytest.mark.parametrize('text, plain', [
    ('declare ptr @NRT_MemInfo_alloc_aligned(i64, i32)', True),
    ('call void @NRT_MemInfo_call_dtor(ptr %m)', True),
    ('declare ptr @NRT_MemInfo_new_varsize_dtor(i64, ptr)', False),
    ('%p = call ptr @NRT_MemInfo_varsize_realloc(ptr %m, i64 %n)', False),
    ('declare ptr @"NRT_MemInfo_new_varsize"(i64)', False),
])
def test_for_module_picks_the_bound_from_the_ir(text, plain):
    table = {CALL_DTOR: 3000, CALL_DTOR_PLAIN: 2000, 'memset': 256}
    out = for_module(table, text)
    assert out[CALL_DTOR] == (2000 if plain else 3000)
    assert CALL_DTOR_PLAIN not in out and out['memset'] == 256
    # without the plain entry (AOT, the tests' own tables): unchanged
    assert for_module({CALL_DTOR: 3000}, text) == {CALL_DTOR: 3000}


_ARRAY = '5ArrayIyLi1E1C7mutable7alignedE'
_KERNEL = '_ZN8__main__1kB2v1B38c8tJTIeFIjxB2IKSgI4CrvQClQZ6FczSBAA_3dE'


@pytest.mark.parametrize('args, closed', [
    (_ARRAY + 'xd', True),                                   # array, int64, float64
    ('5TupleI' + _ARRAY + '5ArrayIhLi2E1A8readonly7alignedEEb', True),
    ('8UniTupleIyLi3EE', True),
    ('y', True),
    ('7BoxType', False),                                     # a structref
    ('8ListTypeI' + _ARRAY + 'E', False),                    # a typed List
    ('10complex128', False),                                 # not listed: kept
    (_ARRAY + '12DictType', False),
])
def test_closed_arguments_from_the_mangled_boundary(args, closed):
    text = 'call void @"__secretjit.boundary.%s%s"(ptr %%a)' % (_KERNEL, args)
    assert closed_arguments(text) is closed
    table = {CALL_DTOR: 3000, CALL_DTOR_PLAIN: 2000, CALL_DTOR_OWN: 900}
    assert for_module(table, text)[CALL_DTOR] == (900 if closed else 2000)
    # a varsize entry keeps the deep bound whatever the arguments
    assert for_module(table, text + ' @NRT_MemInfo_new_varsize(')[CALL_DTOR] == 3000
    # a second boundary with a structref argument: the plain bound
    other = '\n@"__secretjit.boundary.%s7BoxType"' % _KERNEL
    assert for_module(table, text + other)[CALL_DTOR] == 2000
    assert not closed_arguments('no boundary here')


def test_plain_memInfos_get_the_shallow_bound(key):
    kernel = secret_jit(plain_temporaries)
    assert kernel(key) == plain_temporaries(key)
    depths, b = _bound(kernel)
    assert depths[CALL_DTOR_OWN] < depths[CALL_DTOR_PLAIN] < depths[CALL_DTOR]
    # an array argument: only arena MemInfos die inside (closed_arguments)
    assert b.externals[CALL_DTOR] == depths[CALL_DTOR_OWN]
    assert b.depth < depths[CALL_DTOR_PLAIN]
    nonzero, keys = _left_on_secret_stack(kernel, key)
    assert (nonzero, keys) == (0, 0)


def test_varsize_memInfos_keep_the_deep_bound(key):
    kernel = secret_jit(list_of_arrays)
    assert kernel(key) == list_of_arrays(key)
    depths, b = _bound(kernel)
    assert b.externals[CALL_DTOR] == depths[CALL_DTOR]
    assert b.depth > depths[CALL_DTOR]
    nonzero, keys = _left_on_secret_stack(kernel, key)
    assert (nonzero, keys) == (0, 0)


@pytest.mark.parametrize('py_func', [plain_temporaries, list_of_arrays])
def test_control_without_a_scrub_depth_leaves_the_tree_and_it_fits(key, monkeypatch,
                                                                   py_func):
    """Control: the same kernel with a scrub depth of 0 leaves its call
    tree's frames (the kernel's, allocation, destructors, free) on the secret
    stack, and the scan finds them; the deepest of them lies within the
    bound the kernel gets."""
    compiled = secret_jit(py_func)
    compiled(key)
    real = _bound(compiled)[1].depth
    zero_scrub_depths(monkeypatch)
    kernel = secret_jit(py_func)
    assert kernel(key) == py_func(key)
    nonzero, _ = _left_on_secret_stack(kernel, key)
    assert nonzero > 0, "control failed: the scan cannot see the call tree's frames"
    assert 0 < deepest_write(kernel, key) <= real
