"""The price of memfd_secret backing (issue 17): memfd_secret vs mlock'ed pages.

The backing is chosen once per process (``SECRETJIT_SECRET_MEMORY``), so each
round runs one child per backing, alternating (memfd, mlock, memfd, ...), and
the table shows medians over the rounds of what each child measured:

- a new thread's first call (start, one trivial secret call, join): the
  thread's secret stack is mapped and its first pages faulted in; under
  memfd_secret a fault also removes the page from the kernel's direct map;
- fresh secret memory: ``secret_zeros(64 KiB)`` plus writing every page, for
  blocks that are never freed, so that every page is a first fault;
- steady state: a 1 KiB ChaCha20-Poly1305 seal (pages already faulted in).

    python benchmarks/backing.py [--rounds N]     # Markdown rows on stdout
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BACKINGS = ('memfd', 'mlock')
CASES = ('new thread: start, first call, join', 'fresh 64 KiB secret buffer, every page written',
         'ChaCha20-Poly1305 seal, 1 KiB (steady state)')


def _child():
    """Measure in this process; print {case: seconds} as JSON."""
    import numpy as np
    import secretjit
    from secretjit import secret_jit
    sys.path.insert(0, HERE)
    from hardened import seal_args, seal_py_func, trivial
    out = {'backing': secretjit.memory_status()['backing']}
    f = secret_jit(trivial)
    f(1)

    def thread_once():
        t = threading.Thread(target=f, args=(1,))
        t0 = time.perf_counter()
        t.start()
        t.join()
        return time.perf_counter() - t0
    out[CASES[0]] = statistics.median(thread_once() for _ in range(40))
    keep, samples = [], []
    for _ in range(100):
        t0 = time.perf_counter()
        a = secretjit.secret_zeros(65536)
        a.view(np.uint8)[::4096] = 1
        samples.append(time.perf_counter() - t0)
        keep.append(a)
    out[CASES[1]] = statistics.median(samples)
    del keep
    seal = secret_jit(nogil=True)(seal_py_func())
    args = seal_args()
    seal(*args)
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(2000):
            seal(*args)
        runs.append((time.perf_counter() - t0) / 2000)
    out[CASES[2]] = statistics.median(runs)
    print(json.dumps(out))


def compare(rounds=5):
    """[{case, memfd_ns, mlock_ns, ratio}] (ratio = memfd/mlock)."""
    got = {b: [] for b in BACKINGS}
    for _ in range(rounds):
        for b in BACKINGS:
            env = dict(os.environ, SECRETJIT_SECRET_MEMORY=b)
            r = subprocess.run([sys.executable, os.path.abspath(__file__), '--child'],
                               env=env, capture_output=True, text=True, check=True)
            rep = json.loads(r.stdout.splitlines()[-1])
            assert rep['backing'] == ('memfd_secret' if b == 'memfd' else 'mlock'), rep
            got[b].append(rep)
    rows = []
    for case in CASES:
        med = {b: statistics.median(rep[case] for rep in got[b]) for b in BACKINGS}
        rows.append({'case': case, 'memfd_ns': med['memfd'] * 1e9,
                     'mlock_ns': med['mlock'] * 1e9, 'ratio': med['memfd'] / med['mlock']})
    return rows


def markdown_rows(rows):
    from run import _fmt_time
    lines = ['| backing: case | memfd_secret | mlock | memfd/mlock |', '|---|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %s | %s | %.2f |' % (r['case'], _fmt_time(r['memfd_ns']),
                                                 _fmt_time(r['mlock_ns']), r['ratio']))
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child()
        return
    sys.path.insert(0, HERE)
    print('\n'.join(markdown_rows(compare(args.rounds))))


if __name__ == '__main__':
    main()
