"""AOT exports (secretjit.aot): the price of the boundary per call, and --cpu builds.

    python benchmarks/aot.py [--quick] [--json FILE]     (run.py calls collect())

- **Trivial export** (``x + 1``, ``int64(int64)``), called from C in a tight
  loop by ``benchmarks/c/aot_calls.c`` (ctypes would add ~1 µs per call):
  the secret library built for the baseline and with ``--cpu host``, and the
  control, the same export built with the test-only
  ``_build_variants(..., secret=False)`` (no boundary, no register zeroing,
  no secret stack, malloc in place of the arena).  All three are loaded in
  one process and timed in interleaved rounds (thread CPU time around
  1e6 calls), medians.  Target: secret - control <= 5 ns.
- **The parts** of that call, each timed alone in a loop
  (``benchmarks/c/aot_parts.c``, linked with the C runtime): the secret
  stack switch with its scrub and checks (``secretjit_secret_call``), the
  memset of the scrub, LLVM's register-zeroing epilogues, the export's
  ``secretjit_aot_clear_vregs``.
- **A vetted kernel at 1 MiB** (SHA-256, ChaCha20): the library built for the
  baseline, with ``--cpu host``, and the JIT (``secret_jit``), interleaved
  in one child process (ctypes: 1 µs on a 0.5-5 ms call), medians.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CDIR = os.path.join(HERE, 'c')
KERNELS = os.path.join(ROOT, 'examples', 'aot', 'secretjit_kernels.py')
TARGET_NS = 5.0
# Several AOT libraries in one process: each has ~700 bytes of initial-exec
# TLS, more than glibc's default surplus for dlopen leaves for four.
ENV = {'GLIBC_TUNABLES': 'glibc.rtld.optional_static_tls=65536'}
TRIVIAL = '''from secretjit.aot import export


@export("trivial", "int64(int64)")
def trivial(x):
    return x + 1
'''


def _cc(out, sources, extra=()):
    subprocess.run(['cc', '-O2', '-std=gnu11', '-o', out] + list(sources)
                   + list(extra), check=True, capture_output=True)
    return out


def _medians(lines, key_of):
    samples = {}
    for line in lines:
        rnd, rest = line.split(' ', 1)
        if rnd == '-1':
            continue
        name, ns = rest.rsplit(' ', 1)
        samples.setdefault(key_of(name), []).append(float(ns))
    return {k: (statistics.median(v), min(v), max(v)) for k, v in samples.items()}


def _run(argv):
    env = dict(os.environ)
    env.update(ENV)
    return subprocess.run(argv, check=True, capture_output=True, text=True,
                          env=env).stdout.splitlines()


def trivial_rows(tmp, rounds, calls):
    from secretjit import aot
    src = os.path.join(tmp, 'trivial.py')
    with open(src, 'w') as f:
        f.write(TRIVIAL)
    names = ['control', 'secret (baseline)', 'secret (--cpu host)']
    variants = [dict(target=None, outdir=os.path.join(tmp, 'control'), secret=False),
                dict(target=None, outdir=os.path.join(tmp, 'baseline')),
                dict(target=None, outdir=os.path.join(tmp, 'host'), cpu='host')]
    infos = aot._build_variants(src, variants)
    drv = _cc(os.path.join(tmp, 'aot_calls'), [os.path.join(CDIR, 'aot_calls.c')],
              ['-ldl'])
    out = _run([drv, str(rounds), str(calls), 'trivial', 'i64']
               + [i['library'] for i in infos])
    med = _medians(out, lambda k: names[int(k)])
    control = med['control'][0]
    rows = []
    for name, info in zip(names, infos):
        m, lo, hi = med[name]
        rows.append({'case': 'trivial export, ' + name, 'ns': m, 'min_ns': lo,
                     'max_ns': hi, 'delta_ns': m - control,
                     'rounds': rounds, 'calls': calls,
                     'boundary': _boundary_facts(info['library'])})
    return rows


def _boundary_facts(path):
    """What the library's boundary does, from objdump (for the JSON: an
    outlier row can then be told from a different build): the functions it
    calls and how many zeroing instructions of each kind it has.  Read with
    the stack analysis's objdump reader (secretjit.stack_bound.native)."""
    import re
    from secretjit.stack_bound import native
    dump = native._objdump(path)
    if dump is None:
        return None
    bodies = [body for name, body in native._functions(dump).items()
              if name.startswith('__secretjit.boundary.')]
    if not bodies:
        return {}
    insns = [text for _, text in bodies[0]]
    mnems = [text.split()[0] for text in insns]
    calls = sorted({m.group(1) for text in insns if text.startswith('call')
                    for m in [re.search(r'<([^>+]+)', text)] if m})
    kinds = {k: mnems.count(k)
             for k in ('xorps', 'vxorps', 'vpxord', 'kxorw', 'fldz', 'vzeroupper')}
    return {'calls': [c if c.startswith('secretjit') else 'kernel' for c in calls],
            'zeroing': {k: n for k, n in kinds.items() if n},
            'instructions': len(insns)}


