"""Compile time and first use (issue 15): line tables on demand, cache loads, warm.

- A kernel without findings is compiled once, without line tables; one
  with a finding is compiled again with them and its findings name the same
  Python lines as with line tables always on (``SECRETJIT_LINE_TABLES=1``,
  the control), and the helpers' retry overloads never replace the entries
  Python calls use.
- A cached load does not install numba's registries into the secret
  context (numba's own ``FunctionCache`` does: the control), and a kernel
  compiled after it in the same process still compiles and runs.
- ``python -m secretjit warm`` fills the cache: a fresh process then loads
  the kernel instead of compiling it.
- ``SECRETJIT_PROFILE_PASSES=1`` prints the stage table; without it, none.
- The compile benchmark (``benchmarks/compile_time.py``) rotates which
  variant goes first, keeps its round floor and cap, and reports the medians,
  ranges and ratios of the samples it took (a fake sampler: no processes).
"""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import _ct_kernels as ck
from secretjit import (ConstantTimeWarning, SecretPolicyError, line_tables,
                       secret_jit, stage_times)

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def wanted_log(monkeypatch):
    """Every answer ``line_tables.wanted()`` gives while compiling."""
    log = []
    real = line_tables.wanted

    def spy():
        log.append(real())
        return log[-1]
    monkeypatch.setattr(line_tables, 'wanted', spy)
    monkeypatch.delenv('SECRETJIT_LINE_TABLES', raising=False)
    monkeypatch.delenv('SECRETJIT_CTCHECK', raising=False)
    return log


def _findings(name):
    fn = getattr(ck, name)
    with pytest.raises(SecretPolicyError) as info:
        secret_jit(secret=ck.SECRET[name])(fn)(*ck.ARGS[name]())
    return sorted((f.kind, f.location) for f in info.value.findings)


def test_a_clean_kernel_compiles_once_without_line_tables(wanted_log):
    kernel = secret_jit(secret=('key',))(ck.or_accumulated_compare)
    assert kernel(ck.K.copy(), ck.K.copy())
    assert wanted_log and not any(wanted_log)
    lib = kernel.overloads[kernel.signatures[0]].library
    assert lib.ct_findings == []


ALWAYS_CHILD = r'''
import sys
sys.path.insert(0, {here!r})
import pytest
import test_compile_time as t
print(repr({{n: t._findings(n) for n in {names!r}}}))
'''
FINDING_CASES = ['early_exit_compare', 'violation_in_helper']


def test_a_finding_recompiles_with_line_tables_and_names_the_lines(wanted_log):
    on_demand = {}
    for name in FINDING_CASES:
        del wanted_log[:]
        on_demand[name] = _findings(name)
        assert False in wanted_log and True in wanted_log   # without, then with
        assert all(loc for _, loc in on_demand[name]), on_demand
    # control: line tables always on (SECRETJIT_LINE_TABLES=1, a process
    # setting: read by every compile) name the same findings at the same lines
    env = dict(os.environ, SECRETJIT_LINE_TABLES='1')
    out = _child(ALWAYS_CHILD.format(here=HERE, names=FINDING_CASES), env)
    assert eval(out.strip().splitlines()[-1]) == on_demand


def test_without_line_tables_the_check_finds_the_same_kinds(monkeypatch):
    """The check runs on the module without line tables: same findings."""
    with_lines = _findings('sbox_lookup')
    monkeypatch.setenv('SECRETJIT_LINE_TABLES', '0')
    without = _findings('sbox_lookup')
    assert [k for k, _ in without] == [k for k, _ in with_lines]
    assert {loc for _, loc in without} == {''}


def test_warn_mode_runs_the_retry_and_keeps_python_entries(wanted_log):
    kernel = secret_jit(secret=('key',), constant_time='warn')(ck.violation_in_helper)
    with pytest.warns(ConstantTimeWarning, match=r'_ct_kernels.py:\d+: secret-index'):
        got = kernel(ck.K.copy())
    assert True in wanted_log
    with warnings.catch_warnings():
        warnings.simplefilter('error', ConstantTimeWarning)
        assert kernel(ck.K.copy()) == got           # no recompile, no warning
    assert len(kernel.overloads) == 1
    assert ck.K.size and got == np.bitwise_xor.reduce(ck.SBOX[ck.K])


# -- cached loads ---------------------------------------------------------

CACHED_CHILD = r'''
import sys
sys.path.insert(0, {here!r})
import numpy as np
from numba.core import caching
from secretjit import secret_jit
import _cache_kernels as k
if {numba_cache}:           # the control: numba's own cache class
    k.add_one.enable_caching = lambda: None
    k.add_one._cache = caching.FunctionCache(k.add_one.py_func)
ctx = k.add_one.targetctx
before = len(ctx._registries)
assert k.add_one(np.arange(4.0))[3] == 4.0
print('hits', sum(k.add_one.stats.cache_hits.values()))
print('registries', len(ctx._registries) - before)
# a kernel compiled after the load still sees every registry
assert secret_jit(lambda a: np.sum(np.sqrt(a)))(np.full(4, 4.0)) == 8.0
print('ok')
'''


def _child(code, env):
    r = subprocess.run([sys.executable, '-c', code], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def _cached_run(tmp_path, numba_cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / 'cache'))
    code = CACHED_CHILD.format(here=HERE, numba_cache=numba_cache)
    first = _child(code, env)
    second = _child(code, env)
    assert 'hits 0' in first and 'hits 1' in second and 'ok' in second
    return int(second.split('registries ')[1].split()[0])


