"""Compile time of the vetted kernels, njit against secret_jit (issue 15).

Every sample is a fresh Python process that decorates one kernel with
``cache=True`` in an empty cache directory and times its first call (the
compile) in CPU seconds (``time.process_time``: the time slices other
processes get on a shared machine are left out); a second process on the
same directory times the cache load.  A round takes one sample of each
decorator, in alternating order (njit first in even rounds, secret_jit first
in odd ones) so that a drift of the machine's speed over the run does not
favour either.  A kernel gets at least ``min_rounds`` rounds, more while its
time budget lasts, at most ``max_rounds``.

Reported per kernel: the median of each decorator, the ratio of the medians
(the number the 1.2 target is checked on), the smallest and largest sample of
each decorator and the range of the per-round ratios (secret sample /
njit sample of the same round), the spread a reader should weigh the ratio
against.

    python benchmarks/compile_time.py                 # every kernel
    python benchmarks/compile_time.py sha256 hkdf     # kernels whose name starts so
    python benchmarks/compile_time.py --base ../old sha256   # and another checkout's
    python benchmarks/compile_time.py --context       # a process's first secret context
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

KERNELS = ['chacha20', 'poly1305', 'chacha20-poly1305 seal',
           'xchacha20-poly1305 seal', 'sha256', 'hmac-sha256',
           'hkdf-sha256 (ikm size)', 'blake2b-512', 'x25519']

SNIPPET = r'''
import sys, time
sys.path.insert(0, {here!r})
import numpy as np
from numba import njit
from secretjit import secret_jit
import cases
c = [c for c in cases.cases(quick=False) if c.kernel == {kernel!r}][0]
dec = {dec}
f = dec(cache=True)(c.py_func)
t0 = time.process_time(); f(*c.args); t1 = time.process_time()
print(t1 - t0)                  # CPU seconds: the machine may be loaded
'''

DECORATORS = ('njit', 'secret_jit')
# --base DIR: a third variant, secret_jit imported from another checkout
BASE = 'secret_jit_base'


def fresh(snippet, env):
    """CPU seconds the snippet prints last, from a fresh interpreter."""
    # in this folder: a checkout's secretjit in the working directory would
    # come before --base's on sys.path
    r = subprocess.run([sys.executable, '-c', snippet], capture_output=True,
                       text=True, env=env, cwd=HERE)
    if r.returncode:
        raise RuntimeError(r.stderr[-2000:])
    return float(r.stdout.strip().splitlines()[-1])


def sample(kernel, dec, base=None):
    """(first-call compile, cache load) CPU seconds in fresh processes;
    ``base``: a checkout whose ``secretjit`` is imported instead."""
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        if base:
            env['PYTHONPATH'] = os.pathsep.join(
                [base] + [p for p in [os.environ.get('PYTHONPATH')] if p])
        snip = SNIPPET.format(here=HERE, kernel=kernel, dec=dec)
        return fresh(snip, env), fresh(snip, env)


CONTEXT_SNIPPET = r'''
import time
from secretjit.target import secret_target
t0 = time.process_time(); secret_target.target_context; t1 = time.process_time()
print(t1 - t0)
'''


def context_times(rounds, base=None, log=print):
    """CPU seconds of a process's first secret context (the secret runtime's
    module and its stack bounds, made when the first secret kernel is
    decorated), fresh processes, alternating with ``base``'s when given."""
    variants = ('secret_jit',) + ((BASE,) if base else ())
    samples = {v: [] for v in variants}
    for i in range(rounds):
        for v in (variants if i % 2 == 0 else variants[::-1]):
            env = dict(os.environ)
            if v == BASE:
                env['PYTHONPATH'] = os.pathsep.join(
                    [base] + [p for p in [os.environ.get('PYTHONPATH')] if p])
            samples[v].append(fresh(CONTEXT_SNIPPET, env))
    out = {v: (statistics.median(x), min(x), max(x)) for v, x in samples.items()}
    if log:
        for v, (m, lo, hi) in out.items():
            log('first secret context %-16s %.3f s [%.3f-%.3f] n=%d' % (
                v, m, lo, hi, rounds))
    return out


