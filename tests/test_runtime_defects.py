"""Regression tests for the secret-memory runtime's defects D1-D7 (issue 18).

Each test drives the C runtime (secretjit/csrc) through ctypes in a child
process, as tests/test_arena.py does, and reproduces the defect's situation:
on the runtime before the fixes each of them fails (the closing note of
issue 18 has the outputs).
"""
import ctypes
import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap

import pytest

from test_arena import (PAGE, _drop_ipc_lock_wrapper, libpath, no_core,  # noqa: F401
                        run_script)

HERE = os.path.dirname(os.path.abspath(__file__))

# Subprocess scripts: L is the library; these set up its secret-stack API.
STACK_API = '''
    import threading
    L.secretjit_secret_call.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    L.secretjit_secret_call.restype = ctypes.c_int
    L.secretjit_stack_range.argtypes = [ctypes.POINTER(ctypes.c_size_t)] * 2
    L.secretjit_stack_range.restype = ctypes.c_int
    # A C function of one pointer argument that does nothing with NULL.
    NOOP = ctypes.cast(L.secretjit_arena_free, ctypes.c_void_p).value

    def my_stack():
        lo, hi = ctypes.c_size_t(), ctypes.c_size_t()
        assert L.secretjit_stack_range(ctypes.byref(lo), ctypes.byref(hi))
        return lo.value, hi.value

    def locked_kib(lo, hi):
        return secretmem.mapping_flags(lo, hi)[1]

    def is_locked(lo, hi):
        """mlock'ed (VmFlags lo), every resident page locked: the secret
        stack is locked on fault, so only the pages calls touched count."""
        flags, locked, rss = secretmem.mapping_flags(lo, hi)
        return int('lo' in flags and locked == rss and rss > 0)
'''


def script(body):
    return textwrap.dedent(STACK_API) + textwrap.dedent(body)


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


# -- D1: a forked child's secret stack -------------------------------------------

def test_d1_fork_child_relocks_its_secret_stack_and_counts_truly(libpath):
    if os.geteuid() != 0:
        pytest.skip('needs room to mlock two secret stacks (root)')
    r = ok(run_script(libpath, script('''
        assert L.secretjit_secret_call(NOOP, None, 0) == 0
        size = stats(L).stack_size
        lo, hi = my_stack()
        # A second thread with a secret stack, alive when the process forks.
        ready, leave, other = threading.Event(), threading.Event(), []
        def worker():
            assert L.secretjit_secret_call(NOOP, None, 0) == 0
            other.append(my_stack())
            ready.set()
            leave.wait()
        t = threading.Thread(target=worker)
        t.start()
        ready.wait()
        st = stats(L)
        assert st.locked_bytes == 2 * size, (st.locked_bytes, size)
        assert is_locked(lo, hi)
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            st = stats(L)
            olo, ohi = other[0]
            gone = secretmem.mapping_flags(olo, ohi)[2] == 0 and not any(
                m['start'] < ohi and m['end'] > olo for m in secretmem.mappings())
            call = L.secretjit_secret_call(NOOP, None, 0)  # touches the stack
            os.write(wr, ('%d %d %d %d' % (is_locked(lo, hi), st.locked_bytes,
                                           gone, call)).encode())
            os._exit(0)
        os.close(wr)
        child = os.read(rd, 200).decode()
        os.waitpid(pid, 0)
        leave.set()
        t.join()
        print('size', size, 'child', child)
    ''')))
    words = r.stdout.split()
    size = int(words[1])
    locked, counted, gone, call = map(int, words[3:])
    # The child's own secret stack is locked again, the other thread's
    # (which does not exist in the child) is unmapped, and the statistics
    # count what the child really has locked.
    assert (locked, counted, gone, call) == (1, size, 1, 0), r.stdout


# -- D2: a span carved to the exact size near exhaustion --------------------------

def test_d2_exact_span_serves_its_own_size_again(libpath):
    r = ok(run_script(libpath, '''
        # 16 pages: a 9-page block's class (16-page spans + guard) does not
        # fit, so it gets a span of exactly 9 pages (+ guard).
        n = 9 * PAGE - 64
        served = 0
        for i in range(50):
            p = L.secretjit_arena_alloc(n)
            if not p:
                break
            ctypes.memset(p, 7, n)
            L.secretjit_arena_free(p)
            served += 1
        st = stats(L)
        print(served, st.arena_failures, st.arena_in_use, st.arena_carved // PAGE)
    ''', env={'SECRETJIT_ARENA_SIZE': str(16 * PAGE)}))
    served, failures, in_use, carved = map(int, r.stdout.split())
    assert (served, failures, in_use, carved) == (50, 0, 0, 10), r.stdout


# -- D3: pthread_key_create failing ------------------------------------------------

