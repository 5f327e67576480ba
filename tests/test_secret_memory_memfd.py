"""memfd_secret backing (secretjit/csrc/backing.c): what another process can read.

Sibling read: tests/_core_child.py runs 4 threads deriving keys inside a
secret kernel; while they run, a sibling process (tests/_sibling_reader.py,
not the child's parent) reads the secret arena and stacks through
``/proc/<pid>/mem`` and ``process_vm_readv`` many times.  With memfd_secret
backing it finds no derived key (the pages read as EIO); with
``SECRETJIT_SECRET_MEMORY=mlock`` (the control) the same reader finds keys
mid-call.  Both children plant one key in an ordinary numpy array: the
reader must find it (it can read the process at all).  Then ``gcore`` dumps
each child during the calls: no derived key in either dump.

Fork and fallbacks (tests/_memfd_child.py, one child per setting, run in
parallel): a forked child reads zeros where the parent holds a secret, has
no memfd_secret mapping left, allocates and calls kernels; a child made by
the raw clone system call (no atfork handlers) is the control that shows the
pages are shared under memfd_secret.  RLIMIT_MEMLOCK exhausted, memfd_secret
made unavailable by seccomp (ENOSYS) and the setting ``mlock``: everything
still works on the mlock path; ``memfd`` then fails with a clear OSError.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _corescan  # noqa: E402
from _child import run_python  # noqa: E402
from test_arena import _drop_ipc_lock_wrapper  # noqa: E402

THREADS, CALLS, WINDOW, PASSES = 4, 50, 64, 8
MODES = ('memfd', 'mlock')


def _memfd_secret_works():
    r = run_python(code='import ctypes, os; fd = ctypes.CDLL(None).syscall(447, 0); '
                        'print(fd >= 0)')
    return r.stdout.strip() == 'True'


pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux') or not _memfd_secret_works(),
                                reason='memfd_secret(2) is not available on this kernel')


def _ptrace_scope():
    try:
        with open('/proc/sys/kernel/yama/ptrace_scope') as f:
            return int(f.read())
    except OSError:
        return 0


# -- sibling read and gcore, while 4 threads call ------------------------------

def _spawn(mode, seed):
    env = dict(os.environ, SECRETJIT_SECRET_MEMORY=mode)
    err = tempfile.TemporaryFile('w+')
    child = subprocess.Popen(
        [sys.executable, os.path.join(HERE, '_core_child.py'), 'secret', str(THREADS),
         str(CALLS), str(WINDOW), seed.hex()], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    return child, err


def _secret_ranges(info):
    st = info['status']
    return [[st['arena_start'], st['arena_end']]] + [list(s) for s in info['stacks'] if s]


def _read_and_dump(child, err, seed):
    """Let the threads loop, read the child from a sibling, gcore it, stop it."""
    line = child.stdout.readline()
    if not line:
        err.seek(0)
        raise RuntimeError('child failed: %s' % err.read()[-3000:])
    info = json.loads(line)
    child.stdin.write('run\n')
    child.stdin.flush()
    assert json.loads(child.stdout.readline())['state'] == 'during'
    r = run_python(os.path.join(HERE, '_sibling_reader.py'), info['pid'], seed.hex(),
                   THREADS, WINDOW, PASSES, json.dumps(_secret_ranges(info)), timeout=600)
    assert r.returncode == 0, r.stderr
    out = {'info': info, 'read': json.loads(r.stdout), 'core': None}
    if shutil.which('gdb'):
        keys = [_corescan.derive(seed, t, c) for t in range(THREADS) for c in range(WINDOW)]
        index = _corescan.KeyIndex(keys + [_corescan.derive(seed, 0xFFFF, 0)])
        tmp = _corescan.tempdir()
        try:
            scan = _corescan.scan_core(_corescan.gcore(info['pid'], tmp), index)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        out['core'] = {'planted': len(keys) in scan['memory'],
                       'keys': len(set(scan['memory']) - {len(keys)}),
                       'alive': child.poll() is None}
    child.stdin.write('stop\n')
    child.stdin.flush()
    child.communicate(timeout=120)
    return out


@pytest.fixture(scope='module')
def observed():
    """Both children (memfd and mlock) compile at once; then one at a time
    runs its threads while the sibling reads it and gcore dumps it."""
    if os.geteuid() != 0 and _ptrace_scope() > 1:
        pytest.skip('reading another process needs root or kernel.yama.ptrace_scope <= 1 '
                    '(it is %d)' % _ptrace_scope())
    kids = {mode: (os.urandom(32),) for mode in MODES}
    kids = {mode: (seed,) + _spawn(mode, seed) for mode, (seed,) in kids.items()}
    try:
        return {mode: _read_and_dump(child, err, seed)
                for mode, (seed, child, err) in kids.items()}
    finally:
        for _, child, err in kids.values():
            if child.poll() is None:
                child.kill()
                child.wait()
            err.close()


@pytest.mark.parametrize('mode', MODES)
def test_sibling_reads_no_key_from_memfd_secret_memory(mode, observed):
    info, read = observed[mode]['info'], observed[mode]['read']
    want = 'memfd_secret' if mode == 'memfd' else 'mlock'
    assert info['status']['backing'] == want, info['status']
    for how, res in read.items():
        assert res['planted'], '%s: the reader cannot see the planted key: %s' % (how, res)
        assert res['other_keys'] == 0, '%s: a derived key outside secret memory: %s' % (how, res)
        if mode == 'memfd':
            assert res['secret_keys'] == 0, '%s read keys from memfd_secret: %s' % (how, res)
            assert res['unread_secret'] > 0, 'nothing of the secret ranges was refused: %s' % res
        else:   # the control: the same reader finds keys on the mlock path
            assert res['secret_keys'] > 0, 'control failed (%s): %s' % (how, res)
            assert res['unread_secret'] == 0, res
    print(mode, json.dumps(read))


@pytest.mark.skipif(shutil.which('gdb') is None, reason='gdb (for gcore) is not installed')
@pytest.mark.parametrize('mode', MODES)
def test_gcore_during_calls_holds_no_key_in_either_mode(mode, observed):
    core = observed[mode]['core']
    assert core['planted'], 'the scan cannot see the planted key'
    assert core['keys'] == 0, '%d derived keys in the core (%s)' % (core['keys'], mode)
    assert core['alive'], 'the child died during the dump'


# -- fork, RLIMIT_MEMLOCK, seccomp, the setting ---------------------------------

CASES = {
    'auto': ({}, []),
    'mlock': ({'SECRETJIT_SECRET_MEMORY': 'mlock'}, []),
    'seccomp': ({}, ['seccomp']),
    'seccomp-memfd': ({'SECRETJIT_SECRET_MEMORY': 'memfd'}, ['seccomp', 'import-only']),
    'memlock-1M': ({}, ['memlock=1048576']),
    'memlock-0': ({}, ['memlock=0']),
    'memlock-memfd': ({'SECRETJIT_SECRET_MEMORY': 'memfd'}, ['memlock=1048576', 'import-only']),
    'bad-value': ({'SECRETJIT_SECRET_MEMORY': 'secretmem'}, ['import-only']),
}


@pytest.fixture(scope='module')
def cases():
    """Every case's child, run in parallel; {name: (report or None, stderr)}."""
    drop, why = _drop_ipc_lock_wrapper()
    procs = {}
    for name, (env, args) in CASES.items():
        wrapper = []
        if name.startswith('memlock'):
            if drop is None:
                procs[name] = None, 'cannot drop CAP_IPC_LOCK: %s' % why
                continue
            wrapper = drop
        full = dict(os.environ)
        full.pop('SECRETJIT_SECRET_MEMORY', None)
        full.update(env)
        procs[name] = subprocess.Popen(
            wrapper + [sys.executable, os.path.join(HERE, '_memfd_child.py')] + args,
            env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), None
    out = {}
    for name, (p, skip) in procs.items():
        if p is None:
            out[name] = None, skip
            continue
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, '%s: %s' % (name, stderr[-3000:])
        out[name] = json.loads(stdout.splitlines()[-1]), stderr
    return out


