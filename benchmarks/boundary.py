"""The per-call boundary part by part (issue 15): stack switch, scrub, registers.

Builds ``benchmarks/boundary.c`` with the secret runtime's C sources and runs
it: each part of a secret call's boundary in a loop of its own, interleaved
over 41 rounds, thread CPU time, medians (the spread is the rounds' 10th-90th
percentile).  x86-64 only (the register sequences are x86-64 assembly).
``hardened.py`` (so ``run.py``) prints the table after its own.

    python benchmarks/boundary.py            # Markdown table on stdout
"""

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

ROWS = [
    ('call', 'indirect call of an empty function (baseline)'),
    ('secret_call/160', 'secretjit_secret_call, scrub 160 B (the trivial kernel)'),
    ('secret_call_exact/160', 'secretjit_secret_call_exact, scrub 160 B (no frame window)'),
    ('secret_call/1024', 'secretjit_secret_call, scrub 1024 B (64-byte temporary: its whole bound 1008 B)'),
    ('secret_call_exact/1024', 'secretjit_secret_call_exact, scrub 1024 B (the 64-byte temporary before hot depths: 192 B now)'),
    ('secret_call/1648', 'secretjit_secret_call, scrub 1648 B (64-byte temporary before scrub2)'),
    ('secret_call/2640', 'secretjit_secret_call, scrub 2640 B (64-byte temporary before scrubdepth)'),
    ('memset/160', 'the scrub alone (libc memset), 160 B'),
    ('memset/1024', 'the scrub alone, 1024 B'),
    ('memset/1648', 'the scrub alone, 1648 B'),
    ('memset/2640', 'the scrub alone, 2640 B'),
    ('window', 'the 1 KiB below-depth check alone'),
    ('tls', 'initial-exec TLS load (the secret stack lookup)'),
    ('regs/llvm-all', 'register epilogue as LLVM emits it ("all", AVX-512)'),
    ('regs/once', 'the same registers, each zeroed once'),
    ('regs/no-x87', 'once, without the x87 stack'),
    ('regs/x87', 'the x87 part alone (8 fldz + 8 fstp)'),
    ('xgetbv1', 'xgetbv(1), reading XINUSE'),
]


def _build(tmp):
    from secretjit import _csrc
    cc = shutil.which('gcc') or shutil.which('cc')
    if cc is None:
        raise RuntimeError('no C compiler')
    exe = os.path.join(tmp, 'boundary')
    subprocess.run([cc, '-O2', '-std=gnu11', '-I', _csrc.CSRC, '-o', exe,
                    os.path.join(HERE, 'boundary.c'), *_csrc.paths(), '-lpthread'],
                   check=True)
    return exe


def collect(quick=False):
    """{part: (median ns, p10, p90)} or None where the parts cannot be timed."""
    if platform.machine() not in ('x86_64', 'AMD64'):
        return None
    with tempfile.TemporaryDirectory(prefix='secretjit-boundary-') as tmp:
        exe = _build(tmp)
        out = subprocess.run([exe], capture_output=True, text=True, check=True,
                             timeout=600).stdout
    parts = {}
    for line in out.splitlines():
        name, *vals = line.split()
        if name == 'cpu':                  # 'avx512' or 'avx2': which register rows
            parts['cpu'] = vals[0]
            continue
        v = sorted(float(x) for x in vals)
        parts[name] = (statistics.median(v), v[len(v) // 10], v[-1 - len(v) // 10])
    return parts


def markdown(parts):
    if not parts:
        return ''
    avx2 = parts.get('cpu') == 'avx2'
    lines = ['### The boundary part by part (benchmarks/boundary.py)', '',
             '`benchmarks/boundary.c` with the runtime\'s sources, each part in a loop '
             'of its own, interleaved, 41 rounds of 20000 calls, thread CPU time; '
             'median (10th-90th percentile of the rounds).%s' % (
                 ' This CPU has no AVX-512: the register rows zero xmm0-15 (no '
                 'zmm16-31, k0-7), the window check uses 32-byte vectors.' if avx2 else ''),
             '', '| part | ns per call |', '|---|---:|']
    for name, what in ROWS:
        if avx2:
            what = what.replace(', AVX-512', ', AVX2')
        if name in parts:
            med, lo, hi = parts[name]
            lines.append('| %s | %.2f (%.2f-%.2f) |' % (what, med, lo, hi))
    return '\n'.join(lines)


def main():
    parts = collect()
    if parts is None:
        print('x86-64 only', file=sys.stderr)
        return 1
    print(markdown(parts))
    return 0


if __name__ == '__main__':
    sys.exit(main())
