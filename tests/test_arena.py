"""The secret heap (secretjit/csrc/arena.c), driven through ctypes.

Everything that can crash, fork, exhaust the arena or change process limits
runs in a subprocess; the rest runs against the library loaded here.
"""
import ctypes
import errno
import os
import queue
import random
import re
import resource
import shutil
import signal
import subprocess
import sysconfig
import textwrap
import threading
from pathlib import Path

import pytest

from secretjit import _csrc, secretmem

import _backing
from _child import run_python

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / 'secretjit' / 'csrc'
PAGE = os.sysconf('SC_PAGE_SIZE')

def _sources_mtime():
    return max(p.stat().st_mtime for p in CSRC.iterdir()
               if p.suffix in ('.c', '.h'))


@pytest.fixture(scope='session')
def libpath(tmp_path_factory):
    """The library as the loader finds it (secretjit/_secretmem<EXT_SUFFIX>),
    or, when that is missing or older than the sources, one built here."""
    built = ROOT / 'secretjit' / ('_secretmem' + sysconfig.get_config_var('EXT_SUFFIX'))
    if built.exists() and built.stat().st_mtime >= _sources_mtime():
        return str(built)
    cc = shutil.which('gcc') or shutil.which('cc')
    if cc is None:
        pytest.skip('no C compiler to build the secret memory library')
    out = tmp_path_factory.mktemp('secretmem')
    sources = _csrc.paths()
    so = out / 'libsecretmem.so'
    subprocess.run([cc, '-O2', '-g', '-shared', '-fPIC', '-std=gnu11', '-Wall',
                    '-fvisibility=hidden', '-o', str(so), *sources], check=True)
    return str(so)


# struct secretjit_memstats, as the package loader declares it.
MemStats = secretmem.MemStats


def load(path):
    lib = ctypes.CDLL(path)
    lib.secretjit_arena_alloc.restype = ctypes.c_void_p
    lib.secretjit_arena_alloc.argtypes = [ctypes.c_size_t]
    lib.secretjit_arena_free.restype = None
    lib.secretjit_arena_free.argtypes = [ctypes.c_void_p]
    lib.secretjit_arena_realloc.restype = ctypes.c_void_p
    lib.secretjit_arena_realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.secretjit_arena_owns.restype = ctypes.c_int
    lib.secretjit_arena_owns.argtypes = [ctypes.c_void_p]
    lib.secretjit_memstats.restype = None
    lib.secretjit_memstats.argtypes = [ctypes.POINTER(MemStats)]
    return lib


def stats(lib):
    s = MemStats()
    lib.secretjit_memstats(ctypes.byref(s))
    return s


@pytest.fixture(scope='session')
def lib(libpath):
    return load(libpath)


def r16(n):
    return (n + 15) & ~15


def span_pages(size):
    """Data pages of the span that serves `size` (mirrors arena.c's classes)."""
    pages = -(-r16(size) // PAGE)
    return pages if pages <= 4 else 1 << (pages - 1).bit_length()


# Subprocess scripts get the library as L and these helpers.
PRELUDE = textwrap.dedent('''
    import ctypes, os, sys
    sys.path.insert(0, %r)
    from test_arena import load, stats, r16, PAGE, secretmem
    L = load(%r)
''')


def run_script(libpath, body, env=None, wrapper=(), preexec_fn=None, timeout=60):
    code = PRELUDE % (str(Path(__file__).parent), libpath) + textwrap.dedent(body)
    return run_python(code=code, env=env, drop=['SECRETJIT_ARENA_SIZE'],
                      wrapper=wrapper, timeout=timeout, preexec_fn=preexec_fn)


def no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def mapping_of(addr):
    """(start, end, perms) of the /proc/self/maps line holding addr."""
    with open('/proc/self/maps') as f:
        for line in f:
            rng, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in rng.split('-'))
            if lo <= addr < hi:
                return lo, hi, perms
    return None


def smaps_vmas(lo, hi):
    """The mappings (``secretmem.mappings`` dicts) inside [lo, hi)."""
    return [m for m in secretmem.mappings()
            if m['start'] >= lo and m['end'] <= hi]


# -- placement and guard pages ------------------------------------------------

