"""The target-independent part of the stack bound: bodies, CFG, data flow, depths.

Each architecture module (:mod:`.x86_64`, :mod:`.aarch64`) describes its
assembly syntax with a :class:`Syntax` (comment marker, operand brackets,
which instructions end a basic block and where they branch) and its
instruction semantics (how an instruction moves the stack pointer, which
registers it writes, which function addresses it loads); this module reads
function bodies, builds basic blocks, runs the forward data flow and turns
frames and call graphs into depths (:func:`compute_bounds`).
"""

import re
from dataclasses import dataclass, field
from typing import Callable

from ..errors import SecretPolicyError
from .allowances import RUNS_PYTHON, known_allowance
from .destructors import CALL_DTOR, destructors, with_destructors
from .unknown import unknown_callee

# Callees that can run arbitrary Python code (and so any stack depth).
_INTERPRETER = re.compile(r'^(_?Py|numba_gil_ensure$|numba_unpickle$)')
_FUNC_LABEL = re.compile(r'^(?:"((?:[^"\\]|\\.)*)"|([^\s:"]+)):\s*(#.*)?$')


def readable(name):
    """``pkg.mod.func`` for a numba-mangled symbol; other names unchanged."""
    for prefix, what in (('__secretjit.thunk.', 'secret stack entry of %s'),
                         ('__secretjit.boundary.', 'boundary of %s')):
        if name.startswith(prefix):
            return what % readable(name[len(prefix):])
    m = re.match(r'^(?:cpython\.|cfunc\.)?_ZN(.*)$', name)
    if not m:
        return name
    rest, parts = m.group(1), []
    while rest and rest[0].isdigit():
        n = re.match(r'\d+', rest).group(0)
        start = len(n)
        parts.append(rest[start:start + int(n)])
        rest = rest[start + int(n):]
    if not parts:
        return name
    # numba's mangler (numba/core/itanium_mangler.py) writes every byte of
    # the UTF-8 encoding of a character outside [a-zA-Z0-9_] as ``_xx`` and
    # leaves ``_`` itself alone, so ``_ca`` in ``use_cases`` is text.  Decode
    # a run of ``_xx`` only where it is such an escape: an ASCII character
    # the mangler escapes, or a complete UTF-8 sequence of a non-ASCII
    # character that may appear in a Python identifier.  (The mangling is
    # not one-to-one: an identifier spelled ``x_3c`` still reads as ``x<``.)
    def unescape(run):
        text = run.group(0)
        raw = bytes.fromhex(text.replace('_', ''))
        out, i = [], 0
        while i < len(raw):
            lead = raw[i]
            if lead < 0x80:         # the mangler leaves [a-zA-Z0-9_] as is
                n = 0 if re.match(b'[a-zA-Z0-9_]', raw[i:i + 1]) else 1
            else:                   # UTF-8 lead byte -> sequence length
                n = next((k for k, top in ((2, 0xdf), (3, 0xef), (4, 0xf4))
                          if 0xc2 <= lead <= top), 0)
            try:
                ch = raw[i:i + n].decode('utf-8') if n else ''
            except UnicodeDecodeError:
                ch = ''
            # A non-ASCII character came from a Python identifier.
            if len(ch) == 1 and len(raw[i:i + n]) == n and (
                    n == 1 or ('a' + ch).isidentifier()):
                out.append(ch)
                i += n
            else:
                out.append(text[3 * i:3 * i + 3])
                i += 1
        return ''.join(out)
    return re.sub(r'(?:_[0-9a-f]{2})+', unescape, '.'.join(parts))


@dataclass
class FrameInfo:
    """What the machine code of one function says about its stack use."""
    name: str
    frame: int = 8                 # return address + every SP decrement
    calls: bool = False            # makes calls (so no red zone)
    callees: set = field(default_factory=set)
    indirect: int = 0              # calls through unknown pointers
    dynamic: str = ''              # instruction that moves SP by a runtime amount
    below_sp: str = ''             # first instruction that may reach below SP
                                   # (a leaf's red zone; '' = provably none)


