"""Benchmark secret_jit against plain numba and OpenSSL: the price of erasure.

Every case compiles the same Python source with ``numba.njit`` and with
``secret_jit`` and times both, plus the OpenSSL/hashlib reference for the same
work, in one process, interleaved (njit, secret, reference, njit, ...).  A
sample is ``timeit`` over a batch sized with its ``autorange``; reported
are medians, the secret/njit ratio of the medians, throughput and cycles per
byte at the nominal clock.  Compile times (first call, and a ``cache=True``
load) are measured in fresh processes, interleaved; memory is the resident set
before and after 10^5 calls, in a fresh process per decorator.

    python benchmarks/run.py                  # full run: RESULTS.md, results.json, results.png
    python benchmarks/run.py --quick          # smoke run in under a minute (no files unless asked)
    python benchmarks/run.py --only compile   # the compile rows only (printed)
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cases as case_table  # noqa: E402
import compile_time  # noqa: E402

TARGETS = {
    'ratio_bulk': 1.03,          # secret/njit at >= 16 KiB, every kernel
    'ratio_call': 1.15,          # trivial kernel and 64-byte AEAD seal
    'compile': 1.2,              # secret/njit first-call compile time (issue 15)
    'vs_reference': {            # our throughput / OpenSSL's, at 1 MiB
        'chacha20': 1 / 3, 'poly1305': 1 / 3, 'blake2b-512': 1 / 2,
        'sha256': 1 / 4},
    'x25519_time': 3.0,          # our time / OpenSSL's per scalar multiplication
}


# -- timing ------------------------------------------------------------------

from _timing import interleaved  # noqa: E402  (autorange batches of ~20 ms)


def _nominal_ghz():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('cpu MHz'):
                    return float(line.split(':')[1]) / 1000
    except OSError:
        pass
    return None


def time_cases(quick):
    from secretjit import secret_jit
    rounds = 3 if quick else 21
    ghz = _nominal_ghz()
    rows = []
    compiled = {}
    for c in case_table.cases(quick):
        if c.py_func not in compiled:       # one dispatcher pair per kernel
            compiled[c.py_func] = (njit(c.py_func), secret_jit(c.py_func))
        plain, secret = compiled[c.py_func]
        fns = {'njit': (lambda f=plain, a=c.args: f(*a)),
               'secret': (lambda f=secret, a=c.args: f(*a))}
        if c.reference is not None:
            fns['reference'] = c.reference
        med, batch = interleaved(fns, rounds)
        row = {'kernel': c.kernel, 'size': c.size, 'bytes': c.nbytes,
               'rounds': rounds, 'batch': batch,
               'njit_ns': med['njit'] * 1e9, 'secret_ns': med['secret'] * 1e9,
               'ratio': med['secret'] / med['njit'],
               'reference': c.reference_name or None,
               'reference_ns': med['reference'] * 1e9 if 'reference' in med else None}
        if c.nbytes:
            row['secret_MBps'] = c.nbytes / med['secret'] / 1e6
            row['njit_MBps'] = c.nbytes / med['njit'] / 1e6
            if ghz:
                row['secret_cpb'] = med['secret'] * ghz * 1e9 / c.nbytes
            if 'reference' in med:
                row['reference_MBps'] = c.nbytes / med['reference'] / 1e6
        rows.append(row)
        print('%-26s %-9s njit %11.1f ns  secret %11.1f ns  ratio %.3f%s' % (
            c.kernel, c.size, row['njit_ns'], row['secret_ns'], row['ratio'],
            '  ref %.1f ns' % row['reference_ns'] if row['reference_ns'] else ''),
            flush=True)
    return rows, ghz


# -- compile time, cache loads, memory: fresh processes --------------------------

COMPILE_KERNELS = compile_time.KERNELS


def compile_times(kernels, min_rounds=3, max_rounds=7, budget_seconds=60.0):
    """Per kernel: first-call compile and cache-load CPU seconds per decorator
    (medians, ranges, ratio), from :mod:`compile_time`'s interleaved rounds."""
    return compile_time.compile_times(kernels, min_rounds, max_rounds,
                                      budget_seconds,
                                      log=lambda line: print(line, flush=True))


