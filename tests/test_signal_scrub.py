"""Writes below a call's computed depth on the secret stack are zeroed.

Issue 11's runtime items: a signal frame pushed mid-call (and its handler's
frames), a nested secret call from a ctypes callback into Python, and a deep
destructor chain all write below the scrub depth the stack bound computed.
After every call the C runtime checks the window just below that depth and,
when something is there, zeroes the secret stack down to its deepest write.

One child process (tests/_signal_child.py) compiles the kernels once and runs
each scenario with that scrub on and, as the control, off
(``secretmem.test_deep_scrub(False)``); the secret stack is scanned directly
after the calls, for the key-derived words and for any non-zero word.
"""
import json
import os
import subprocess
import sys
import types

import pytest


HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope='module', params=['rseq', 'no-rseq'])
def results(request):
    """The child's results, with rseq telling the runtime when a call was
    interrupted (glibc's default), and without it (every call checks the
    whole signal window; as under qemu, or with glibc.pthread.rseq=0)."""
    env = dict(os.environ)
    if request.param == 'no-rseq':
        env['GLIBC_TUNABLES'] = 'glibc.pthread.rseq=0'
    r = subprocess.run([sys.executable, os.path.join(HERE, '_signal_child.py')],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    if request.param == 'rseq' and out['rseq'] == 0:
        pytest.skip('no rseq registration here (kernel or glibc)')
    if out['rseq'] != -1:       # -1: a runtime without the stat (older code)
        assert out['rseq'] == (request.param == 'rseq'), out['rseq']
    return out


SIGNALS = ['setitimer ITIMER_REAL', 'setitimer ITIMER_PROF', 'pthread_kill']


@pytest.mark.parametrize('scenario', SIGNALS)
def test_signal_frames_below_the_depth_are_zeroed(results, scenario):
    (words_on, left_on, scrubs_on, signals_on), (words_off, left_off, _, signals_off) = (
        results[scenario]['on'], results[scenario]['off'])
    assert signals_on > 0 and signals_off > 0, results[scenario]
    # Control: without the scrub, the interrupted registers' key words stay.
    assert words_off > 0 and left_off > 0, results[scenario]
    # With it: nothing left, and each interrupted call was detected.
    assert words_on == 0 and left_on == 0, results[scenario]
    assert 0 < scrubs_on <= signals_on, results[scenario]


def test_nested_secret_call_from_a_callback_scrubs_its_frames(results):
    secret, plain = results['nested secret_jit'], results['nested njit (control)']
    # The inner call found the secret stack in use (counted) ...
    assert secret['on'][3] == 1 and secret['off'][3] == 1, secret
    # ... and zeroed its own frames in place, even without the deep scrub.
    assert secret['off'][0] == 0 and secret['on'][0] == 0, secret
    # Control: a plain njit kernel in the same place leaves its key words.
    assert plain['off'][0] > 256, plain
    # The interpreter's frames of the callback lie below the outer kernel's
    # depth: left without the deep scrub, found and zeroed with it.
    assert secret['off'][1] > 0 and secret['on'][1] == 0 and secret['on'][2] == 1, secret
    assert plain['on'][:3] == [0, 0, 1], plain


@pytest.mark.parametrize('depth', [150, 200])
def test_deep_destructor_chain_below_the_bound_is_zeroed(results, depth):
    r = results['list nested %d deep' % depth]
    # The teardown of the nested list goes below the computed bound (which
    # counts one destructor level: a list nested 80 deep now fits in it, so
    # the cases start at 150): its frames are left there without the deep
    # scrub, and zeroed with it.
    assert r['off'][1] > 0 and r['off'][2] == 0, r
    assert r['on'][:3] == [0, 0, 1], r


# -- the same at the C level, natively and for AArch64 under qemu --------------

@pytest.mark.parametrize('target', ['native', 'aarch64'])
def test_c_level_signal_frame_scrub_and_nested_call(tmp_path, target):
    from _c_runtime import run_c_test
    got = run_c_test(tmp_path, target, 'signal_scrub')
    r = types.SimpleNamespace(stdout=' '.join('%s=%s' % kv for kv in got.items()))
    assert got['setup'] == '0' and int(got['window']) > 2048, r.stdout
    # The signal frame below the depth: zeroed and counted ...
    assert (got['on_rc'], got['on_handled'], got['on_left']) == ('0', '1', '0'), r.stdout
    assert int(got['on_scrubs']) == 1, r.stdout
    # ... and left without the deep scrub (control).
    assert got['off_handled'] == '2' and int(got['off_left']) > 0, r.stdout
    assert got['off_scrubs'] == got['on_scrubs'], r.stdout
    # A nested call is handed back (1) to be run and scrubbed in place.
    assert (got['nested_outer'], got['nested_inner'], got['nested_calls']) == ('0', '1', '1')
    assert got['too_deep'] == '-1', r.stdout
