"""Constant-time taint check over optimized LLVM IR; debug-info stripping.

:func:`find_ct_violations` propagates taint from a kernel's secret
parameters through the whole call tree of the optimized module and reports
every place where timing or the cache footprint could depend on a secret::

    define i32 @kernel(ptr %retptr, ..., ptr %arg.key.4, ...)   ; secret=("key",)
      %b = load i8, ptr %arg.key.4              ; %b tainted (key contents)
      %c = icmp eq i8 %b, 0
      br i1 %c, label %a, label %b, !dbg !7     -> branch at kernel.py:12
      %p = getelementptr i8, ptr @sbox, i64 %i  ; %i tainted
      %s = load i8, ptr %p                      -> secret-index at kernel.py:13

Taint flows through SSA values (phis, selects, casts, vectors, aggregates,
calls into functions of the module and their results) and through memory:
every pointer belongs to a region (a unification class of allocations,
parameters and globals, Steensgaard style, field- and
context-insensitive), a store of a tainted value taints its region, a load
from a tainted region is tainted, and ``memcpy``/``memmove`` copy region
taint.  A value passed through ``secretjit.declassify`` (an empty inline asm
the pass recognises by its template) is public.

Findings (``Finding``): ``branch`` and ``switch`` on a tainted value
(including loop bounds and early exits), ``secret-index`` (a load or store
whose address depends on a tainted value), ``division`` (``udiv``/``sdiv``/
``urem``/``srem`` with a tainted operand and a variable divisor),
``external-call`` (a tainted value or tainted memory passed to code the
pass cannot see), all errors; and warnings ``constant-division`` (a tainted
operand divided by a constant: the backend normally turns it into a
multiplication, which the caller verifies on the machine code),
``float-division`` and ``float-sqrt``.  Each finding carries the Python
``file:line`` of the instruction's ``!dbg`` location (the innermost one when
code was inlined, plus where it was inlined).

:func:`strip_debug_info` removes the line tables the check reads, so the
code generated afterwards is the code of a build without them.
"""

import re
from dataclasses import dataclass, field

from .report import PassReport
from .textir import Module, split_top_level, unquote

# The inline-asm template of secretjit.declassify: an assembler comment,
# no instruction.  ``${:comment}`` is the target's comment leader.
DECLASSIFY_ASM = '${:comment} secretjit.declassify'