def test_d3_key_exhaustion_falls_back_without_clobbering_key_0(libpath):
    code = textwrap.dedent('''
        import ctypes, sys
        sys.path.insert(0, %r)
        from test_arena import load, stats      # imports need keys: first
        libc = ctypes.CDLL(None)
        libc.pthread_getspecific.restype = ctypes.c_void_p
        libc.pthread_getspecific.argtypes = [ctypes.c_uint]
        key = ctypes.c_uint()
        made = 0
        while libc.pthread_key_create(ctypes.byref(key), None) == 0:
            made += 1
        assert made > 0
        before = libc.pthread_getspecific(0)
        L = load(%r)            # its constructor finds no key left
        L.secretjit_secret_call.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        L.secretjit_secret_call.restype = ctypes.c_int
        noop = ctypes.cast(L.secretjit_arena_free, ctypes.c_void_p).value
        ran = L.secretjit_secret_call(noop, None, 0)
        after = libc.pthread_getspecific(0)
        p = L.secretjit_arena_alloc(100)        # the arena works, uncached
        ctypes.memset(p, 1, 100)
        L.secretjit_arena_free(p)
        st = stats(L)
        print(ran, int(before == after), st.stack_fallbacks, st.stacks_created)
        sys.stdout.flush()
    ''' % (HERE, libpath))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ran, untouched, fallbacks, created = map(int, r.stdout.split()[:4])
    assert (ran, untouched, fallbacks, created) == (-1, 1, 1, 0), (r.stdout, r.stderr)
    assert 'pthread_key_create failed' in r.stderr, r.stderr
    assert "memory_status()['stack_fallbacks']" in r.stderr


# -- D4: freed locked memory goes back to RLIMIT_MEMLOCK ------------------------------

def test_d4_freed_span_returns_locked_memory_to_the_budget(libpath):
    wrapper, why = _drop_ipc_lock_wrapper()
    if wrapper is None:
        pytest.skip(f'cannot drop CAP_IPC_LOCK for the child: {why}')

    def memlock8m():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (8 << 20, 8 << 20))

    r = ok(run_script(libpath, script('''
        assert L.secretjit_secret_call(NOOP, None, 0) == 0    # 256 KiB locked
        n = int(7.7 * (1 << 20))
        p = L.secretjit_arena_alloc(n)
        ctypes.memset(p, 3, n)
        held = stats(L).locked_bytes
        L.secretjit_arena_free(p)
        freed = stats(L).locked_bytes
        out = []
        def worker():                   # a new thread's secret stack
            out.append(L.secretjit_secret_call(NOOP, None, 0))
            out.append(is_locked(*my_stack()))
        t = threading.Thread(target=worker)
        t.start()
        t.join()
        st = stats(L)
        print(held, freed, out[0], out[1], st.stack_size, st.mlock_errno,
              getattr(st, 'locked_cached', -1))
        # Over the budget: the warning names it.
        q = L.secretjit_arena_alloc(9 << 20)
        ctypes.memset(q, 4, 9 << 20)
        print(stats(L).mlock_errno)
    '''), wrapper=wrapper, preexec_fn=memlock8m))
    first, second = r.stdout.splitlines()
    held, freed, ran, stack_locked, size, err, cached = map(int, first.split())
    assert held >= int(7.7 * (1 << 20)), r.stdout
    assert freed == size and cached == 0, r.stdout  # only the main stack
    assert ran == 0 and stack_locked == 1 and err == 0, (r.stdout, r.stderr)
    assert int(second) == errno.ENOMEM
    warnings = [l for l in r.stderr.splitlines() if 'secretjit' in l]
    assert len(warnings) == 1, r.stderr
    assert 'the exhausted budget is RLIMIT_MEMLOCK' in warnings[0], warnings[0]
    assert 'RLIMIT_MEMLOCK is 8388608 bytes' in warnings[0], warnings[0]


def test_d4_small_freed_spans_stay_locked_for_reuse(libpath):
    """The bound does not munlock the common case: a small temporary freed
    and allocated again keeps its pages locked (no mlock per call)."""
    if os.geteuid() != 0:
        pytest.skip('needs room to mlock (root)')
    r = ok(run_script(libpath, '''
        p = L.secretjit_arena_alloc(3 * PAGE)
        ctypes.memset(p, 1, 3 * PAGE)
        L.secretjit_arena_free(p)
        before = stats(L)
        q = L.secretjit_arena_alloc(3 * PAGE)
        after = stats(L)
        L.secretjit_arena_free(q)
        print(int(q == p), before.locked_cached, before.locked_bytes, after.locked_bytes)
    '''))
    same, cached, locked_before, locked_after = map(int, r.stdout.split())
    assert same == 1 and cached == 3 * PAGE, r.stdout
    assert locked_before == locked_after == 3 * PAGE, r.stdout


