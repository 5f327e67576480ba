"""What the constant-time taint reaches: :class:`Finding` and the Python lines.

:func:`findings` walks every instruction of the call tree that
:class:`passes.ct_taint.Taint` analysed and reports::

    br i1 %c, label %a, label %b, !dbg !7       ; %c tainted
      -> Finding('branch', 'kernel', 'kernel.py:12', '', ...)
    %s = load i8, ptr %p, !dbg !8               ; %p from a tainted index
      -> Finding('secret-index', 'kernel', 'kernel.py:13', '', ...)

Kinds: ``branch`` and ``switch`` on a tainted value (including loop bounds
and early exits), ``secret-index`` (a load or store whose address depends
on a tainted value), ``division`` (``udiv``/``sdiv``/``urem``/``srem`` with
a tainted operand and a variable divisor), ``external-call`` (a tainted
value or tainted memory passed to code the pass cannot see), all errors;
and warnings ``constant-division`` (a tainted operand divided by a
constant: the backend normally turns it into a multiplication, which the
caller verifies on the machine code), ``float-division`` and
``float-sqrt``.  Each finding carries the Python ``file:line`` of the
instruction's ``!dbg`` location (the innermost one when code was inlined,
plus where it was inlined), read by :func:`locator`.  Golden cases:
``tests/test_ct_golden.py``.
"""

import re
from dataclasses import dataclass

from .ct_ir import (BOOKKEEPING, COPY, MEMORY_INTRINSIC, SET, SQRT,
                    call_parts, load_address, store_operands)
from .textir import split_top_level


@dataclass(frozen=True)
class Finding:
    """One constant-time violation (or warning) and where it is."""
    kind: str            # branch, switch, secret-index, division, ...
    function: str        # LLVM name of the function holding the instruction
    location: str        # "file.py:line" or "" without debug info
    inlined_at: str      # "file.py:line" of the outermost call site, or ""
    detail: str          # what the instruction does with the secret
    severity: str = 'error'

    def line(self, readable=lambda n: n):
        where = self.location or '<no line info: %s>' % readable(self.function)
        text = '%s: %s in %s: %s' % (where, self.kind, readable(self.function),
                                      self.detail)
        if self.inlined_at and self.inlined_at != self.location:
            text += ' (inlined at %s)' % self.inlined_at
        return text + '. Fix: ' + FIX_HINTS[self.kind]


FIX_HINTS = {
    'branch': "compute both sides and select with a mask ((a & m) | (b & ~m)),"
              " accumulate comparisons with |= instead of exiting early, and "
              "bound loops by public sizes; branch only on declassify(x) of a "
              "value that may be public",
    'switch': "replace the switch on a secret with masked selects",
    'secret-index': "read every table entry and select the wanted one with a "
                    "mask, or compute the value arithmetically; index only "
                    "with public values (loop counters, sizes)",
    'division': "divide by a public constant or use Barrett/Montgomery "
                "reduction with multiplications; division time depends on "
                "its operands",
    'external-call': "do not pass secrets to functions compiled outside the "
                     "call tree (the check cannot see them); write the "
                     "operation in the kernel",
    'machine-division': "divide by a public value only; the backend kept a "
                        "divide instruction whose time depends on the secret",
    'constant-division': "none needed if the machine code check passes "
                         "(the backend turns division by a constant into "
                         "a multiplication)",
    'float-division': "floating-point division time may depend on the "
                      "operands (subnormals); use integer arithmetic",
    'float-sqrt': "square-root time may depend on the operand; use integer "
                  "arithmetic",
}
WARNING_KINDS = ('constant-division', 'float-division', 'float-sqrt')


def findings(taint, locate):
    """The findings of ``taint`` in module order, located by ``locate``."""
    out = []
    for fn in taint.reach:
        defs = {i.result: i for i in taint.body(fn) if i.result}
        for inst in taint.body(fn):
            kinds = classify(taint, fn, inst)
            for kind, detail in kinds:
                loc, outer = locate(_dbg_of(inst, defs))
                sev = 'warning' if kind in WARNING_KINDS else 'error'
                out.append(Finding(kind, fn, loc, outer, detail, sev))
    seen, unique = set(), []
    for f in out:
        key = (f.kind, f.function, f.location, f.detail)
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _dbg_of(inst, defs):
    """The instruction's location, else the nearest operand definition's.

    Instructions the optimizer creates (loop versioning, unswitching)
    often have none; the secret they test was computed at a line.
    """
    todo, seen = [inst], set()
    while todo:
        cur = todo.pop(0)
        if cur.dbg:
            return cur.dbg
        for r in cur.refs:
            if r in defs and r not in seen and len(seen) < 64:
                seen.add(r)
                todo.append(defs[r])
    return ''


