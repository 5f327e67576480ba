"""The trivial call with the full vector epilogue and with the used-register one (issue 15).

``x + 1`` under ``numba.njit``; under ``secret_jit`` with the boundary's
epilogue zeroing every vector register of the contract (what the x87 rule
alone left: xmm0-15 here, zmm0-31 and k0-k7 with AVX-512; built by making
``stack_bound.vregs``'s scan report every vector register written); under
``secret_jit`` as built (the scan finds nothing written; the VEX zeroing of
xmm0-15 stays, ``passes.epilogue.KEEP_VEX_XMM``); and without that speed
choice (no vector zeroing at all).  Interleaved in one process (``_timing.interleaved``,
thread CPU time, autorange batches, medians), repeated ``--repeat`` times to
show the spread; each variant compiled ``--instances`` times (identical
code lands at different addresses, which moves its time by a few ns: the
median over the copies is reported, and their spread).

    python benchmarks/used_vregs.py [--rounds 15] [--repeat 5] [--instances 4] [--aot]

``--aot``: also the trivial AOT export (benchmarks/aot.py's driver,
``benchmarks/c/aot_calls.c``: thread CPU time around 1e6 calls from C,
interleaved rounds, medians): the control (no boundary), and the baseline
and ``--cpu host`` libraries as built and with every vector register
zeroed (the build's worker runs with the scan reporting everything
written), all loaded in one process.
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


def trivial(x):
    return x + 1


def kernels(instances=1):
    """{variant: [dispatcher, ...]}: ``instances`` separately compiled
    copies of each (each its own module at its own address: identical code
    differs by a few ns from one copy to the next, so one copy per variant
    would measure where it landed)."""
    from secretjit import passes, pipeline, secret_jit
    from secretjit.contract import X86_64_MASKS, x86_64_vectors
    real = pipeline.tree_registers
    every = set(x86_64_vectors(True) + X86_64_MASKS)

    def compiled():
        k = secret_jit(trivial)
        k(1)
        return k

    def full():
        pipeline.tree_registers = lambda *a, **k: (
            lambda r: None if r is None else r | every)(real(*a, **k))
        try:
            return compiled()
        finally:
            pipeline.tree_registers = real

    def bare():
        passes.epilogue.KEEP_VEX_XMM = False
        try:
            return compiled()
        finally:
            passes.epilogue.KEEP_VEX_XMM = True

    out = {'njit': [], 'secret (all vectors zeroed)': [],
           'secret (as built: used + VEX xmm0-15)': [],
           'secret (used only: no vector zeroing)': []}
    for _ in range(instances):
        for name, make in zip(out, (lambda: njit(trivial), full, compiled, bare)):
            f = make()
            f(1)
            out[name].append(f)
    return out


_ALL_WRITTEN = """
import runpy, sys
from secretjit import pipeline
from secretjit.contract import X86_64_MASKS, x86_64_vectors
real, every = pipeline.tree_registers, set(x86_64_vectors(True) + X86_64_MASKS)
pipeline.tree_registers = lambda *a, **k: (lambda r: None if r is None else r | every)(
    real(*a, **k))
sys.argv = [sys.argv[0]] + sys.argv[3:]
runpy.run_module('secretjit.aot._build', run_name='__main__')
"""


def aot_rows(rounds=15, calls=1000000):
    """The trivial export: control, as built and all vectors zeroed."""
    import tempfile

    from aot import CDIR, TRIVIAL, _cc, _medians, _run
    from secretjit import aot
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, 'trivial.py')
        with open(src, 'w') as f:
            f.write(TRIVIAL)
        patched = os.path.join(tmp, 'all_written.py')
        with open(patched, 'w') as f:
            f.write(_ALL_WRITTEN)
        wrapper = os.path.join(tmp, 'python-all-written')
        with open(wrapper, 'w') as f:
            f.write('#!/bin/sh\nexec "%s" "%s" "$@"\n' % (sys.executable, patched))
        os.chmod(wrapper, 0o755)
        names, libs = ['control'], []
        libs += aot._build_variants(src, [dict(outdir=os.path.join(tmp, 'c'),
                                               secret=False)])
        for cpu in (None, 'host'):
            tag = 'baseline' if cpu is None else '--cpu host'
            libs += aot._build_variants(src, [dict(outdir=os.path.join(tmp, 'u' + tag),
                                                   cpu=cpu)])
            libs += aot._build_variants(src, [dict(outdir=os.path.join(tmp, 'a' + tag),
                                                   cpu=cpu)], python=wrapper)
            names += ['secret %s (as built)' % tag, 'secret %s (all vectors)' % tag]
        drv = _cc(os.path.join(tmp, 'aot_calls'), [os.path.join(CDIR, 'aot_calls.c')],
                  ['-ldl'])
        out = _run([drv, str(rounds), str(calls), 'trivial', 'i64']
                   + [i['library'] for i in libs])
    med = _medians(out, lambda k: names[int(k)])
    print('\n| AOT trivial export | median | min-max | minus control |')
    print('|---|---|---|---|')
    for n in names:
        m, lo, hi = med[n]
        print('| %s | %.2f ns | %.2f-%.2f | %+.2f ns |' % (n, m, lo, hi,
                                                        m - med['control'][0]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--repeat', type=int, default=5)
    p.add_argument('--instances', type=int, default=4,
                   help='separately compiled copies of each variant')
    p.add_argument('--aot', action='store_true')
    args = p.parse_args(argv)
    variants = kernels(args.instances)
    names = list(variants)
    fns = {'%s #%d' % (n, i): f for n in names for i, f in enumerate(variants[n])}
    print('| run | ' + ' | '.join(names) + ' | ' + ' | '.join(
        'secret %d / njit' % i for i in range(1, len(names))) + ' |')
    print('|---' * (2 * len(names)) + '|')
    ns_runs = {n: [] for n in names}
    spread = {n: [] for n in names}
    for r in range(args.repeat):
        med, _ = interleaved({k: (lambda f=f: f(1)) for k, f in fns.items()},
                             args.rounds, timer=time.thread_time)
        ns = []
        for n in names:
            per = [med['%s #%d' % (n, i)] * 1e9 for i in range(args.instances)]
            ns.append(statistics.median(per))
            ns_runs[n].append(ns[-1])
            spread[n].append(max(per) - min(per))
        print('| %d | %s | %s |' % (r + 1, ' | '.join('%.1f ns' % v for v in ns),
                                    ' | '.join('%.3f' % (v / ns[0]) for v in ns[1:])))
    print()
    print('(each cell: the median over %d separately compiled copies; their spread, '
          'max - min, median over runs: %s)' % (args.instances, ', '.join(
              '%s %.1f ns' % (n, statistics.median(spread[n])) for n in names)))
    base = ns_runs[names[0]]
    for n in names[1:]:
        ratios = [v / b for v, b in zip(ns_runs[n], base)]
        diffs = [v - f for v, f in zip(ns_runs[n], ns_runs[names[1]])]
        print('%s: median %.1f ns, / njit %.3f (%.3f-%.3f), minus "all vectors" '
              '%.2f ns (%.2f to %.2f)' % (
                  n, statistics.median(ns_runs[n]), statistics.median(ratios),
                  min(ratios), max(ratios), statistics.median(diffs), min(diffs),
                  max(diffs)))
    if args.aot:
        aot_rows()
    return 0


if __name__ == '__main__':
    sys.exit(main())
