"""Line tables on demand: compile without them, again with them to name lines.

Secret code is compiled without numba's line tables (debug info), which
doubled the time numba spends lowering a kernel.  The checks that read the
optimized module (the constant-time taint check, the stack bound's unknown
callees) run on that module, which is exactly the code that runs.  Only when
one of them has a finding to report does it need Python lines: it calls
:func:`request`, which raises :class:`NeedLineTables`; the kernel's
dispatcher catches it (:func:`compile_on_demand`) and compiles the kernel's
whole call tree once more with line tables (:func:`forced`), where the
check runs again and reports its findings at their lines.  Helpers already
compiled without line tables are compiled again for that retry into a
second overload table (``SecretDispatcher.overloads`` is
:func:`overloads_of`), never from numba's cache, and never replace the
entries Python calls dispatch to.

``SECRETJIT_LINE_TABLES``: unset, on demand; ``1``, always (also with
``SECRETJIT_CTCHECK=1``, whose line maps need them, and in AOT builds,
whose check runs later); ``0``, never (findings then name no lines).
"""

import collections
import contextlib
import os
import threading

from numba.core.caching import NullCache

_state = threading.local()


class NeedLineTables(Exception):
    """A check found something to report and needs Python lines for it."""


def setting():
    """``'always'``, ``'never'`` or ``'on-demand'`` (``SECRETJIT_LINE_TABLES``)."""
    value = os.environ.get('SECRETJIT_LINE_TABLES', '')
    if value == '0':
        return 'never'
    if value == '1' or os.environ.get('SECRETJIT_CTCHECK') == '1':
        return 'always'
    return 'on-demand'


def forcing():
    """Whether this thread is compiling a call tree again with line tables."""
    return getattr(_state, 'depth', 0) > 0


@contextlib.contextmanager
def forced():
    """Compile with line tables on this thread inside the ``with`` body."""
    _state.depth = getattr(_state, 'depth', 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1


def wanted():
    """Whether code compiled now gets line tables."""
    mode = setting()
    return mode == 'always' or (mode == 'on-demand' and forcing())


def request():
    """Ask for a compile with line tables (raises :class:`NeedLineTables`).

    Returns without raising when the module being checked has them
    already, or can never have them (``SECRETJIT_LINE_TABLES=0``).
    """
    if setting() == 'on-demand' and not forcing():
        raise NeedLineTables()


def overloads_of(disp):
    """The overload table ``disp`` compiles into and looks up on this thread."""
    if forcing():
        return disp.__dict__.setdefault('_line_overloads',
                                        collections.OrderedDict())
    return disp.__dict__['_plain_overloads']


def compile_on_demand(disp, sig, compile):
    """``compile(sig)``; once more with line tables if a check asks for them."""
    if forcing():
        return _compile_uncached(disp, sig, compile)
    try:
        return compile(sig)
    except NeedLineTables:
        pass
    with forced():
        entry = _compile_uncached(disp, sig, compile)
        cres = next(c for c in disp.overloads.values()
                    if c.entry_point is entry)
    # A finding that only warns: the retry's code is the kernel's (the same
    # code, its line tables stripped before code generation).
    disp.add_overload(cres)
    disp._cache.save_overload(sig, cres)
    return cres.entry_point


def _compile_uncached(disp, sig, compile):
    cache, disp._cache = disp._cache, NullCache()
    try:
        return compile(sig)
    finally:
        disp._cache = cache