def _get(cases, name):
    rep, err = cases[name]
    if rep is None:
        pytest.skip(err)
    return rep, err


def _works(rep):
    """The workload ran: kernels on both threads, the fork child, the parent."""
    assert rep['seal'] and rep['thread_seal'] and rep['parent_seal'], rep
    assert rep['fork']['exit'] == 0 and rep['fork']['seal'], rep
    assert rep['fork']['zeros'], 'a forked child read the parent\'s secret: %s' % rep
    assert rep['fork']['memfd_maps'] == 0 and rep['fork']['backing'] == 'mlock', rep
    assert rep['parent_pattern'], 'the fork changed the parent\'s secret: %s' % rep
    assert rep['subprocess'] == 0 and rep['mp_seal'], rep
    assert rep['after']['stack_fallbacks'] == 0 and rep['after']['arena_failures'] == 0, rep


@pytest.mark.parametrize('name', ['auto', 'mlock'])
def test_fork_child_sees_zeros_in_both_modes(cases, name):
    rep, _ = _get(cases, name)
    _works(rep)
    if name == 'auto':
        assert rep['backing'] == 'memfd_secret' and rep['memfd_maps'] > 0, rep
        # control: a child that skips the atfork handlers shares the pages
        assert rep['raw_fork_sees_pattern'], rep
    else:
        assert rep['backing'] == 'mlock' and rep['memfd_maps'] == 0, rep
        assert rep['reason'] == 'SECRETJIT_SECRET_MEMORY=mlock', rep
        assert not rep['raw_fork_sees_pattern'], rep     # MADV_WIPEONFORK