class MarkedDepth(int):
    """The depth of a secret-runtime entry bounded from machine code except
    for C library calls that are marked at run time (issue 15): every such
    call below it goes through a wrapper that sets the thread's
    ``secretjit__inexact`` first (``secretjit/csrc/marked.h``, proved by
    :func:`.native.marking_problems`).  A tree whose every external is one
    of these may take the exact secret entry, which checks the frame window
    (like the plain entry) exactly when a marked call ran.

    An ``int``: arithmetic on it gives a plain ``int``, so a depth derived
    from one is not marked unless it is made one again (fail closed).

    ``hot``: the depth with everything below a marking function left out
    (at most the depth; the depth itself where not given).  Valid only for
    the exact entry, which scrubs the process's marked slack
    (``secretjit_set_marked_slack``) more when a marked call ran."""

    def __new__(cls, depth, hot=None):
        self = super().__new__(cls, depth)
        self.hot = int(depth) if hot is None else min(int(hot), int(depth))
        return self

    def __repr__(self):
        return 'MarkedDepth(%d, hot=%d)' % (self, self.hot)

    def __reduce__(self):
        return (MarkedDepth, (int(self), self.hot))


def hot_depth(depth):
    """``depth``'s hot part (:class:`MarkedDepth`), else ``depth`` itself."""
    return depth.hot if isinstance(depth, MarkedDepth) else depth


@dataclass
class StackBound:
    """Depth bound of one root function, with how it was reached."""
    root: str
    depth: int
    path: list                     # deepest chain of (function, its depth)
    externals: dict                # external callee -> allowance used
    hot: int = None                # the depth with every MarkedDepth external
                                   # at its hot part (None: the depth)

    def __post_init__(self):
        if self.hot is None:
            self.hot = self.depth

    @property
    def marked(self):
        """The externals whose depth is a :class:`MarkedDepth`."""
        return frozenset(n for n, d in self.externals.items()
                         if isinstance(d, MarkedDepth))



@dataclass(frozen=True)
class Syntax:
    """How one architecture's LLVM assembly is written."""
    comment: str                    # start of a line comment: '#' or '//'
    opening: str                    # brackets inside which ',' does not split
    closing: str
    indents: tuple                  # how instruction lines start
    lower: bool                     # lower-case mnemonics
    splits: Callable                # mnem -> the instruction ends its block
    falls_through: Callable         # mnem -> the next block may follow
    label_target: Callable          # (mnem, ops) -> label it may jump to, or None
    indirect_jump: Callable = lambda mnem, ops: False   # jumps through a table
    parse: Callable = None          # (asm, functions) -> {name: FrameInfo}
    red_zone: int = 0               # bytes a leaf may use below sp


def strip_comment(line, marker):
    """``line`` without a trailing comment starting with ``marker`` (quotes
    respected)."""
    first = marker[0]
    if first not in line:
        return line
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == first and not quoted and line.startswith(marker, i):
            return line[:i]
    return line


def split_operands(text, opening, closing):
    """Operands of one instruction: commas inside brackets and quotes do not
    split; operands come stripped, empty ones dropped."""
    if '"' not in text and not any(c in text for c in opening):
        return [o for o in (p.strip() for p in text.split(',')) if o]
    out, depth, cur, quoted = [], 0, '', False
    for c in text:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in opening:
            depth += 1
        elif not quoted and c in closing:
            depth -= 1
        if c == ',' and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ''
        else:
            cur += c
    out.append(cur.strip())
    return [o for o in out if o]


def function_bodies(asm, functions, syntax):
    """``{name: [(mnemonic, operands), ...]}`` for the ``functions`` in ``asm``.

    A function starts at its label (a line not indented with
    ``syntax.indents``) and ends at LLVM's ``.Lfunc_end`` label; local labels
    inside it become ``(':label', [name])`` entries; directives are dropped.
    """
    bodies = {}
    cur = None
    for raw in asm.splitlines():
        stripped = strip_comment(raw, syntax.comment).strip()
        if not stripped:
            continue
        m = _FUNC_LABEL.match(stripped)
        if m and not raw.startswith(syntax.indents):
            name = m.group(1) if m.group(1) is not None else m.group(2)
            if name in functions:
                cur = bodies[name] = []
                continue
            if name.startswith('.Lfunc_end'):
                cur = None
                continue
            if cur is not None:
                cur.append((':label', [name]))
            continue
        if cur is None or stripped.startswith('.'):
            continue
        parts = stripped.split(None, 1)
        ops = split_operands(parts[1], syntax.opening, syntax.closing) \
            if len(parts) > 1 else []
        cur.append((parts[0].lower() if syntax.lower else parts[0], ops))
    return bodies


