"""Hardened secret memory (issue 6): what the kernel and the C runtime promise.

Every test runs the same kernel under plain ``njit`` as its control:

- /proc/self/smaps: the arena and secret-stack mappings are MADV_DONTDUMP
  (``dd``), MADV_WIPEONFORK (``wf``), mlock'ed (``Locked`` > 0), and a
  PROT_NONE guard page follows a buffer / lies below the stack; an njit
  buffer's mapping has none of it;
- fork: the child reads zeros in a buffer a secret kernel returned (the njit
  buffer keeps its bytes) and runs secret kernels itself;
- RSS and arena counters stay flat over 10^6 allocating calls;
- a write 2 KiB past a 4 KiB secret buffer dies with SIGSEGV on the guard
  page; the same write from njit goes unnoticed (buffers of at most 2 KiB are
  slab slots, with a guard page after the slab: tests/test_slab.py);
- 8 threads calling ``nogil`` kernels and freeing each other's arrays get
  the reference results;
- SECRETJIT_ARENA_SIZE=1M: a 4 MiB allocation raises MemoryError naming
  the setting; njit allocates it;
- a 1 MiB stack frame (beyond the 256 KiB secret stack) is refused at compile
  time (or faults on the guard page), never runs silently; njit runs it.

Where a kernel must crash or the environment differs, it runs in a
subprocess (tests/_hardened_child.py).
"""

import ctypes
import gc
import hashlib
import hmac
import json
import mmap
import os
import queue
import signal
import sys
import threading

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _hardened_kernels as hk  # noqa: E402
import secretjit  # noqa: E402
from secretjit.secretmem import stack_range  # noqa: E402

import _backing
from _child import run_python