def classify(taint, fn, inst):
    """[(kind, detail)] of one instruction."""
    op = inst.op
    if op == 'br' and inst.text.split()[1] == 'i1':
        cond = inst.text.split()[2].rstrip(',')
        if taint.vt(fn, cond):
            return [('branch', 'conditional branch on a secret value')]
    elif op == 'switch':
        v = inst.text.split()[2].rstrip(',')
        if taint.vt(fn, v):
            return [('switch', 'switch on a secret value')]
    elif op in ('load', 'store'):
        if op == 'load':
            ptr = load_address(inst.text)
        else:
            ptr = store_operands(inst.text)[1]
        if ptr is not None and taint.vt(fn, ptr):
            return [('secret-index', '%s at an address computed from a '
                     'secret value' % op)]
    elif op in ('udiv', 'sdiv', 'urem', 'srem'):
        if taint.any_tainted(fn, inst.refs):
            parts = split_top_level(inst.text.split(None, 1)[1])
            divisor = parts[-1].split()[-1] if parts else ''
            if not divisor.startswith('%') and not divisor.startswith('@'):
                return [('constant-division',
                         '%s of a secret value by the constant %s'
                         % (op, divisor))]
            return [('division', '%s with a secret operand' % op)]
    elif op in ('fdiv', 'frem'):
        if taint.any_tainted(fn, inst.refs):
            return [('float-division', '%s with a secret operand' % op)]
    elif op == 'call':
        return classify_call(taint, fn, inst)
    return []


def classify_call(taint, fn, inst):
    """[(kind, detail)] of a call: what leaves the checked call tree."""
    callee, asm, args = call_parts(inst.text)
    if asm is not None or taint.inside(callee):
        return []
    name = callee or '<function pointer>'
    if SQRT.match(name):
        if any(a.startswith('%') and taint.vt(fn, a) for a in args):
            return [('float-sqrt', 'sqrt of a secret value')]
        return []
    if COPY.match(name) or SET.match(name):
        if len(args) >= 3 and args[2].startswith('%') and \
                taint.vt(fn, args[2]):
            return [('external-call', '%s of a secret length' % name)]
        return []
    if MEMORY_INTRINSIC.match(name):
        open_at = inst.text.index('(', inst.text.index('@'))
        typed = split_top_level(inst.text[open_at + 1:inst.text.rindex(')')])
        ptrs = [t.split()[-1] for t in typed
                if t.startswith('ptr') or re.match(r'<\d+ x ptr>', t)]
        if any(p.startswith('%') and taint.vt(fn, p) for p in ptrs):
            return [('secret-index', '%s at addresses computed from '
                     'a secret value' % name)]
        return []
    if name.startswith('llvm.') or BOOKKEEPING.match(name):
        return []
    secret = [a for a in args if a.startswith('%') and (
        taint.vt(fn, a) or taint.cls.is_tainted(taint.region(fn, a)))]
    if secret:
        return [('external-call', 'call to %s (not in the checked call '
                 'tree) with secret data' % name)]
    return []


_META = re.compile(r'^!(\d+) = (?:distinct )?!(\w+)\((.*)\)\s*$')


def _metadata(lines):
    meta = {}
    for line in lines:
        if line.startswith('!'):
            m = _META.match(line)
            if m:
                meta[m.group(1)] = (m.group(2), m.group(3))
    return meta


def _field(body, name):
    m = re.search(r'\b' + name + r': (!?\d+|"(?:[^"\\]|\\.)*")', body)
    if not m:
        return None
    v = m.group(1)
    return v[1:-1] if v.startswith('"') else v


def locator(lines):
    """``locate(dbg id) -> (file:line, outermost inlined-at file:line)``."""
    meta = _metadata(lines)

    def file_of(scope_id, depth=0):
        kind, body = meta.get(scope_id, ('', ''))
        f = _field(body, 'file')
        if f and f.startswith('!'):
            _, fbody = meta.get(f[1:], ('', ''))
            name = _field(fbody, 'filename') or '?'
            directory = _field(fbody, 'directory') or ''
            if directory and not name.startswith('/'):
                name = directory.rstrip('/') + '/' + name
            return name
        s = _field(body, 'scope')
        if s and s.startswith('!') and depth < 20:
            return file_of(s[1:], depth + 1)
        return '?'

    def where(loc_id):
        kind, body = meta.get(loc_id, ('', ''))
        if kind != 'DILocation':
            return '', None
        line = _field(body, 'line')
        scope = _field(body, 'scope')
        if not line or line == '0' or not scope:
            return '', None
        inl = _field(body, 'inlinedAt')
        return '%s:%s' % (file_of(scope[1:]), line), \
            (inl[1:] if inl and inl.startswith('!') else None)

    def locate(dbg):
        if not dbg:
            return '', ''
        loc, nxt = where(dbg)
        outer, hops = '', 0
        while nxt and hops < 50:
            o, nxt = where(nxt)
            outer = o or outer
            hops += 1
        return loc, outer

    return locate

