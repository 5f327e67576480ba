"""The benchmark harness runs end to end (--quick) and writes well-formed output.

Timings are not checked here: speed targets live in benchmarks/RESULTS.md.
"""

import json
import os

from _child import run_python

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_writes_results(tmp_path):
    r = run_python(os.path.join(ROOT, 'benchmarks', 'run.py'), '--quick',
                   '--out', tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((tmp_path / 'results.json').read_text())
    assert data['quick'] is True
    kernels = {row['kernel'] for row in data['rows']}
    assert {'trivial x+1', 'chacha20', 'chacha20-poly1305 seal', 'sha256',
            'x25519'} <= kernels
    for row in data['rows']:
        assert row['njit_ns'] > 0 and row['secret_ns'] > 0
        assert abs(row['ratio'] - row['secret_ns'] / row['njit_ns']) < 1e-9
        if row['reference']:
            assert row['reference_ns'] > 0
    table = (tmp_path / 'RESULTS.md').read_text()
    assert '| kernel | size | njit | secret_jit | secret/njit |' in table
    assert '## Targets' in table
    assert '## Hardened secret memory' in table
    assert data['hardened']
    assert table.count('\n| chacha20 |') == 3             # 64 B and 16 KiB; API 64 B
    # the Python-API rows (issue 16): every kernel, api / kernel / reference interleaved
    assert '## Python API against cryptography' in table
    api_rows = data['api']['rows']
    assert {r['kernel'] for r in api_rows} >= {
        'chacha20', 'poly1305', 'chacha20-poly1305 seal', 'chacha20-poly1305 open',
        'sha256', 'hmac-sha256', 'hkdf-sha256 (ikm size)', 'blake2b-512', 'x25519'}
    for r in api_rows:
        assert r['api_ns'] > 0 and r['kernel_ns'] > 0
        assert abs(r['overhead_ns'] - (r['api_ns'] - r['kernel_ns'])) < 1e-6
    # the allocation-heavy rows (issue 15), each with its target
    assert '## Allocation-heavy kernels (issue 15)' in table
    assert {r['group'] for r in data['alloc']['rows']} == {'alloc', 'temp64'}
    assert all(r['njit_ns'] > 0 and r['secret_ns'] > 0 for r in data['alloc']['rows'])
    # AOT exports called from C (issue 15): secret and control, the target rows
    assert '## AOT exports (issue 15)' in table
    assert [r['case'] for r in data['aot']['trivial']] == [
        'trivial export, control', 'trivial export, secret (baseline)',
        'trivial export, secret (--cpu host)']
    assert all(r['ns'] > 0 for r in data['aot']['trivial'])
    assert 'AOT trivial export, baseline: secret - control <= 5 ns' in table
    assert 'avx2' in data['machine']['cpu_flags'] or 'asimd' in data['machine']['cpu_flags']
