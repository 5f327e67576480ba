"""numba's def-line lookup for debug info, with one parse per source file.

With debug info on (the secret target turns it on for the constant-time
check's line tables), numba's lowering asks
``numba.misc.firstlinefinder.get_func_body_first_lineno`` for the first body
line of every function it compiles.  That reads and ``ast.parse``s the
function's whole source file each time (a fresh secret compile of
``sha256_into`` took 1.70 s of CPU with it, 1.22 s with this module; see
benchmarks/RESULTS.md, "Compile time").  This is
the same lookup from an index of every ``def`` in the file, built once per
(file, mtime, size), so an edited file is indexed again; anything it cannot
read falls back to numba's.
The answer is the same (the tests compare it with numba's for every function
of the vetted kernels).
"""

import ast
import os
import textwrap

from numba.core import lowering
from numba.misc import firstlinefinder

_numba_lookup = firstlinefinder.get_func_body_first_lineno
_indexes = {}


class _DefIndex(ast.NodeVisitor):
    """Every ``def`` of a file: ``(name, start line) -> first body line``.

    ``start line`` is the ``def`` line and the first decorator's line (what
    ``co_firstlineno`` can be); the first body line skips a docstring, as
    numba's ``FindDefFirstLine`` does.  A function whose body is only a
    docstring maps to None (numba's lookup is asked instead).
    """

    def __init__(self):
        self.lines = {}

    def visit_FunctionDef(self, node):
        first = node.body[0] if node.body else None
        if first is not None and firstlinefinder._is_docstring(first):
            first = node.body[1] if len(node.body) > 1 else None
        starts = {node.lineno}
        if node.decorator_list:
            starts.add(node.decorator_list[0].lineno)
        for start in starts:
            self.lines[(node.name, start)] = None if first is None else first.lineno
        self.generic_visit(node)


def _index(filename):
    st = os.stat(filename)
    key = (filename, st.st_mtime_ns, st.st_size)
    index = _indexes.get(key)
    if index is None:
        with open(filename) as f:
            tree = ast.parse(textwrap.dedent(f.read()))
        visitor = _DefIndex()
        visitor.visit(tree)
        index = _indexes[key] = visitor.lines
    return index


def get_func_body_first_lineno(pyfunc):
    """numba's ``get_func_body_first_lineno``, from a per-file index of its defs."""
    co = getattr(pyfunc, '__code__', None)
    if co is None:
        return _numba_lookup(pyfunc)
    try:
        index = _index(co.co_filename)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return _numba_lookup(pyfunc)
    key = (co.co_name, co.co_firstlineno)
    if key not in index:
        return None
    line = index[key]
    return _numba_lookup(pyfunc) if line is None else line


def install():
    """Make numba's lowering use the cached lookup (idempotent)."""
    lowering.get_func_body_first_lineno = get_func_body_first_lineno
