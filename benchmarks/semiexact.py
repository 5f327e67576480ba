"""The 64-byte temporary with and without the exact secret call (issue 15).

``benchmarks/hardened.py``'s ``temp64`` (np.empty(64, uint8), fill, sum)
under ``numba.njit``, under ``secret_jit`` as built (its tree's only
externals are the runtime's marked entries, so its boundary calls
``secretjit_secret_call_exact``: the frame window is checked only when a
marked C library call ran) and under ``secret_jit`` with the plain entry
forced (``passes.exact_kernels`` returning nothing), interleaved in one
process (``_timing.interleaved``, thread CPU time, medians), ``--repeat``
times to show the spread.

    python benchmarks/semiexact.py [--rounds 15] [--repeat 5]
"""

import argparse
import os
import statistics
import sys
import time

from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _timing import interleaved  # noqa: E402
from hardened import temp64  # noqa: E402


def kernels():
    from secretjit import passes, secret_jit
    exact = secret_jit(temp64)
    exact(3)
    saved = passes.exact_kernels
    passes.exact_kernels = lambda bounds: []
    try:
        plain = secret_jit(temp64)
        plain(3)
    finally:
        passes.exact_kernels = saved
    return {'njit': njit(temp64), 'secret (plain entry)': plain,
            'secret (exact entry)': exact}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--repeat', type=int, default=5)
    args = p.parse_args(argv)
    fns = kernels()
    for f in fns.values():
        f(3)
    print('| run | ' + ' | '.join(fns) + ' | plain/njit | exact/njit |')
    print('|---' * (len(fns) + 3) + '|')
    ratios = {'plain': [], 'exact': []}
    for r in range(args.repeat):
        med, _ = interleaved({k: (lambda f=f: f(3)) for k, f in fns.items()},
                             args.rounds, timer=time.thread_time)
        ns = [med[k] * 1e9 for k in fns]
        ratios['plain'].append(ns[1] / ns[0])
        ratios['exact'].append(ns[2] / ns[0])
        print('| %d | %s | %.3f | %.3f |' % (
            r + 1, ' | '.join('%.1f ns' % v for v in ns), ns[1] / ns[0], ns[2] / ns[0]))
    print('\nmedian of runs: plain/njit %.3f (%.3f-%.3f), exact/njit %.3f (%.3f-%.3f)' % (
        statistics.median(ratios['plain']), min(ratios['plain']), max(ratios['plain']),
        statistics.median(ratios['exact']), min(ratios['exact']), max(ratios['exact'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
