"""``python -m secretjit verify MODULE.py[:KERNEL]``: assert_erased over a module's kernels.

Every ``@secret_jit`` kernel of the module that has sample arguments
(:func:`secretjit.testing.sample_args` or a ``__secretjit_samples__`` dict)
is checked with :func:`secretjit.testing.check_erased`, once per sample; the
result is a table like the demo's and an exit status (0: every kernel
passed; 1: a kernel left secret words, or no detector could see its secret;
2: bad command line or module).
"""

import importlib.util
import os
import sys
import time

from .. import SecretDispatcher
from .erasure import check_erased
from .samples import samples_of


class VerifyError(Exception):
    """The module or kernel named on the command line cannot be checked."""


def load_module(path):
    """Import the Python file ``path`` as a module (its folder first on sys.path)."""
    if not os.path.isfile(path):
        raise VerifyError("%s: no such file" % path)
    name = '_secretjit_verify_' + os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise VerifyError("%s is not a Python module" % path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def kernels_of(module, only=None):
    """``[(name, dispatcher, samples)]`` of the secret kernels ``module`` defines."""
    found = [(n, v) for n, v in vars(module).items()
             if isinstance(v, SecretDispatcher)]
    if only is not None:
        found = [(n, v) for n, v in found if n == only]
        if not found:
            raise VerifyError("%s has no @secret_jit kernel named %r (kernels: %s)"
                              % (module.__file__, only, ', '.join(
                                  n for n, v in vars(module).items()
                                  if isinstance(v, SecretDispatcher)) or 'none'))
    return [(n, v, samples_of(v, module)) for n, v in found]


def run(target, out=print, progress=None):
    """Check ``MODULE.py[:KERNEL]``; print the table; return the exit status."""
    if progress is None:
        def progress(msg):
            print(msg, file=sys.stderr, flush=True)
    path, _, only = target.partition(':')
    try:
        progress('verify: importing %s' % path)
        module = load_module(path)
        kernels = kernels_of(module, only or None)
    except VerifyError as exc:
        print('secretjit verify: error: %s' % exc, file=sys.stderr)
        return 2
    if not kernels:
        print('secretjit verify: error: %s defines no @secret_jit kernel' % path,
              file=sys.stderr)
        return 2
    rows, status, checked = [], 0, 0
    for name, kernel, samples in kernels:
        if not samples:
            rows.append((name, '-', '-', '-', '-', 'no sample arguments: declare '
                         'them with secretjit.testing.sample_args(%s, ...)' % name))
            if only:
                status = 1
            continue
        for i, args in enumerate(samples, 1):
            t0 = time.perf_counter()
            progress('verify: %s sample %d: compiling (njit control and '
                     'secret_jit), then running the detectors' % (name, i))
            report = check_erased(kernel, *args, name=name)
            progress('verify: %s sample %d: done in %.1f s' % (
                name, i, time.perf_counter() - t0))
            checked += 1
            leaks = report.leaks()
            for m in report.mechanisms:
                c, s = report.control[m], report.secret[m]
                if not c.available:
                    rows.append((name, i, m, '-', '-', c.note))
                    continue
                verdict = ('LEAK: ' + ', '.join(s.where[:3])) if m in leaks else \
                    ('ok' if c.count else 'blind (control saw nothing)')
                rows.append((name, i, m, c.count, s.count, verdict))
            if not report.passed:
                status = 1
                if not report.visible():
                    rows.append((name, i, '', '', '', "FAIL: the detectors cannot "
                                 "see this kernel's secret: choose sample "
                                 "arguments that make it"))
    out('%-22s %6s %-10s %7s %12s  %s' % ('kernel', 'sample', 'mechanism', '@njit',
                                          '@secret_jit', 'verdict'))
    for row in rows:
        out('%-22s %6s %-10s %7s %12s  %s' % row)
    if checked == 0:
        out('no kernel had sample arguments: nothing was checked')
        return 1
    out('verify: %s (%d kernel samples checked)' % (
        'every kernel erased its secrets' if status == 0 else 'FAILED', checked))
    return status
