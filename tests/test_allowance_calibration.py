"""The stack bound: exact for numba frames, measured allowances for C callees.

Calibration: each external C function the bound trusts is called here on a
poisoned stack with arguments that drive it down its slow paths, and the
depth it actually wrote must fit its allowance (like checking a strub
watermark).  End to end, kernels that allocate, call libm and raise must
leave no secret in a 64 KiB window, with the njit control leaking.
"""

import ctypes
import math

import numpy as np
import pytest
from numba import njit

from secretjit import secret_jit
from secretjit.testing import calibration, probes
from secretjit.stack_bound import (DEFAULT_ALLOWANCE, NUMBA_HELPER_ALLOWANCE,
                                   external_allowance, readable)
from secretjit.target import secret_target

from _kernels import derived_words, mix

libc = ctypes.CDLL(None)
libm = ctypes.CDLL('libm.so.6')


def _depth(lib, name, ints=(), floats=()):
    return probes.c_call_depth(calibration.symbol(lib, name), ints, floats)


@pytest.mark.parametrize('size', [1, 24, 1000, 4096, 200_000, 50_000_000])
def test_malloc_free_fit_their_allowance(size):
    depths = calibration.malloc_free_depths([size], 64)
    assert 0 < max(depths) <= min(external_allowance('malloc'),
                                  external_allowance('free')), max(depths)


def test_numba_c_helpers_fit_their_allowance():
    """Every numba C helper the bound lists is measured, on its slow paths."""
    measured = calibration.numba_helper_depths()
    assert set(measured) == set(NUMBA_HELPER_ALLOWANCE), \
        set(measured) ^ set(NUMBA_HELPER_ALLOWANCE)
    over = {n: (d, NUMBA_HELPER_ALLOWANCE[n]) for n, d in measured.items()
            if not d <= NUMBA_HELPER_ALLOWANCE[n]}
    assert not over, over
    # the slow paths ran: storage growth and 32-dimension reshapes write
    # deeper than the one-line accessors
    assert measured['numba_list_append'] > measured['numba_list_length']
    assert measured['numba_attempt_nocopy_reshape'] > 512


@pytest.mark.parametrize('name', ['memset', 'memcpy', 'memmove'])
def test_string_functions_fit_their_allowance(name):
    src = np.zeros(1 << 20, np.uint8)
    dst = np.zeros(1 << 20, np.uint8)
    for n in (0, 7, 64, 4096, 1 << 20):
        ints = [dst.ctypes.data, src.ctypes.data if name != 'memset' else 0, n]
        assert _depth(libc, name, ints) <= external_allowance(name)


@pytest.mark.parametrize('name,args', [
    ('sin', [1e22]), ('cos', [1e300]), ('tan', [1.5707963267948966]),
    ('exp', [709.7]), ('log', [1e-310]), ('pow', [1.0000001, 1e15]),
    ('fmod', [1e300, 3.0]), ('atan2', [1e-300, -1e300]), ('sinh', [700.0]),
    ('tgamma', [171.5]), ('lgamma', [-2.5]), ('erf', [0.5]), ('cbrt', [-27.0]),
    ('hypot', [1e300, 1e300]), ('asin', [0.9999999]), ('expm1', [1e-10])])
def test_libm_fits_its_allowance(name, args):
    depth = _depth(libm, name, floats=args)
    assert 0 < depth <= external_allowance(name), (name, depth)


def test_secret_arena_fits_its_allowance():
    """Carving fresh spans (mprotect, mlock, madvise), reuse, realloc, free."""
    from secretjit import secretmem
    alloc = secretmem.address('secretjit_arena_alloc')
    free = secretmem.address('secretjit_arena_free')
    realloc = secretmem.address('secretjit_arena_realloc')
    lib = secretmem.lib()
    lib.secretjit_arena_alloc.restype = ctypes.c_void_p
    lib.secretjit_arena_alloc.argtypes = [ctypes.c_size_t]
    lib.secretjit_arena_free.argtypes = [ctypes.c_void_p]
    depths, blocks = [], []
    carved = secretmem.memory_status()['arena_carved']
    for size in (1, 100, 5000, 70_000, 1 << 20, 3 << 20, 100, 5000):
        depths.append(probes.c_call_depth(alloc, [size]))
        blocks.append(lib.secretjit_arena_alloc(size))
    assert secretmem.memory_status()['arena_carved'] > carved   # slow paths ran
    for b in blocks:
        depths.append(probes.c_call_depth(free, [b]))
    for size in (100, 70_000):
        # realloc frees the old block; the probe drops the new one (a few
        # pages of this test process's arena stay in use)
        depths.append(probes.c_call_depth(
            realloc, [lib.secretjit_arena_alloc(size), 9000]))
    worst = max(depths)
    assert 0 < worst <= min(external_allowance(n) for n in (
        'secretjit_arena_alloc', 'secretjit_arena_free',
        'secretjit_arena_realloc')), worst


