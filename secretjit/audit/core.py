"""What both architectures share: call trees, depths, basic blocks, path analysis.

A boundary's path analysis is a forward data flow over its basic blocks
whose state is ``(zeroed registers, aux, pending tree depth, problems)``:
``zeroed`` shrinks at every call (the callee may leave anything) and at every
non-zeroing write, and grows at each zeroing idiom; ``pending`` is the depth
of a call into the tree that no scrub has covered yet.  The meet of two paths
is the intersection of what they zeroed and the deeper pending depth, so a
register counts as zeroed at a ``ret`` only when every path zeroed it after
its last call.  The architecture's ``step`` reads one instruction and calls
:func:`on_call` / :func:`on_scrub` here.
"""

from dataclasses import dataclass

from .. import stack_bound
from .elf import (ARCHES, BOUNDARY, SECRET_CALL, SECRET_CALL_EXACT,  # noqa: F401  (re-exported)
                  SECRET_CALLS, AuditError)

_MAX_VISITS = 10000


@dataclass
class BoundaryAudit:
    name: str
    registers_ok: bool
    registers_missing: list
    rets: int
    scrub_ok: bool
    scrub_problems: list
    depth_required: int
    depth_scrubbed: int
    stack_bound_depth: int              # the compiler's (an exact call's: hot)
    calls_ok: bool
    externals: list
    unlisted: list
    arch: str = 'x86_64'

    @property
    def ok(self):
        return self.registers_ok and self.scrub_ok and self.calls_ok


class Arch:
    """One machine: what :class:`~.elf.ObjectCode` and the path analysis ask it.

    Subclasses supply ``disassembler``, ``read_plt``, ``analyse`` (frame and
    calls of one function), ``required`` (the registers the boundary must
    zero), ``branch``/``is_return`` (block ends), ``step`` (one instruction
    of the path analysis), ``secret_call_tree``, ``passed_depth`` and
    ``tree_problems`` (per-function register findings).
    """
    register_order = None               # sort key of register names (None: by name)

    def __init__(self, name, machine, return_address):
        self.name, self.machine, self.return_address = name, machine, return_address
        self.red_zone = stack_bound.RED_ZONE[name]
        ARCHES[machine] = self

    def tree_problems(self, obj, root):
        return []

    def optional(self, obj, f):
        """Registers boundary ``f`` need not zero (its tree cannot write them)."""
        return set()


# -- the call tree ---------------------------------------------------------------

def allowed(obj, name):
    """Whether ``name`` is C code the contract covers with an allowance."""
    base = name[:-1] if name.endswith('f') and name[:-1] in stack_bound.LIBM else name
    return (name in stack_bound.EXTERNAL_ALLOWANCE or base in stack_bound.LIBM
            or name in obj.allowances or name in SECRET_CALLS)


def depth(obj, name, memo, seen=(), hot=False):
    """Bytes the call of ``name`` may write below the caller's stack pointer;
    ``hot``: for the exact entry, each :func:`marked` runtime entry at its
    hot part (``MarkedDepth.hot``: the entry adds the marked slack when a
    marked call ran)."""
    key = ('hot', name) if hot else name
    if key in memo:
        return memo[key]
    if name not in obj.functions or allowed(obj, name):
        # C code (external, or the runtime linked into an AOT library):
        # the contract's allowance, whose sufficiency the tests measure
        d = stack_bound.external_allowance(name, obj.allowances)
        if hot and marked(obj, name):
            d = d.hot
    elif name in seen:
        raise AuditError("recursion through %s" % stack_bound.readable(name))
    else:
        f = obj.fn(name)
        if f.frame is None:
            raise AuditError("%s moves the stack pointer by an amount the audit "
                             "cannot bound (a dynamic frame)" % stack_bound.readable(name))
        below = obj.arch.red_zone if f.leaf and f.below_sp else 0
        for _, target in f.calls:
            if target is None:
                below = max(below, stack_bound.DEFAULT_ALLOWANCE)
            elif target not in SECRET_CALLS:
                below = max(below, depth(obj, target, memo, seen + (name,), hot))
        d = f.frame + below
    memo[key] = d
    return d


def reachable(obj, root):
    """Every function (defined or external) reachable by calls from ``root``."""
    out, todo = set(), [root]
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        if n in obj.functions and not allowed(obj, n):
            todo += [t for _, t in obj.fn(n).calls if t]
    return out


def marked(obj, name):
    """Whether ``name`` is a secret-runtime entry the exact entry accepts
    (issue 15): one of :func:`stack_bound.native.markable` whose depth in
    the object's allowances (the runtime's, :mod:`secretjit.arena_nrt`) is a
    :class:`~secretjit.stack_bound.core.MarkedDepth`: bounded from its
    machine code but for C library calls that mark the thread, after which
    the exact entry checks the frame window like the plain one."""
    from ..stack_bound.core import MarkedDepth
    from ..stack_bound.native import markable
    return name in markable() and isinstance(obj.allowances.get(name), MarkedDepth)


def inexact(obj, root, accept_marked=False):
    """Why ``root``'s depth is not exact (empty when it is): every function
    it reaches must be machine code of the object the audit read itself, not
    C code with an allowance, and every call must have a known target.  An
    unknown tree is not exact (fail closed).  ``accept_marked`` (the exact
    entry's check): a :func:`marked` runtime entry is accepted too; without
    it (the x87 waiver) only the object's own code is."""
    if root is None:
        return ['its tree is unknown']
    out = []
    for n in sorted(reachable(obj, root)):
        if n not in obj.functions or allowed(obj, n):
            if accept_marked and marked(obj, n):
                continue
            out.append('its tree calls %s' % stack_bound.readable(n))
        else:
            out += ['%s makes an indirect call at 0x%x' % (stack_bound.readable(n), a)
                    for a, t in obj.fn(n).calls if t is None]
    return out