def basic_blocks(body, syntax):
    """``(blocks, succs)``: a body's basic blocks and each one's successors."""
    blocks, labels = [[]], {}
    for item in body:
        if item[0] == ':label':
            blocks.append([])
            labels[item[1][0]] = len(blocks) - 1
            continue
        blocks[-1].append(item)
        if syntax.splits(item[0]):
            blocks.append([])
    succs = []
    for i, blk in enumerate(blocks):
        s = set()
        last = blk[-1] if blk else None
        if (last is None or syntax.falls_through(last[0])) and i + 1 < len(blocks):
            s.add(i + 1)
        target = syntax.label_target(*last) if last is not None else None
        if target in labels:
            s.add(labels[target])
        if last is not None and syntax.indirect_jump(*last):
            # More predecessors only lose facts, so this is sound.
            s.update(labels.values())
        succs.append(s)
    return blocks, succs


def solve_forward(blocks, succs, transfer):
    """Forward "which registers hold which function addresses" data flow.

    ``blocks`` are lists of ``(mnem, ops)``, ``succs[i]`` the successors of
    block ``i`` (block 0 is the entry), ``transfer(state, mnem, ops)`` the
    effect of one instruction on ``{register: frozenset(symbols)}``.  Iterates
    to a fixed point (a register is known at a join only if every predecessor
    knows it), then yields ``(mnem, ops, state before the instruction)``.
    """
    def join(a, b):
        if a is None:
            return b
        return {r: a[r] | b[r] for r in a.keys() & b.keys()}

    entry = [None] * len(blocks)
    entry[0] = {}
    work = [0]
    while work:
        i = work.pop()
        state = entry[i]
        for mnem, ops in blocks[i]:
            state = transfer(state, mnem, ops)
        for j in succs[i]:
            new = join(entry[j], state)
            if new != entry[j]:
                entry[j] = new
                work.append(j)
    for i, blk in enumerate(blocks):
        state = entry[i] if entry[i] is not None else {}
        for mnem, ops in blk:
            yield mnem, ops, state
            state = transfer(state, mnem, ops)


def compute_bounds(asm, functions, roots, arch, data=(), extra_allowance=None,
                   indirect_allowance=None, module_name='<module>',
                   frames=None, ir_text=None, cut=None):
    """Stack depth bounds for ``roots`` from the module's assembly ``asm``.

    ``functions`` are the names the module defines and ``data`` its global
    variables (references to those are not calls); ``extra_allowance`` maps
    external names to known bounds (the secret runtime's functions).  Returns
    ``{root: StackBound}``.  A call through an unknown pointer counts
    ``indirect_allowance`` bytes; without one (the default for kernels) it is
    a ``bounded-stack`` policy error: an unknown callee gets no guessed
    allowance.  A call to ``NRT_MemInfo_call_dtor`` counts its allowance plus
    the deepest of the module's :func:`destructors` (found also from the
    module's IR, ``ir_text``, where given).  A dict passed as ``frames`` receives
    ``{function: frame bytes}``, from the same parse.

    Each bound's ``hot`` is its depth with every :class:`MarkedDepth`
    allowance at its hot part, and with the functions of ``cut`` (``{name:
    bytes}``: the marking functions of a runtime, at their return address)
    counted as that many bytes, nothing below them.
    """
    if arch not in ARCHES:
        raise NotImplementedError("no stack analysis for architecture %r" % arch)
    infos = ARCHES[arch].parse(asm, set(functions))
    if frames is not None:
        frames.update((name, info.frame) for name, info in infos.items())
    data = set(data)
    for info in infos.values():
        info.callees -= data
    dtors = sorted(destructors(asm, functions, ir_text))
    depths = _Depths(infos, functions, ARCHES[arch].red_zone, extra_allowance,
                     indirect_allowance, module_name, dtors)
    hot_extra = {n: hot_depth(d) for n, d in (extra_allowance or {}).items()}
    hot = depths if not cut and hot_extra == (extra_allowance or {}) else _Depths(
        infos, functions, ARCHES[arch].red_zone, hot_extra, indirect_allowance,
        module_name, dtors, cut)
    out = {}
    for root in roots:
        d, path, ext = depths.of(root, [])
        out[root] = StackBound(root, _round_up(d, 16), path, ext,
                               _round_up(hot.of(root, [])[0], 16))
    return out