MEMORY_SNIPPET = r'''
import sys
sys.path.insert(0, {here!r})
import numpy as np
from numba import njit
from secretjit import secret_jit
import cases
c = [c for c in cases.cases(quick=False)
     if c.kernel == 'chacha20-poly1305 seal' and c.size == '64 B'][0]
def rss_kib(field='VmRSS:'):
    with open('/proc/self/status') as st:
        for line in st:
            if line.startswith(field):
                return int(line.split()[1])
f = {dec}(c.py_func)
for _ in range(1000):
    f(*c.args)
before = rss_kib()
for _ in range({calls}):
    f(*c.args)
after = rss_kib()
print(before, after, rss_kib('VmHWM:'))
'''


def memory(calls):
    out = {}
    for dec in ('njit', 'secret_jit'):
        r = subprocess.run([sys.executable, '-c', MEMORY_SNIPPET.format(
            here=HERE, dec=dec, calls=calls)], capture_output=True, text=True,
            check=True)
        before, after, peak = map(int, r.stdout.split())
        out[dec] = {'rss_before_KiB': before, 'rss_after_KiB': after,
                    'growth_KiB': after - before, 'peak_KiB': peak}
    print('memory, %d AEAD seals: njit %s, secret %s' % (calls, out['njit'],
                                                         out['secret_jit']))
    return out


# -- report ----------------------------------------------------------------------

# The CPU features the kernels' generated code or OpenSSL's assembly can use.
CPU_FLAGS = ('sse4_1', 'avx', 'avx2', 'bmi2', 'adx', 'sha_ni', 'avx512f', 'avx512vl',
             'avx512bw', 'avx512ifma', 'avx512_vbmi2', 'asimd', 'sha2', 'sve')


def machine():
    import llvmlite.binding as ll
    import numba
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    import cryptography
    flags = []
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    have = set(line.split(':', 1)[1].split())
                    flags = [x for x in CPU_FLAGS if x in have]
                    break
    except OSError:
        pass
    return {'cpu': cpu, 'llvm_cpu': ll.get_host_cpu_name(), 'cpu_flags': flags,
            'arch': platform.machine(), 'cores': os.cpu_count(),
            'python': platform.python_version(), 'numba': numba.__version__,
            'numpy': np.__version__, 'cryptography': cryptography.__version__,
            'nominal_ghz': _nominal_ghz()}


def check_targets(data):
    """Each target with its measured value and whether it is met."""
    out = []
    rows = data['rows']
    for r in rows:
        if r['bytes'] >= 16384:
            out.append(('%s %s secret/njit <= %.2f' % (r['kernel'], r['size'],
                                                      TARGETS['ratio_bulk']),
                        '%.3f' % r['ratio'], r['ratio'] <= TARGETS['ratio_bulk']))
    for r in rows:
        if r['kernel'] == 'trivial x+1' or (
                r['kernel'] == 'chacha20-poly1305 seal' and r['size'] == '64 B'):
            out.append(('%s %s secret/njit <= %.2f' % (r['kernel'], r['size'],
                                                      TARGETS['ratio_call']),
                        '%.3f' % r['ratio'], r['ratio'] <= TARGETS['ratio_call']))
    for kernel, c in data.get('compile', {}).items():
        ratio = c['secret_jit_compile'] / c['njit_compile']
        out.append(('compile %s secret/njit <= %.1f' % (kernel, TARGETS['compile']),
                    '%.2f (rounds %.2f-%.2f, n=%d)' % (
                        ratio, c.get('ratio_min', ratio), c.get('ratio_max', ratio),
                        c.get('rounds', 0)),
                    ratio <= TARGETS['compile']))
    for r in rows:
        want = TARGETS['vs_reference'].get(r['kernel'])
        if want and r['size'] == '1 MiB' and r.get('reference_MBps'):
            frac = r['secret_MBps'] / r['reference_MBps']
            out.append(('%s 1 MiB throughput >= %.2f of %s' % (
                r['kernel'], want, r['reference']), '%.2f' % frac, frac >= want))
        if r['kernel'] == 'x25519' and r['reference_ns']:
            t = r['secret_ns'] / r['reference_ns']
            out.append(('x25519 time <= %.0fx OpenSSL' % TARGETS['x25519_time'],
                        '%.2fx' % t, t <= TARGETS['x25519_time']))
    if data.get('alloc'):
        import alloc
        out += alloc.check_targets(data['alloc'])
    if data.get('aot'):
        import aot
        out += aot.check_targets(data['aot'])
    if data.get('hardened'):
        import hardened
        out += hardened.check_targets(data['hardened'])
    if data.get('first_use'):
        import first_use
        out += first_use.check_targets(data['first_use'])
    return out


