"""The price of hardened secret memory (issue 6): secret arena and secret stack.

Same source under ``numba.njit`` and ``secret_jit``, interleaved in one
process with ``timeit`` (``_timing.interleaved``: autorange-sized batches,
medians), for the calls whose cost the arena and the secret stack change:

- a trivial call (``x + 1``): the trampoline onto the secret stack and its scrub;
- a 64-byte temporary (``np.empty`` + fill + sum): arena alloc/free vs malloc;
- a returned 64-byte array, freed by Python: the same, across the boundary;
- a 1 KiB ChaCha20-Poly1305 seal (five scratch buffers per call);
- a new thread's first call: creating the thread's secret stack (mmap,
  mlock, madvise, guard page) vs a plain call on a new thread;
- 8 threads x ``nogil`` calls: aggregate throughput of the 64-byte temporary
  and the 1 KiB seal (per-thread span caches vs glibc's arenas);
- memfd_secret vs mlock'ed pages (benchmarks/backing.py): a new thread's first
  call, fresh secret memory, a steady-state seal;
- the boundary part by part (benchmarks/boundary.py, timed in C).

    python benchmarks/hardened.py            # Markdown table on stdout
    python benchmarks/hardened.py --quick    # fewer rounds
    python benchmarks/hardened.py --json out.json
"""

import os
import statistics
import sys
import threading
import time

import numpy as np
from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _timing  # noqa: E402
from _timing import interleaved  # noqa: E402
from run import _fmt_time, machine  # noqa: E402


def trivial(x):
    return x + 1


def temp64(x):
    a = np.empty(64, np.uint8)
    for i in range(64):
        a[i] = x + i
    return a.sum()


def returned64(x):
    a = np.empty(64, np.uint8)
    a[:] = x
    return a


def seal_py_func():
    from secretjit.kernels.aead import aead_seal_kernel
    return aead_seal_kernel.py_func


def compile_pair(py_func, **opts):
    from secretjit import secret_jit
    return njit(**opts)(py_func), secret_jit(**opts)(py_func)


def seal_args(n=1024):
    rng = np.random.default_rng(1)
    key = rng.integers(0, 256, 32, dtype=np.uint8)
    nonce = rng.integers(0, 256, 12, dtype=np.uint8)
    pt = rng.integers(0, 256, n, dtype=np.uint8)
    return key, nonce, pt, np.empty(0, np.uint8), np.empty(n + 16, np.uint8)


def per_call(rounds):
    rows = []
    pairs = {
        'trivial call (x + 1)': (compile_pair(trivial), (1,)),
        '64-byte temporary': (compile_pair(temp64), (3,)),
        '64-byte array returned, freed by Python': (compile_pair(returned64), (3,)),
        'ChaCha20-Poly1305 seal, 1 KiB': (compile_pair(seal_py_func(), nogil=True),
                                          seal_args()),
    }
    for name, ((plain, secret), args) in pairs.items():
        plain(*args)
        secret(*args)
        med, batch = interleaved({'njit': lambda f=plain, a=args: f(*a),
                                  'secret': lambda f=secret, a=args: f(*a)}, rounds)
        rows.append({'case': name, 'njit_ns': med['njit'] * 1e9,
                     'secret_ns': med['secret'] * 1e9,
                     'ratio': med['secret'] / med['njit'], 'batch': batch})
        print('%-42s njit %9.1f ns  secret %9.1f ns  ratio %.3f' % (
            name, rows[-1]['njit_ns'], rows[-1]['secret_ns'], rows[-1]['ratio']),
            file=sys.stderr, flush=True)
    return rows


def first_call_on_new_thread(rounds, per_round=20):
    """Median seconds for: start a thread, one call in it, join (new stack each time)."""
    plain, secret = compile_pair(trivial)
    plain(1)
    secret(1)

    def once(f):
        t = threading.Thread(target=f, args=(1,))
        t0 = time.perf_counter()
        t.start()
        t.join()
        return time.perf_counter() - t0

    samples = {'njit': [], 'secret': []}
    for _ in range(rounds):
        for k, f in (('njit', plain), ('secret', secret)):
            samples[k].append(statistics.median(once(f) for _ in range(per_round)))
    med = {k: statistics.median(v) for k, v in samples.items()}
    row = {'case': 'new thread: start, first call, join', 'njit_ns': med['njit'] * 1e9,
           'secret_ns': med['secret'] * 1e9, 'ratio': med['secret'] / med['njit']}
    print('%-42s njit %9.1f ns  secret %9.1f ns  ratio %.3f' % (
        row['case'], row['njit_ns'], row['secret_ns'], row['ratio']),
        file=sys.stderr, flush=True)
    return row