SIZES = [1, 15, 16, 17, 100, 4080, 4095, 4096, 4097, 3 * 4096, 20000, 70000,
         1 << 20]


def test_alloc_is_aligned_writable_and_ends_at_a_guard(lib):
    st = stats(lib)
    if not os.environ.get('SECRETJIT_ARENA_SIZE'):
        assert st.arena_limit == 256 << 20      # the default
    assert st.arena_limit % PAGE == 0
    assert st.arena_end - st.arena_start == st.arena_limit
    for n in SIZES:
        p = lib.secretjit_arena_alloc(n)
        assert p, n
        assert p % 16 == 0
        assert st.arena_start <= p and p + r16(n) <= st.arena_end
        assert lib.secretjit_arena_owns(p) and lib.secretjit_arena_owns(p + n - 1)
        assert (p + r16(n)) % PAGE == 0, 'block must end at its data pages\' end'
        ctypes.memset(p, 0xA5, r16(n))     # the whole rounded block is usable
        assert ctypes.string_at(p, r16(n)) == b'\xa5' * r16(n)
        lo, hi, perms = mapping_of(p)
        assert perms.startswith('rw') and hi == p + r16(n)
        glo, ghi, gperms = mapping_of(p + r16(n))
        assert gperms.startswith('---') and glo == p + r16(n)
        lib.secretjit_arena_free(p)
    assert not lib.secretjit_arena_owns(st.arena_end)
    assert not lib.secretjit_arena_owns(st.arena_start - 1)
    assert not lib.secretjit_arena_owns(id(object()))


@pytest.mark.parametrize('size,offset,crashes', [
    (100, 'r16(n) - 1', False),     # last byte of the block: fine
    (100, 'r16(n)', True),          # one past: guard page
    (100, 'r16(n) + PAGE - 1', True),
    (17, '16 + 15', False),         # size 17 rounds to 32: byte 31 is usable
    (17, '32', True),
    (5 * 4096, 'r16(n)', True),     # a 5-page block in an 8-page span
])
def test_overrun_hits_the_guard_page(libpath, size, offset, crashes):
    r = run_script(libpath, f'''
        n = {size}
        p = L.secretjit_arena_alloc(n)
        assert p
        ctypes.memset(p + {offset}, 0x41, 1)
        print('wrote')
    ''', preexec_fn=no_core)
    if crashes:
        assert r.returncode == -signal.SIGSEGV, (r.returncode, r.stderr)
        assert 'wrote' not in r.stdout
    else:
        assert r.returncode == 0, r.stderr
        assert 'wrote' in r.stdout


# -- wiping -------------------------------------------------------------------

def test_free_wipes_every_byte_handed_out(lib):
    n = 3000
    p = lib.secretjit_arena_alloc(n)
    assert ctypes.string_at(p, r16(n)) == bytes(r16(n)), 'new blocks are zero'
    ctypes.memset(p, 0x5A, r16(n))
    lib.secretjit_arena_free(p)
    # The span stays mapped read-write: read what is left behind.
    assert ctypes.string_at(p, r16(n)) == bytes(r16(n))

    # Control: the same fill without a free is still there.
    q = lib.secretjit_arena_alloc(n)
    ctypes.memset(q, 0x5A, r16(n))
    assert ctypes.string_at(q, r16(n)) == b'\x5a' * r16(n)
    lib.secretjit_arena_free(q)
    assert ctypes.string_at(q, r16(n)) == bytes(r16(n))


def test_reused_span_is_zero_everywhere(lib):
    # A 7-page block and then a 5-page block share one 8-page span: the
    # second must not see the first, not even in the span's lower pages.
    big = lib.secretjit_arena_alloc(7 * PAGE)
    ctypes.memset(big, 0x77, 7 * PAGE)
    lib.secretjit_arena_free(big)
    small = lib.secretjit_arena_alloc(5 * PAGE)
    data_start = small + 5 * PAGE - 8 * PAGE
    assert data_start <= big, 'expected the same span back (thread cache is LIFO)'
    assert ctypes.string_at(data_start, 8 * PAGE) == bytes(8 * PAGE)
    lib.secretjit_arena_free(small)