def part_rows(tmp, rounds, calls):
    import platform
    if platform.machine() != 'x86_64':
        return []
    from secretjit import _csrc
    exe = _cc(os.path.join(tmp, 'aot_parts'),
              [os.path.join(CDIR, 'aot_parts.c')] + _csrc.paths()
              + _csrc.paths(_csrc.AOT_ONLY),
              ['-fvisibility=hidden', '-I', _csrc.CSRC, '-lm', '-lpthread'])
    med = _medians(_run([exe, str(rounds), str(calls)]), str)
    loop = med.pop('loop')[0]
    return [{'part': k, 'ns': m - loop, 'min_ns': lo - loop, 'max_ns': hi - loop}
            for k, (m, lo, hi) in med.items()]


def kernel_rows(tmp, rounds, quick):
    """SHA-256 and ChaCha20 at 1 MiB: AOT baseline, AOT --cpu host, JIT."""
    from secretjit import aot
    only = ['secretjit_sha256', 'secretjit_chacha20_xor']
    libs = {}
    waits = {}
    for name, cpu in (('baseline', None), ('host', 'host')):
        waits[name] = aot._build_variants(KERNELS, [dict(
            target=None, outdir=os.path.join(tmp, 'k-' + name), cpu=cpu)],
            exports=only, wait=False)
    for name, finish in waits.items():
        libs[name] = finish()[0]['library']
    out = _run([sys.executable, os.path.abspath(__file__), '--kernels-child',
                json.dumps(dict(libs=libs, rounds=rounds,
                                size=(1 << 16) if quick else (1 << 20)))])
    return json.loads(out[-1])


def _kernels_child(req):
    """In a fresh process: interleaved ctypes calls of both libraries and the JIT."""
    import ctypes
    import time
    import numpy as np
    sys.path.insert(0, HERE)
    from _timing import interleaved
    from secretjit.kernels import chacha20, sha256
    n = req['size']
    data = np.frombuffer(os.urandom(n), np.uint8).copy()
    dst = np.empty(n, np.uint8)
    out = np.empty(32, np.uint8)
    key = np.arange(32, dtype=np.uint8)
    nonce = np.arange(12, dtype=np.uint8)
    P, L = ctypes.c_void_p, ctypes.c_int64
    fns = {}
    for name, path in req['libs'].items():
        lib = ctypes.CDLL(path)
        sha = lib.secretjit_sha256
        sha.argtypes = [P, L, P, L]
        cc = lib.secretjit_chacha20_xor
        cc.argtypes = [P, L, P, L, ctypes.c_uint32, P, L, P, L]
        fns['sha256', 'aot ' + name] = (lambda f=sha: f(
            data.ctypes.data, n, out.ctypes.data, 32))
        fns['chacha20', 'aot ' + name] = (lambda f=cc: f(
            key.ctypes.data, 32, nonce.ctypes.data, 12, 0, data.ctypes.data, n,
            dst.ctypes.data, n))
    fns['sha256', 'jit'] = lambda: sha256.sha256_into(data, out)
    fns['chacha20', 'jit'] = lambda: chacha20.chacha20_xor(key, nonce, 0, data, dst)
    for f in fns.values():                  # compile the JIT, check statuses
        assert f() in (None, 0)
    rows = []
    for kernel in ('sha256', 'chacha20'):
        mine = {k[1]: f for k, f in fns.items() if k[0] == kernel}
        med, batch = interleaved(mine, req['rounds'], timer=time.thread_time,
                                 autorange=False)
        for build, s in med.items():
            rows.append({'kernel': kernel, 'build': build, 'bytes': n,
                         'ms': s * 1e3, 'MBps': n / s / 1e6,
                         'vs_jit': s / med['jit'], 'rounds': req['rounds']})
    print(json.dumps(rows))