def threaded(rounds, nthreads=8, seconds=0.25):
    """Aggregate calls/s of nthreads threads calling one nogil kernel, interleaved."""
    rows = []
    cases = {'64-byte temporary': (compile_pair(temp64, nogil=True), (3,)),
             'ChaCha20-Poly1305 seal, 1 KiB': (
                 compile_pair(seal_py_func(), nogil=True), None)}
    for name, ((plain, secret), args) in cases.items():
        def run(f):
            per_thread = [seal_args() if args is None else args
                          for _ in range(nthreads)]
            f(*per_thread[0])
            counts = [0] * nthreads
            stop = threading.Event()
            start = threading.Barrier(nthreads + 1)

            def work(t):
                a = per_thread[t]
                n = 0
                start.wait()
                while not stop.is_set():
                    for _ in range(100):
                        f(*a)
                    n += 100
                counts[t] = n

            ts = [threading.Thread(target=work, args=(t,)) for t in range(nthreads)]
            for t in ts:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            time.sleep(seconds)
            stop.set()
            for t in ts:
                t.join()
            return sum(counts) / (time.perf_counter() - t0)

        samples = {'njit': [], 'secret': []}
        for _ in range(rounds):
            for k, f in (('njit', plain), ('secret', secret)):
                samples[k].append(run(f))
        med = {k: statistics.median(v) for k, v in samples.items()}
        rows.append({'case': '%d threads: %s' % (nthreads, name),
                     'njit_calls_per_s': med['njit'], 'secret_calls_per_s': med['secret'],
                     'ratio': med['njit'] / med['secret']})
        print('%-42s njit %9.0f/s  secret %9.0f/s  time ratio %.3f' % (
            rows[-1]['case'], med['njit'], med['secret'], rows[-1]['ratio']),
            file=sys.stderr, flush=True)
    return rows


def check_targets(data):
    """Issue 15's new-thread target, for run.py's target table: the row's
    threads after the first get an exited thread's stack (secretstack_setup.c)."""
    out = []
    for r in data['per_call']:
        if r['case'] == 'new thread: start, first call, join':
            extra_us = (r['secret_ns'] - r['njit_ns']) / 1e3
            out.append(('new thread (exited threads\' stacks reused): first call '
                        'secret - njit <= +20 us', '%+.1f us' % extra_us, extra_us <= 20))
    return out


def markdown(data, command=None):
    m = data['machine']
    st = data['status']
    command = command or 'python benchmarks/hardened.py' + (
        ' --quick' if data['quick'] else '')
    lines = ['## Hardened secret memory (secret arena, secret stack)', '',
             'Machine: %s, %s cores; numba %s.  Command: `%s` '
             '(%s).  Same source under `njit` and `secret_jit`, interleaved, %d rounds, '
             'medians; ratio = secret/njit time.' % (
                 m['cpu'], m['cores'], m['numba'], command,
                 data['date'], data['rounds']), '',
             '| case | njit | secret_jit | secret/njit |', '|---|---:|---:|---:|']
    for r in data['per_call']:
        lines.append('| %s | %s | %s | %.2f |' % (
            r['case'], _fmt_time(r['njit_ns']), _fmt_time(r['secret_ns']), r['ratio']))
    for r in data['threads']:
        lines.append('| %s | %.2f M calls/s | %.2f M calls/s | %.2f |' % (
            r['case'], r['njit_calls_per_s'] / 1e6, r['secret_calls_per_s'] / 1e6,
            r['ratio']))
    lines += ['', 'After the run: %d bytes of arena spans carved, %d in use, %d bytes '
              'locked, %d secret stacks created (%d bytes each), %d fallbacks, '
              '%d arena failures.' % (
                  st['arena_carved'], st['arena_in_use'], st['locked_bytes'],
                  st['stacks_created'], st['stack_size'], st['stack_fallbacks'],
                  st['arena_failures'])]
    if data.get('backing'):
        import backing
        lines += ['', 'Backing (`SECRETJIT_SECRET_MEMORY`, benchmarks/backing.py: one child '
                  'per backing and round, alternating; medians; this run: `%s`):' % (
                      st.get('backing')), ''] + backing.markdown_rows(data['backing'])
    if data.get('boundary'):
        import boundary
        lines += ['', boundary.markdown(data['boundary'])]
    return '\n'.join(lines)


def collect(quick=False):
    """Every measurement of this file, as a dict for ``markdown`` (and JSON)."""
    import secretjit
    rounds = 3 if quick else 15
    data = {'quick': quick, 'rounds': rounds, 'date': time.strftime('%Y-%m-%d'),
            'machine': machine()}
    data['per_call'] = per_call(rounds)
    data['per_call'].append(first_call_on_new_thread(rounds))
    data['threads'] = threaded(max(3, rounds // 3))
    data['status'] = secretjit.memory_status()
    import backing      # memfd_secret vs mlock pages: one child per backing
    data['backing'] = backing.compare(3 if quick else 5)
    import boundary     # the boundary's parts, timed one by one in C
    data['boundary'] = boundary.collect(quick)
    return data


def main(argv=None):
    _timing.main(argv, __doc__.split('\n')[0], collect, markdown, '3 rounds instead of 15')


if __name__ == '__main__':
    main()