def test_realloc_copies_and_wipes_the_old_block(lib):
    p = lib.secretjit_arena_alloc(100)
    ctypes.memmove(p, bytes(range(100)), 100)
    q = lib.secretjit_arena_realloc(p, 5000)
    assert q and q != p and (q + r16(5000)) % PAGE == 0
    assert ctypes.string_at(q, 100) == bytes(range(100))
    assert ctypes.string_at(p, r16(100)) == bytes(r16(100))
    r = lib.secretjit_arena_realloc(q, 10)
    assert ctypes.string_at(r, 10) == bytes(range(10))
    assert ctypes.string_at(q, 5000) == bytes(5000)
    f0 = stats(lib).arena_failures
    assert lib.secretjit_arena_realloc(r, 0) is None      # fails, r stays valid
    assert stats(lib).arena_failures == f0 + 1
    assert ctypes.string_at(r, 10) == bytes(range(10))
    lib.secretjit_arena_free(r)
    s = lib.secretjit_arena_realloc(None, 33)
    assert s and lib.secretjit_arena_owns(s)
    lib.secretjit_arena_free(s)


def test_bad_frees_are_ignored_with_one_warning(libpath):
    r = run_script(libpath, '''
        p = L.secretjit_arena_alloc(64)
        ctypes.memset(p, 1, 64)
        L.secretjit_arena_free(p)
        L.secretjit_arena_free(p)          # double free
        L.secretjit_arena_free(p)
        q = L.secretjit_arena_alloc(64)
        r = L.secretjit_arena_alloc(64)
        assert q == p and r != q, (q, r, p)   # p's span was queued once only
        L.secretjit_arena_free(q + 16)     # interior pointer
        buf = ctypes.create_string_buffer(64)
        L.secretjit_arena_free(ctypes.addressof(buf))   # not ours
        L.secretjit_arena_free(None)
        assert stats(L).arena_in_use == 2 * 2 * PAGE
        print('ok')
    ''')
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 3, r.stderr
    assert 'already freed' in lines[0]
    assert 'not the start' in lines[1]
    assert 'not a secret arena block' in lines[2]


# -- reuse ----------------------------------------------------------------------

def test_reuse_keeps_the_arena_bounded(lib):
    rng = random.Random(1234)
    sizes = [8, 64, 200, 1000, 4000, 4096, 6000, 9000, 16000, 30000, 60000]
    before = stats(lib)
    live, live_per, peak = [], {}, {}
    for _ in range(100_000):
        if live and (len(live) >= 16 or rng.random() < 0.5):
            p, n = live.pop(rng.randrange(len(live)))
            lib.secretjit_arena_free(p)
            live_per[span_pages(n)] -= 1
        else:
            n = rng.choice(sizes)
            p = lib.secretjit_arena_alloc(n)
            assert p
            live.append((p, n))
            k = span_pages(n)
            live_per[k] = live_per.get(k, 0) + 1
            peak[k] = max(peak.get(k, 0), live_per[k])
    for p, n in live:
        lib.secretjit_arena_free(p)
    after = stats(lib)
    # One thread, caches below the spill cap: a class never needs more spans
    # than it had live at once.
    bound = sum(count * (k + 1) * PAGE for k, count in peak.items())
    assert after.arena_carved - before.arena_carved <= bound
    assert bound < 5 << 20
    assert after.arena_in_use == before.arena_in_use
    assert after.arena_failures == before.arena_failures


# -- page flags -------------------------------------------------------------------

