"""The trivial call with the full vector epilogue and with the used-register one (issue 15).

``x + 1`` under ``numba.njit``; under ``secret_jit`` with the boundary's
epilogue zeroing every vector register of the contract (what the x87 rule
alone left: xmm0-15 here, zmm0-31 and k0-k7 with AVX-512; built by making
``stack_bound.vregs``'s scan report every vector register written); under
``secret_jit`` as built (the scan finds nothing written; the VEX zeroing of
xmm0-15 stays, ``passes.epilogue.KEEP_VEX_XMM``); and without that speed
choice (no vector zeroing at all).  Interleaved in one process (``_timing.interleaved``,
thread CPU time, autorange batches, medians), repeated ``--repeat`` times to
show the spread.

    python benchmarks/used_vregs.py [--rounds 21] [--repeat 5] [--aot]

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


def kernels():
    from secretjit import passes, pipeline, secret_jit
    from secretjit.contract import X86_64_MASKS, x86_64_vectors
    used = secret_jit(trivial)
    used(1)
    real = pipeline.tree_registers
    every = set(x86_64_vectors(True) + X86_64_MASKS)
    pipeline.tree_registers = lambda *a, **k: (lambda r: None if r is None else r | every)(
        real(*a, **k))
    try:
        full = secret_jit(trivial)
        full(1)
    finally:
        pipeline.tree_registers = real
    passes.epilogue.KEEP_VEX_XMM = False
    try:
        bare = secret_jit(trivial)
        bare(1)
    finally:
        passes.epilogue.KEEP_VEX_XMM = True
    return {'njit': njit(trivial), 'secret (all vectors zeroed)': full,
            'secret (as built: used + VEX xmm0-15)': used,
            'secret (used only: no vector zeroing)': bare}


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
    p.add_argument('--rounds', type=int, default=21)
    p.add_argument('--repeat', type=int, default=5)
    p.add_argument('--aot', action='store_true')
    args = p.parse_args(argv)
    fns = kernels()
    for f in fns.values():
        f(1)
    names = list(fns)
    print('| run | ' + ' | '.join(names) + ' | ' + ' | '.join(
        'secret %d / njit' % i for i in range(1, len(names))) + ' |')
    print('|---' * (2 * len(names)) + '|')
    ns_runs = {n: [] for n in names}
    for r in range(args.repeat):
        med, _ = interleaved({k: (lambda f=f: f(1)) for k, f in fns.items()},
                             args.rounds, timer=time.thread_time)
        ns = [med[k] * 1e9 for k in names]
        for n, v in zip(names, ns):
            ns_runs[n].append(v)
        print('| %d | %s | %s |' % (r + 1, ' | '.join('%.1f ns' % v for v in ns),
                                    ' | '.join('%.3f' % (v / ns[0]) for v in ns[1:])))
    print()
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