def _fmt_time(ns):
    return '%.0f ns' % ns if ns < 10000 else ('%.1f µs' % (ns / 1e3) if ns < 1e7
                                               else '%.1f ms' % (ns / 1e6))


def markdown(data, command):
    m = data['machine']
    lines = ['# Benchmark results', '',
             'Machine: %s (LLVM cpu `%s`, %s), %s cores, nominal %.2f GHz; Python %s, '
             'numba %s, numpy %s, cryptography %s; CPU flags %s.  ' % (
                 m['cpu'], m['llvm_cpu'], m['arch'], m['cores'],
                 m['nominal_ghz'] or 0, m['python'], m['numba'], m['numpy'],
                 m['cryptography'], ' '.join(m.get('cpu_flags', [])) or '?'),
             'Command: `%s` (%s).  ' % (command, time.strftime('%Y-%m-%d')),
             'Method: same source under `njit` and `secret_jit`, interleaved with '
             'the reference in one process, %d rounds, medians; ratio = secret/njit.'
             % data['rows'][0]['rounds'], '',
             '## Time per call', '',
             '| kernel | size | njit | secret_jit | secret/njit | secret MB/s | '
             'cycles/B | reference | reference MB/s |',
             '|---|---|---:|---:|---:|---:|---:|---|---:|']
    for r in data['rows']:
        lines.append('| %s | %s | %s | %s | %.3f | %s | %s | %s | %s |' % (
            r['kernel'], r['size'], _fmt_time(r['njit_ns']),
            _fmt_time(r['secret_ns']), r['ratio'],
            '%.0f' % r['secret_MBps'] if r.get('secret_MBps') else '',
            '%.2f' % r['secret_cpb'] if r.get('secret_cpb') else '',
            '%s %s' % (r['reference'], _fmt_time(r['reference_ns']))
            if r['reference'] else '',
            '%.0f' % r['reference_MBps'] if r.get('reference_MBps') else ''))
    if data.get('compile'):
        lines += ['', '## Compile time (fresh process, first call; then a cache=True load; CPU s)',
                  '', 'Medians of interleaved rounds (benchmarks/compile_time.py), '
                  '[smallest-largest sample]; ratio of the medians, and the '
                  'range of the per-round ratios.', '',
                  '| kernel | rounds | njit compile | secret compile | ratio | '
                  'per-round ratios | njit cached load | secret cached load |',
                  '|---|---:|---:|---:|---:|---:|---:|---:|']
        for k, c in data['compile'].items():
            lines.append('| %s | %d | %.3f s [%.3f-%.3f] | %.3f s [%.3f-%.3f] | %.2f '
                         '| %.2f-%.2f | %.3f s | %.3f s |' % (
                             k, c['rounds'], c['njit_compile'], c['njit_compile_min'],
                             c['njit_compile_max'], c['secret_jit_compile'],
                             c['secret_jit_compile_min'], c['secret_jit_compile_max'],
                             c['secret_jit_compile'] / c['njit_compile'],
                             c['ratio_min'], c['ratio_max'], c['njit_cached'],
                             c['secret_jit_cached']))
    if data.get('first_use'):
        import first_use
        lines += first_use.markdown(data['first_use'])
    if data.get('memory'):
        mem = data['memory']
        lines += ['', '## Memory (resident set, 10^5 64-byte AEAD seals after 10^3 warm-up calls)',
                  '', '| decorator | RSS before | RSS after | growth | peak RSS (incl. compile) |',
                  '|---|---:|---:|---:|---:|']
        for k, v in mem.items():
            lines.append('| %s | %d KiB | %d KiB | %+d KiB | %d KiB |' % (
                k, v['rss_before_KiB'], v['rss_after_KiB'], v['growth_KiB'],
                v['peak_KiB']))
    if data.get('hardened'):
        import hardened
        lines += ['', hardened.markdown(data['hardened'], command).rstrip()]
    if data.get('api'):
        import api
        lines += ['', api.markdown(data['api'], command).rstrip()]
    if data.get('alloc'):
        import alloc
        lines += ['', alloc.markdown(data['alloc'], command).rstrip()]
    if data.get('aot'):
        import aot
        lines += ['', aot.markdown(data['aot'], command).rstrip()]
    lines += ['', '## Targets', '', '| target | measured | met |', '|---|---:|---|']
    for what, value, ok in check_targets(data):
        lines.append('| %s | %s | %s |' % (what, value, 'yes' if ok else '**no**'))
    notes = os.path.join(HERE, 'notes.md')
    if os.path.exists(notes):
        with open(notes) as f:
            lines += ['', f.read().rstrip()]
    return '\n'.join(lines) + '\n'