def test_a_cached_load_skips_the_registry_refresh(tmp_path):
    assert _cached_run(tmp_path, numba_cache=False) == 0


def test_control_numbas_cache_class_refreshes_on_a_load(tmp_path):
    assert _cached_run(tmp_path, numba_cache=True) > 0


# -- warm -----------------------------------------------------------------

def test_warm_fills_the_cache_for_the_next_process(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / 'cache'))
    out = _child('import sys; from secretjit.__main__ import main; '
                 'sys.exit(main(["warm", "sha256.sha256"]))', env)
    assert 'sha256.sha256' in out and 'aead.seal' not in out
    check = textwrap.dedent('''
        import hashlib
        from numba.core import event
        from secretjit.kernels import sha256
        with event.install_recorder('numba:compile') as rec:
            assert sha256.sha256(b'abc') == hashlib.sha256(b'abc').digest()
        print('compiles', len(rec.buffer))
    ''')
    # control: the same check in an empty cache compiles
    cold = _child(check, dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / 'cold')))
    warm = _child(check, env)
    assert 'compiles 0' in warm, warm
    assert 'compiles 0' not in cold, cold


def test_warm_rejects_an_unknown_name():
    from secretjit import warm
    with pytest.raises(ValueError, match="unknown function 'aead.sael'.*aead.seal"):
        warm.run(['aead.sael'])


# -- the profile table ----------------------------------------------------

PROFILE_CHILD = r'''
import numpy as np
from secretjit import secret_jit
secret_jit(secret=('a',))(lambda a: a[0] ^ a[1])(np.arange(2, dtype=np.uint8))
'''


def test_profile_table_only_when_asked():
    env = {k: v for k, v in os.environ.items() if k != 'SECRETJIT_PROFILE_PASSES'}
    quiet = subprocess.run([sys.executable, '-c', PROFILE_CHILD], env=env,
                           capture_output=True, text=True, timeout=600)
    env['SECRETJIT_PROFILE_PASSES'] = '1'
    loud = subprocess.run([sys.executable, '-c', PROFILE_CHILD], env=env,
                          capture_output=True, text=True, timeout=600)
    assert quiet.returncode == 0 and loud.returncode == 0, loud.stderr[-2000:]
    assert 'secretjit compile stages' not in quiet.stderr
    for stage in ('numba lowering', 'MCJIT code generation',
                  'secret constant-time check', 'secret stack bound: emit assembly'):
        assert stage in loud.stderr, loud.stderr


def test_timed_regions_are_exclusive(monkeypatch):
    import time
    monkeypatch.setattr(stage_times, 'ENABLED', True)
    monkeypatch.setattr(stage_times, '_totals', {})

    def spin(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
    with stage_times.timed('outer'):
        spin(0.05)
        with stage_times.timed('inner'):
            spin(0.1)
    times = stage_times.stage_times()
    assert 0.04 < times['outer'][0] < 0.09, times      # the inner 0.1 s excluded
    assert 0.09 < times['inner'][0] < 0.15, times
    assert 'outer' in stage_times.format_table()


# -- the compile benchmark's rounds and summary ---------------------------

def _compile_bench():
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'benchmarks'))
    try:
        import compile_time
    finally:
        sys.path.pop(0)
    return compile_time


def test_compile_benchmark_interleaves_and_summarises(monkeypatch):
    """Each variant leads a round in turn; medians, ranges and the ratio of
    the medians are of the samples taken (a fake sampler, no processes)."""
    bench = _compile_bench()
    calls = []
    fake = {'njit': [1.0, 1.2, 1.1, 1.0], 'secret_jit': [1.1, 1.5, 1.2, 1.4]}

    def sample(kernel, dec, base=None):
        n = sum(1 for k, d, b in calls if d == dec and b == base)
        calls.append((kernel, dec, base))
        return fake[dec][n], 0.01 * (n + 1)
    monkeypatch.setattr(bench, 'sample', sample)
    out = bench.compile_times(['sha256'], min_rounds=4, max_rounds=4,
                              budget_seconds=0, log=None)['sha256']
    firsts = [calls[2 * i][1] for i in range(4)]
    assert firsts == ['njit', 'secret_jit', 'secret_jit', 'njit'], calls
    assert out['rounds'] == 4
    assert out['njit_compile'] == pytest.approx(1.05)
    assert out['secret_jit_compile'] == pytest.approx(1.3)
    assert out['secret_jit_compile_min'] == 1.1 and out['secret_jit_compile_max'] == 1.5
    assert out['ratio'] == pytest.approx(1.3 / 1.05)
    paired = [s / n for s, n in zip(fake['secret_jit'], fake['njit'])]
    assert (out['ratio_min'], out['ratio_max']) == (min(paired), max(paired))
    assert out['njit_cached'] == pytest.approx(0.025)
    # min_rounds is a floor even when the budget is spent at once; max a cap
    calls.clear()
    out = bench.compile_times(['sha256'], min_rounds=2, max_rounds=9,
                              budget_seconds=0, log=None)['sha256']
    assert out['rounds'] == 2
    # --base: a third variant from another checkout, its own ratio
    calls.clear()
    out = bench.compile_times(['sha256'], min_rounds=3, max_rounds=3,
                              budget_seconds=0, log=None, base='/elsewhere')['sha256']
    assert {b for _, d, b in calls if d == 'secret_jit'} == {None, '/elsewhere'}
    assert [calls[3 * i][1:] for i in range(3)] == [
        ('njit', None), ('secret_jit', None), ('secret_jit', '/elsewhere')]
    assert 'base_ratio' in out and out['rounds'] == 3
