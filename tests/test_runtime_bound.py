"""The secret runtime's kernel-path entries bounded from their machine code (issue 15).

The kernels allocate through ``secretjit_slab_*`` (``secretjit/csrc/slab.c``).
No thread set-up runs below them any more: a thread enrols in the arena's and
the slabs' caches when its secret stack is set up (``pthread_setspecific``
arms the thread-exit destructors there, off the kernel path), and the arena's
cache is reached through an initial-exec pointer (no ``__tls_get_addr``,
which may ``malloc``).  So their call graph is closed but for a few C library
calls (:data:`~secretjit.stack_bound.allowances.RUNTIME_LIBC_ALLOWANCE`) and
the JIT counts :func:`~secretjit.stack_bound.native.runtime_bounds` instead of
1 KiB allowances.  Checked here: the graph (and its control, the public arena
entries, which still enrol a thread that calls them from C or Python), every
libc allowance against the poisoned-stack probe (a contended mutex too), the
deep paths of the entries against their bounds, and that the JIT uses them.
"""
import ctypes
import platform
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from secretjit import secretmem
from secretjit.errors import SecretPolicyError
from secretjit.stack_bound import external_allowance, native
from secretjit.stack_bound.allowances import RUNTIME_LIBC_ALLOWANCE
from secretjit.testing import calibration, probes

pytestmark = pytest.mark.skipif(
    platform.machine() != 'x86_64' or not shutil.which('objdump'),
    reason='the machine-code reader is x86-64 only and needs objdump')

libc = ctypes.CDLL(None)
THREAD_SETUP = {'pthread_setspecific', '__tls_get_addr', 'pthread_once',
                'pthread_key_create', 'malloc', 'calloc'}


def _libc_calls(roots):
    """The C library functions below ``roots`` in _secretmem (each counted 0)."""
    seen = {}
    for _ in range(64):
        try:
            native.so_bounds(secretmem.library_path(), roots, 'x86_64', seen)
            return set(seen)
        except SecretPolicyError as e:
            seen[re.search(r'external function (\S+)', str(e)).group(1)] = 0
    raise AssertionError(seen)


def test_kernel_path_reaches_no_thread_setup():
    """Regression (issue 15): pthread_setspecific and __tls_get_addr were
    below secretjit_slab_alloc/free.  The control: the public arena entries
    (enrolling their caller) still reach them, so the scan sees them."""
    kernel = _libc_calls(native.RUNTIME_ENTRIES)
    assert not kernel & THREAD_SETUP, kernel & THREAD_SETUP
    assert set(RUNTIME_LIBC_ALLOWANCE) >= kernel, kernel - set(RUNTIME_LIBC_ALLOWANCE)
    public = _libc_calls(('secretjit_arena_alloc', 'secretjit_arena_free'))
    assert {'pthread_setspecific', '__tls_get_addr'} <= public, public


MUTEX_HELPER = r'''
#include <pthread.h>
#include <time.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_t th;
static int flag;
static void pause50(void) { struct timespec t = {0, 50000000}; nanosleep(&t, 0); }
static void *hold(void *a)
{ pthread_mutex_lock(&m); __atomic_store_n(&flag, 1, 5); pause50();
  pthread_mutex_unlock(&m); return a; }
static void *waiter(void *a)
{ __atomic_store_n(&flag, 1, 5); pthread_mutex_lock(&m); pthread_mutex_unlock(&m); return a; }
void *mutex_addr(void) { return &m; }
void start_holder(void)
{ flag = 0; pthread_create(&th, 0, hold, 0); while (!__atomic_load_n(&flag, 5)); }
void start_waiter(void)
{ flag = 0; pthread_create(&th, 0, waiter, 0); while (!__atomic_load_n(&flag, 5)); pause50(); }
void join(void) { pthread_join(th, 0); }
'''


def _mutex_depths(tmp_path):
    """(contended lock, unlock waking a waiter): the futex paths."""
    (tmp_path / 'm.c').write_text(MUTEX_HELPER)
    so = tmp_path / 'm.so'
    subprocess.run(['gcc', '-O2', '-fPIC', '-shared', '-o', str(so), str(tmp_path / 'm.c'),
                    '-lpthread'], check=True)
    h = ctypes.CDLL(str(so))
    h.mutex_addr.restype = ctypes.c_void_p
    m = h.mutex_addr()
    lock, unlock = (calibration.symbol(libc, n) for n in
                    ('pthread_mutex_lock', 'pthread_mutex_unlock'))
    h.start_holder()
    contended = probes.c_call_depth(lock, [m])
    libc.pthread_mutex_unlock(ctypes.c_void_p(m))
    h.join()
    libc.pthread_mutex_lock(ctypes.c_void_p(m))
    h.start_waiter()
    waking = probes.c_call_depth(unlock, [m])
    h.join()
    return contended, waking


