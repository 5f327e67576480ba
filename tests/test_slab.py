"""The secret heap's small-block front end (secretjit/csrc/slab.c), via ctypes.

Blocks of at most 2 KiB are slots of size classes in slabs (arena blocks);
larger ones are arena spans with a guard page each.  Everything that can
crash, fork or depends on a fresh library state runs in a subprocess.
"""
import ctypes
import textwrap
import threading

import pytest

from secretjit import secretmem

from test_arena import (PAGE, libpath, load, no_core, run_script,  # noqa: F401
                        span_pages, stats)

SLAB_MAX = 2048
SLAB_BYTES = 64 << 10
PRELUDE = '''
    def slab(lib):
        for name in ('alloc', 'realloc'):
            f = getattr(lib, 'secretjit_slab_' + name)
            f.restype = ctypes.c_void_p
        lib.secretjit_slab_alloc.argtypes = [ctypes.c_size_t]
        lib.secretjit_slab_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        lib.secretjit_slab_free.argtypes = [ctypes.c_void_p]
        lib.secretjit_slab_free.restype = None
        return lib
    slab(L)
    A, F = L.secretjit_slab_alloc, L.secretjit_slab_free
'''


def script(libpath, body, **kw):
    r = run_script(libpath, textwrap.dedent(PRELUDE) + textwrap.dedent(body), **kw)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert 'ok' in r.stdout, r.stdout
    return r


@pytest.fixture(scope='module')
def sl(libpath):
    lib = load(libpath)
    lib.secretjit_slab_alloc.restype = ctypes.c_void_p
    lib.secretjit_slab_alloc.argtypes = [ctypes.c_size_t]
    lib.secretjit_slab_free.argtypes = [ctypes.c_void_p]
    lib.secretjit_slab_realloc.restype = ctypes.c_void_p
    lib.secretjit_slab_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return lib


def slot_of(size):
    """The slot size that serves `size` (mirrors slab.c's classes)."""
    return max(16, 1 << (size - 1).bit_length())


def test_size_class_boundaries(sl):
    """n and n + 1 at every class edge: slot sizes from the stats; 2048 is the
    last slab size, 2049 an arena span (its own pages and guard)."""
    for n in (1, 15, 16, 17, 31, 32, 33, 64, 65, 127, 128, 129, 255, 256, 257,
              511, 512, 513, 1023, 1024, 1025, 2047, 2048):
        before = stats(sl)
        p = sl.secretjit_slab_alloc(n)
        after = stats(sl)
        assert p and p % 16 == 0 and sl.secretjit_arena_owns(p), n
        assert after.slab_in_use - before.slab_in_use == slot_of(n), n
        ctypes.memset(p, 0x5A, slot_of(n))        # the whole slot is writable
        sl.secretjit_slab_free(p)
        assert stats(sl).slab_in_use == before.slab_in_use, n
    for n in (2049, 5000):
        before = stats(sl)
        p = sl.secretjit_slab_alloc(n)
        after = stats(sl)
        assert after.slab_in_use == before.slab_in_use, n
        assert after.arena_in_use - before.arena_in_use == (span_pages(n) + 1) * PAGE, n
        assert (p + n + 15) // 16 * 16 % PAGE == 0, 'a span block ends at its guard'
        sl.secretjit_slab_free(p)
        assert stats(sl).arena_in_use == before.arena_in_use


def test_reused_slot_was_wiped(sl):
    """A freed slot reads zero at once (every byte of the slot, also past the
    requested size), and the next block of its class is that slot.  Control:
    a live block and a freed libc block keep the pattern."""
    p = sl.secretjit_slab_alloc(100)
    live = sl.secretjit_slab_alloc(100)
    ctypes.memset(p, 0xAB, 128)
    ctypes.memset(live, 0xAB, 128)
    sl.secretjit_slab_free(p)
    assert ctypes.string_at(p, 128) == bytes(128)
    assert ctypes.string_at(live, 128) == b'\xab' * 128       # control: read works
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    m = libc.malloc(100)
    ctypes.memset(m, 0xAB, 100)
    libc.free(m)
    assert ctypes.string_at(m + 32, 64) == b'\xab' * 64       # control: libc keeps it
    q = sl.secretjit_slab_alloc(120)                          # same class (128)
    assert q == p and ctypes.string_at(q, 128) == bytes(128)
    sl.secretjit_slab_free(q)
    sl.secretjit_slab_free(live)


def test_realloc_copies_and_wipes(sl):
    p = sl.secretjit_slab_alloc(40)
    ctypes.memmove(p, b'k' * 40, 40)
    q = sl.secretjit_slab_realloc(p, 3000)             # slab -> span
    assert q and ctypes.string_at(q, 40) == b'k' * 40
    assert ctypes.string_at(p, 64) == bytes(64), 'old slot not wiped'
    r = sl.secretjit_slab_realloc(q, 20)               # span -> span (shrunk)
    assert r and ctypes.string_at(r, 20) == b'k' * 20
    s = sl.secretjit_slab_realloc(None, 50)
    t = sl.secretjit_slab_realloc(s, 500)              # slab -> slab
    assert t and ctypes.string_at(t, 64) == bytes(64)
    for b in (r, t):
        sl.secretjit_slab_free(b)