def collect(quick=False):
    """The rows; ``quick``: few rounds and no kernel builds (a minute each)."""
    rounds, calls = (3, 100000) if quick else (21, 1000000)
    with tempfile.TemporaryDirectory(prefix='secretjit-bench-aot-') as tmp:
        data = {'trivial': trivial_rows(tmp, rounds, calls),
                'parts': part_rows(tmp, rounds, calls),
                'kernels': [] if quick else kernel_rows(tmp, 11, quick)}
    return data


def check_targets(data):
    """(what, measured, met) for run.py's target table."""
    out = []
    for r in data['trivial']:
        if r['case'].startswith('trivial export, secret'):
            out.append(('AOT trivial export, %s: secret - control <= %.0f ns' % (
                r['case'][len('trivial export, secret '):].strip('()'), TARGET_NS),
                '%+.1f ns' % r['delta_ns'], r['delta_ns'] <= TARGET_NS))
    return out


def markdown(data, command='python benchmarks/aot.py'):
    lines = ['## AOT exports (issue 15)', '',
             '`%s`. Trivial export `x + 1` called from C (benchmarks/c/aot_calls.c), '
             'the three libraries interleaved in one process, thread CPU time, '
             'medians (min-max) of %d rounds of %d calls; control = the same export '
             'built with `_build_variants(..., secret=False)`.' % (
                 command, data['trivial'][0]['rounds'], data['trivial'][0]['calls']),
             '', '| library | ns per call | secret - control |', '|---|---:|---:|']
    for r in data['trivial']:
        lines.append('| %s | %.2f (%.2f-%.2f) | %+.2f ns |' % (
            r['case'], r['ns'], r['min_ns'], r['max_ns'], r['delta_ns']))
    if data['parts']:
        lines += ['', 'The parts, each alone in a loop (benchmarks/c/aot_parts.c, '
                  'the loop subtracted):', '', '| part | ns |', '|---|---:|']
        for r in data['parts']:
            lines.append('| %s | %.2f (%.2f-%.2f) |' % (
                r['part'], r['ns'], r['min_ns'], r['max_ns']))
    if data['kernels']:
        k = data['kernels'][0]
        lines += ['', 'Vetted kernels at %d KiB, interleaved in one process '
                  '(ctypes for the libraries), thread CPU time, medians of %d rounds:'
                  % (k['bytes'] // 1024, k['rounds']), '',
                  '| kernel | build | time | MB/s | time / JIT |', '|---|---|---:|---:|---:|']
        for r in data['kernels']:
            lines.append('| %s | %s | %.3f ms | %.0f | %.2f |' % (
                r['kernel'], r['build'], r['ms'], r['MBps'], r['vs_jit']))
    return '\n'.join(lines) + '\n'


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--kernels-child']:
        return _kernels_child(json.loads(argv[1]))
    sys.path.insert(0, HERE)
    from _timing import main as timing_main
    return timing_main(argv, __doc__.splitlines()[0], collect, markdown,
                       'few rounds, no kernel builds (under a minute)')


if __name__ == '__main__':
    sys.exit(main())