def test_slab_front_end_fits_its_allowance():
    """slab.c's paths: a new thread's bins, refills, fresh slabs (through the
    arena's carving), bins spilling to the depot, realloc to a span."""
    from secretjit import secretmem
    names = ('secretjit_slab_alloc', 'secretjit_slab_free',
             'secretjit_slab_realloc')
    alloc, free, realloc = (secretmem.address(n) for n in names)
    lib = secretmem.lib()
    lib.secretjit_slab_alloc.restype = ctypes.c_void_p
    lib.secretjit_slab_alloc.argtypes = [ctypes.c_size_t]
    slabs = secretmem.memory_status()['slab_bytes']
    depths, blocks = [], []
    for size in (2048, 1000, 16):       # 2048: 32 slots a slab, so 80 need new ones
        for _ in range(80):
            depths.append(probes.c_call_depth(alloc, [size]))
            blocks.append(lib.secretjit_slab_alloc(size))
    assert secretmem.memory_status()['slab_bytes'] > slabs     # slow paths ran
    for b in blocks:                    # 240 frees: bins overflow to the depot
        depths.append(probes.c_call_depth(free, [b]))
    for size in (100, 5000):
        depths.append(probes.c_call_depth(
            realloc, [lib.secretjit_slab_alloc(size), 9000]))
    worst = max(depths)
    print('worst', worst)
    assert 0 < worst <= min(external_allowance(n) for n in names), worst


def test_runtime_and_nrt_destructor_fit_their_bounds():
    ctx = secret_target.target_context
    codegen = ctx.codegen()
    depths = codegen.runtime_depths
    engine = codegen._engine
    alloc = engine.get_function_address('NRT_MemInfo_alloc_aligned')
    assert alloc
    measured = probes.c_call_depth(alloc, [4096, 32])
    assert measured <= depths['NRT_MemInfo_alloc_aligned']
    # allocate a block, then free it through numba's C destructor path
    fn = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)(alloc)
    from numba.core.runtime import _nrt_python
    call_dtor_addr = _nrt_python.c_helpers['MemInfo_call_dtor']
    worst = 0
    for size in (16, 4096, 1 << 20):
        mi = fn(size, 32)
        worst = max(worst, probes.c_call_depth(call_dtor_addr, [mi]))
    assert 0 < worst <= depths['NRT_MemInfo_call_dtor']
    for name in ('NRT_MemInfo_new_varsize', 'NRT_Allocate'):
        assert probes.c_call_depth(engine.get_function_address(name), [100]) \
            <= depths[name]


def alloc_libm_kernel(key, x):
    s = probes.stack_scratch(256)
    buf = np.empty(256, np.uint64)
    acc = 0.0
    for i in range(256):
        s[i] = mix(key, i)
        buf[i] = s[(i * 3) % 256]
        acc += math.sin(x * i) + math.pow(1.0001, float(i)) + math.exp(-x)
    big = np.zeros(100_000, np.uint64)        # a block glibc serves by mmap
    big[:256] = buf
    return acc + big.sum() % 7


def raise_with_runtime_args(key, n):
    s = probes.stack_scratch(256)
    acc = np.uint64(0)
    for i in range(256):
        s[i] = mix(key, i)
    for i in range(256):
        acc += s[(i * 3) % 256]
    if n > 3:
        raise ValueError("n too large:", n)
    return acc


# raise_with_runtime_args compiles only with the static-exceptions opt-out
# (its exception object is the caller's); the stack is still erased.
_EXC_OPT_OUT = {'allow': ('static-exceptions',)}


@pytest.mark.parametrize('kernel,args,options', [
    (alloc_libm_kernel, (0.37,), {}), (raise_with_runtime_args, (2,), _EXC_OPT_OUT)])
def test_kernels_with_external_calls_leave_nothing(key, kernel, args, options):
    words = derived_words(key, 256)
    _, stack = probes.stack_after_call(njit(kernel), key, *args)
    assert probes.count_words(stack, words) > 0, "control failed"
    result, stack = probes.stack_after_call(secret_jit(**options)(kernel), key, *args)
    assert probes.count_words(stack, words) == 0
    assert result == njit(kernel)(key, *args)


def test_exception_with_runtime_arguments(key):
    k = secret_jit(**_EXC_OPT_OUT)(raise_with_runtime_args)
    exc, stack = probes.stack_after_call(k, key, 5)
    assert isinstance(exc, ValueError) and exc.args == ("n too large:", 5)
    assert probes.count_words(stack, derived_words(key, 256)) == 0


def test_bound_reports_its_reasons(key):
    k = secret_jit(alloc_libm_kernel)
    k(key, 0.5)
    bound = k.stack_bound(k.signatures[0])
    assert 'NRT_MemInfo_alloc_aligned' in bound.externals
    assert any(n in bound.externals for n in ('sin', 'pow', 'exp'))
    assert bound.depth < DEFAULT_ALLOWANCE + 8192
    # the deepest path starts at the thunk that enters the secret stack
    assert readable(bound.path[0][0]).startswith('secret stack entry of ')
    assert readable(bound.path[0][0]).endswith('alloc_libm_kernel')
    assert readable(bound.path[1][0]).endswith('alloc_libm_kernel')


def test_getrandom_and_errno_fit_their_allowance():
    buf = np.zeros(1 << 16, np.uint8)
    for n in (1, 32, 1 << 16):
        assert _depth(libc, 'getrandom', [buf.ctypes.data, n, 0]) \
            <= external_allowance('secretjit_libc_getrandom')
    assert _depth(libc, '__errno_location') \
        <= external_allowance('secretjit_libc_errno_location')