def plot(data, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    kernels = sorted({r['kernel'] for r in data['rows'] if r['bytes']})
    for k in kernels:
        rs = [r for r in data['rows'] if r['kernel'] == k and r['bytes']]
        a.plot([r['bytes'] for r in rs], [r['ratio'] for r in rs], 'o-', label=k)
        refs = [r for r in rs if r.get('reference_MBps')]
        if refs:
            b.plot([r['bytes'] for r in refs],
                   [r['secret_MBps'] / r['reference_MBps'] for r in refs], 'o-',
                   label=k)
    a.axhline(1.0, color='k', lw=0.5)
    a.axhline(TARGETS['ratio_bulk'], color='r', ls='--', lw=0.8, label='target 1.03')
    a.set(xscale='log', xlabel='input bytes', ylabel='secret_jit / njit time',
          title='price of erasure')
    b.set(xscale='log', xlabel='input bytes', ylabel='secret_jit / OpenSSL throughput',
          title='against OpenSSL / hashlib')
    a.legend(fontsize=7)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true',
                   help='few sizes and rounds, no compile/memory runs (< 1 minute)')
    p.add_argument('--out', default=None,
                   help='folder for RESULTS.md, results.json, results.png '
                        '(default: benchmarks/ for a full run, none for --quick)')
    p.add_argument('--only', choices=['compile'],
                   help='run one part only and print it (compile: the compile '
                        'rows, 3-7 interleaved fresh-process rounds within 60 s '
                        'a kernel; no files written)')
    args = p.parse_args(argv)
    if args.only == 'compile':
        for kernel, r in compile_times(COMPILE_KERNELS).items():
            print('ratio %-26s %.2f  (rounds %.2f-%.2f, n=%d)' % (
                kernel, r['ratio'], r['ratio_min'], r['ratio_max'], r['rounds']))
        return 0
    t0 = time.time()
    rows, ghz = time_cases(args.quick)
    data = {'machine': machine(), 'quick': args.quick, 'rows': rows}
    if not args.quick:
        data['compile'] = compile_times(COMPILE_KERNELS)
        import first_use                  # first aead.seal after install (issue 15)
        data['first_use'] = first_use.collect()
        data['memory'] = memory(100_000)
    import hardened                       # imports this module: not at the top
    data['hardened'] = hardened.collect(args.quick)
    import api                            # the Python API rows (issue 16)
    data['api'] = api.collect(args.quick)
    import alloc                          # allocation-heavy kernels (issue 15)
    data['alloc'] = alloc.collect(args.quick)
    import aot                            # AOT exports called from C (issue 15)
    data['aot'] = aot.collect(args.quick)
    data['seconds'] = time.time() - t0
    out = args.out or (None if args.quick else HERE)
    command = 'python benchmarks/run.py' + (' --quick' if args.quick else '')
    table = markdown(data, command)
    print(table)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, 'results.json'), 'w') as f:
            json.dump(data, f, indent=1)
        with open(os.path.join(out, 'RESULTS.md'), 'w') as f:
            f.write(table)
        try:
            plot(data, os.path.join(out, 'results.png'))
        except ImportError:
            print('matplotlib not installed (pip install -e ".[plot]"): no plot')
    return 0


if __name__ == '__main__':
    sys.exit(main())
