"""Core dumps hold no derived key: Go's runtime/secret TestCore, for secretjit.

A child process (tests/_core_child.py) runs THREADS threads that call a
secret kernel in a loop; every call derives a fresh key inside the kernel
(HKDF-SHA256 from a seed and the thread/call number) and returns only an AEAD
tag under it.  The parent recomputes every key with ``cryptography``, dumps the
child with ``gcore`` and searches the ELF core:

- memory (PT_LOAD segments): must hold no key for ``secret_jit``.  The secret
  arena and the secret stacks are MADV_DONTDUMP, so they are not in the core
  at all, and nothing else may hold a key;
- register notes (NT_PRSTATUS, NT_FPREGSET, NT_X86_XSTATE of each thread):
  the registers of threads interrupted mid-call.  Reported, not asserted: a
  thread stopped inside a kernel holds its key in registers by necessity.

Two moments: "after" (every thread finished its calls and waits) and
"during" (threads still calling; several dumps).  The control is the same
source under plain numba with ``wipe`` a no-op; it must leave keys in the
dumped memory, or the scan proves nothing.  In each process one key is
planted on purpose (copied out of a kernel into a live numpy array): the scan
must find it, in the secret process too.
"""

import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _corescan  # noqa: E402
from _core_child import PLANTED_THREAD  # noqa: E402

THREADS = 8
CALLS = 1000           # calls per thread before the "after" dump
WINDOW = 1024          # key(t, c mod WINDOW): THREADS * WINDOW keys to search
DURING_DUMPS = 2       # at least; up to MAX_DURING_DUMPS until one catches a thread mid-call
MAX_DURING_DUMPS = 16

pytestmark = [
    pytest.mark.skipif(shutil.which('gdb') is None, reason='gdb (for gcore) is not installed'),
    pytest.mark.skipif(platform.machine() not in ('x86_64', 'aarch64'),
                       reason='register-note layout known for x86-64 and AArch64 only')]

_results = {}


def _summary(scan, named, maps):
    """Counts for the report: keys and words per mapping, register notes."""
    per_place = {}
    for k, addrs in scan['memory'].items():
        for a in addrs:
            place = _corescan.where(a, maps, named)
            per_place.setdefault(place, set()).add(k)
    regs = [{n: len(ks) for n, ks in t.items()} for t in scan['registers']]
    return {'places': {p: len(ks) for p, ks in per_place.items()}, 'registers': regs}


_spawned = {}


