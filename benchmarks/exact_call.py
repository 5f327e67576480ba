"""The trivial call with and without the exact secret call (issue 15).

``x + 1`` under ``numba.njit``, under ``secret_jit`` as built (its tree has
no allowance, so its boundary calls ``secretjit_secret_call_exact``), and
under ``secret_jit`` with the plain entry forced (``passes.exact_kernels``
returning nothing: the 1 KiB frame-window check runs), interleaved in one
process (``_timing.interleaved``: autorange batches, medians).  Repeated
``--repeat`` times to show the spread.

    python benchmarks/exact_call.py [--rounds 15] [--repeat 3]
"""

import argparse
import os
import sys

from numba import njit

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _timing import interleaved  # noqa: E402


def trivial(x):
    return x + 1


def kernels():
    from secretjit import passes, secret_jit
    exact = secret_jit(trivial)
    exact(1)
    saved = passes.exact_kernels
    passes.exact_kernels = lambda bounds: []
    try:
        plain = secret_jit(trivial)
        plain(1)
    finally:
        passes.exact_kernels = saved
    return {'njit': njit(trivial), 'secret (plain entry)': plain,
            'secret (exact entry)': exact}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args(argv)
    fns = kernels()
    for f in fns.values():
        f(1)
    print('| run | ' + ' | '.join(fns) + ' | plain/njit | exact/njit |')
    print('|---' * (len(fns) + 3) + '|')
    for r in range(args.repeat):
        med, _ = interleaved({k: (lambda f=f: f(1)) for k, f in fns.items()}, args.rounds)
        ns = [med[k] * 1e9 for k in fns]
        print('| %d | %s | %.3f | %.3f |' % (
            r + 1, ' | '.join('%.1f ns' % v for v in ns), ns[1] / ns[0], ns[2] / ns[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