def summary(samples):
    """The row of one kernel from ``{(dec, 'compile'|'cached'): [seconds]}``
    (samples of round i at index i)."""
    out = {'%s_%s' % k: statistics.median(v) for k, v in samples.items()}
    for k, v in samples.items():
        out['%s_%s_min' % k], out['%s_%s_max' % k] = min(v), max(v)
    for dec, key in (('secret_jit', 'ratio'), (BASE, 'base_ratio')):
        if (dec, 'compile') not in samples:
            continue
        paired = [s / n for s, n in zip(samples[(dec, 'compile')],
                                        samples[('njit', 'compile')])]
        out['rounds'] = len(paired)
        out[key] = out['%s_compile' % dec] / out['njit_compile']
        out[key + '_min'], out[key + '_max'] = min(paired), max(paired)
    return out


def compile_times(kernels=KERNELS, min_rounds=3, max_rounds=7,
                  budget_seconds=60.0, log=print, base=None):
    """``{kernel: row}`` (:func:`summary`), interleaved rounds per kernel;
    ``base``: also time secret_jit from that checkout (``secret_jit_base``)."""
    out = {}
    variants = DECORATORS + ((BASE,) if base else ())
    for kernel in kernels:
        samples = {(d, m): [] for d in variants for m in ('compile', 'cached')}
        start = time.monotonic()
        for i in range(max_rounds):
            # each variant first, last, ... in turn: no drift favours one
            order = variants[i % len(variants):] + variants[:i % len(variants)]
            if i // len(variants) % 2:
                order = order[::-1]
            for dec in order:
                compiled, cached = sample(kernel, dec.replace('_base', ''),
                                          base if dec == BASE else None)
                samples[(dec, 'compile')].append(compiled)
                samples[(dec, 'cached')].append(cached)
            if i + 1 >= min_rounds and time.monotonic() - start > budget_seconds:
                break
        out[kernel] = r = summary(samples)
        if log:
            log(format_row(kernel, r))
    return out


def format_row(kernel, r):
    line = ('compile %-24s njit %.3f s [%.3f-%.3f]  secret %.3f s [%.3f-%.3f]  '
            'ratio %.2f [rounds %.2f-%.2f, n=%d]  (cached %.3f / %.3f s)' % (
                kernel, r['njit_compile'], r['njit_compile_min'],
                r['njit_compile_max'], r['secret_jit_compile'],
                r['secret_jit_compile_min'], r['secret_jit_compile_max'],
                r['ratio'], r['ratio_min'], r['ratio_max'], r['rounds'],
                r['njit_cached'], r['secret_jit_cached']))
    if 'base_ratio' in r:
        line += '\n        %-24s base secret %.3f s [%.3f-%.3f]  ratio %.2f [rounds %.2f-%.2f]' % (
            '', r[BASE + '_compile'], r[BASE + '_compile_min'],
            r[BASE + '_compile_max'], r['base_ratio'], r['base_ratio_min'],
            r['base_ratio_max'])
    return line


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('kernels', nargs='*', help='kernel name prefixes (default: all)')
    p.add_argument('--base', help='another checkout (its top folder): time its '
                   'secret_jit too, interleaved (before/after a change)')
    p.add_argument('--rounds', type=int, nargs=2, default=(3, 7),
                   metavar=('MIN', 'MAX'), help='rounds per kernel (default 3 7)')
    p.add_argument('--budget', type=float, default=60.0,
                   help='seconds per kernel after MIN rounds (default 60)')
    p.add_argument('--context', action='store_true',
                   help='time the first secret context instead (MAX rounds)')
    args = p.parse_args(argv)
    if args.base and not os.path.isdir(os.path.join(args.base, 'secretjit')):
        p.error('--base %s: no secretjit folder there (give the checkout\'s top '
                'folder, with its C extension built)' % args.base)
    if args.context:
        context_times(args.rounds[1], args.base,
                      log=lambda line: print(line, flush=True))
        return 0
    kernels = [k for k in KERNELS
               if not args.kernels or any(k.startswith(a) for a in args.kernels)]
    if not kernels:
        p.error('no kernel starts with %s; the kernels: %s'
                % (' or '.join(map(repr, args.kernels)), ', '.join(KERNELS)))
    compile_times(kernels, args.rounds[0], args.rounds[1], args.budget,
                  log=lambda line: print(line, flush=True), base=args.base)
    return 0


if __name__ == '__main__':
    sys.exit(main())
