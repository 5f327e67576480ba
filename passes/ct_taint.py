"""Taint propagation from a kernel's secret parameters (constant-time check).

:class:`Taint` runs to a fixed point over the call tree of the kernels::

    define i32 @kernel(ptr %retptr, ..., ptr %arg.key.4, ...)   ; secret=("key",)
      %b = load i8, ptr %arg.key.4       ; %b tainted: key's region is secret
      %x = xor i8 %b, 7                  ; %x tainted
      store i8 %x, ptr %tmp              ; %tmp's region tainted
      %y = call i8 @helper(i8 %x)        ; helper's parameter tainted

Values: SSA results whose operands are tainted (phis, selects, casts,
vectors, aggregates, calls into the module and their results).  Memory:
every pointer belongs to a region (:class:`Regions`, a unification class of
allocations, parameters and globals, Steensgaard style, field- and
context-insensitive); a store of a tainted value taints its region, a load
from a tainted region is tainted, ``memcpy``/``memmove`` copy region taint.
A value passed through ``secretjit.declassify`` (the asm template
:data:`passes.declassify.DECLASSIFY_ASM`) is public.  What the tainted
values reach is :mod:`passes.ct_findings`'s; golden cases:
``tests/test_ct_golden.py``.
"""

import re

from .ct_ir import (BOOKKEEPING, COPY, SET, call_parts, load_address, loads_pointer,
                    params, parse_body, pointer_sources, store_operands)
from .declassify import DECLASSIFY_ASM
from .textir import unquote


class Regions:
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


def _seeds(plist, names):
    """(tainted values, tainted-memory pointers) among parameters ``plist``."""
    values, memory = set(), set()
    for name in names:
        prefix = '%arg.' + name
        group = [p for p in plist
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


def secret_seeds(fn, names, full=None):
    """(tainted values, tainted-memory pointers) of ``fn``'s secret parameters.

    ``full`` is the same function before interprocedural optimization
    (an AOT kernel is internal, and -O3 deletes the parameters it does not
    use: ``%arg.key.5.0``, which tells an array's data pointer ``.4`` from
    a tuple's fifth item, may be gone).  What ``full``'s parameters say is
    secret, where ``fn`` still has it, is; a parameter ``fn`` gained from a
    secret pointer (argument promotion, ``%arg.key.4.0.val``) is a secret
    value.
    """
    if full is None:
        return _seeds(params(fn), names)
    values, memory = _seeds(params(full), names)
    have = params(fn)
    new = [p for p in have if p not in params(full)]
    promoted = {p for p in new for m in memory
                if unquote(p[1:]).startswith(unquote(m[1:]) + '.')}
    return ({p for p in have if p in values} | promoted,
            {p for p in have if p in memory})


class Taint:
    """Tainted values and regions of ``kernels`` ({name: secret params})."""

    def __init__(self, module, kernels, full=None):
        self.mod = module
        self.kernels = kernels
        self.full = full or {}        # kernel -> Function before -O3
        self.bodies = {}
        self.val = set()              # (fn, "%x") tainted values
        self.ret = set()              # functions whose return value is tainted
        self.cls = Regions()
        self.reach = []

    def body(self, name):
        if name not in self.bodies:
            self.bodies[name] = parse_body(self.mod.functions[name].body)
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
                    callee, _, _ = call_parts(inst.text)
                    if self.inside(callee):
                        todo.append(callee)
        self.reach = seen
        return seen

    def inside(self, callee):
        """Whether a call to ``callee`` is checked as part of the call tree.

        Not the runtime's bookkeeping entry points, even where the module
        defines them (an AOT library links the secret arena's NRT): their
        timing depends on sizes and reference counts, not on contents.
        """
        return callee is not None and callee in self.mod.functions and \
            not BOOKKEEPING.match(callee)

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
            values, memory = secret_seeds(self.mod.functions[k], names,
                                          self.full.get(k))
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
            ptr = load_address(inst.text)
            if ptr is None:
                return
            region = self.region(fn, ptr)
            if loads_pointer(inst.text):
                # A pointer loaded from memory is secret only if a secret
                # pointer was stored there (or its own address is secret).
                if self.vt(fn, ptr) or c.is_tainted(('ptr', region)):
                    self.mark(fn, r)
                c.union(c.pointee(region), (fn, r))
            elif self.vt(fn, ptr) or c.is_tainted(region):
                self.mark(fn, r)
            return
        if op == 'store':
            val, ptr = store_operands(inst.text)
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
        for x in pointer_sources(op, inst.text):
            c.union((fn, r), self.region(fn, x))

    def step_call(self, fn, inst):
        c = self.cls
        callee, asm, args = call_parts(inst.text)
        r = inst.result
        tainted_args = [a for a in args if a.startswith('%') and self.vt(fn, a)]
        if asm is not None:
            if asm == DECLASSIFY_ASM:
                return
            if tainted_args and r:
                self.mark(fn, r)
            return
        if self.inside(callee):
            for a, p in zip(args, params(self.mod.functions[callee])):
                if a.startswith('%') and self.vt(fn, a):
                    self.mark(callee, p)
                if a.startswith(('%', '@')):
                    c.union(self.region(callee, p), self.region(fn, a))
            if r and callee in self.ret:
                self.mark(fn, r)
            return
        name = callee or ''
        if COPY.match(name) and len(args) >= 2:
            src = self.region(fn, args[1])
            dst = self.region(fn, args[0])
            if c.is_tainted(src):
                c.taint(dst)
            c.union(c.pointee(src), c.pointee(dst))
            return
        if SET.match(name) and len(args) >= 2:
            if args[1].startswith('%') and self.vt(fn, args[1]):
                c.taint(self.region(fn, args[0]))
            return
        if r and tainted_args:
            self.mark(fn, r)
        if r and name.startswith('llvm.') and inst.text.split()[1] == 'ptr':
            for a in args:
                if a.startswith(('%', '@')):
                    c.union((fn, r), self.region(fn, a))