# -- D5: mlock failing at vm.max_map_count -------------------------------------------

def test_d5_lock_failing_at_max_map_count_is_reported_and_retried(libpath):
    if os.geteuid() != 0:
        pytest.skip('needs RLIMIT_MEMLOCK room (root) to tell the two budgets apart')
    r = ok(run_script(libpath, '''
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                              ctypes.c_int, ctypes.c_int, ctypes.c_long]
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        max_maps = int(open('/proc/sys/vm/max_map_count').read())
        n = 9 * PAGE - 64               # a 16-page span; 9 of its pages locked
        # Fill the map count: a PROT_NONE region, every other page readable.
        pages = 2 * max_maps + 16
        region = libc.mmap(None, pages * PAGE, 0, 0x22 | 0x4000, -1, 0)
        assert region not in (None, 2**64 - 1)
        i = 1
        while i < pages - 2 and libc.mprotect(region + i * PAGE, PAGE, 1) == 0:
            i += 2
        # Now 0 or 1 slot is free.  Splitting off the last page takes the
        # last one, if any; unmapping that page (or, if there was none, an
        # isolated readable page) frees exactly one.
        last = region + (pages - 1) * PAGE
        if libc.mprotect(last, PAGE, 1) == 0:
            libc.munmap(last, PAGE)
        else:
            libc.munmap(region + PAGE, PAGE)
        p = L.secretjit_arena_alloc(n)       # carving takes it; mlock cannot
        libc.munmap(region, pages * PAGE)    # every slot back
        assert p
        ctypes.memset(p, 5, n)
        first = secretmem.mapping_flags(p, p + n)[1]
        err = stats(L).mlock_errno
        L.secretjit_arena_free(p)
        q = L.secretjit_arena_alloc(n)       # the same span: lock retried
        assert q == p
        ctypes.memset(q, 6, n)
        again = secretmem.mapping_flags(q, q + n)[1]
        print(first, err, again, stats(L).locked_bytes)
    ''', timeout=120, env={'SECRETJIT_SECRET_MEMORY': 'mlock'}))   # the mlock path
    first, err, again, counted = map(int, r.stdout.split())
    assert first == 0 and err == errno.ENOMEM, r.stdout
    warnings = [l for l in r.stderr.splitlines() if 'secretjit' in l]
    assert len(warnings) == 1, r.stderr
    assert 'the exhausted budget is vm.max_map_count' in warnings[0], warnings[0]
    assert 'not RLIMIT_MEMLOCK' in warnings[0]
    # Retried once map slots were free: locked, and counted.
    assert again * 1024 >= 9 * PAGE - 64 and counted >= 9 * PAGE, r.stdout


# -- D6: room for a signal frame -------------------------------------------------------

DEEP_C = r'''
#include <signal.h>
#include <stddef.h>
#include <string.h>
static volatile int handled;
static void on_usr1(int sig) { (void)sig; handled++; }
/* Use *(size_t *)arg bytes of stack, then take a signal there. */
void deep(void *arg)
{
    size_t n = *(size_t *)arg;
    volatile char buf[n];
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    buf[0] = 1;
    raise(SIGUSR1);
    buf[n - 1] = 2;
}
int deep_handled(void) { return handled; }
'''


@pytest.fixture(scope='module')
def deep_lib(tmp_path_factory):
    out = tmp_path_factory.mktemp('deep')
    (out / 'deep.c').write_text(DEEP_C)
    so = out / 'libdeep.so'
    import platform
    import shutil
    cc = 'gcc'
    if platform.machine() == 'aarch64' and shutil.which('aarch64-linux-gnu-gcc'):
        cc = 'aarch64-linux-gnu-gcc'        # under qemu on an x86-64 host
    subprocess.run([cc, '-O1', '-shared', '-fPIC', '-o', str(so),
                    str(out / 'deep.c')], check=True)
    return str(so)


def test_d6_signal_near_the_guard_page_does_not_kill_the_call(libpath, deep_lib):
    body = script('''
        D = ctypes.CDLL(%r)
        deep = ctypes.cast(D.deep, ctypes.c_void_p).value
        assert L.secretjit_secret_call(NOOP, None, 0) == 0
        size = stats(L).stack_size
        if MODE == 'full':          # a call tree using all but 1 KiB
            scrub = size - 1024
        else:                       # all that the reserve leaves
            L.secretjit_signal_reserve.restype = ctypes.c_size_t
            scrub = size - L.secretjit_signal_reserve()
        need = ctypes.c_size_t(scrub - 512)
        ran = L.secretjit_secret_call(deep, ctypes.byref(need), scrub)
        lo, hi = my_stack()
        print(ran, D.deep_handled(), stats(L).stack_fallbacks,
              ctypes.string_at(lo, hi - lo).count(0) == hi - lo)
    ''' % deep_lib)
    full, reserve = (run_script(libpath, body.replace('MODE', repr(mode)),
                                preexec_fn=no_core)
                     for mode in ('full', 'reserve'))
    # Before the reserve, the first call ran and the signal frame hit the
    # guard page (SIGSEGV).  Now it does not fit: the caller runs it in place.
    assert full.returncode == 0, (full.returncode, full.stderr)
    assert full.stdout.split() == ['-1', '0', '1', 'True'], full.stdout
    # What the reserve leaves is usable, with a signal at the bottom, and the
    # signal frame below the depth is zeroed after the call.
    assert reserve.returncode == 0, (reserve.returncode, reserve.stderr)
    assert reserve.stdout.split() == ['0', '1', '0', 'True'], reserve.stdout


