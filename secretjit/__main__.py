"""Command line: ``python -m secretjit demo``."""

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
    args = parser.parse_args(argv)
    if args.command == 'demo':
        from . import demo as demo_mod
        return 0 if demo_mod.run(seed=args.seed) else 1
    return 2


if __name__ == '__main__':
    sys.exit(main())
