"""CPU time per compile stage, for ``SECRETJIT_PROFILE_PASSES=1``.

With the variable set, :func:`timed` regions add their process CPU time to a
per-process table, exclusive of the timed regions nested in them (a kernel's
type inference compiles its callees: their stages count once, under their
own names), and the table is printed to stderr when the process exits::

    SECRETJIT_PROFILE_PASSES=1 python -c 'import app; app.kernel(...)'
    secretjit compile stages (CPU s, exclusive):
      numba lowering              1.912  (55 calls)
      ...

:func:`stage_times` returns the table.  Without the variable a timed region
costs one dictionary lookup.  numba's own stages (bytecode to typed IR,
lowering, -O3, MCJIT code generation) are timed by wrapping numba's methods
while profiling only (:func:`install`).
"""

import atexit
import os
import sys
import time
from contextlib import contextmanager

ENABLED = os.environ.get('SECRETJIT_PROFILE_PASSES') == '1'
_totals = {}            # stage -> [CPU seconds, calls]
_stack = []             # [stage, start, nested seconds]


@contextmanager
def timed(stage):
    """Charge the CPU time of the ``with`` body to ``stage`` when profiling."""
    if not ENABLED:
        yield
        return
    frame = [stage, time.process_time(), 0.0]
    _stack.append(frame)
    try:
        yield
    finally:
        _stack.pop()
        spent = time.process_time() - frame[1]
        entry = _totals.setdefault(stage, [0.0, 0])
        entry[0] += spent - frame[2]
        entry[1] += 1
        if _stack:
            _stack[-1][2] += spent


def stage_times():
    """``{stage: (exclusive CPU seconds, calls)}`` so far in this process."""
    return {k: (v[0], v[1]) for k, v in _totals.items()}


def format_table(times=None):
    """The table :func:`stage_times` holds, slowest stage first."""
    times = stage_times() if times is None else times
    rows = sorted(times.items(), key=lambda kv: -kv[1][0])
    total = sum(t for t, _ in times.values())
    lines = ['secretjit compile stages (CPU s, exclusive; total %.3f):' % total]
    lines += ['  %-34s %7.3f  (%d calls)' % (k, t, n) for k, (t, n) in rows]
    return '\n'.join(lines)


def _wrap(owner, name, stage):
    original = getattr(owner, name)

    def wrapper(*args, **kws):
        with timed(stage):
            return original(*args, **kws)
    wrapper.__wrapped__ = original
    setattr(owner, name, wrapper)


def install():
    """Time numba's stages as well (called once, only when profiling)."""
    if not ENABLED or getattr(install, 'done', False):
        return
    install.done = True
    from numba.core import codegen, typed_passes, untyped_passes
    from numba.core.compiler_machinery import PassManager
    _wrap(PassManager, 'run', 'numba frontend (untyped + typing)')
    _wrap(typed_passes.NativeLowering, 'run_pass', 'numba lowering')
    _wrap(typed_passes.NopythonTypeInference, 'run_pass', 'numba type inference')
    _wrap(untyped_passes.TranslateByteCode, 'run_pass', 'numba bytecode')
    _wrap(codegen.CPUCodeLibrary, '_optimize_final_module', 'numba -O3 (final module)')
    _wrap(codegen.CPUCodeLibrary, '_optimize_functions', 'numba -O3 (per function)')
    _wrap(codegen.JITCodeLibrary, '_finalize_specific', 'MCJIT code generation')
    from . import channels
    _wrap(channels.SecretChannelCheck, 'run_pass', 'secret channel rules')
    _wrap(channels.SecretGlobalCheck, 'run_pass', 'secret channel rules')
    atexit.register(lambda: print(format_table(), file=sys.stderr))
