"""Command line: ``python -m secretjit demo``, ``aot`` and ``ctcheck``."""

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
    aot.add_argument('-o', '--outdir', default='.',
                     help='output directory (default: .)')
    aot.add_argument('--export', dest='exports', action='append',
                     metavar='C_NAME', help='build only this export '
                     '(repeatable)')
    _add_ctcheck(sub)
    args = parser.parse_args(argv)
    if args.command == 'ctcheck':
        return _ctcheck(args)
    if args.command == 'aot':
        return _aot(parser, args)
    if args.command == 'demo':
        from . import demo as demo_mod
        return 0 if demo_mod.run(seed=args.seed) else 1
    return 2


def _aot(parser, args):
    from . import aot
    try:
        target = aot.resolve_target(args.target)
    except aot.AotError as exc:
        parser.error(str(exc))          # exit status 2, like argparse
    try:
        lib, header = aot.build(args.module, target=target, outdir=args.outdir,
                                exports=args.exports)
    except (aot.AotError, TypeError, ValueError) as exc:
        print('secretjit aot: error: %s' % exc, file=sys.stderr)
        return 1
    import os
    print('%s (%d bytes, %s)' % (lib, os.path.getsize(lib), target))
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