def tree_functions(obj, root):
    """The functions of ``root``'s tree that the audit reads (not allowed C)."""
    return sorted(n for n in reachable(obj, root)
                  if n in obj.functions and not allowed(obj, n))


# -- basic blocks and the forward solver ----------------------------------------

def blocks(f, arch):
    """Basic blocks of ``f``: {start: [insns]}, successors {start: [starts]}.

    ``arch.branch(ins)`` is None for an instruction that does not end a block,
    else ``(target or None, falls through)``; calls end no block.
    """
    insns = f.insns
    if not insns:
        return {}, {}
    end = f.addr + len(f.code)
    inside = lambda t: t is not None and f.addr <= t < end       # noqa: E731
    leaders = {insns[0].address}
    for i, ins in enumerate(insns):
        br = arch.branch(ins)
        if br is not None:
            if inside(br[0]):
                leaders.add(br[0])
            if i + 1 < len(insns):
                leaders.add(insns[i + 1].address)
    out, cur = {}, None
    for ins in insns:
        if ins.address in leaders:
            cur = ins.address
            out[cur] = []
        out[cur].append(ins)
    starts = sorted(out)
    succs = {}
    for k, s in enumerate(starts):
        br = arch.branch(out[s][-1])
        nxt = [starts[k + 1]] if k + 1 < len(starts) else []
        if br is None:
            succs[s] = nxt
        else:
            succs[s] = ([br[0]] if inside(br[0]) else []) + (nxt if br[1] else [])
    return out, succs


def solve(blks, succs, start, transfer, meet):
    """Forward data flow from the entry block; the out-state of every block."""
    entry = min(blks)
    states, outs, work, visits = {entry: start}, {}, [entry], 0
    while work and visits < _MAX_VISITS:
        visits += 1
        b = work.pop()
        out = transfer(states[b], blks[b])
        outs[b] = out
        for s in succs.get(b, []):
            new = out if s not in states else meet(states[s], out)
            if s not in states or new != states[s]:
                states[s] = new
                work.append(s)
    return outs


# -- one boundary's registers and scrubs ----------------------------------------

class Walk:
    """The mutable state ``step`` works on while it reads one block."""

    def __init__(self, ctx, state):
        self.ctx = ctx
        zeroed, self.aux, self.pending, problems = state
        self.zeroed, self.problems = set(zeroed), list(problems)

    def frozen(self):
        return (frozenset(self.zeroed), self.aux, self.pending, tuple(self.problems))


class Context:
    """One boundary being checked: the object, the function, memoized depths and
    the constants the architecture tracks in registers (shared by all paths,
    as immediates are loaded next to their use)."""

    def __init__(self, obj, f, memo):
        self.obj, self.f, self.memo = obj, f, memo
        self.consts = {}
        self.sp_copies = set()          # registers holding the stack pointer (AArch64)
        self.calls = dict(f.calls)


def on_call(walk, ins, target, depth_arg, tree):
    """A call: nothing stays zeroed; a call into the tree leaves its depth pending.

    ``depth_arg``/``tree`` describe a call of ``secretjit_secret_call``:
    the scrub depth it is passed and the function it runs on the secret stack.
    """
    walk.zeroed, walk.aux = set(), 0
    obj = walk.ctx.obj
    if target in SECRET_CALLS:
        need = depth(obj, tree, walk.ctx.memo, hot=target == SECRET_CALL_EXACT) \
            if tree else None
        if depth_arg is None or need is None or depth_arg < need:
            walk.problems.append('secret stack scrub of %s bytes at 0x%x, tree '
                                 'needs %s' % (depth_arg, ins.address, need))
        if target == SECRET_CALL_EXACT:
            walk.problems += ['exact secret call at 0x%x, but %s' % (ins.address, why)
                              for why in inexact(obj, tree, accept_marked=True)]
        walk.pending = None
    elif target is not None and not allowed(obj, target):
        walk.pending = depth(obj, target, walk.ctx.memo)


def on_scrub(walk, ins, nbytes):
    """An in-place scrub of ``nbytes`` (None: not a constant) below the stack pointer."""
    if walk.pending is not None and (nbytes is None or nbytes < walk.pending):
        walk.problems.append('in-place scrub of %s bytes at 0x%x, tree needs %d'
                             % (nbytes, ins.address, walk.pending))
    walk.pending = None


def _meet(a, b):
    pend = a[2] if b[2] is None else b[2] if a[2] is None else max(a[2], b[2])
    return (a[0] & b[0], min(a[1], b[1]), pend, tuple(sorted(set(a[3]) | set(b[3]))))


def check_boundary(obj, f, required, memo):
    """``(rets, registers missing at some ret, scrub problems)``, None if empty."""
    arch = obj.arch
    blks, succs = blocks(f, arch)
    if not blks:
        return None
    ctx = Context(obj, f, memo)

    def transfer(state, block):
        walk = Walk(ctx, state)
        for ins in block:
            arch.step(walk, ins)
        return walk.frozen()

    start = (frozenset(required), 0, None, ())        # nothing to zero before a call
    outs = solve(blks, succs, start, transfer, _meet)
    missing, problems, rets = set(), [], 0
    for b, out in outs.items():
        last = blks[b][-1]
        if not arch.is_return(last):
            continue
        rets += 1
        zeroed, _, pending, probs = out
        missing |= required - zeroed
        problems += list(probs)
        if pending is not None:
            problems.append('a path reaches ret 0x%x after a call into the tree '
                            'with no scrub' % last.address)
    return rets, sorted(missing, key=arch.register_order), sorted(set(problems))