class _Depths:
    """``depth(f) = frame(f) + max(red zone if leaf, depth(callees))``, memoized.

    Each result is ``(depth, deepest path [(function, depth)], {external:
    allowance used})``.
    """

    def __init__(self, infos, functions, red_zone, extra_allowance,
                 indirect_allowance, module_name, dtors=(), cut=None):
        self.infos, self.functions, self.red_zone = infos, functions, red_zone
        self.extra, self.indirect = extra_allowance, indirect_allowance
        self.module_name = module_name
        self.dtors = dtors
        self.cut = cut or {}
        self.memo = {}

    def of(self, name, chain, in_dtor=False):
        # in_dtor: below a modelled destructor call, where a nested
        # NRT_MemInfo_call_dtor counts its allowance only (see .destructors)
        if name in self.cut:
            return self.cut[name], [(name, self.cut[name])], {}
        key = (name, in_dtor)
        if key not in self.memo:
            info = self.infos.get(name)
            self.memo[key] = self.external(name, in_dtor, chain) if info is None \
                else self.defined(info, chain, in_dtor)
        return self.memo[key]

    def external(self, name, in_dtor=False, chain=()):
        """A function outside the module: its measured allowance, or a
        ``bounded-stack`` error (an unknown callee gets no guessed one)."""
        if name in self.functions:
            raise RuntimeError("function %s missing from the assembly of %s"
                               % (name, self.module_name))
        if _INTERPRETER.match(name) or name in RUNS_PYTHON:
            raise SecretPolicyError(
                'no-interpreter-calls',
                "the secret call tree calls %s, which runs arbitrary Python "
                "code on the kernel's stack (print, objmode, Python objects, "
                "exceptions with runtime arguments, or numba's random state, "
                "seeded with os.urandom() through the interpreter)" % name,
                "keep print(), np.random and Python objects out of secret "
                "kernels; return values and print them outside")
        allowance = known_allowance(name, self.extra)
        if allowance is None:
            raise unknown_callee(name, [readable(n) for n in chain])
        if name == CALL_DTOR and not in_dtor:
            return with_destructors(
                allowance, [self.of(d, [name], True) for d in self.dtors])
        return allowance, [(name, allowance)], {name: allowance}

    def defined(self, info, chain, in_dtor=False):
        """A function of the module: its frame plus its deepest callee."""
        name = info.name
        if name in chain:
            cycle = ' -> '.join(readable(n) for n in chain[chain.index(name):] + [name])
            raise SecretPolicyError(
                'bounded-stack',
                "recursion in a secret kernel (%s): its stack depth has no "
                "static bound, so the stack could not be scrubbed exactly" % cycle,
                "rewrite the recursion as a loop")
        if info.dynamic:
            raise SecretPolicyError(
                'bounded-stack',
                "%s moves the stack pointer by a runtime amount (%s), so its "
                "frame has no static bound" % (name, info.dynamic),
                "avoid variable-sized stack allocations in secret kernels")
        below = 0 if info.calls or not info.below_sp else self.red_zone
        path, ext = [], {}
        if info.indirect:                 # calls through unknown pointers
            if self.indirect is None:
                raise SecretPolicyError(
                    'bounded-stack',
                    "%s calls through a function pointer the stack analysis "
                    "cannot resolve (a ctypes/cffi pointer, a function passed "
                    "as a value, or numba code the analysis does not follow): "
                    "its callee's stack use is unknown, so no scrub depth can "
                    "be guaranteed" % readable(name),
                    "call numba-compiled functions by name; call C code from "
                    "Python outside the secret kernel")
            below = max(below, self.indirect)
            path = [('<indirect call>', self.indirect)]
            ext['<indirect call>'] = self.indirect
        for callee in sorted(info.callees):
            d, p, e = self.of(callee, chain + [name], in_dtor)
            ext.update(e)
            if d > below:
                below, path = d, p
        total = info.frame + below
        return total, [(name, total)] + path, ext


def _round_up(n, k):
    return (n + k - 1) // k * k


# Architecture name -> its Syntax (filled in by the architecture modules).
ARCHES = {}