def test_bad_and_double_frees_warn_once(libpath):
    r = script(libpath, '''
        p, q = A(64), A(64)
        before = stats(L)
        F(p + 16)                      # inside a slot, not its start
        F(p)
        F(p)                           # double free
        F(p)
        assert A(64) == p and stats(L).slab_in_use == before.slab_in_use
        assert A(64) not in (p, q), 'a double-freed slot was cached twice'
        print('ok')
    ''')
    assert r.stderr.count('not the start of a secret arena block') == 1, r.stderr
    assert r.stderr.count('block already freed') == 1, r.stderr


def test_small_overrun_stays_in_the_slab_large_one_faults(libpath):
    """What changes: past a small block lies the next slot of its class (no
    fault); a block over 2 KiB still ends at a guard page (fault)."""
    script(libpath, '''
        p, q = A(64), A(64)
        assert abs(q - p) == 64
        ctypes.memset(min(p, q) + 64, 1, 16)   # into the neighbour: no fault
        print('ok')
    ''')
    r = run_script(libpath, textwrap.dedent(PRELUDE) + textwrap.dedent('''
        p = A(3000)
        ctypes.memset(p, 1, 3008)              # within the 16-byte rounding
        print('in bounds', flush=True)
        ctypes.memset(p + 3008, 1, 1)          # the guard page
        print('not reached')
    '''), preexec_fn=no_core)
    assert r.returncode < 0 and 'in bounds' in r.stdout, (r.returncode, r.stderr)
    assert 'not reached' not in r.stdout


def test_cross_thread_frees_reuse_slots(sl):
    """Producer threads allocate, this thread frees; rounds of it do not grow
    the slabs, and every block handed out again is zero."""
    blocks = []

    def produce():
        for _ in range(300):
            p = sl.secretjit_slab_alloc(200)
            ctypes.memset(p, 0xEE, 256)
            blocks.append(p)

    for n in range(6):
        ts = [threading.Thread(target=produce) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for p in blocks:
            sl.secretjit_slab_free(p)
        blocks.clear()
        if n == 1:
            grown = stats(sl).slab_bytes
    st = stats(sl)
    assert st.slab_bytes == grown, (grown, st.slab_bytes)
    ps = [sl.secretjit_slab_alloc(200) for _ in range(600)]
    assert all(ctypes.string_at(p, 256) == bytes(256) for p in ps)
    for p in ps:
        sl.secretjit_slab_free(p)


def test_slabs_are_locked_undumped_wiped_on_fork(libpath):
    """The slabs are arena memory: locked, dd and wf (sh: memfd_secret) in
    smaps; a forked child (of
    a parent whose other thread holds cached slots) reads its inherited live
    block as zeros, frees it, and gets the other thread's slots, zero."""
    script(libpath, '''
        import threading
        p = A(500)
        ctypes.memset(p, 0xC3, 512)
        st = stats(L)
        vmas = [v for v in secretmem.mappings() if v['start'] <= p < v['end']]
        root = os.geteuid() == 0          # else RLIMIT_MEMLOCK may refuse
        assert vmas and (vmas[0]['Locked'] > 0 or not root), vmas
        memfd = secretmem.memory_status()['backing'] == 'memfd_secret'
        assert {'dd', 'sh' if memfd else 'wf'} <= vmas[0]['flags'], vmas
        ready, go = threading.Barrier(2), threading.Event()
        def worker():
            L.secretjit_arena_thread_enroll()   # as its first secret call would
            for q in [A(500) for _ in range(40)]:
                F(q)                       # 40 slots cached in this thread
            ready.wait()
            go.wait()
        t = threading.Thread(target=worker)
        t.start()
        ready.wait()
        carved = stats(L).slab_bytes
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                assert ctypes.string_at(p, 512) == bytes(512), 'inherited slot not wiped'
                F(p)
                qs = [A(500) for _ in range(41)]
                assert all(qs) and stats(L).slab_bytes == carved, 'slots lost'
                assert all(ctypes.string_at(q, 512) == bytes(512) for q in qs)
                st = stats(L)
                locked = sum(v['Locked'] * 1024 for v in secretmem.mappings()
                             if v['start'] <= p < v['end'])
                assert locked > 0 or not root, 'child did not re-lock the slab'
                for q in qs:
                    F(q)
                assert stats(L).slab_in_use == 0
            except BaseException as e:
                print('child:', repr(e), file=sys.stderr)
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        go.set()
        t.join()
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert ctypes.string_at(p, 512) == b'\\xc3' * 512, 'parent lost its block'
        F(p)
        print('ok')
    ''')


def test_secret_kernels_allocate_from_slabs():
    """numba's temporaries in a secret kernel are slab slots (the slabs grow
    by at most one per class in 1000 calls); plain njit does not use them."""
    import numpy as np
    from numba import njit
    from secretjit import secret_jit

    def temp(x):
        a = np.empty(16, np.uint64)
        a[:] = x
        return a.sum()

    plain, secret = njit(temp), secret_jit(temp)
    before = secretmem.memory_status()
    for _ in range(1000):
        plain(3)
    assert secretmem.memory_status()['slab_in_use'] == before['slab_in_use']
    secret(3)
    mid = secretmem.memory_status()
    for _ in range(1000):
        assert secret(3) == 48
    after = secretmem.memory_status()
    assert mid['slab_bytes'] > 0
    assert after['slab_bytes'] == mid['slab_bytes']
    assert after['slab_in_use'] == before['slab_in_use']
