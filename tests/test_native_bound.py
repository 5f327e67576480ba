"""Stack bounds of C code read from a shared object's machine code (issue 15).

``secretjit.stack_bound.native`` bounds numba's C destructor path from
``_nrt_python``'s machine code, which gives the plain-MemInfo bound of
``NRT_MemInfo_call_dtor`` numba's own frames instead of a 1 KiB allowance.
Checked here: the objdump reader against a C object built with gcc (every
bound covers the poisoned-stack measurement of the same function; an unknown
external and an unresolved pointer call are refused), and the plain bound
against numba's C destructor path measured on both kinds of plain MemInfo
(the arena's, and one numba's C runtime made with libc's allocator), and
why libc's free stays in that bound: a structref argument hands a kernel the
last reference to such a MemInfo (numba's C free runs inside the call; the
secret stack is clean after it, and clean only because of the scrub: the
control with scrub depth 0 leaves the tree's frames).
"""
import ctypes
import platform
import re
import shutil
import subprocess

import numpy as np
import pytest

from secretjit import pipeline, secretmem
from secretjit.errors import SecretPolicyError
from secretjit.stack_bound import CALL_DTOR, external_allowance, native
from secretjit.stack_bound.destructors import CALL_DTOR_PLAIN
from secretjit.testing import probes

from _stack_scan import zero_scrub_depths

pytestmark = pytest.mark.skipif(
    platform.machine() != 'x86_64' or not shutil.which('objdump'),
    reason='the machine-code reader is x86-64 only and needs objdump')

C_SOURCE = r'''
#include <stdlib.h>
__attribute__((noinline)) long leaf(long x)
{ volatile char b[200]; b[x & 7] = 1; return b[3]; }
__attribute__((noinline)) long mid(long x)
{ volatile char b[1000]; b[x & 7] = x; return leaf(x) + b[1]; }
long top(long x)
{
    switch (x & 7) {          /* a PIC jump table */
    case 0: return mid(x) + 1; case 1: return leaf(x) * 3; case 2: return x ^ 99;
    case 3: return mid(x * 5); case 4: return x - 7; case 5: return leaf(~x);
    default: return x;
    }
}
long extern_call(long x) { return (long)getenv((const char *)x); }
long through_pointer(long (*f)(long), long x) { return f(x) + 1; }
'''


@pytest.fixture(scope='module')
def c_object(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('native')
    (tmp / 't.c').write_text(C_SOURCE)
    so = tmp / 't.so'
    subprocess.run(['gcc', '-O2', '-fPIC', '-shared', '-o', str(so), str(tmp / 't.c')],
                   check=True)
    return str(so)


def test_bounds_cover_the_measured_depth(c_object):
    bounds = native.so_bounds(c_object, ['leaf', 'mid', 'top'], 'x86_64', {})
    lib = ctypes.CDLL(c_object)
    for name, args in (('leaf', [3]), ('mid', [3]), ('top', [0]), ('top', [3]),
                       ('top', [5])):
        addr = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        measured = probes.c_call_depth(addr, args)
        assert 0 < measured <= bounds[name].depth, (name, measured, bounds[name])
    # the frames are read, not guessed: mid's 1000-byte buffer and leaf below it
    assert bounds['mid'].depth >= 1200
    assert [f for f, _ in bounds['top'].path][:3] == ['top', 'mid', 'leaf']
    assert bounds['mid'].depth - probes.c_call_depth(
        ctypes.cast(lib.mid, ctypes.c_void_p).value, [3]) <= 64


def test_unknown_external_and_pointer_calls_are_refused(c_object):
    with pytest.raises(SecretPolicyError, match='getenv'):
        native.so_bounds(c_object, ['extern_call'], 'x86_64', {})
    with pytest.raises(SecretPolicyError, match='function pointer'):
        native.so_bounds(c_object, ['through_pointer'], 'x86_64', {})
    # with allowances for them: counted
    b = native.so_bounds(c_object, ['extern_call', 'through_pointer'], 'x86_64',
                         {'getenv': 500}, indirect_allowance=700)
    assert b['extern_call'].depth >= 500 and b['through_pointer'].depth >= 700


def test_not_readable_keeps_the_allowances():
    assert native.so_bounds(native.numba_nrt_path(), native.NUMBA_DTOR_PATH,
                            'aarch64', {}) is None
    assert native.so_bounds('/nonexistent.so', ['f'], 'x86_64', {}) is None


def _codegen_depths():
    from secretjit.target import secret_target
    return secret_target.target_context.codegen().runtime_depths


def test_plain_bound_covers_numba_c_destructor_path():
    """Both plain MemInfos the plain bound covers die through numba's C path
    within it: the arena's (the secret allocator's free) and one numba's C
    runtime made with libc's malloc (its C destructor, then libc's free)."""
    from numba.core.runtime import _nrt_python
    depths = _codegen_depths()
    frames = native.numba_dtor_frames('x86_64')
    assert 0 < frames < pipeline.NUMBA_DTOR_ALLOWANCE
    assert depths[CALL_DTOR_PLAIN] == frames + max(
        depths['secretjit_ea_free'], external_allowance('free'), external_allowance('memset'))
    assert depths[CALL_DTOR_PLAIN] < depths[CALL_DTOR]
    call_dtor = _nrt_python.c_helpers['MemInfo_call_dtor']
    arena_alloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)(
        secretmem_engine_address('NRT_MemInfo_alloc_aligned'))
    libc_alloc = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint)(
        _nrt_python.c_helpers['MemInfo_alloc_safe_aligned'])
    worst = {}
    for kind, alloc in (('arena', arena_alloc), ('libc', libc_alloc)):
        for size in (16, 4096, 1 << 20):
            mi = alloc(size, 32)
            worst[kind] = max(worst.get(kind, 0), probes.c_call_depth(call_dtor, [mi]))
    print(worst, depths[CALL_DTOR_PLAIN])
    assert 0 < max(worst.values()) <= depths[CALL_DTOR_PLAIN]
    # numba's frames alone sit under the measured depth (the free below them)
    assert frames < min(worst.values())