def test_d6_compile_check_keeps_the_reserve(monkeypatch):
    """``depth + signal_reserve() > stack size`` is a bounded-stack error."""
    import numba
    import numpy as np
    from secretjit import SecretPolicyError, secret_jit, secretmem

    from _kernels import stack_kernel
    key = np.arange(4, dtype=np.uint64)
    k = secret_jit(stack_kernel)
    k(key)
    depth = k.stack_bound(k.signatures[0]).depth
    reserve = secretmem.signal_reserve()
    assert reserve >= secretmem.signal_window() > 128 + 2048
    monkeypatch.setattr(secretmem, 'stack_size', lambda: depth + reserve)
    secret_jit(stack_kernel).compile((numba.typeof(key),))
    monkeypatch.setattr(secretmem, 'stack_size', lambda: depth + reserve - 16)
    with pytest.raises(SecretPolicyError, match=r"\[bounded-stack\]") as info:
        secret_jit(stack_kernel).compile((numba.typeof(key),))
    assert 'kept for a signal frame' in str(info.value)


# -- D7: size settings ------------------------------------------------------------

BAD_SIZES = [
    ('SECRETJIT_ARENA_SIZE', '-268435456'),     # wrapped to 16 TiB
    ('SECRETJIT_ARENA_SIZE', '17179869185G'),   # shift overflow: 1 GiB
    ('SECRETJIT_STACK_SIZE', '-1'),             # wrapped, then rounded to 0
    ('SECRETJIT_STACK_SIZE', '18446744073709551616'),
    ('SECRETJIT_STACK_SIZE', '64Q'),
    ('SECRETJIT_STACK_SIZE', ' 64K'),
    ('SECRETJIT_STACK_SIZE', '0x10000'),
    ('SECRETJIT_STACK_SIZE', '2G'),             # above the range
    ('SECRETJIT_ARENA_SIZE', '4096'),           # below the range
]

LOAD_SECRETMEM = textwrap.dedent('''
    import importlib.util, sys
    spec = importlib.util.spec_from_file_location('sm', %r)
    sm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sm)
    try:
        sm.lib()
    except ValueError as e:
        print('ValueError', e)
    st = sm.MemStats()
    import ctypes
    ctypes.CDLL(sm.library_path()).secretjit_memstats(ctypes.byref(st))
    print(st.stack_size, st.arena_limit)
''')


def test_d7_bad_size_settings_are_rejected_with_the_range():
    import secretjit.secretmem as sm
    code = LOAD_SECRETMEM % sm.__file__
    env = {k: v for k, v in os.environ.items()
           if k not in ('SECRETJIT_ARENA_SIZE', 'SECRETJIT_STACK_SIZE')}
    good = subprocess.run([sys.executable, '-c', code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and 'ValueError' not in good.stdout, good
    defaults = good.stdout.split()
    ranges = {'SECRETJIT_ARENA_SIZE': 'from 8K to 4T',
              'SECRETJIT_STACK_SIZE': 'from 4K to 1G'}
    for name, value in BAD_SIZES:
        r = subprocess.run([sys.executable, '-c', code],
                           env=dict(env, **{name: value}),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        first, last = r.stdout.splitlines()[0], r.stdout.splitlines()[-1]
        assert first.startswith('ValueError secretjit: %s=%s is not a valid size'
                                % (name, value)), (name, value, r.stdout)
        assert ranges[name] in first, first
        assert last.split() == defaults, (name, value, last)     # the default
        assert '%s=%s' % (name, value) in r.stderr          # C-only users too
    for name, value, expect in (('SECRETJIT_STACK_SIZE', '64k', 0, ),
                                ('SECRETJIT_ARENA_SIZE', '1G', 1)):
        r = subprocess.run([sys.executable, '-c', code],
                           env=dict(env, **{name: value}),
                           capture_output=True, text=True, timeout=60)
        got = r.stdout.split()
        assert 'ValueError' not in r.stdout
        assert int(got[expect]) == (64 << 10 if expect == 0 else 1 << 30)
