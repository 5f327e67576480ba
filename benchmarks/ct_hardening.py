"""The price of the constant-time backend hardening (issue 12), per vetted kernel.

The hardening (no x86 cmov-to-branch conversion, no CodeGenPrepare
select-to-branch, no 64/32-bit division-width bypass) is process-wide for
secret code, so the comparison runs fresh processes alternately with
``SECRETJIT_CT_HARDENING=1`` and ``=0`` (A B A B ...).  Each process times
``secret_jit`` and ``njit`` builds of the benchmark cases
(``cases.cases(quick=True)``: 64 B and 16 KiB inputs, X25519 per call)
interleaved with ``run.interleaved``; reported are the medians over the
processes of each variant and the hardened/unhardened ratio, and the same
ratio of the in-process secret/njit ratios (njit, which the hardening does
not touch, timed in the same process, cancels the load of the moment).

    python benchmarks/ct_hardening.py                 # Markdown table on stdout
    python benchmarks/ct_hardening.py --processes 4   # processes per variant
    python benchmarks/ct_hardening.py --code          # same machine code?

``--code`` compiles every vetted kernel once per variant and compares their
instructions (a hash of ``inspect_asm`` without directives): where they are
identical the hardening costs nothing, whatever the timings say.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def child(rounds):
    from numba import njit

    from secretjit import secret_jit
    import cases as case_table
    from run import interleaved
    out = {}
    for case in case_table.cases(quick=True):
        if case.kernel == 'trivial x+1':
            continue
        plain, secret = njit(case.py_func), secret_jit(case.py_func)
        plain(*case.args)
        secret(*case.args)
        med, _ = interleaved({'njit': lambda: plain(*case.args),
                           'secret': lambda: secret(*case.args)}, rounds)
        out['%s|%s' % (case.kernel, case.size)] = med
    json.dump(out, sys.stdout)


def code_child():
    import hashlib

    from secretjit import secret_jit
    import cases as case_table
    out = {}
    for case in case_table.cases(quick=False):     # every vetted kernel, once
        if case.kernel == 'trivial x+1' or case.kernel in out:
            continue
        kernel = secret_jit(case.py_func)
        kernel(*case.args)
        asm = kernel.inspect_asm(kernel.signatures[0]).splitlines()
        ins = '\n'.join(ln for ln in asm if ln.startswith('\t')
                        and not ln.strip().startswith('.'))
        out[case.kernel] = [hashlib.sha256(ins.encode()).hexdigest()[:12],
                            ins.count('\n') + 1]
    json.dump(out, sys.stdout)


def _run_child(flag, *argv):
    env = dict(os.environ, SECRETJIT_CT_HARDENING=flag, NUMBA_CACHE_DIR='/nonexistent')
    res = subprocess.run([sys.executable, __file__, *argv], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout)


def compare_code():
    on, off = _run_child('1', '--code-child'), _run_child('0', '--code-child')
    print('| kernel | instructions, hardening on | off | same code |')
    print('|---|---|---|---|')
    for kernel in on:
        print('| %s | %s (%d) | %s (%d) | %s |' % (
            kernel, on[kernel][0], on[kernel][1], off[kernel][0], off[kernel][1],
            'yes' if on[kernel][0] == off[kernel][0] else 'no'))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--processes', type=int, default=2)
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--child', action='store_true')
    ap.add_argument('--code', action='store_true',
                    help='compare the machine code of the two variants instead')
    ap.add_argument('--code-child', action='store_true')
    args = ap.parse_args()
    if args.child:
        return child(args.rounds)
    if args.code_child:
        return code_child()
    if args.code:
        return compare_code()
    runs = {'1': [], '0': []}
    for _ in range(args.processes):
        for flag in ('1', '0'):
            runs[flag].append(_run_child(flag, '--child', '--rounds', str(args.rounds)))
    print('| kernel | size | secret_jit, hardening off | secret_jit, hardening on '
          '| on/off | njit | secret/njit off | secret/njit on | on/off per njit |')
    print('|---|---|---:|---:|---:|---:|---:|---:|---:|')
    for key in runs['1'][0]:
        on = statistics.median(r[key]['secret'] for r in runs['1'])
        off = statistics.median(r[key]['secret'] for r in runs['0'])
        nj = statistics.median([r[key]['njit'] for r in runs['1'] + runs['0']])
        # secret/njit within each process: the load of the moment cancels
        ron = statistics.median(r[key]['secret'] / r[key]['njit'] for r in runs['1'])
        roff = statistics.median(r[key]['secret'] / r[key]['njit'] for r in runs['0'])
        kernel, size = key.split('|')
        print('| %s | %s | %s | %s | %.3f | %s | %.3f | %.3f | %.3f |' % (
            kernel, size, _fmt(off), _fmt(on), on / off, _fmt(nj), roff, ron,
            ron / roff))


def _fmt(seconds):
    from run import _fmt_time
    return _fmt_time(seconds * 1e9)


if __name__ == '__main__':
    main()