def _spawn(mode):
    """Start the child of ``mode`` (once); it compiles, calls, then waits."""
    if mode not in _spawned:
        seed = secrets.token_bytes(32)
        err = tempfile.TemporaryFile('w+')
        child = subprocess.Popen(
            [sys.executable, os.path.join(HERE, '_core_child.py'), mode, str(THREADS),
             str(CALLS), str(WINDOW), seed.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
        _spawned[mode] = child, seed, err
    return _spawned[mode]


@pytest.fixture(scope='module')
def children(request):
    """Start the children of every selected mode at once: they compile in parallel."""
    modes = {item.callspec.params['mode'] for item in request.session.items
             if item.module is request.module and hasattr(item, 'callspec')
             and 'mode' in item.callspec.params}
    for mode in sorted(modes):
        _spawn(mode)
    yield
    for child, _, err in _spawned.values():
        if child.poll() is None:
            child.kill()
            child.wait()
        err.close()
    _spawned.clear()


def _stderr(err):
    err.seek(0)
    return err.read()[-3000:]


def _run(mode):
    """Run the child for ``mode`` once per test session; dumps after and during."""
    if mode in _results:
        return _results[mode]
    child, seed, err = _spawn(mode)
    tmp = _corescan.tempdir()
    try:
        line = child.stdout.readline()
        if not line:
            child.wait(timeout=60)
            raise RuntimeError('child failed (%s): %s' % (child.returncode, _stderr(err)))
        info = json.loads(line)
        keys = [_corescan.derive(seed, t, c) for t in range(THREADS) for c in range(WINDOW)]
        planted = _corescan.derive(seed, PLANTED_THREAD, 0)
        index = _corescan.KeyIndex(keys + [planted])
        planted_id = len(keys)
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
        from _core_child import MESSAGE
        for t, c, tag in info['last']:          # the parent's keys are the child's keys
            assert ChaCha20Poly1305(keys[t * WINDOW + c]).encrypt(
                bytes(12), MESSAGE, b'')[-16:].hex() == tag
        named = []
        st = info['status']
        if st:
            named.append((st['arena_start'], st['arena_end'], 'secret arena'))
        for r in info['stacks'] + [info['main_stack']]:
            if r:
                named.append((r[0], r[1], 'secret stack'))

        def dump():
            """Take a core now and scan it with the child stopped (SIGSTOP).

            Returns the scan; ``caught`` says whether a thread was stopped
            mid-call: on a secret stack (secret), in JIT code (control).
            """
            # SIGSTOP first: every thread stops at once, where it is.  gdb
            # attaches to the threads one after the other; without the stop,
            # once it has stopped the thread holding the GIL the others
            # finish their calls and queue for the GIL before it reaches
            # them, and a dump catches no thread mid-call.  The stop also
            # gives the scan the CPUs.
            os.kill(info['pid'], signal.SIGSTOP)
            try:
                t0 = time.perf_counter()
                path = _corescan.gcore(info['pid'], tmp)
                maps = _corescan.read_maps(info['pid'])
                seconds = time.perf_counter() - t0
                out = scan(path, maps, seconds)
            finally:
                os.kill(info['pid'], signal.SIGCONT)
            out['caught'] = out['threads_on_secret_stack'] if mode == 'secret' \
                else out['threads_in_jit_code']
            return out

        def scan(path, maps, seconds):
            t0 = time.perf_counter()
            scan = _corescan.scan_core(path, index)
            os.unlink(path)
            planted_found = scan['memory'].pop(planted_id, [])
            for t in scan['registers']:
                for ks in t.values():
                    ks.discard(planted_id)
            out = {'keys_in_memory': len(scan['memory']),
                   'words_in_memory': sum(map(len, scan['memory'].values())),
                   'threads_with_keys_in_registers':
                       sum(1 for t in scan['registers'] if any(t.values())),
                   'keys_in_registers': len(set().union(
                       *(ks for t in scan['registers'] for ks in t.values()))),
                   'planted_found': len(planted_found),
                   'dumped_bytes': scan['bytes'], 'dumped': scan['dumped'],
                   'threads_in_core': len(scan['registers']),
                   'gcore_seconds': seconds,
                   'scan_seconds': time.perf_counter() - t0,
                   # where the dump stopped each thread: in JIT code (an
                   # anonymous executable mapping), on a secret stack
                   'threads_in_jit_code': sum(
                       1 for t in scan['threads']
                       if _corescan.where(t['rip'], maps).startswith('anon r-x')),
                   'threads_on_secret_stack': sum(
                       1 for t in scan['threads']
                       if _corescan.where(t['rsp'], maps, named) == 'secret stack')}
            out.update(_summary(scan, named, maps))
            return out

        after = dump()                           # every thread waits
        child.stdin.write('run\n')
        child.stdin.flush()
        assert json.loads(child.stdout.readline())['state'] == 'during'
        during = []
        while len(during) < DURING_DUMPS or (
                not any(d['caught'] for d in during) and len(during) < MAX_DURING_DUMPS):
            time.sleep(0.1)                      # threads calling
            during.append(dump())
        child.stdin.write('stop\n')
        child.stdin.flush()
        end = json.loads(child.stdout.readline())
        result = {'info': info, 'named': named, 'after': after, 'during': during,
                  'calls': end['calls'], 'end_status': end['status']}
        child.stdin.close()
        child.wait(timeout=60)
        assert child.returncode == 0, _stderr(err)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    _results[mode] = result
    _report(mode, result)
    return result


def _report(mode, r):
    def line(tag, d):
        return ('%-6s %-7s keys in memory %5d (%d words) %s | threads with keys in '
                'registers %d/%d (%d keys) | threads in JIT code %d, on secret stack %d '
                '| planted found %d | %.0f MB dumped, gcore %.1f s, scan %.1f s'
                % (mode, tag, d['keys_in_memory'], d['words_in_memory'],
                   d['places'], d['threads_with_keys_in_registers'],
                   d['threads_in_core'], d['keys_in_registers'],
                   d['threads_in_jit_code'], d['threads_on_secret_stack'],
                   d['planted_found'],
                   d['dumped_bytes'] / 1e6, d['gcore_seconds'], d['scan_seconds']))
    print('\n' + line('after', r['after']))
    for d in r['during']:
        print(line('during', d))
    print('%s calls per thread: %s; import + compile %.1f s' % (
        mode, r['calls'], r['info']['startup_seconds']))


def test_gcore_leaves_out_dontdump_mappings(tmp_path):
    """The tool check: gcore omits a MADV_DONTDUMP mapping and keeps a plain one."""
    src = r'''
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(0x59616D61, ctypes.c_ulong(2 ** 64 - 1), 0, 0, 0)    # PR_SET_PTRACER_ANY
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
def region(byte, dontdump):
    p = libc.mmap(None, 8192, 3, 0x22, -1, 0)
    ctypes.memset(p, byte, 8192)
    if dontdump:
        assert libc.madvise(p, 8192, 16) == 0      # MADV_DONTDUMP
    return p
print(region(0xA7, False), region(0x5C, True), flush=True)
sys.stdin.readline()
'''
    child = subprocess.Popen([sys.executable, '-c', src], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        plain, excluded = map(int, child.stdout.readline().split())
        path = _corescan.gcore(child.pid, str(tmp_path))
        from elftools.elf.elffile import ELFFile
        with open(path, 'rb') as f:
            segs = [(s['p_vaddr'], s['p_vaddr'] + s['p_memsz'], s['p_filesz'])
                    for s in ELFFile(f).iter_segments() if s['p_type'] == 'PT_LOAD']
            f.seek(0)
            data = f.read()
    finally:
        child.communicate('\n', timeout=30)
    assert any(s <= plain < e and n > 0 for s, e, n in segs)
    assert data.count(b'\xa7' * 8192) >= 1
    assert not any(s < excluded + 8192 and excluded < e and n > 0 for s, e, n in segs)
    assert b'\x5c' * 64 not in data


def _assert_control_leaks(d):
    assert d['planted_found'] > 0, 'the scan misses a key that is in memory'
    assert d['keys_in_memory'] > 0, \
        'control failed: plain numba left no key in the core, the scan proves nothing'


def _assert_secret_clean(r, d):
    assert d['planted_found'] > 0, 'the scan misses a key that is in memory'
    assert d['keys_in_memory'] == 0, 'derived keys in the core: %s' % d['places']
    # the secret arena and stacks are not in the core at all
    for s, e, label in r['named']:
        for ds, de in d['dumped']:
            assert not (ds < e and s < de), '%s [%#x, %#x) dumped' % (label, s, e)


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['control', 'secret'])
def test_core_dump_after_the_calls(mode, children):
    r = _run(mode)
    if mode == 'control':
        _assert_control_leaks(r['after'])
        return
    st = r['info']['status']
    assert st is not None, 'secretjit.memory_status() is missing'
    assert st['dontdump_errno'] == 0 and st['arena_failures'] == 0
    assert st['stacks_created'] >= THREADS and st['stack_fallbacks'] == 0
    assert all(r['info']['stacks']), 'a worker thread has no secret stack'
    _assert_secret_clean(r, r['after'])


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['control', 'secret'])
def test_core_dump_during_the_calls(mode, children):
    r = _run(mode)
    assert all(c > CALLS for c in r['calls'])
    if mode == 'control':
        assert sum(d['keys_in_memory'] for d in r['during']) > 0, \
            'control failed: plain numba left no key in the cores taken mid-calls'
        for d in r['during']:
            assert d['planted_found'] > 0
        return
    assert r['end_status']['stack_fallbacks'] == 0
    assert any(d['threads_on_secret_stack'] for d in r['during']), \
        'no dump caught a thread inside a secret call: "during" was not tested'
    for d in r['during']:
        _assert_secret_clean(r, d)
