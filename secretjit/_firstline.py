"""numba's def-line lookup for debug info, with one parse per source file.

With debug info on (the secret target turns it on for the constant-time
check's line tables), numba's lowering asks
``numba.misc.firstlinefinder.get_func_body_first_lineno`` for the first body
line of every function it compiles.  That reads and ``ast.parse``s the
function's whole source file each time: about a third of a fresh secret
compile of a vetted kernel (0.94 s of 2.9 s for ``sha256_into``).  This is
the same lookup with the parsed tree kept per (file, mtime, size), so an
edited file is parsed again; anything it cannot read falls back to numba's.
The answer is the same (the tests compare it with numba's for every function
of the vetted kernels).
"""

import ast
import os
import textwrap

from numba.core import lowering
from numba.misc import firstlinefinder

_numba_lookup = firstlinefinder.get_func_body_first_lineno
_trees = {}


def get_func_body_first_lineno(pyfunc):
    """numba's ``get_func_body_first_lineno``, the file's parse cached."""
    co = getattr(pyfunc, '__code__', None)
    if co is None:
        return _numba_lookup(pyfunc)
    try:
        st = os.stat(co.co_filename)
        key = (co.co_filename, st.st_mtime_ns, st.st_size)
        tree = _trees.get(key)
        if tree is None:
            with open(co.co_filename) as f:
                tree = ast.parse(textwrap.dedent(f.read()))
            _trees[key] = tree
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return _numba_lookup(pyfunc)
    finder = firstlinefinder.FindDefFirstLine(co.co_name, co.co_firstlineno)
    finder.visit(tree)
    return finder.first_stmt_line or None


def install():
    """Make numba's lowering use the cached lookup (idempotent)."""
    lowering.get_func_body_first_lineno = get_func_body_first_lineno