_REF = r'%(?:"(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)'
_REF_RE = re.compile(_REF)
_LABEL_REF = re.compile(r'label\s+' + _REF)
_ASSIGN = re.compile(r'^\s*(' + _REF + r')\s*=\s*(.*)$')
_DBG = re.compile(r',\s*!dbg\s+!(\d+)')
_CALLEE = re.compile(r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)\s*\(')
_INT_CONST = re.compile(r'^-?\d+$|^true$|^false$')

# Calls to these external functions are bookkeeping on pointers the kernel
# holds (reference counts, allocation, erasure, exceptions): their timing
# does not depend on the contents of the memory they are given.
_BOOKKEEPING = re.compile(
    r'^(NRT_(incref|decref|MemInfo_call_dtor|MemInfo_alloc\w*|MemInfo_new\w*|'
    r'MemInfo_data\w*|MemInfo_varsize\w*|Free|Allocate\w*)|'
    r'secretjit_\w*wipe\w*|numba_gil_\w+|llvm\.(lifetime|assume|dbg|'
    r'experimental\.noalias|invariant|stacksave|stackrestore|trap|'
    r'donothing|prefetch)[.\w]*)$')
_COPY = re.compile(r'^(llvm\.(memcpy|memmove)[.\w]*|memcpy|memmove)$')
_SET = re.compile(r'^(llvm\.memset[.\w]*|memset)$')
_SQRT = re.compile(r'^llvm\.sqrt\.')
_MEMORY_INTRINSIC = re.compile(r'^llvm\.(masked|vp|experimental\.vp)\.'
                               r'(gather|scatter|load|store|expandload|'
                               r'compressstore)')


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


class _Classes:
    """Union-find over memory regions, each with a 'points-to' successor."""

    def __init__(self):
        self.parent = {}
        self.deref = {}
        self.tainted = set()
        self.unions = 0

    def find(self, x):
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        self.unions += 1
        self.parent[rb] = ra
        if rb in self.tainted:
            self.tainted.add(ra)
        if ('ptr', rb) in self.tainted:
            self.tainted.add(('ptr', ra))
        da, db = self.deref.pop(ra, None), self.deref.pop(rb, None)
        if da is not None and db is not None:
            self.deref[ra] = da
            self.union(da, db)
        elif da is not None or db is not None:
            self.deref[ra] = da if da is not None else db
        return self.find(ra)

    def pointee(self, x):
        r = self.find(x)
        d = self.deref.get(r)
        if d is None:
            d = ('*', r)
            self.find(d)
            self.deref[r] = d
        return self.find(d)

    def is_tainted(self, x):
        if x[0] == 'ptr':                    # pointers stored in class x[1]
            return ('ptr', self.find(x[1])) in self.tainted
        return self.find(x) in self.tainted

    def taint(self, x):
        if x[0] == 'ptr':
            key = ('ptr', self.find(x[1]))
            if key in self.tainted:
                return False
            self.tainted.add(key)
            return True
        r = self.find(x)
        if r in self.tainted:
            return False
        self.tainted.add(r)
        return True


@dataclass
class _Inst:
    result: str          # "%x" or ""
    op: str
    text: str            # the instruction without its result and !dbg
    dbg: str             # metadata id or ""
    refs: list = field(default_factory=list)


def _parse_body(lines):
    """Instructions of a function body (switch cases joined to one line)."""
    insts, pending = [], None
    for raw in lines:
        line = raw.split(';', 1)[0] if ';' in raw and '"' not in raw else raw
        s = line.strip()
        if pending is not None:
            pending += ' ' + s
            if s.startswith(']'):
                insts.append(_make_inst(pending))
                pending = None
            continue
        if not s or s.startswith('#dbg_') or s.endswith(':') or \
                re.match(r'^[-\w$.]+:(\s|$)', s) or re.match(r'^"[^"]*":', s):
            continue
        if s.startswith('switch ') and not s.rstrip().endswith(']') \
                and '[' in s:
            pending = s
            continue
        insts.append(_make_inst(s))
    return insts


def _make_inst(s):
    m = _DBG.search(s)
    dbg = m.group(1) if m else ''
    s = _DBG.sub('', s)
    a = _ASSIGN.match(s)
    result, rest = (a.group(1), a.group(2)) if a else ('', s)
    words = rest.split()
    op = words[0] if words else ''
    if op in ('tail', 'musttail', 'notail'):
        op = words[1]
    refs = _REF_RE.findall(_LABEL_REF.sub('', rest))
    return _Inst(result, op, rest, dbg, refs)


def _call_parts(text):
    """(callee name or None, asm template or None, [arg value texts])."""
    asm = None
    m = re.search(r'\basm\s+(?:sideeffect\s+)?(?:alignstack\s+)?'
                  r'(?:inteldialect\s+)?"((?:[^"\\]|\\.)*)"', text)
    if m:
        asm = m.group(1)
        open_at = text.index('(', m.end())
        callee = None
    else:
        cm = _CALLEE.search(text)
        if cm is None:                       # indirect call through a pointer
            idx = [i for i, c in enumerate(text) if c == '(']
            open_at = idx[-1] if idx else len(text)
            callee = None
        else:
            callee = unquote(cm.group(1))
            open_at = cm.end() - 1
    depth, close_at = 0, len(text)
    for i in range(open_at, len(text)):
        if text[i] in '([{<':
            depth += 1
        elif text[i] in ')]}>':
            depth -= 1
            if depth == 0:
                close_at = i
                break
    args = split_top_level(text[open_at + 1:close_at]) if open_at < len(text) else []
    return callee, asm, [a.split()[-1] if a.split() else '' for a in args]


def _params(fn):
    return [p.split()[-1] for p in fn.params]


def _secret_seeds(fn, names):
    """(tainted values, tainted-memory pointers) of secret parameters."""
    params = _params(fn)
    values, memory = set(), set()
    for name in names:
        prefix = '%arg.' + name
        group = [p for p in params
                 if unquote(p[1:]) == 'arg.' + name
                 or unquote(p[1:]).startswith('arg.' + name + '.')]
        plain = [unquote(p[1:]) for p in group]
        for p, bare in zip(group, plain):
            field_ = bare[len(prefix) - 1:]          # ".4", ".5.0", ""
            # An array argument is flattened into .0 (meminfo) .. .6.k
            # (strides); its contents are behind the data pointer .4.
            is_array_data = (field_.endswith('.4') and
                             'arg.%s%s' % (name, field_[:-2] + '.5.0') in plain)
            array_fields = re.sub(r'\.\d+$', '', field_) if field_ else None
            in_array = array_fields is not None and any(
                q == 'arg.%s%s.4' % (name, array_fields) for q in plain) and \
                'arg.%s%s.5.0' % (name, array_fields) in plain
            if is_array_data:
                memory.add(p)
            elif in_array or re.search(r'\.[56]\.\d+$', field_ or '') and \
                    any(q.endswith('.4') for q in plain):
                continue                     # meminfo, sizes, shape, strides
            else:
                values.add(p)
                memory.add(p)
    return values, memory


def secret_parameter_names(fn):
    """Python parameter names of a numba function, from its IR parameters."""
    out = []
    for p in _params(fn):
        bare = unquote(p[1:])
        if bare.startswith('arg.'):
            name = re.sub(r'(\.\d+)+$', '', bare[4:])
            if name not in out:
                out.append(name)
    return out


class _Analysis:
    def __init__(self, module, kernels):
        self.mod = module
        self.kernels = kernels
        self.bodies = {}
        self.val = set()              # (fn, "%x") tainted values
        self.ret = set()              # functions whose return value is tainted
        self.cls = _Classes()
        self.reach = []

    def body(self, name):
        if name not in self.bodies:
            self.bodies[name] = _parse_body(self.mod.functions[name].body)
        return self.bodies[name]

    def reachable(self):
        seen, todo = [], list(self.kernels)
        while todo:
            name = todo.pop()
            if name in seen or name not in self.mod.functions:
                continue
            seen.append(name)
            for inst in self.body(name):
                if inst.op == 'call':
                    callee, _, _ = _call_parts(inst.text)
                    if callee in self.mod.functions:
                        todo.append(callee)
        self.reach = seen
        return seen

    # -- values and regions --------------------------------------------
    def vt(self, fn, v):
        return (fn, v) in self.val

    def region(self, fn, v):
        if v.startswith('@'):
            return ('@', unquote(v[1:]))
        return (fn, v)

    def mark(self, fn, v):
        if (fn, v) in self.val:
            return False
        self.val.add((fn, v))
        return True

    def run(self):
        for k, names in self.kernels.items():
            if k not in self.mod.functions:
                continue
            values, memory = _secret_seeds(self.mod.functions[k], names)
            for v in values:
                self.mark(k, v)
            for p in memory:
                self.cls.taint(self.region(k, p))
        self.reachable()
        while True:
            before = (len(self.val), len(self.cls.tainted), self.cls.unions,
                      len(self.ret))
            for name in self.reach:
                for inst in self.body(name):
                    self.step(name, inst)
            if before == (len(self.val), len(self.cls.tainted),
                          self.cls.unions, len(self.ret)):
                break

    def any_tainted(self, fn, refs):
        return any(self.vt(fn, r) for r in refs)

    def step(self, fn, inst):
        """Propagate taint and points-to classes through one instruction."""
        op, r = inst.op, inst.result
        c = self.cls
        if op == 'load':
            ptr = self._last_pointer(inst.text)
            if ptr is None:
                return
            region = self.region(fn, ptr)
            if self._loads_pointer(inst.text):
                # A pointer loaded from memory is secret only if a secret
                # pointer was stored there (or its own address is secret).
                if self.vt(fn, ptr) or c.is_tainted(('ptr', region)):
                    self.mark(fn, r)
                c.union(c.pointee(region), (fn, r))
            elif self.vt(fn, ptr) or c.is_tainted(region):
                self.mark(fn, r)
            return
        if op == 'store':
            val, ptr = self._store_operands(inst.text)
            if ptr is None:
                return
            region = self.region(fn, ptr)
            if val.startswith('%') and self.vt(fn, val):
                c.taint(region)
                if inst.text.split()[1] == 'ptr' or \
                        inst.text.split()[1:3] == ['volatile', 'ptr']:
                    c.taint(('ptr', region))
            if val.startswith(('%', '@')) and 'ptr' in inst.text.split(',')[0]:
                c.union(c.pointee(region), self.region(fn, val))
            return
        if op == 'call':
            self.step_call(fn, inst)
            return
        if op == 'ret':
            if self.any_tainted(fn, inst.refs):
                self.ret.add(fn)
            return
        if not r:
            return
        if self.any_tainted(fn, inst.refs):
            self.mark(fn, r)
        for x in self._pointer_sources(op, inst.text):
            c.union((fn, r), self.region(fn, x))

    @staticmethod
    def _pointer_sources(op, text):
        """Operands whose points-to class the result shares."""
        parts = split_top_level(text.split(None, 1)[1]) if ' ' in text else []
        vals = [p.split()[-1] for p in parts if p.split()]
        if op == 'getelementptr':
            # getelementptr [inbounds] <ty>, ptr <base>, <indices>
            return vals[1:2]
        if 'ptr' not in text:
            return []
        if op == 'select':
            return [v for p, v in zip(parts[1:3], vals[1:3]) if 'ptr' in p]
        if op == 'phi':
            if 'ptr' not in text.split('[', 1)[0]:
                return []
            return re.findall(r'\[\s*([%@][^,\s]+)\s*,', text)
        if op in ('bitcast', 'addrspacecast', 'freeze', 'extractvalue',
                  'extractelement', 'shufflevector'):
            return vals[:1] if op != 'shufflevector' else vals[:2]
        if op in ('insertvalue', 'insertelement'):
            return vals[:2]
        return []

    @staticmethod
    def _store_operands(text):
        parts = split_top_level(text[len('store'):].replace('volatile ', '', 1)
                                .replace('atomic ', '', 1))
        if len(parts) < 2:
            return '', None
        return parts[0].split()[-1], parts[1].split()[-1]

    @staticmethod
    def _loads_pointer(text):
        words = [w for w in text.split()[1:3] if w not in ('volatile', 'atomic')]
        return bool(words) and words[0].rstrip(',') == 'ptr'

    @staticmethod
    def _last_pointer(text):
        # load <ty>, ptr <addr>[, align N]
        parts = split_top_level(text[len('load'):].replace('volatile ', '', 1)
                                .replace('atomic ', '', 1))
        for p in parts[1:]:
            w = p.split()
            if len(w) >= 2 and w[0] == 'ptr':
                return w[-1]
        return None

    def step_call(self, fn, inst):
        c = self.cls
        callee, asm, args = _call_parts(inst.text)
        r = inst.result
        tainted_args = [a for a in args if a.startswith('%') and self.vt(fn, a)]
        if asm is not None:
            if asm == DECLASSIFY_ASM:
                return
            if tainted_args and r:
                self.mark(fn, r)
            return
        if callee is not None and callee in self.mod.functions:
            params = _params(self.mod.functions[callee])
            for a, p in zip(args, params):
                if a.startswith('%') and self.vt(fn, a):
                    self.mark(callee, p)
                if a.startswith(('%', '@')):
                    c.union(self.region(callee, p), self.region(fn, a))
            if r and callee in self.ret:
                self.mark(fn, r)
            return
        name = callee or ''
        if _COPY.match(name) and len(args) >= 2:
            src = self.region(fn, args[1])
            dst = self.region(fn, args[0])
            if c.is_tainted(src):
                c.taint(dst)
            c.union(c.pointee(src), c.pointee(dst))
            return
        if _SET.match(name) and len(args) >= 2:
            if args[1].startswith('%') and self.vt(fn, args[1]):
                c.taint(self.region(fn, args[0]))
            return
        if r and tainted_args:
            self.mark(fn, r)
        if r and name.startswith('llvm.') and inst.text.split()[1] == 'ptr':
            for a in args:
                if a.startswith(('%', '@')):
                    c.union((fn, r), self.region(fn, a))

    # -- findings --------------------------------------------------------
    def findings(self, locate):
        out = []
        c = self.cls
        for fn in self.reach:
            defs = {i.result: i for i in self.body(fn) if i.result}
            for inst in self.body(fn):
                kinds = self.classify(fn, inst, c)
                for kind, detail in kinds:
                    loc, outer = locate(self._dbg_of(inst, defs))
                    sev = 'warning' if kind in WARNING_KINDS else 'error'
                    out.append(Finding(kind, fn, loc, outer, detail, sev))
        seen, unique = set(), []
        for f in out:
            key = (f.kind, f.function, f.location, f.detail)
            if key not in seen:
                seen.add(key)
                unique.append(f)
        return unique

    @staticmethod
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

    def classify(self, fn, inst, c):
        op = inst.op
        if op == 'br' and inst.text.split()[1] == 'i1':
            cond = inst.text.split()[2].rstrip(',')
            if self.vt(fn, cond):
                return [('branch', 'conditional branch on a secret value')]
        elif op == 'switch':
            v = inst.text.split()[2].rstrip(',')
            if self.vt(fn, v):
                return [('switch', 'switch on a secret value')]
        elif op in ('load', 'store'):
            if op == 'load':
                ptr = self._last_pointer(inst.text)
            else:
                ptr = self._store_operands(inst.text)[1]
            if ptr is not None and self.vt(fn, ptr):
                return [('secret-index', '%s at an address computed from a '
                         'secret value' % op)]
        elif op in ('udiv', 'sdiv', 'urem', 'srem'):
            if self.any_tainted(fn, inst.refs):
                parts = split_top_level(inst.text.split(None, 1)[1])
                divisor = parts[-1].split()[-1] if parts else ''
                if not divisor.startswith('%') and not divisor.startswith('@'):
                    return [('constant-division',
                             '%s of a secret value by the constant %s'
                             % (op, divisor))]
                return [('division', '%s with a secret operand' % op)]
        elif op in ('fdiv', 'frem'):
            if self.any_tainted(fn, inst.refs):
                return [('float-division', '%s with a secret operand' % op)]
        elif op == 'call':
            callee, asm, args = _call_parts(inst.text)
            if asm is not None or (callee in self.mod.functions):
                return []
            name = callee or '<function pointer>'
            if _SQRT.match(name):
                if any(a.startswith('%') and self.vt(fn, a) for a in args):
                    return [('float-sqrt', 'sqrt of a secret value')]
                return []
            if _COPY.match(name) or _SET.match(name):
                if len(args) >= 3 and args[2].startswith('%') and \
                        self.vt(fn, args[2]):
                    return [('external-call', '%s of a secret length' % name)]
                return []
            if _MEMORY_INTRINSIC.match(name):
                open_at = inst.text.index('(', inst.text.index('@'))
                typed = split_top_level(inst.text[open_at + 1:inst.text.rindex(')')])
                ptrs = [t.split()[-1] for t in typed
                        if t.startswith('ptr') or re.match(r'<\d+ x ptr>', t)]
                if any(p.startswith('%') and self.vt(fn, p) for p in ptrs):
                    return [('secret-index', '%s at addresses computed from '
                             'a secret value' % name)]
                return []
            if name.startswith('llvm.') or _BOOKKEEPING.match(name):
                return []
            secret = [a for a in args if a.startswith('%') and (
                self.vt(fn, a) or c.is_tainted(self.region(fn, a)))]
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


def _locator(lines):
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


def find_ct_violations(text, kernels):
    """Constant-time findings for ``kernels`` (LLVM name -> secret params).

    ``text`` is the optimized module.  Returns ``(findings, report)``:
    a list of :class:`Finding` in module order and a report counting
    the functions checked and findings by kind.
    """
    mod = Module.parse(text)
    report = PassReport('constant_time')
    analysis = _Analysis(mod, {k: tuple(v) for k, v in kernels.items()})
    for k in kernels:
        if k not in mod.functions:
            raise ValueError("constant-time check: kernel %s is not defined "
                             "in the module" % k)
    analysis.run()
    findings = analysis.findings(_locator(mod.lines))
    report.count('functions_checked', len(analysis.reach))
    for f in findings:
        report.count(f.kind)
    return findings, report


_STRIP_NAMED = re.compile(r'^!llvm\.dbg\.cu\s*=')


def strip_debug_info(text):
    """Remove ``!dbg`` attachments, debug records and the compile unit.

    What stays is the module a build without line tables produces: code
    generation emits no debug sections and no location-driven differences.
    Returns ``(text, report)``.
    """
    report = PassReport('strip_debug_info')
    out = []
    for line in text.splitlines():
        s = line.lstrip()
        if s.startswith('#dbg_') or re.match(
                r'^(tail |notail )?call void @llvm\.dbg\.', s) or \
                line.startswith('declare void @llvm.dbg.') or \
                _STRIP_NAMED.match(line):
            report.count('removed_lines')
            continue
        new = re.sub(r',\s*!dbg\s+!\d+', '', line)
        if line.startswith('define '):
            new = re.sub(r'\s!dbg\s+!\d+', '', new)
        if new != line:
            report.count('removed_attachments')
        out.append(new)
    if not report.counters:
        return text, report
    # The "Debug Info Version" module flag is harmless without a compile
    # unit; DILocations kept alive by loop metadata are plain metadata.
    return '\n'.join(out) + '\n', report


def line_tables_for_dwarf(text):
    """numba's "directives only" line tables as "line tables only".

    Input (what numba emits for the check)::

        !0 = distinct !DICompileUnit(..., emissionKind: DebugDirectivesOnly, ...)
          #dbg_value(...)

    Output (an object whose DWARF a reader can map to lines)::

        !0 = distinct !DICompileUnit(..., emissionKind: LineTablesOnly, ...)

    Directives-only units emit no ``.debug_info`` unit, which DWARF readers
    need; the line program is the same.  Debug records go (a line-tables-only
    unit must not describe variables).  Used by ``ctcheck`` for its line
    maps, never for code that runs.  Returns ``(text, report)``.
    """
    report = PassReport('line_tables_for_dwarf')
    out = []
    for line in text.splitlines():
        if line.lstrip().startswith('#dbg_'):
            report.count('removed_records')
            continue
        new = line.replace('emissionKind: DebugDirectivesOnly',
                           'emissionKind: LineTablesOnly')
        if new != line:
            report.count('units')
        out.append(new)
    if not report.counters:
        return text, report
    return '\n'.join(out) + '\n', report


_DECLASSIFY_CALL = re.compile(
    r'^(\s*' + _REF + r') = (?:tail |notail )?call (i\d+) asm "'
    + re.escape(DECLASSIFY_ASM) + r'", "=r,0"\(i\d+ (' + _REF + r')\)(.*)$', re.M)


def lower_declassify(text):
    """Replace each ``declassify`` marker asm by a ``freeze`` of its operand.

    For builds that cannot assemble inline asm (AOT cross builds) and do
    not run the check: the value is the same, and no instruction either way.
    Returns ``(text, report)``.
    """
    report = PassReport('lower_declassify')

    def sub(m):
        report.count('lowered')
        rest = re.sub(r'^\s*#\d+', '', m.group(4))      # call-site attributes
        return '%s = freeze %s %s%s' % (m.group(1), m.group(2), m.group(3), rest)
    return _DECLASSIFY_CALL.sub(sub, text), report
