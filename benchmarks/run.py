"""Benchmark secret_jit against plain numba: the price of erasure.

Every case compiles the same Python source with ``numba.njit`` and with
``secret_jit`` and times both in one process, interleaved (A B A B ...), each
sample the mean of a batch sized like ``timeit``'s autorange.  Reported:
medians per variant, the secret/njit ratio of the medians, throughput, and
first-call compile time measured in fresh processes (also interleaved).

    python benchmarks/run.py                 # full run, writes results.json
    python benchmarks/run.py --quick         # < 1 minute smoke run
    python benchmarks/run.py --markdown benchmarks/RESULTS.md
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))


# -- cases -------------------------------------------------------------------

def trivial(x):
    return x + 1


def _cases(quick):
    from secretjit.kernels import chacha20
    key = np.arange(32, dtype=np.uint8)
    nonce = np.arange(12, dtype=np.uint8)
    out64 = np.empty(64, np.uint8)
    cases = [
        ('trivial x+1', 'per call', trivial, lambda: (7,), 0),
        ('chacha20 block', '64 B', chacha20.chacha20_block.py_func,
         lambda: (key, nonce, 1, out64), 64),
    ]
    sizes = [64, 1024, 16384] if quick else [64, 1024, 16384, 1 << 20]
    for n in sizes:
        src = np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)
        dst = np.empty_like(src)
        cases.append(('chacha20 xor', _size(n), chacha20.chacha20_xor.py_func,
                      (lambda s=src, d=dst: (key, nonce, 1, s, d)), n))
    return cases


def _size(n):
    return '%d B' % n if n < 1024 else ('%d KiB' % (n // 1024) if n < 1 << 20
                                        else '%d MiB' % (n >> 20))


# -- timing ------------------------------------------------------------------

def _batch(f, args, target=0.02):
    """Calls per sample so that one sample takes about ``target`` seconds."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            f(*args)
        if time.perf_counter() - t0 >= target / 4 or n >= 1 << 20:
            return max(1, int(n * target / max(time.perf_counter() - t0, 1e-9) / 4))
        n *= 4


def interleaved(fns, args, rounds):
    """Median seconds per call of each function, sampled A B A B ..."""
    for f in fns.values():
        f(*args)
    n = min(_batch(f, args) for f in fns.values())
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                f(*args)
            samples[k].append((time.perf_counter() - t0) / n)
    return {k: statistics.median(v) for k, v in samples.items()}, n


COMPILE_SNIPPET = '''
import time, numpy as np
from numba import njit
from secretjit import secret_jit
from secretjit.kernels import chacha20
key = np.arange(32, dtype=np.uint8); nonce = np.arange(12, dtype=np.uint8)
src = np.zeros(4096, np.uint8); dst = np.empty_like(src)
dec = {dec}
chacha20.chacha20_xor(key, nonce, 1, src, dst)   # warm numba itself (cached)
f = dec(chacha20.chacha20_xor.py_func)
t0 = time.perf_counter(); f(key, nonce, 1, src, dst); t1 = time.perf_counter()
print(t1 - t0)
'''


def compile_times(runs):
    """First-call compile seconds of chacha20_xor, fresh process per sample."""
    out = {'njit': [], 'secret_jit': []}
    env = dict(os.environ, NUMBA_CACHE_DIR=os.path.join(HERE, '.cache'))
    for _ in range(runs):
        for name, dec in (('njit', 'njit'), ('secret_jit', 'secret_jit')):
            r = subprocess.run([sys.executable, '-c',
                                COMPILE_SNIPPET.format(dec=dec)],
                               capture_output=True, text=True, env=env,
                               check=True)
            out[name].append(float(r.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(v) for k, v in out.items()}


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
    return {'cpu': cpu, 'llvm_cpu': ll.get_host_cpu_name(),
            'arch': platform.machine(), 'cores': os.cpu_count(),
            'python': platform.python_version(), 'numba': numba.__version__,
            'numpy': np.__version__}


def run(quick=False):
    from secretjit import secret_jit
    rounds = 7 if quick else 25
    results = []
    for name, size, py, make_args, nbytes in _cases(quick):
        fns = {'njit': njit(py), 'secret_jit': secret_jit(py)}
        med, batch = interleaved(fns, make_args(), rounds)
        row = {'case': name, 'size': size, 'bytes': nbytes, 'batch': batch,
               'rounds': rounds,
               'njit_ns': med['njit'] * 1e9,
               'secret_ns': med['secret_jit'] * 1e9,
               'ratio': med['secret_jit'] / med['njit']}
        if nbytes >= 1024:
            row['njit_MBps'] = nbytes / med['njit'] / 1e6
            row['secret_MBps'] = nbytes / med['secret_jit'] / 1e6
        results.append(row)
        print('%-16s %-9s njit %10.1f ns  secret %10.1f ns  ratio %.3f'
              % (name, size, row['njit_ns'], row['secret_ns'], row['ratio']),
              flush=True)
    comp = compile_times(2 if quick else 5)
    print('compile chacha20_xor: njit %.3f s  secret %.3f s  ratio %.2f'
          % (comp['njit'], comp['secret_jit'], comp['secret_jit'] / comp['njit']))
    return {'machine': machine(), 'quick': quick, 'results': results,
            'compile': comp}


def markdown(data, command):
    m = data['machine']
    lines = [
        '| case | size | njit | secret_jit | secret/njit |',
        '|---|---|---:|---:|---:|',
    ]
    for r in data['results']:
        if 'njit_MBps' in r:
            a = '%.1f µs (%.0f MB/s)' % (r['njit_ns'] / 1e3, r['njit_MBps'])
            b = '%.1f µs (%.0f MB/s)' % (r['secret_ns'] / 1e3, r['secret_MBps'])
        else:
            a, b = '%.0f ns' % r['njit_ns'], '%.0f ns' % r['secret_ns']
        lines.append('| %s | %s | %s | %s | %.3f |' % (r['case'], r['size'], a,
                                                      b, r['ratio']))
    c = data['compile']
    lines.append('| compile chacha20_xor (first call, fresh process) | | '
                 '%.3f s | %.3f s | %.2f |' % (c['njit'], c['secret_jit'],
                                               c['secret_jit'] / c['njit']))
    head = ('Machine: %s (LLVM cpu `%s`), %s cores, Python %s, numba %s, numpy %s.  \n'
            'Command: `%s`' % (m['cpu'], m['llvm_cpu'], m['cores'], m['python'],
                               m['numba'], m['numpy'], command))
    return head + '\n\n' + '\n'.join(lines) + '\n'


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='small sizes, few rounds')
    p.add_argument('--json', default=os.path.join(HERE, 'results.json'))
    p.add_argument('--markdown', help='also write the Markdown table here')
    args = p.parse_args(argv)
    data = run(quick=args.quick)
    with open(args.json, 'w') as f:
        json.dump(data, f, indent=1)
    table = markdown(data, 'python benchmarks/run.py' + (' --quick' if args.quick else ''))
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table)
    print(table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
