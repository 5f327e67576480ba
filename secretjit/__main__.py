"""Command line: ``python -m secretjit demo``, ``aot``, ``verify``, ``audit``, ``ctcheck`` and ``warm``."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m secretjit',
        description='secretjit: numba kernels whose secrets do not outlive the call')
    sub = parser.add_subparsers(dest='command', required=True)
    demo = sub.add_parser('demo', help='compile one kernel with @njit and '
                          '@secret_jit and show what each leaves behind')
    demo.add_argument('--seed', type=lambda s: int(s, 0),
                      default=0x5EC2E7D00DF00D42,
                      help='secret seed the kernel derives its key from')
    aot = sub.add_parser(
        'aot', help='compile the exports of a module ahead of time into '
        'OUTDIR/lib<stem>.so and OUTDIR/<stem>.h (C ABI, erasure included)',
        description='Build every @secretjit.aot.export of MODULE into a C '
        'shared library and its header.')
    aot.add_argument('module', metavar='MODULE.py',
                     help='Python file declaring exports with '
                     '@secretjit.aot.export(c_name, signature)')
    aot.add_argument('--target', default=None,
                     help='x86_64-linux-gnu or aarch64-linux-gnu (default: '
                     'the host)')
    aot.add_argument('--cpu', default=None, metavar='NAME',
                     help='CPU features the code may use: host, x86-64-v2, '
                     'x86-64-v3, x86-64-v4, optionally +FEATURE words '
                     '(default: the baseline; see secretjit.aot.cpu)')
    aot.add_argument('-o', '--outdir', default='.',
                     help='output directory (default: .)')
    aot.add_argument('--export', dest='exports', action='append',
                     metavar='C_NAME', help='build only this export '
                     '(repeatable)')
    _add_verify(sub)
    _add_audit(sub)
    _add_ctcheck(sub)
    _add_warm(sub)
    args = parser.parse_args(argv)
    if args.command == 'warm':
        return _warm(parser, args)
    if args.command == 'verify':
        return _verify(args)
    if args.command == 'audit':
        return _audit(args)
    if args.command == 'ctcheck':
        return _ctcheck(args)
    if args.command == 'aot':
        return _aot(parser, args)
    if args.command == 'demo':
        from . import demo as demo_mod
        return 0 if demo_mod.run(seed=args.seed) else 1
    return 2


def _add_warm(sub):
    warm = sub.add_parser('warm', help="compile the vetted kernels into "
                          "numba's cache once after installing, so that their "
                          'first call in a process loads instead of compiling')
    warm.add_argument('names', nargs='*', metavar='NAME',
                      help='only these functions, e.g. aead.seal (default: all)')


def _warm(parser, args):
    from . import warm
    try:
        return warm.run(args.names or None)
    except ValueError as exc:
        parser.error(str(exc))


def _add_verify(sub):
    verify = sub.add_parser(
        'verify', help='run assert_erased on every secret kernel of a module '
        'that declares sample arguments; exit status 0/1',
        description='For each @secret_jit kernel of MODULE with sample arguments '
        '(secretjit.testing.sample_args or __secretjit_samples__), run it under '
        'plain numba and secret_jit with the stack, register and heap detectors.')
    verify.add_argument('target', metavar='MODULE.py[:KERNEL]')


def _verify(args):
    from .testing import verify
    return verify.run(args.target)


def _add_audit(sub):
    audit = sub.add_parser(
        'audit', help='check the machine code of secret kernels (a JIT module '
        'or an AOT .so): register zeroing, scrub depth, external calls',
        description='Disassemble the object code of every secret kernel of '
        'MODULE.py (JIT) or of an AOT library LIB.so (x86-64 or AArch64) '
        'and check it without trusting the passes.')
    audit.add_argument('target', metavar='MODULE.py[:KERNEL]|LIB.so')
    audit.add_argument('--json', metavar='FILE', help='write the JSON report '
                       'to FILE (- for stdout)')


def _audit(args):
    from . import audit
    return audit.main(args.target, json_path=args.json)


def _aot(parser, args):
    from . import aot
    try:
        target = aot.resolve_target(args.target)
        from .aot.cpu import resolve_cpu
        cpu = resolve_cpu(aot.TARGETS[target][0], args.cpu)
    except aot.AotError as exc:
        parser.error(str(exc))          # exit status 2, like argparse
    try:
        lib, header = aot.build(args.module, target=target, outdir=args.outdir,
                                exports=args.exports, cpu=args.cpu)
    except (aot.AotError, TypeError, ValueError) as exc:
        print('secretjit aot: error: %s' % exc, file=sys.stderr)
        return 1
    import os
    print('%s (%d bytes, %s, CPU %s)' % (lib, os.path.getsize(lib), target,
                                          cpu.describe()))
    print(header)
    return 0


def _add_ctcheck(sub):
    ct = sub.add_parser(
        'ctcheck', help="run a module's secret kernels under valgrind memcheck "
        'with their secret arguments undefined (ctgrind) and report secret '
        'branches and memory indices in them',
        description='Run the (kernel, args) cases that MODULE.ctcheck_cases() '
        'returns under valgrind memcheck, the contents of the kernels\' '
        'secret= arguments marked undefined; print each finding inside the '
        'kernels as file:line. Exit status 1 when there are findings.')
    ct.add_argument('module', metavar='MODULE.py',
                    help='Python file defining ctcheck_cases()')
    ct.add_argument('--keep', action='store_true',
                    help='keep the work directory (memcheck XML, line maps)')


def _ctcheck(args):
    from . import ctcheck
    try:
        findings = ctcheck.check(args.module, verbose=args.keep)
    except ctcheck.CtcheckError as exc:
        print('secretjit ctcheck: error: %s' % exc, file=sys.stderr)
        return 2
    for f in findings:
        print(ctcheck.format_finding(f))
    print('secretjit ctcheck: %d finding%s in secret code'
          % (len(findings), '' if len(findings) == 1 else 's'))
    return 1 if findings else 0


if __name__ == '__main__':
    sys.exit(main())
