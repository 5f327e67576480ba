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

Each is timed in turn with a reference the backing does not touch (a thread
without a secret call, 64 KiB of fresh ordinary anonymous memory, OpenSSL's
seal), and memfd/mlock is the ratio of the two backings' case/reference
medians, so that load on the machine cancels out.

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
         'aead.seal, 1 KiB (steady state)')


def _alternate(fns, reps):
    """{name: median seconds}, the calls of fns taken in turn reps times."""
    got = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            got[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in got.items()}


def _child():
    """Measure in this process; print {case: [seconds, reference seconds]}.

    Each case runs interleaved with a reference the backing does not touch,
    so that a loaded machine moves both: a thread that makes no secret call,
    a fresh 64 KiB of ordinary anonymous memory, OpenSSL's seal."""
    import mmap
    import numpy as np
    import secretjit
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from secretjit import secret_jit
    from secretjit.kernels import aead
    sys.path.insert(0, HERE)
    from hardened import trivial
    out = {'backing': secretjit.memory_status()['backing']}
    key, nonce, msg = bytes(range(32)), bytes(12), bytes(1024)
    aead.seal(key, nonce, msg, b'')     # first (see the steady-state case)
    f = secret_jit(trivial)
    f(1)

    def thread(target):
        t = threading.Thread(target=target, args=(1,))
        t.start()
        t.join()
    med = _alternate({'s': lambda: thread(f), 'r': lambda: thread(trivial)}, 60)
    out[CASES[0]] = [med['s'], med['r']]
    keep = []

    def fresh_secret():
        a = secretjit.secret_zeros(65536)
        a.view(np.uint8)[::4096] = 1
        keep.append(a)

    def fresh_plain():
        m = mmap.mmap(-1, 65536)
        np.frombuffer(m, np.uint8)[::4096] = 1
        keep.append(m)
    med = _alternate({'s': fresh_secret, 'r': fresh_plain}, 100)
    out[CASES[1]] = [med['s'], med['r']]
    keep.clear()
    ref = ChaCha20Poly1305(key)

    def many(g):
        return lambda: [g() for _ in range(200)]
    med = _alternate({'s': many(lambda: aead.seal(key, nonce, msg, b'')),
                      'r': many(lambda: ref.encrypt(nonce, msg, b''))}, 15)
    out[CASES[2]] = [med['s'] / 200, med['r'] / 200]
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
        med = {b: statistics.median(rep[case][0] for rep in got[b]) for b in BACKINGS}
        rel = {b: statistics.median(rep[case][0] / rep[case][1] for rep in got[b])
               for b in BACKINGS}
        rows.append({'case': case, 'memfd_ns': med['memfd'] * 1e9,
                     'mlock_ns': med['mlock'] * 1e9, 'memfd_rel': rel['memfd'],
                     'mlock_rel': rel['mlock'], 'ratio': rel['memfd'] / rel['mlock']})
    return rows


def markdown_rows(rows):
    from run import _fmt_time
    lines = ['| backing: case | memfd_secret (x reference) | mlock (x reference) '
             '| memfd/mlock |', '|---|---:|---:|---:|']
    for r in rows:
        lines.append('| %s | %s (%.2f) | %s (%.2f) | %.2f |' % (
            r['case'], _fmt_time(r['memfd_ns']), r['memfd_rel'], _fmt_time(r['mlock_ns']),
            r['mlock_rel'], r['ratio']))
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
