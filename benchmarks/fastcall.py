"""The exact secret call in C, part by part, before and after (issue 15).

Builds ``benchmarks/fastcall.c`` with the secret runtime's C sources of this
checkout and, with ``--before REF``, a second copy with the sources of the
git revision ``REF`` (``git archive``), and runs them alternately
``--runs`` times.  Each run interleaves its cases over 41 rounds of 20000
calls, thread CPU time; printed: the median over all rounds of all runs and
the 10th-90th percentile of the rounds, per call and minus the plain
indirect call of the same runs.  No optional instructions (runs on any
x86-64 or AArch64 machine).

    python benchmarks/fastcall.py [--before main] [--runs 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from secretjit import _csrc  # noqa: E402


def build(tmp, name, csrc):
    cc = shutil.which('gcc') or shutil.which('cc')
    if cc is None:
        raise RuntimeError('no C compiler')
    exe = os.path.join(tmp, name)
    subprocess.run([cc, '-O2', '-std=gnu11', '-I', csrc, '-o', exe,
                    os.path.join(HERE, 'fastcall.c'),
                    *[os.path.join(csrc, n) for n in _csrc.RUNTIME], '-lpthread'],
                   check=True)
    return exe


def sources_of(rev, tmp):
    """The runtime's C sources at git revision ``rev``, unpacked under tmp."""
    out = os.path.join(tmp, 'src-' + rev.replace('/', '_'))
    os.makedirs(out)
    archive = subprocess.run(['git', '-C', ROOT, 'archive', rev, 'secretjit/csrc'],
                             check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', out], input=archive, check=True)
    return os.path.join(out, 'secretjit', 'csrc')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--before', help='git revision to compare with (e.g. main)')
    p.add_argument('--runs', type=int, default=3)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix='secretjit-fastcall-') as tmp:
        exes = {'this checkout': build(tmp, 'after', _csrc.CSRC)}
        if args.before:
            exes = {args.before: build(tmp, 'before', sources_of(args.before, tmp)),
                    **exes}
        samples = {k: {} for k in exes}
        for _ in range(args.runs):
            for k, exe in exes.items():
                out = subprocess.run([exe], capture_output=True, text=True,
                                     check=True, timeout=600).stdout
                for line in out.splitlines():
                    name, *vals = line.split()
                    samples[k].setdefault(name, []).extend(float(v) for v in vals)
    print('| runtime | case | ns per call (p10-p90) | minus the indirect call |')
    print('|---|---|---:|---:|')
    for k, cases in samples.items():
        base = statistics.median(cases['call'])
        for name, v in cases.items():
            v = sorted(v)
            m = statistics.median(v)
            print('| %s | %s | %.2f (%.2f-%.2f) | %+.2f |' % (
                k, name, m, v[len(v) // 10], v[-1 - len(v) // 10], m - base))
    return 0


if __name__ == '__main__':
    sys.exit(main())