def child(*args, env=None, timeout=180):
    """Run tests/_hardened_child.py; (returncode, [json lines], stderr).

    The child gets the default arena and stack sizes unless ``env`` sets them.
    """
    r = run_python(os.path.join(HERE, '_hardened_child.py'), *args, env=env,
                   drop=['SECRETJIT_ARENA_SIZE', 'SECRETJIT_STACK_SIZE'],
                   timeout=timeout)
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{')]
    return r.returncode, lines, r.stderr


# -- /proc/self/smaps ---------------------------------------------------------

smaps, vma = hk.smaps, hk.vma


def kernel_prints_wf():
    """Whether this kernel shows MADV_WIPEONFORK as ``wf`` in VmFlags."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    size = mmap.PAGESIZE
    addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    try:
        if libc.madvise(addr, size, 18) != 0:                # MADV_WIPEONFORK
            return False
        return 'wf' in vma(addr)['flags']
    finally:
        libc.munmap(addr, size)


def test_arena_and_secret_stack_mappings_are_dontdump_wipeonfork_locked():
    secret, plain = hk.both(hk.alloc_fill)
    live = [secret(4096, 1) for _ in range(16)]    # > 2 KiB: a span, not a slab slot
    inner = hk.guarded(live, 4096)
    assert inner, 'no secret buffer has a one-page guard between it and the next span'
    a = inner[0]
    b = plain(4096, 1)
    st = secretjit.memory_status()
    assert st['mlock_errno'] == 0 and st['dontdump_errno'] == 0 \
        and st['wipeonfork_errno'] == 0, st
    addr = a.ctypes.data
    assert st['arena_start'] <= addr < st['arena_end'], 'returned array not in the arena'
    rng = stack_range()
    assert rng is not None, 'no secret stack after a secret call on this thread'
    lo, hi = rng
    assert hi - lo >= st['stack_size'] > 0
    maps = smaps()
    fork_flag = _backing.fork_flag()    # wf, or sh (shared) for memfd_secret
    want = {'dd', fork_flag} if fork_flag == 'sh' or kernel_prints_wf() else {'dd'}
    for label, m in (('arena', vma(addr, maps)), ('secret stack', vma(lo, maps)),
                     ('secret stack top', vma(hi - 1, maps))):
        assert want <= m['flags'], '%s VmFlags %s' % (label, sorted(m['flags']))
        assert m['Locked'] > 0, '%s not locked: %s' % (label, m)
        assert m['perms'].startswith('rw'), m
    # PROT_NONE guard page after the buffer (hk.guarded: one page, then the
    # next span) and below the stack
    guard = '---' + _backing.share()
    assert vma(addr + 4096 + 2048, maps)['perms'] == guard
    g = vma(lo - 1, maps)
    assert g['perms'] == guard and 'dd' in g['flags'], g
    assert st['locked_bytes'] >= st['stack_size']
    # the reserved, not yet carved rest of the arena is excluded too
    rest = vma(st['arena_end'] - 1, maps)
    assert 'dd' in rest['flags'], rest
    # control: numba's own buffer lives in ordinary memory
    m = vma(b.ctypes.data, maps)
    assert not ({'dd', 'wf'} & m['flags']) and m['Locked'] == 0, m
    assert not (st['arena_start'] <= b.ctypes.data < st['arena_end'])


# -- fork -------------------------------------------------------------------

def test_forked_child_reads_zeros_and_runs_secret_kernels():
    rc, lines, err = child('fork')
    assert rc == 0, err
    r = lines[-1]
    assert 'error' not in r, r
    assert r['buffer_in_arena']
    assert r['plain_buffer_sum'] == r['expected_sum'], 'control: fork copies memory'
    assert r['secret_buffer_sum'] == 0, 'the forked child sees the secret buffer'
    assert r['parent_secret_buffer_sum_after'] == r['expected_sum']
    assert r['child_alloc_ok'] and r['child_kernel_ok'] and r['child_thread_ok'], r


# -- RSS ---------------------------------------------------------------------

def _rss_kib():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])


def _growth(fn, calls, warmup):
    for _ in range(warmup):
        fn()
    gc.collect()
    before = _rss_kib()
    for _ in range(calls):
        fn()
    gc.collect()
    return _rss_kib() - before


@pytest.mark.slow
def test_rss_and_arena_flat_over_a_million_calls():
    s_small, p_small = hk.both(hk.small)
    s_fill, p_fill = hk.both(hk.alloc_fill)
    calls, warmup = 10 ** 6, 10 ** 5
    out = {}
    for name, fn in (('njit temp', lambda: p_small(1.0)),
                     ('secret temp', lambda: s_small(1.0)),
                     ('njit returned', lambda: p_fill(64, 1)),
                     ('secret returned', lambda: s_fill(64, 1))):
        for _ in range(warmup):
            fn()
        gc.collect()
        st0 = secretjit.memory_status()
        out[name] = _growth(fn, calls if 'temp' in name else calls // 2, 0)
        if name.startswith('secret'):
            st1 = secretjit.memory_status()
            # no span leaked, none carved after the warm-up: the arena is reused
            assert st1['arena_in_use'] <= st0['arena_in_use'], (name, st0, st1)
            assert st1['arena_carved'] == st0['arena_carved'], (name, st0, st1)
            assert st1['arena_failures'] == st0['arena_failures']
    print('\nRSS growth KiB over 10^6 (temp) / 5*10^5 (returned) calls:', out)
    for kind in ('temp', 'returned'):
        assert out['secret ' + kind] <= max(out['njit ' + kind], 0) + 1024, out


# -- guard page --------------------------------------------------------------

@pytest.mark.parametrize('mode', ['control', 'secret'])
def test_write_past_a_secret_buffer_faults_on_the_guard_page(mode):
    rc, lines, err = child('guard', mode)
    states = [x.get('state') for x in lines]
    assert 'writing' in states, (states, err[-2000:])
    if mode == 'control':
        assert rc == 0 and 'survived' in states, \
            'control failed: njit should corrupt silently (rc %d) %s' % (rc, err[-2000:])
    else:
        assert rc in (-signal.SIGSEGV, -signal.SIGBUS), (rc, states, err[-2000:])
        assert 'survived' not in states


# -- threads -----------------------------------------------------------------

def test_eight_threads_nogil_alloc_here_free_there():
    from secretjit.kernels.hmac import hmac_sha256_into
    lcg, lcg_ref = hk.both(hk.lcg_array, nogil=True)
    lcg(1, 1)
    lcg_ref(1, 1)
    hmac_sha256_into(np.zeros(1, np.uint8), np.zeros(1, np.uint8), np.empty(32, np.uint8))
    n_threads, rounds = 8, 300
    inbox = [queue.Queue() for _ in range(n_threads)]
    errors = []
    base = secretjit.memory_status()

    def work(t):
        try:
            rng = np.random.default_rng(t)
            out = np.empty(32, np.uint8)
            for i in range(rounds):
                key = rng.integers(0, 256, rng.integers(1, 100), dtype=np.uint8)
                msg = rng.integers(0, 256, rng.integers(0, 300), dtype=np.uint8)
                hmac_sha256_into(key, msg, out)
                if out.tobytes() != hmac.new(key.tobytes(), msg.tobytes(),
                                             hashlib.sha256).digest():
                    errors.append(('hmac', t, i))
                seed, n = t * 100000 + i, int(rng.integers(1, 3000))
                inbox[(t + 1) % n_threads].put((seed, n, lcg(seed, n)))
                seed, n, arr = inbox[t].get(timeout=60)        # a neighbour's array
                if not np.array_equal(arr, lcg_ref(seed, n)):
                    errors.append(('lcg', t, i))
                del arr                                        # freed on this thread
        except BaseException as e:                             # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    gc.collect()
    st = secretjit.memory_status()
    assert st['arena_in_use'] <= base['arena_in_use'], (base, st)
    assert st['stack_fallbacks'] == base['stack_fallbacks']
    assert st['stacks_created'] >= base['stacks_created'] + n_threads


# -- limits ------------------------------------------------------------------

def test_arena_exhaustion_raises_memoryerror_naming_the_setting():
    rc, lines, err = child('exhaust', env={'SECRETJIT_ARENA_SIZE': '1M'})
    assert rc == 0, err[-3000:]
    r = lines[-1]
    assert r['plain_big'] == 4 << 20, 'control: njit allocates 4 MiB'
    assert r['status']['arena_limit'] == 1 << 20
    assert r['big'] == 'MemoryError', r
    assert 'SECRETJIT_ARENA_SIZE' in r['message'], r['message']
    assert r['small_before'] == r['small_after'] == 1024
    assert r['status']['arena_failures'] >= 1


def test_frame_beyond_the_secret_stack_is_refused_not_run():
    rc, lines, err = child('frame')
    calling = [x for x in lines if x.get('state') == 'calling']
    assert calling, (rc, err[-3000:])
    assert calling[0]['plain_big'] == 7, 'control: njit runs a 1 MiB frame'
    assert calling[0]['fits'] == calling[0]['fits_plain'] == 9
    if rc in (-signal.SIGSEGV, -signal.SIGBUS):
        return                                  # the guard page stopped it
    assert rc == 0, err[-3000:]
    r = lines[-1]
    assert r['outcome'] == 'SecretPolicyError', r
    assert 'stack' in r['message'].lower(), r['message']
    assert 'SECRETJIT_STACK_SIZE' in r['message'], r['message']
    assert r['status']['stack_fallbacks'] == 0, 'a kernel ran off the secret stack'
    assert r['status']['stacks_created'] >= 1
