"""Run numba's own test modules with ``njit`` replaced by ``secret_jit``.

A drop-in check, not a CI test (it takes many minutes): each module of
numba's installed test suite (``numba/tests/``) runs in a child process,
once with plain numba and once with ``njit`` replaced by
``secretjit.secret_jit``, and the pass counts are printed side by side.
``numba.njit`` is replaced while the module is imported (its module-level
``@njit`` functions become secret kernels); then, with ``--scope module``
(the default), numba's own ``njit`` comes back and only the test module's
global name ``njit`` stays replaced, so numba's internals that import
``njit`` lazily (``numba.misc.mergesort``, ``timsort``...) keep compiling
plain helpers; ``--scope global`` leaves ``numba.njit`` replaced for the
whole run (then plain ``jit(nopython=True)`` tests reach secret helpers
made by numba's internals and fail with ``no-secret-from-plain``)::

    python tools/numba_dropin.py                       # the default modules
    python tools/numba_dropin.py test_sort -v          # one module, failures listed
    python tools/numba_dropin.py --secret-only test_tuples

A test passes when it runs without failure or error; skipped tests are
counted separately (never as passes), expected failures count as passes.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
import unittest

# module -> substring filter on test ids (None: the whole module)
DEFAULT_MODULES = {
    'test_sort': None,
    'test_tuples': None,
    'test_closure': None,
    'test_exceptions': None,
    'test_array_manipulation': None,
    'test_record_dtype': None,
    'test_array_reductions': None,
    'test_builtins': ('min', 'max'),
}


def _selected(suite, words):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _selected(test, words)
        elif words is None or any(w in test.id().split('.')[-1] for w in words):
            yield test


_EXC_LINE = re.compile(r'^(?:\w+\.)*\w*(?:Error|Exception|Failure)\b.*')


def _first_line(err):
    """The exception line of a traceback (numba's messages span lines)."""
    lines = [ln.strip() for ln in err.strip().splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if _EXC_LINE.match(ln):
            return ' '.join(lines[i:i + 3])[:300]
    return lines[-1][:300] if lines else ''


def child(module, secret, words, scope='module'):
    """Run one numba test module in this process; print a JSON summary."""
    import numba
    import numba.core.decorators
    plain_njit = numba.njit
    if secret:
        from secretjit import secret_jit
        numba.njit = numba.core.decorators.njit = secret_jit
    mod = __import__('numba.tests.' + module, fromlist=['_'])
    if secret and scope == 'module':
        numba.njit = numba.core.decorators.njit = plain_njit
        mod.njit = secret_jit
    suite = unittest.defaultTestLoader.loadTestsFromModule(mod)
    tests = list(_selected(suite, words))
    result = unittest.TestResult()
    start = time.time()
    unittest.TestSuite(tests).run(result)
    bad = [(t.id(), _first_line(e)) for t, e in result.failures + result.errors]
    print('@@RESULT@@' + json.dumps({
        'module': module, 'secret': secret, 'scope': scope,
        'run': result.testsRun,
        'skipped': len(result.skipped), 'bad': bad,
        'passed': result.testsRun - len(bad) - len(result.skipped)
        - len(result.unexpectedSuccesses),
        'seconds': round(time.time() - start, 1)}))


def run_child(module, secret, words, timeout, scope='module'):
    cmd = [sys.executable, os.path.abspath(__file__), '--child', module,
           '--scope', scope]
    if secret:
        cmd.append('--secret')
    if words:
        cmd += ['--words', ','.join(words)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return {'module': module, 'secret': secret, 'error': 'timeout'}
    for line in proc.stdout.splitlines():
        if line.startswith('@@RESULT@@'):
            return json.loads(line[len('@@RESULT@@'):])
    return {'module': module, 'secret': secret,
            'error': 'child exited %d: %s' % (proc.returncode,
                                              _first_line(proc.stderr))}


def _cell(r):
    if r is None:
        return '-'
    if 'error' in r:
        return r['error']
    text = '%d/%d' % (r['passed'], r['run'])
    if r['skipped']:
        text += ' (%d skipped)' % r['skipped']
    return text


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('modules', nargs='*', help='numba test modules '
                    '(default: %s)' % ', '.join(DEFAULT_MODULES))
    ap.add_argument('--secret-only', action='store_true',
                    help='skip the plain numba run')
    ap.add_argument('-v', '--verbose', action='store_true',
                    help='list every failing test of the secret run')
    ap.add_argument('--scope', choices=('module', 'global'), default='module',
                    help='where njit is replaced (default: the test module)')
    ap.add_argument('--timeout', type=float, default=3600)
    ap.add_argument('--json', help='write the results to this file')
    ap.add_argument('--child', help=argparse.SUPPRESS)
    ap.add_argument('--secret', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--words', help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        try:
            child(args.child, args.secret,
                  args.words.split(',') if args.words else None, args.scope)
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    modules = args.modules or list(DEFAULT_MODULES)
    rows, results = [], []
    for module in modules:
        words = DEFAULT_MODULES.get(module)
        plain = (None if args.secret_only
                 else run_child(module, False, words, args.timeout))
        secret = run_child(module, True, words, args.timeout, args.scope)
        results += [r for r in (plain, secret) if r]
        rows.append((module + (' (%s)' % '/'.join(words) if words else ''),
                     _cell(plain), _cell(secret)))
        print('%-36s plain %-18s secret_jit %s' % rows[-1], flush=True)
        if args.verbose and secret and secret.get('bad'):
            for test_id, why in secret['bad']:
                print('    FAIL %s: %s' % (test_id.split('.', 2)[-1], why))
    total = [sum(r.get('passed', 0) for r in results if r['secret'] == s)
             for s in (False, True)]
    runs = [sum(r.get('run', 0) for r in results if r['secret'] == s)
            for s in (False, True)]
    print('%-36s plain %-18s secret_jit %s' % (
        'total', '-' if args.secret_only else '%d/%d' % (total[0], runs[0]),
        '%d/%d' % (total[1], runs[1])))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