def test_runtime_libc_calls_fit_their_allowance(tmp_path):
    """Every C library call below the kernel-path entries, measured on a
    poisoned stack (system calls that do work, the futex paths of a mutex)."""
    d = lambda name, ints=(): probes.c_call_depth(calibration.symbol(libc, name), ints)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                          ctypes.c_int, ctypes.c_int, ctypes.c_long]
    page = libc.mmap(None, 1 << 16, 3, 0x22, -1, 0)
    path = ctypes.create_string_buffer(b'/proc/self/status')
    text = ctypes.create_string_buffer(b'  -1234567890123456 kB')
    buf, end, rl, mtx = (ctypes.create_string_buffer(n) for n in (4096, 8, 16, 64))
    fd = libc.open(path, 0)
    at = ctypes.addressof
    measured = {
        'mmap': d('mmap', [0, 1 << 16, 3, 0x22, 0xffffffff, 0]),
        'mprotect': d('mprotect', [page, 4096, 0]),
        'mlock': d('mlock', [page + 8192, 8192]),
        'munlock': d('munlock', [page + 8192, 8192]),
        'madvise': d('madvise', [page + 8192, 8192, 16]),
        'getrlimit': d('getrlimit', [8, at(rl)]),
        '__errno_location': d('__errno_location'),
        'strchr': d('strchr', [at(text), ord('k')]),
        'strncmp': d('strncmp', [at(text), at(path), 20]),
        'strtoll': d('strtoll', [at(text), at(end), 10]),
        'read': d('read', [fd, at(buf), 4096]),
        'close': d('close', [fd]),
        'open': d('open', [at(path), 0]),
        'write': d('write', [2, at(path), 0]),
        'pthread_mutex_lock': max(d('pthread_mutex_lock', [at(mtx)]),
                                  _mutex_depths(tmp_path)[0]),
        'pthread_mutex_unlock': max(d('pthread_mutex_unlock', [at(mtx)]),
                                    _mutex_depths(tmp_path)[1]),
    }
    for name in ('memset', 'memcpy', 'memmove', 'strlen'):
        assert RUNTIME_LIBC_ALLOWANCE[name] == external_allowance(name)
    assert set(measured) | {'memset', 'memcpy', 'memmove', 'strlen'} == set(
        RUNTIME_LIBC_ALLOWANCE)
    over = {n: (v, RUNTIME_LIBC_ALLOWANCE[n]) for n, v in measured.items()
            if not 0 < v <= RUNTIME_LIBC_ALLOWANCE[n]}
    assert not over, over
    print(measured)


def test_deep_paths_fit_the_bounds():
    """Must fire: the entries' slow paths (a new slab for a fresh size class,
    the double-free warning) write deeper than their fast paths, and within
    the bounds the JIT counts for them."""
    bounds = native.runtime_bounds('x86_64')
    assert set(bounds) == set(native.RUNTIME_ENTRIES)
    script = textwrap.dedent('''
        import ctypes, json
        from secretjit import secretmem
        from secretjit.testing import calibration, probes
        lib = ctypes.CDLL(secretmem.library_path())
        alloc, free = (calibration.symbol(lib, n) for n in
                       ('secretjit_slab_alloc', 'secretjit_slab_free'))
        f = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)(alloc)
        first = probes.c_call_depth(alloc, [1000])    # new slab: carve, mlock
        fast = probes.c_call_depth(alloc, [1000])
        p = f(1000)
        free_fast = probes.c_call_depth(free, [p])
        double = probes.c_call_depth(free, [p])       # warns on stderr
        print(json.dumps([first, fast, free_fast, double]))
        ''')
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, check=True)
    first, fast, free_fast, double = eval(out.stdout.strip().splitlines()[-1])
    assert 'already freed' in out.stderr, out.stderr
    assert fast < first <= bounds['secretjit_slab_alloc'], (fast, first, bounds)
    assert free_fast < double <= bounds['secretjit_slab_free'], (free_fast, double, bounds)


def test_jit_counts_the_machine_code_bounds():
    """The JIT's runtime depths count runtime_bounds, not the 1 KiB allowances."""
    from secretjit import pipeline
    from secretjit.target import secret_target
    depths = secret_target.target_context.codegen().runtime_depths
    bounds = native.runtime_bounds('x86_64')
    assert all(b < external_allowance(n) for n, b in bounds.items()), bounds
    cg = secret_target.target_context.codegen()
    _, old = pipeline.arena_nrt_module(
        cg._tm, 'x86_64', cg._llvm_module.triple, cg._data_layout,
        extra_allowance={n: external_allowance(n) for n in bounds})
    for name in ('NRT_Allocate', 'NRT_MemInfo_alloc_aligned', 'NRT_Free'):
        assert depths[name] < old[name], (name, depths[name], old[name])
