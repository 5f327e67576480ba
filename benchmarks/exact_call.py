"""The trivial call with and without the exact secret call (issue 15).

``x + 1`` under ``numba.njit``, under ``secret_jit`` as built (its tree has
no allowance, so its boundary calls ``secretjit_secret_call_exact``), and
under ``secret_jit`` with the plain entry forced (``passes.exact_kernels``
returning nothing: the 1 KiB frame-window check runs), interleaved in one
process (``_timing.interleaved``: autorange batches, thread CPU time,
medians).  Repeated ``--repeat`` times to show the spread.

``--runtime REV``: instead of the plain entry, the exact-entry kernel once
against this checkout's C runtime and once against git revision ``REV``'s
(both built here with setup.py's compiler flags and loaded with ctypes; the
second kernel is linked after ``llvm.add_symbol`` points
``secretjit_secret_call_exact`` at the other copy), interleaved in the same
process: a before/after of the runtime's exact entry under the JIT.

    python benchmarks/exact_call.py [--rounds 15] [--repeat 3] [--runtime main]
"""

import argparse
import os
import sys
import time

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


def build_runtime(tmp, name, csrc):
    """The C runtime of ``csrc`` as a shared library, built as setup.py does."""
    import shlex
    import subprocess
    import sysconfig
    from secretjit import _csrc
    cc = sysconfig.get_config_var('CC') or 'cc'
    out = os.path.join(tmp, name + '.so')
    subprocess.run([*shlex.split(cc), *shlex.split(sysconfig.get_config_var('CFLAGS') or ''),
                    '-fPIC', '-O2', '-fvisibility=hidden', '-std=gnu11', '-Wall',
                    '-shared', '-I', csrc, '-o', out,
                    *[os.path.join(csrc, n) for n in _csrc.RUNTIME], '-lpthread'],
                   check=True)
    return out


def runtime_kernels(rev, tmp):
    """njit and the exact-entry kernel linked against ``rev``'s and this
    checkout's copy of the runtime's exact entry."""
    import ctypes
    import subprocess
    import llvmlite.binding as llvm
    from secretjit import _csrc, secret_jit
    root = os.path.dirname(HERE)
    src = os.path.join(tmp, 'src')
    os.makedirs(src)
    archive = subprocess.run(['git', '-C', root, 'archive', rev, 'secretjit/csrc'],
                             check=True, capture_output=True).stdout
    subprocess.run(['tar', '-x', '-C', src], input=archive, check=True)
    libs = {rev: build_runtime(tmp, 'before', os.path.join(src, 'secretjit', 'csrc')),
            'this checkout': build_runtime(tmp, 'after', _csrc.CSRC)}
    fns = {'njit': njit(trivial)}
    secret_jit(lambda x: x - 1)(1)   # the codegen's runtime symbols, registered first
    for name, path in libs.items():
        lib = ctypes.CDLL(path)
        llvm.add_symbol('secretjit_secret_call_exact', ctypes.cast(
            lib.secretjit_secret_call_exact, ctypes.c_void_p).value)
        k = secret_jit(trivial)
        k(1)
        lo, hi = ctypes.c_size_t(), ctypes.c_size_t()
        if not lib.secretjit_stack_range(ctypes.byref(lo), ctypes.byref(hi)):
            raise RuntimeError('the kernel did not call the %s runtime' % name)
        fns['exact entry, %s runtime' % name] = k
        fns['_lib ' + name] = lib        # kept loaded
    return fns


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--runtime', metavar='REV',
                   help="compare the exact entry of git revision REV's C runtime")
    args = p.parse_args(argv)
    if args.runtime:
        import tempfile
        if 'optional_static_tls' not in os.environ.get('GLIBC_TUNABLES', ''):
            # Two more copies of the runtime's initial-exec TLS than glibc's
            # default surplus for dlopen holds: restart with a larger one.
            env = dict(os.environ, GLIBC_TUNABLES='glibc.rtld.optional_static_tls=65536')
            os.execve(sys.executable, [sys.executable, os.path.abspath(__file__)]
                      + list(argv if argv is not None else sys.argv[1:]), env)
        with tempfile.TemporaryDirectory(prefix='secretjit-exact-call-') as tmp:
            fns = runtime_kernels(args.runtime, tmp)
            fns = {k: f for k, f in fns.items() if not k.startswith('_lib')}
            return table(fns, args, ('%s/njit' % args.runtime.join('()'), 'now/njit'))
    fns = kernels()
    return table(fns, args, ('plain/njit', 'exact/njit'))


def table(fns, args, ratios):
    for f in fns.values():
        f(1)
    print('| run | ' + ' | '.join(fns) + ' | %s | %s |' % ratios)
    print('|---' * (len(fns) + 3) + '|')
    for r in range(args.repeat):
        med, _ = interleaved({k: (lambda f=f: f(1)) for k, f in fns.items()}, args.rounds,
                             timer=time.thread_time)
        ns = [med[k] * 1e9 for k in fns]
        print('| %d | %s | %.3f | %.3f |' % (
            r + 1, ' | '.join('%.1f ns' % v for v in ns), ns[1] / ns[0], ns[2] / ns[0]))
    return 0


if __name__ == '__main__':
    sys.exit(main())