def test_seccomp_enosys_falls_back_to_mlock_and_memfd_mode_says_why(cases):
    rep, _ = _get(cases, 'seccomp')
    _works(rep)
    assert rep['backing'] == 'mlock' and rep['memfd_maps'] == 0, rep
    assert 'memfd_secret(2) is unavailable (ENOSYS' in rep['reason'], rep
    rep, _ = _get(cases, 'seccomp-memfd')
    assert rep['error'].startswith('OSError: secretjit: SECRETJIT_SECRET_MEMORY=memfd, but '
                                   'memfd_secret(2) is unavailable (ENOSYS'), rep
    assert 'SECRETJIT_SECRET_MEMORY=auto' in rep['error'], rep


def test_rlimit_memlock_exhausted_falls_back_and_memfd_mode_says_why(cases):
    rep, _ = _get(cases, 'memlock-1M')
    _works(rep)
    # the 256M arena does not fit the budget (charged whole when mapped):
    # mlock path; the small stacks still get memfd_secret
    assert rep['after']['backing'] == 'mixed' and rep['memfd_maps'] > 0, rep
    assert 'failed (EAGAIN' in rep['reason'] and 'RLIMIT_MEMLOCK' in rep['reason'], rep
    rep, err = _get(cases, 'memlock-0')
    _works(rep)
    assert rep['after']['backing'] == 'mlock' and rep['memfd_maps'] == 0, rep
    assert 'the exhausted budget is RLIMIT_MEMLOCK' in err, err
    rep, _ = _get(cases, 'memlock-memfd')
    assert rep['error'].startswith('OSError: secretjit: SECRETJIT_SECRET_MEMORY=memfd, but a '
                                   'memfd_secret mapping of'), rep
    assert 'RLIMIT_MEMLOCK' in rep['error'], rep


def test_bad_setting_names_the_variable_and_the_choices(cases):
    rep, _ = _get(cases, 'bad-value')
    assert rep['error'] == (
        "ValueError: secretjit: SECRETJIT_SECRET_MEMORY=secretmem is not a valid choice: "
        "want auto (memfd_secret when the kernel offers it, else mlock; the default), "
        "memfd (memfd_secret or an error) or mlock (mlock'ed anonymous memory)"), rep