def test_smaps_shows_dontdump_wipeonfork_and_locked(lib):
    sizes = (64, 5000, 40000)       # spans of 1, 2 and 16 (for 10) pages
    blocks = [lib.secretjit_arena_alloc(n) for n in sizes]
    for p, n in zip(blocks, sizes):
        ctypes.memset(p, 0x11, n)
    st = stats(lib)
    assert st.dontdump_errno == 0 and st.wipeonfork_errno == 0
    fork_flag = _backing.fork_flag()            # wf, or sh for memfd_secret
    vmas = smaps_vmas(st.arena_start, st.arena_end)
    assert vmas and sum(v['end'] - v['start'] for v in vmas) == st.arena_limit
    release = tuple(int(x) for x in re.findall(r'\d+', os.uname().release)[:2])
    for v in vmas:
        assert 'dd' in v['flags'], (hex(v['start']), v['flags'])
        if release >= (4, 14):
            assert fork_flag in v['flags'], (hex(v['start']), v['flags'])
    if os.geteuid() != 0:
        pytest.skip('mlock checks need root (RLIMIT_MEMLOCK)')
    assert st.mlock_errno == 0
    for p, n in zip(blocks, sizes):
        vma = next(v for v in vmas if v['start'] <= p < v['end'])
        assert vma['perms'].startswith('rw') and 'lo' in vma['flags']
        assert vma['Locked'] * 1024 >= -(-r16(n) // PAGE) * PAGE
    locked = 0
    for v in vmas:
        if v['perms'].startswith('rw'):
            # whatever is resident is locked
            assert v['Rss'] == v['Locked'], (hex(v['start']), v)
            locked += v['Locked'] * 1024
    if fork_flag == 'wf':
        assert st.locked_bytes >= locked
    # memfd_secret: pages of spans freed earlier stay resident (and locked by
    # the kernel: MADV_DONTNEED is refused), so they count in Locked but no
    # longer in locked_bytes
    for p in blocks:
        lib.secretjit_arena_free(p)


def test_only_the_pages_handed_out_are_locked(libpath):
    # A 10-page block lives in a 16-page span: locking all 16 would pin
    # (almost) twice the memory for blocks just over a power of two.
    r = run_script(libpath, '''
        sys.path.insert(0, os.path.dirname(sys.modules['test_arena'].__file__))
        from test_arena import smaps_vmas
        def locked_pages(p):
            # (Locked, Rss) pages of the span; partial locking splits its VMA
            st = stats(L)
            lo, hi = end - 16 * PAGE, end
            vs = [v for v in smaps_vmas(st.arena_start, st.arena_end)
                  if lo <= v['start'] < hi]
            assert vs[0]['start'] == lo and vs[-1]['end'] == hi, vs
            return (sum(v['Locked'] for v in vs) * 1024 // PAGE,
                    sum(v['Rss'] for v in vs) * 1024 // PAGE)
        p = L.secretjit_arena_alloc(10 * PAGE)
        end = p + 10 * PAGE
        first = locked_pages(p)
        L.secretjit_arena_free(p)
        q = L.secretjit_arena_alloc(12 * PAGE)
        assert q == p - 2 * PAGE
        second = locked_pages(q)
        L.secretjit_arena_free(q)
        r = L.secretjit_arena_alloc(9 * PAGE)
        print(first, second, locked_pages(r), stats(L).locked_bytes // PAGE)
    ''', env={'SECRETJIT_SECRET_MEMORY': 'mlock'})   # memfd_secret: all locked
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ['(10,', '10)', '(12,', '12)', '(12,', '12)', '12']


# -- fork -----------------------------------------------------------------------

def test_fork_child_sees_zeros_and_can_use_the_arena(libpath):
    r = run_script(libpath, '''
        n = 8192
        p = L.secretjit_arena_alloc(n)
        ctypes.memset(p, 0xC3, n)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                assert ctypes.string_at(p, n) == bytes(n), 'inherited block not wiped'
                q = L.secretjit_arena_alloc(3000)
                assert q and q != p
                ctypes.memset(q, 0x3C, 3000)
                assert ctypes.string_at(q, 3000) == b'\\x3c' * 3000
                ctypes.memset(p, 0x99, n)    # the inherited block is usable
                # mlock is not inherited: the child must have re-locked.
                st = stats(L)
                locked = sum(v['Locked'] * 1024 for v in secretmem.mappings()
                             if st.arena_start <= v['start'] < st.arena_end)
                assert locked >= n + 4096, locked
                L.secretjit_arena_free(q)
                L.secretjit_arena_free(p)
                assert ctypes.string_at(p, n) == bytes(n)
                for i in range(1000):
                    b = L.secretjit_arena_alloc(64 + i)
                    assert b
                    ctypes.memset(b, 7, 64 + i)
                    L.secretjit_arena_free(b)
                assert stats(L).arena_failures == 0
            except BaseException as e:
                print('child:', repr(e), file=sys.stderr)
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert ctypes.string_at(p, n) == b'\\xc3' * n, 'parent lost its block'
        L.secretjit_arena_free(p)
        print('ok')
    ''')
    assert r.returncode == 0, r.stderr
    assert 'ok' in r.stdout


def test_fork_from_a_threaded_parent(libpath):
    # Two live threads hold cached spans when the parent forks.  The child
    # has only the forking thread: it must get those spans, count in-use
    # memory right, and survive new threads (glibc reuses the dead threads'
    # stacks and TLS, where their caches were).
    r = run_script(libpath, '''
        import threading
        hold, go = threading.Barrier(3), threading.Event()
        def worker():
            ps = [L.secretjit_arena_alloc(100) for _ in range(20)]
            for p in ps:
                L.secretjit_arena_free(p)      # 20 spans in this thread's cache
            keep = L.secretjit_arena_alloc(100)  # and one block in use
            hold.wait()
            go.wait()
            L.secretjit_arena_free(keep)
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        hold.wait()
        before = stats(L)
        assert before.arena_in_use == 2 * 2 * PAGE
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                st = stats(L)
                assert st.arena_in_use == before.arena_in_use, st.arena_in_use
                blocks = [L.secretjit_arena_alloc(100) for _ in range(38)]  # 2 x 19 cached
                assert all(blocks)
                st = stats(L)
                assert st.arena_carved == before.arena_carved, 'spans lost'
                assert st.arena_in_use == before.arena_in_use + 38 * 2 * PAGE
                def churn():
                    for _ in range(100):
                        q = L.secretjit_arena_alloc(3000)
                        ctypes.memset(q, 5, 3000)
                        L.secretjit_arena_free(q)
                for _ in range(3):
                    t = threading.Thread(target=churn)
                    t.start()
                    stats(L)
                    t.join()
                for b in blocks:
                    L.secretjit_arena_free(b)
                assert stats(L).arena_in_use == before.arena_in_use
            except BaseException as e:
                print('child:', repr(e), file=sys.stderr)
                code = 1
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        go.set()
        for t in threads:
            t.join()
        assert os.waitstatus_to_exitcode(status) == 0, status
        assert stats(L).arena_in_use == 0
        print('ok')
    ''')
    assert r.returncode == 0, r.stderr
    assert 'ok' in r.stdout


# -- exhaustion -------------------------------------------------------------------

def test_exhaustion_returns_null_and_recovers(libpath):
    r = run_script(libpath, '''
        st = stats(L)
        assert st.arena_limit == 1 << 20, st.arena_limit
        blocks = []
        while True:
            p = L.secretjit_arena_alloc(4000)
            if not p:
                break
            ctypes.memset(p, 1, 4000)
            blocks.append(p)
        # every 1-page span takes 2 pages (data + guard)
        assert len(blocks) == (1 << 20) // (2 * PAGE), len(blocks)
        assert stats(L).arena_failures == 1
        for _ in range(5):
            assert not L.secretjit_arena_alloc(16)
        assert not L.secretjit_arena_alloc(2 << 20)     # larger than the arena
        assert not L.secretjit_arena_alloc(0)
        assert not L.secretjit_arena_alloc(2**64 - 1)
        assert stats(L).arena_failures == 9
        L.secretjit_arena_free(blocks.pop())
        p = L.secretjit_arena_alloc(10)
        assert p, 'freeing must make room'
        ctypes.memset(p, 2, 10)
        assert not L.secretjit_arena_alloc(10)
        # Spans are never merged: 1-page spans cannot serve a 2-page block.
        for b in blocks:
            L.secretjit_arena_free(b)
        assert not L.secretjit_arena_alloc(2 * PAGE)
        st = stats(L)
        assert st.arena_in_use == 2 * PAGE and st.arena_failures == 11
        print('ok')
    ''', env={'SECRETJIT_ARENA_SIZE': '1M'})
    assert r.returncode == 0, r.stderr
    assert 'ok' in r.stdout


def test_near_exhaustion_uses_exact_and_larger_spans(libpath):
    r = run_script(libpath, '''
        assert stats(L).arena_limit == 16 * PAGE
        a = L.secretjit_arena_alloc(5 * PAGE)      # 8-page span + guard
        assert a and stats(L).arena_carved == 9 * PAGE
        b = L.secretjit_arena_alloc(5 * PAGE)      # 7 pages left: exact span
        assert b and stats(L).arena_carved == 15 * PAGE
        ctypes.memset(b, 3, 5 * PAGE)
        assert not L.secretjit_arena_alloc(1)      # 1 page left: no room
        L.secretjit_arena_free(a)
        c = L.secretjit_arena_alloc(1)             # served by the 8-page span
        assert c and a <= c < a + 5 * PAGE
        L.secretjit_arena_free(b)
        d = L.secretjit_arena_alloc(4 * PAGE)      # the exact 5-page span
        assert d and (d + 4 * PAGE) == b + 5 * PAGE
        ctypes.memset(d, 4, 4 * PAGE)
        assert stats(L).arena_carved == 15 * PAGE
        print('ok')
    ''', env={'SECRETJIT_ARENA_SIZE': str(16 * PAGE)})
    assert r.returncode == 0, r.stderr
    assert 'ok' in r.stdout


# -- threads ------------------------------------------------------------------------

def test_threads_with_cross_thread_frees(lib):
    nthreads, cycles, qmax = 8, 20_000, 32
    sizes = [24, 200, 3000, 5000, 9000]     # spans of 1, 1, 1, 2, 3 data pages
    inbox = [queue.Queue(maxsize=qmax) for _ in range(nthreads)]
    errors = []
    before = stats(lib)

    def check_and_free(p, n, b):
        if ctypes.string_at(p, n) != bytes([b]) * n:
            errors.append(('corrupt', hex(p), n, b))
        lib.secretjit_arena_free(p)

    def worker(i):
        rng = random.Random(i)
        pattern = 0x30 + i
        try:
            for c in range(cycles):
                n = rng.choice(sizes)
                p = lib.secretjit_arena_alloc(n)
                if not p:
                    errors.append(('null', n))
                    return
                ctypes.memset(p, pattern, n)
                try:
                    if c % 4 != 0:
                        raise queue.Full
                    inbox[(i + 1) % nthreads].put_nowait((p, n, pattern))
                except queue.Full:
                    check_and_free(p, n, pattern)
                while True:
                    try:
                        check_and_free(*inbox[i].get_nowait())
                    except queue.Empty:
                        break
        except Exception as e:      # pragma: no cover - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for q in inbox:
        while not q.empty():
            check_and_free(*q.get())
    after = stats(lib)
    assert not errors, errors[:5]
    assert after.arena_failures == before.arena_failures
    assert after.arena_in_use == before.arena_in_use
    # Without reuse 160k blocks would need > 1 GB.  With it: the blocks live
    # at once (queued or held) plus what every thread may cache per class.
    live = nthreads * (qmax + 2) * (3 + 1) * PAGE
    cached = nthreads * 32 * ((1 + 1) + (2 + 1) + (3 + 1)) * PAGE
    carved = after.arena_carved - before.arena_carved
    print('carved', carved, 'bound', live + cached)
    assert carved <= live + cached


def test_producer_consumer_does_not_leak_the_arena(lib):
    q = queue.Queue(maxsize=64)
    count, errors = 30_000, []
    before = stats(lib)

    def producer():
        for _ in range(count):
            p = lib.secretjit_arena_alloc(64)
            if not p:
                errors.append('null')
                break
            ctypes.memset(p, 0xEE, 64)
            q.put(p)
        q.put(None)

    def consumer():
        while (p := q.get()) is not None:
            if ctypes.string_at(p, 64) != b'\xee' * 64:
                errors.append(hex(p))
            lib.secretjit_arena_free(p)

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = stats(lib)
    assert not errors, errors[:5]
    # In flight (<= 66) + consumer's cache (<= 32) + producer's batch (<= 8).
    spans = (after.arena_carved - before.arena_carved) // (2 * PAGE)
    assert spans <= 120, spans


def test_thread_exit_returns_cached_spans(libpath):
    r = run_script(libpath, '''
        import threading
        def churn():
            ps = [L.secretjit_arena_alloc(100) for _ in range(20)]
            for p in ps:
                L.secretjit_arena_free(p)     # 20 spans stay in its cache
        t = threading.Thread(target=churn); t.start(); t.join()
        # join() returns before the OS thread has run its TLS destructors.
        import time
        deadline = time.monotonic() + 10
        while len(os.listdir('/proc/self/task')) > 1 and time.monotonic() < deadline:
            time.sleep(0.001)
        carved = stats(L).arena_carved
        assert carved == 20 * 2 * PAGE, carved
        ps = [L.secretjit_arena_alloc(100) for _ in range(20)]
        assert stats(L).arena_carved == carved, 'the dead thread kept its spans'
        print('ok')
    ''')
    assert r.returncode == 0, r.stderr
    assert 'ok' in r.stdout


# -- mlock failure -------------------------------------------------------------------

def _cap_ipc_lock_effective():
    with open('/proc/self/status') as f:
        capeff = int(next(l for l in f if l.startswith('CapEff:')).split()[1], 16)
    return bool(capeff & (1 << 14))         # CAP_IPC_LOCK


def _drop_ipc_lock_wrapper():
    """A command prefix that runs its argv without CAP_IPC_LOCK, or the
    reasons why none could be found."""
    if not _cap_ipc_lock_effective():
        return [], None
    tried = []
    setpriv = shutil.which('setpriv')
    if setpriv:
        cmd = [setpriv, '--inh-caps=-ipc_lock', '--bounding-set=-ipc_lock']
        r = subprocess.run(cmd + ['true'], capture_output=True, text=True)
        if r.returncode == 0:
            return cmd, None
        tried.append(f'setpriv failed: {r.stderr.strip()}')
    else:
        tried.append('no setpriv (util-linux)')
    capsh = shutil.which('capsh')
    if capsh:
        cmd = [capsh, '--drop=cap_ipc_lock', '--', '-c', 'exec "$@"', 'capsh']
        r = subprocess.run(cmd + ['true'], capture_output=True, text=True)
        if r.returncode == 0:
            return cmd, None
        tried.append(f'capsh failed: {r.stderr.strip()}')
    else:
        tried.append('no capsh (libcap2-bin)')
    return None, '; '.join(tried)


@pytest.mark.parametrize('tool', ['setpriv', 'capsh'])
def test_mlock_failure_warns_once_and_keeps_working(libpath, tool, monkeypatch):
    if tool == 'capsh':     # the fallback, when setpriv is missing
        monkeypatch.setattr(shutil, 'which',
                            lambda name, _w=shutil.which: None if name == 'setpriv' else _w(name))
    wrapper, why = _drop_ipc_lock_wrapper()
    if wrapper is None:
        pytest.skip(f'cannot drop CAP_IPC_LOCK for the child: {why}')
    if wrapper == [] and tool == 'capsh':
        pytest.skip('CAP_IPC_LOCK is not effective here: nothing to drop')
    if wrapper and os.path.basename(wrapper[0]) != tool:
        pytest.skip(f'{tool} not available; used {wrapper[0]}')

    def memlock0():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))

    r = run_script(libpath, '''
        import resource
        assert resource.getrlimit(resource.RLIMIT_MEMLOCK) == (0, 0)
        with open('/proc/self/status') as f:
            capeff = int(next(l for l in f if l.startswith('CapEff:')).split()[1], 16)
        assert not capeff & (1 << 14), 'CAP_IPC_LOCK still effective'
        blocks = []
        for i in range(300):
            n = 16 + 997 * i
            p = L.secretjit_arena_alloc(n)
            assert p
            ctypes.memset(p, i & 0xff, n)
            blocks.append((p, n, i & 0xff))
        for p, n, b in blocks:
            assert ctypes.string_at(p, n) == bytes([b]) * n
            L.secretjit_arena_free(p)
        for i in range(2000):
            p = L.secretjit_arena_alloc(64)
            ctypes.memset(p, 1, 64)
            L.secretjit_arena_free(p)
        st = stats(L)
        print(st.mlock_errno, st.locked_bytes, st.arena_failures)
    ''', wrapper=wrapper, preexec_fn=memlock0)
    assert r.returncode == 0, r.stderr
    mlock_errno, locked, failures = map(int, r.stdout.split())
    assert mlock_errno == errno.EPERM and locked == 0 and failures == 0
    warnings = [l for l in r.stderr.splitlines() if 'secretjit' in l]
    assert len(warnings) == 1, r.stderr
    assert 'mlock' in warnings[0] and 'RLIMIT_MEMLOCK is 0 bytes' in warnings[0]
    assert 'ulimit -l' in warnings[0]
