"""Unknown external callees: a ``bounded-stack`` error naming the callee and line.

An external C function the allowance table does not list
(:mod:`.allowances`) gets no guessed allowance: the bound fails closed.  The
error names the callee, the chain of functions that reach it and, where the
module still has numba's line tables, the Python line of the call
(:func:`locate`, following ``inlinedAt`` out to the kernel's own source).
The fix is the per-kernel declaration ``secret_jit(stack_allowance={name:
bytes})``, visible in ``pass_reports()``.
"""

import os
import re

from ..errors import SecretPolicyError

RULE = 'bounded-stack'
_NUMBA_DIR = None


def unknown_callee(name, chain=()):
    """The error for a call tree reaching the external ``name`` unmeasured."""
    via = ' -> '.join(list(chain) + [name]) if chain else name
    err = SecretPolicyError(
        RULE,
        "the secret call tree calls the external function %s (%s), whose "
        "stack use secretjit has not measured: an unknown callee gets no "
        "guessed allowance, so no scrub depth can be guaranteed" % (name, via),
        "avoid the construct that calls it, or declare the bytes of stack it "
        "may write, measured on its slow paths (secretjit.testing.probes."
        "c_call_depth): secret_jit(stack_allowance={%r: nbytes})" % name)
    err.callee = name
    return err


def _numba_dir():
    global _NUMBA_DIR
    if _NUMBA_DIR is None:
        import numba
        _NUMBA_DIR = os.path.dirname(numba.__file__)
    return _NUMBA_DIR


def _metadata(text):
    """``{'!N': 'body'}`` for the module's numbered metadata."""
    return dict(re.findall(r'^(![0-9]+) = (?:distinct )?(.*)$', text, re.M))


def _field(body, key):
    m = re.search(r'\b%s: (![0-9]+|"(?:[^"\\]|\\.)*"|-?[0-9]+)' % key, body)
    return m.group(1) if m else None


def _file_of(md, scope, depth=0):
    body = md.get(scope, '')
    if body.startswith('!DIFile('):
        name, folder = _field(body, 'filename'), _field(body, 'directory')
        name = (name or '""')[1:-1]
        return os.path.join((folder or '""')[1:-1], name)
    nxt = _field(body, 'file') or _field(body, 'scope')
    return _file_of(md, nxt, depth + 1) if nxt and depth < 20 else None


def locate(text, callee):
    """``(file, line)`` of a call to ``callee`` in the IR ``text``, or None.

    Follows ``inlinedAt`` outwards and prefers the outermost location outside
    numba's own sources (the user's line of the construct that needs the
    callee); else the innermost.
    """
    quoted = re.escape(callee) if re.match(r'^[\w.$]+$', callee) \
        else re.escape('"%s"' % callee)
    calls = re.findall(r'\bcall [^\n]*@%s\([^\n]*!dbg (![0-9]+)' % quoted, text)
    if not calls:
        return None
    md = _metadata(text)
    chain, loc = [], calls[0]
    while loc and loc in md and len(chain) < 50:
        body = md[loc]
        line, scope = _field(body, 'line'), _field(body, 'scope')
        filename = _file_of(md, scope) if scope else None
        if filename and line:
            chain.append((filename, int(line)))
        loc = _field(body, 'inlinedAt')
    if not chain:
        return None
    outside = [c for c in chain if not c[0].startswith(_numba_dir())]
    return outside[-1] if outside else chain[0]


def with_location(err, text):
    """``err`` (from :func:`unknown_callee`) with the Python line of the call."""
    where = locate(text, err.callee) if text else None
    if where is None:
        return err
    from numba.core import ir
    from ..channels import _located
    located = _located(err.rule, err.problem, err.fix, ir.Loc(*where))
    located.callee = err.callee
    return located


def normalize_declared(declared):
    """The validated ``secret_jit(stack_allowance=...)``: ``{name: bytes}``.

    Only externals secretjit neither measures nor refuses can be declared: a
    declaration never lowers a measured allowance and never admits a call
    into the interpreter.
    """
    from .allowances import RUNS_PYTHON, known_allowance
    from .core import _INTERPRETER
    if declared is None:
        return {}
    if not isinstance(declared, dict):
        raise TypeError("secret_jit(stack_allowance=...) takes a dict {C function "
                        "name: bytes of stack}, got %r" % (declared,))
    out = {}
    for name, nbytes in declared.items():
        if not isinstance(name, str) or isinstance(nbytes, bool) \
                or not isinstance(nbytes, int) or not 0 <= nbytes <= 1 << 24:
            raise TypeError("secret_jit(stack_allowance=...): each entry is a C "
                            "function name and a byte count from 0 to 16 MiB, "
                            "got %r: %r" % (name, nbytes))
        if _INTERPRETER.match(name) or name in RUNS_PYTHON:
            raise ValueError("secret_jit(stack_allowance=...): %s runs the Python "
                             "interpreter, whose stack use has no bound; it "
                             "cannot be declared" % name)
        known = known_allowance(name)
        if known is not None:
            raise ValueError("secret_jit(stack_allowance=...): %s already has a "
                             "measured allowance (%d bytes); declare only the "
                             "externals secretjit does not list" % (name, known))
        out[name] = nbytes
    return out