def secretmem_engine_address(name):
    from secretjit.target import secret_target
    addr = secret_target.target_context.codegen()._engine.get_function_address(name)
    assert addr, name
    secretmem.lib()
    return addr


def test_unmodelled_numba_path_keeps_the_allowance(monkeypatch):
    """A numba whose destructor path makes more pointer calls than the model
    describes (dtor, two frees) gets the 1 KiB allowance back."""
    assert native.numba_dtor_frames('x86_64') is not None
    try:
        native.numba_dtor_frames.cache_clear()
        monkeypatch.setattr(native, '_MODELLED_POINTER_CALLS', 2)
        assert native.numba_dtor_frames('x86_64') is None
        native.numba_dtor_frames.cache_clear()
        monkeypatch.setattr(native, 'numba_nrt_path', lambda: '/nonexistent.so')
        assert native.numba_dtor_frames('x86_64') is None
    finally:
        native.numba_dtor_frames.cache_clear()


RUNTIME_ENTRIES = ('secretjit_slab_alloc', 'secretjit_slab_free', 'secretjit_slab_realloc',
                   'secretjit_arena_alloc', 'secretjit_arena_free', 'secretjit_arena_realloc')


def test_runtime_own_frames_fit_their_allowances():
    """The secret runtime's own frames (every path; the C library calls with
    no allowance of their own counted 0, memset/memcpy/strlen with theirs),
    read from _secretmem's machine code, fit the allowances its
    entries keep.  The public arena entries still enrol a thread that calls
    them from C or Python (pthread_setspecific, __tls_get_addr below them);
    the kernel path's (secretjit_slab_*) no longer reach either and are
    bounded exactly: tests/test_runtime_bound.py."""
    so = secretmem.library_path()
    libc = {}
    for _ in range(64):                 # every C library function reached: 0
        try:
            bounds = native.so_bounds(so, RUNTIME_ENTRIES, 'x86_64', libc)
            break
        except SecretPolicyError as e:
            libc[re.search(r'external function (\S+)', str(e)).group(1)] = 0
    print({n: b.depth for n, b in bounds.items()}, sorted(libc))
    for name, b in bounds.items():
        assert 0 < b.depth <= external_allowance(name), (name, b)
    assert {'pthread_mutex_lock', 'pthread_setspecific'} <= set(libc)


def _structref_box():
    from numba import njit, types
    from numba.experimental import structref

    box_type = structref.register(type('BoxType', (types.StructRef,), {}))
    box = type('Box', (structref.StructRefProxy,), {})
    structref.define_proxy(box, box_type, ['arr'])

    @njit
    def make():
        return box(np.arange(64, dtype=np.uint64))
    return make


def replace_field(box, key):
    old = box.arr
    acc = old[0] ^ key
    box.arr = np.full(8, key, np.uint64)    # the old array's last reference
    return acc


def _left_after(kernel, box, key):
    """Non-zero words on the secret stack after one call (below-depth scrub off)."""
    lo, hi = secretmem.stack_range()
    was = secretmem.test_deep_scrub(False)
    try:
        ctypes.memset(lo, 0, hi - lo)
        kernel(box, key)
        raw = ctypes.string_at(lo, hi - lo)
    finally:
        secretmem.test_deep_scrub(was)
    return int(np.count_nonzero(np.frombuffer(raw, np.uint64)))


def test_libc_free_stays_in_the_plain_bound():
    """Why the plain bound keeps libc's free: a structref argument made by
    plain numba hands the kernel the last reference to its field's array, a
    MemInfo numba's C runtime made with libc malloc, which then dies inside
    the secret call.  The module names no varsize entry (plain bound); the
    free is counted in it; nothing is left below the bound on the secret
    stack (the runtime's below-depth scrub off)."""
    from numba.core.runtime import _nrt_python, rtsys
    from secretjit import secret_jit
    make = _structref_box()
    kernel = secret_jit(replace_field)
    key = np.uint64(0x5EC2E7)
    assert kernel(make(), key) == key
    depths = _codegen_depths()
    (b,) = kernel.overloads[kernel.signatures[0]].library.stack_bounds.values()
    assert b.externals[CALL_DTOR] == depths[CALL_DTOR_PLAIN]
    assert depths[CALL_DTOR_PLAIN] >= external_allowance('free')
    _nrt_python.memsys_enable_stats()
    try:
        box = make()
        before = rtsys.get_allocation_stats()
        left = _left_after(kernel, box, key)
        after = rtsys.get_allocation_stats()
    finally:
        _nrt_python.memsys_disable_stats()
    assert after.mi_free - before.mi_free == 1      # numba's C free ran in the call
    assert left == 0


def test_control_scrub_zero_leaves_the_structref_tree(monkeypatch):
    """Control for the scan above: the same kernel with scrub depth 0 leaves
    its tree's frames (the kernel's, numba's destructor path, libc's free)."""
    from secretjit import secret_jit
    zero_scrub_depths(monkeypatch)
    make = _structref_box()
    kernel = secret_jit(replace_field)
    key = np.uint64(0x5EC2E7)
    kernel(make(), key)
    assert _left_after(kernel, make(), key) > 0, "control failed: the scan sees nothing"
