"""Bound how deep a kernel's call tree writes below the stack pointer.

The bound is computed from the machine code LLVM emits for the final module
(its assembly text), not from the IR: register allocation, spills, stack
realignment and libcalls only exist there.  For each function::

    depth(f) = frame(f) + max(red_zone if f is a leaf,
                              depth(g) for every g that f calls or references)

``frame(f)`` is the return address plus every decrement of the stack pointer
in ``f`` (pushes, ``sub $n, %rsp``, realignment): an upper bound on the
frame, exact for LLVM's single-prologue code.  Callees are the targets of
direct calls and tail calls, and of indirect calls through a register loaded
with a symbol's address; any other indirect call counts the unknown-callee
allowance.  A function whose address is only stored (a destructor handed to
numba's runtime, an exception unpacker the wrapper runs later) is not a
callee: destructors run inside ``NRT_MemInfo_call_dtor``, whose allowance
covers them.  Functions defined in the
module are analysed recursively; external C functions (libc, libm, numba's C
runtime) get the allowance in :data:`EXTERNAL_ALLOWANCE`, a per-function
bound whose sufficiency the calibration tests measure (see
``tests/test_stack_bound.py``).  Recursion, dynamically sized frames and
calls into the Python interpreter make the depth unbounded and are rejected
with :class:`~secretjit.errors.SecretPolicyError`.
"""

import re
from dataclasses import dataclass, field

from .errors import SecretPolicyError

# Bytes below the stack pointer that a leaf function may use without moving it.
RED_ZONE = {'x86_64': 128, 'aarch64': 0}

# Allowances for external callees, in bytes of stack they may write below the
# call site's stack pointer (return address included).  glibc's string
# functions are leaf assembly (measured: 8 bytes, the return address).
# malloc/free and libm were measured with the poisoned-stack probe on slow
# paths (mmap-sized blocks, consolidation, huge-argument reduction): at most
# 312 bytes for malloc/free and 296 for libm on glibc 2.36; the allowances give
# about 5x headroom, and tests/test_stack_bound.py re-measures them on every
# run.  numba's C runtime entries are bounded in ``secretjit.codegen``.
EXTERNAL_ALLOWANCE = {
    'memset': 256, 'memcpy': 256, 'memmove': 256, 'memcmp': 256,
    'bcmp': 256, 'strlen': 256,
    'malloc': 1536, 'free': 1536, 'calloc': 1536, 'realloc': 1536,
    'getrandom': 512, 'secretjit_libc_getrandom': 512,
    'secretjit_libc_errno_location': 64,
    '__udivti3': 256, '__umodti3': 256, '__divti3': 256, '__modti3': 256,
    '__multi3': 256, '__powidf2': 256, '__powisf2': 256,
    '__truncdfhf2': 256, '__extendhfsf2': 256, '__truncsfhf2': 256,
    # The secret arena (secretjit/csrc/arena.c): its own frames, then
    # mprotect/mlock/madvise system calls and pthread mutexes on slow paths;
    # no stdio (its one warning is formatted by hand).  Measured: at most
    # 232 bytes (alloc, carving new spans) and 72 (free); re-measured by
    # tests/test_stack_bound.py.
    'secretjit_arena_alloc': 1024, 'secretjit_arena_free': 1024,
    'secretjit_arena_realloc': 1024,
}
LIBM_ALLOWANCE = 1536
LIBM = frozenset('''
    sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2
    expm1 log log2 log10 log1p pow sqrt cbrt hypot fmod remainder erf erfc
    tgamma lgamma floor ceil trunc round rint nearbyint ldexp frexp modf copysign
    fma fmin fmax sincos exp10 nextafter'''.split())
# Anything else: numba helper functions, unknown C code, indirect calls.
DEFAULT_ALLOWANCE = 16384

# Callees that can run arbitrary Python code (and so any stack depth).
_INTERPRETER = re.compile(r'^(_?Py|numba_gil_ensure$|numba_unpickle$)')


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
    text = '.'.join(parts)
    return re.sub(r'_([0-9a-f]{2})', lambda h: chr(int(h.group(1), 16)), text)


def external_allowance(name, extra=None):
    """Stack allowance in bytes for the external function ``name``."""
    if extra and name in extra:
        return extra[name]
    base = name[:-1] if name.endswith('f') and name[:-1] in LIBM else name
    if base in LIBM:
        return LIBM_ALLOWANCE
    return EXTERNAL_ALLOWANCE.get(name, DEFAULT_ALLOWANCE)


@dataclass
class FrameInfo:
    """What the machine code of one function says about its stack use."""
    name: str
    frame: int = 8                 # return address + every SP decrement
    calls: bool = False            # makes calls (so no red zone)
    callees: set = field(default_factory=set)
    indirect: int = 0              # calls through unknown pointers
    dynamic: str = ''              # instruction that moves SP by a runtime amount


@dataclass
class StackBound:
    """Depth bound of one root function, with how it was reached."""
    root: str
    depth: int
    path: list                     # deepest chain of (function, its depth)
    externals: dict                # external callee -> allowance used


_X86_FUNC_LABEL = re.compile(r'^(?:"((?:[^"\\]|\\.)*)"|([^\s:"]+)):\s*(#.*)?$')
_X86_LOCAL = re.compile(r'^\.L|^\.$')


def _x86_symbol(op):
    """The symbol an operand like ``$foo`` / ``foo`` / ``foo@PLT`` names."""
    op = op.strip().lstrip('$')
    op = op.split('@')[0]
    if op.startswith('"') and op.endswith('"'):
        op = op[1:-1]
    return op


def _function_bodies(asm, functions, strip_comment, split_ops, indents,
                     lower=False):
    """``{name: [(mnemonic, operands), ...]}`` for the ``functions`` in ``asm``.

    A function starts at its label (a line not indented with ``indents``) and
    ends at LLVM's ``.Lfunc_end`` label; local labels inside it become
    ``(':label', [name])`` entries; directives are dropped.
    """
    bodies = {}
    cur = None
    for raw in asm.splitlines():
        stripped = strip_comment(raw).strip()
        if not stripped:
            continue
        m = _X86_FUNC_LABEL.match(stripped)
        if m and not raw.startswith(indents):
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
        ops = split_ops(parts[1]) if len(parts) > 1 else []
        cur.append((parts[0].lower() if lower else parts[0], ops))
    return bodies


def parse_x86_64(asm, functions):
    """Frame facts for every function in ``functions`` found in ``asm``.

    ``functions`` are the names defined in the module; only their bodies are
    read.  Returns ``{name: FrameInfo}``.
    """
    bodies = _function_bodies(
        asm, functions, _strip_comment,
        lambda text: [o.strip() for o in _split_ops(text)], ('\t',))
    infos = {}
    for name, body in bodies.items():
        info = infos[name] = FrameInfo(name)
        for mnem, ops, regs in _with_register_contents(body):
            _x86_step(info, mnem, ops, regs)
    return infos


_GPR64 = {}
for _r in ('ax', 'bx', 'cx', 'dx', 'si', 'di', 'bp', 'sp'):
    for _alias in ('r' + _r, 'e' + _r, _r, _r[0] + 'l' if _r[1] == 'x' else _r + 'l'):
        _GPR64['%' + _alias] = '%r' + _r
for _n in range(8, 16):
    for _suffix in ('', 'd', 'w', 'b'):
        _GPR64['%%r%d%s' % (_n, _suffix)] = '%%r%d' % _n
_CALLER_SAVED = ('%rax', '%rcx', '%rdx', '%rsi', '%rdi', '%r8', '%r9', '%r10',
                 '%r11')
_NO_EXPLICIT_WRITE = ('cmp', 'test', 'push', 'call', 'jmp', 'j', 'bt',
                      'ucomis', 'comis', 'prefetch', 'nop', 'ret')
_SIGN_EXTEND_ACC = {'cltq': '%rax', 'cwtl': '%rax', 'cbtw': '%rax',
                    'cqto': '%rdx', 'cltd': '%rdx', 'cwtd': '%rdx', 'cqo': '%rdx'}
_IMPLICIT_WRITES = ('cqto', 'cltq', 'cltd', 'cwtl', 'cqo', 'mul', 'div',
                    'idiv', 'cpuid', 'rdtsc', 'syscall', 'rep', 'stos', 'movs',
                    'lods', 'scas', 'cmps', 'xgetbv', 'lahf', 'cmpxchg', 'xadd')


def _written(mnem, ops):
    """64-bit registers an instruction may write (explicitly or implicitly)."""
    out = set()
    if mnem in _SIGN_EXTEND_ACC:             # cltq writes rax; cqto writes rdx
        out.add(_SIGN_EXTEND_ACC[mnem])
        return out
    # movslq/movsbl/movswq ... (sign-extending moves: two operands, no %es:
    # string operand) write their destination only, not rsi/rdi/rcx.
    sign_extend = mnem.startswith('movs') and len(ops) == 2 and \
        not any('%es:' in op for op in ops)
    if (mnem.startswith(_IMPLICIT_WRITES) and not sign_extend) or (
            mnem.startswith('imul') and len(ops) == 1):
        out.update(('%rax', '%rbx', '%rcx', '%rdx', '%rsi', '%rdi', '%r11'))
    if mnem.startswith('call'):
        out.update(_CALLER_SAVED)
    if ops and not mnem.startswith(_NO_EXPLICIT_WRITE):
        for op in ([ops[-1]] + ([ops[0]] if mnem.startswith(('xchg', 'xadd'))
                                else [])):
            if op in _GPR64:
                out.add(_GPR64[op])
    return out


def _with_register_contents(body):
    """Yield ``(mnem, ops, regs)``: ``regs`` maps each register that surely
    holds a function address (loaded by ``movabsq $sym``) to the symbols it
    may hold, on every path into the instruction.

    A forward data-flow pass over the function's basic blocks (labels start
    blocks; jumps and fall-through are edges), iterated to a fixed point, so
    an address hoisted into a callee-saved register before a loop is known
    inside the loop.
    """
    blocks, labels = [[]], {}
    for item in body:
        if item[0] == ':label':
            blocks.append([])
            labels[item[1][0]] = len(blocks) - 1
            continue
        blocks[-1].append(item)
        if item[0].startswith(('j', 'ret', 'ud2')):
            blocks.append([])
    succs = []
    for i, blk in enumerate(blocks):
        s = set()
        last = blk[-1] if blk else None
        ends = last is not None and last[0].startswith(('jmp', 'ret', 'ud2'))
        if not ends and i + 1 < len(blocks):
            s.add(i + 1)
        if last is not None and last[0].startswith('j') and last[1] \
                and last[1][0] in labels:
            s.add(labels[last[1][0]])
        if last is not None and last[0].startswith('jmp') and last[1] \
                and last[1][0].startswith('*'):
            # an indirect jump (a jump table): any labelled block may follow.
            # More predecessors only lose facts, so this is sound.
            s.update(labels.values())
        succs.append(s)

    def transfer(state, mnem, ops):
        copied = None
        if mnem == 'movq' and len(ops) == 2 and ops[0] in _GPR64 \
                and ops[1] in _GPR64:
            copied = state.get(_GPR64[ops[0]])         # register-to-register copy
        state = dict(state)
        for reg in _written(mnem, ops):
            state.pop(reg, None)
        if copied is not None:
            state[_GPR64[ops[1]]] = copied
        if mnem == 'movabsq' and len(ops) == 2 and _imm(ops[0]) is None \
                and ops[1] in _GPR64:
            sym = _x86_symbol(ops[0])
            if not sym.startswith('.L') or sym.startswith('.LJTI'):
                state[_GPR64[ops[1]]] = frozenset([sym])
        return state

    yield from _solve_forward(blocks, succs, transfer)


def _solve_forward(blocks, succs, transfer):
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


def _strip_comment(line):
    """``line`` without a trailing ``# comment`` (quotes respected)."""
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == '#' and not quoted:
            return line[:i]
    return line


def _split_ops(text):
    out, depth, cur, quoted = [], 0, '', False
    for c in text:
        if c == '"':
            quoted = not quoted
        if quoted:
            cur += c
            continue
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        if c == ',' and depth == 0:
            out.append(cur)
            cur = ''
        else:
            cur += c
    out.append(cur)
    return out


def _imm(op):
    try:
        return int(op.lstrip('$'), 0)
    except ValueError:
        return None


def _x86_step(info, mnem, ops, regs):
    dst = ops[-1] if ops else ''
    if mnem in ('pushq', 'pushfq', 'push'):
        info.frame += 8
        return
    if mnem.startswith('call'):
        info.calls = True
        target = ops[0] if ops else ''
        if target.startswith('*'):
            reg = target[1:]
            if reg in regs and not any(s.startswith('.L') for s in regs[reg]):
                info.callees |= regs[reg]
            else:
                info.indirect += 1
        else:
            info.callees.add(_x86_symbol(target))
        return
    if mnem.startswith('jmp'):
        target = ops[0] if ops else ''
        if target.startswith('*'):
            reg = target[1:]
            base = re.search(r'\((%[a-z0-9]+)', reg)
            if reg in regs:                       # tail call via register
                info.calls = True
                info.callees |= regs[reg]
            elif '.LJTI' in reg or (base and all(
                    s.startswith('.LJTI') for s in regs.get(base.group(1), ['']))):
                pass                              # jump table of this function
            else:
                info.calls = True
                info.indirect += 1
        elif not _X86_LOCAL.match(target):
            info.calls = True                     # tail call
            info.callees.add(_x86_symbol(target))
        return
    if dst != '%rsp' and dst != '%esp':
        return
    # The stack pointer is the destination.
    if mnem in ('subq', 'sub') and _imm(ops[0]) is not None:
        info.frame += max(_imm(ops[0]), 0)
    elif mnem in ('addq', 'add') and _imm(ops[0]) is not None:
        pass
    elif mnem in ('andq', 'and') and _imm(ops[0]) is not None:
        info.frame += -_imm(ops[0])               # realignment slack
    elif mnem in ('popq', 'pop', 'leave', 'leaveq'):
        pass
    elif mnem in ('movq', 'mov') and ops[0] == '%rbp':
        pass                                      # frame-pointer epilogue
    elif mnem.startswith('lea') and ops[0].endswith('(%rbp)'):
        pass                                      # frame-pointer epilogue
    elif mnem.startswith('lea') and ops[0].endswith('(%rsp)'):
        off = _imm(ops[0][:-len('(%rsp)')] or '0')
        if off is None:
            info.dynamic = info.dynamic or '%s %s' % (mnem, ', '.join(ops))
        elif off < 0:
            info.frame += -off
    else:
        info.dynamic = info.dynamic or '%s %s' % (mnem, ', '.join(ops))


# -- AArch64 -------------------------------------------------------------------
#
# LLVM's AArch64 assembly: ``//`` comments, ``#`` immediates, destination
# first.  Function addresses reach registers through ``movz``/``movk`` with
# ``:abs_g0_nc:``..``:abs_g3:`` relocations (the JIT's large code model),
# ``adrp`` + ``ldr :got_lo12:`` (GOT entries of external functions) or
# ``adrp`` + ``add :lo12:``; jump tables are ``adr xN, .LBB`` plus a scaled
# offset, then ``br xN``.  The return address lives in x30 (a callee that
# calls saves it with the other registers it pushes), so a frame starts at 0
# and there is no red zone (``RED_ZONE['aarch64'] == 0``).

_A64_GPR = re.compile(r'^[xw]([0-9]|[12][0-9]|30)$')
_A64_RELOC = re.compile(r'^#?:([a-z0-9_]+):(.+)$')
_A64_IMM = re.compile(r'^#(-?(?:0x[0-9a-fA-F]+|\d+))$')
_A64_EXCLUSIVE_STORE = re.compile(r'^stl?x[rp][bh]?$')
_A64_ATOMIC = re.compile(r'^(ld(add|clr|eor|set|smax|smin|umax|umin)|swp|cas)')
_A64_NO_WRITE = frozenset('''
    cmp cmn tst fcmp fcmpe ccmp ccmn fccmp fccmpe b br bl blr ret cbz cbnz tbz
    tbnz prfm prfum nop hint dmb dsb isb brk udf msr'''.split())
_A64_CALL_CLOBBERED = tuple('x%d' % i for i in range(19)) + ('x30',)
_A64_FULL = frozenset(range(4))       # movz/movk groups of a 64-bit address
# Bytes of one SVE vector / predicate at the architectural maximum
# vector length (2048 bits), for ``addvl``/``addpl`` on the stack pointer.
_SVE_VL_MAX = 256
_SVE_PL_MAX = 32


def _a64_strip_comment(line):
    """``line`` without a trailing ``// comment`` (quotes respected)."""
    quoted = False
    for i, c in enumerate(line):
        if c == '"':
            quoted = not quoted
        elif c == '/' and not quoted and line[i + 1:i + 2] == '/':
            return line[:i]
    return line


def _a64_split_ops(text):
    """Operands of one instruction: commas inside ``[]``, ``{}`` and quotes
    do not split."""
    out, depth, cur, quoted = [], 0, '', False
    for c in text:
        if c == '"':
            quoted = not quoted
        elif not quoted and c in '[{':
            depth += 1
        elif not quoted and c in ']}':
            depth -= 1
        if c == ',' and depth == 0 and not quoted:
            out.append(cur.strip())
            cur = ''
        else:
            cur += c
    out.append(cur.strip())
    return [o for o in out if o]


def _a64_reg(op):
    """``x8`` for ``x8``/``w8``; None for anything else (sp, xzr, vN, ...)."""
    return 'x' + op[1:] if _A64_GPR.match(op) else None


def _a64_symbol(op):
    op = op.strip()
    if op.startswith('"') and op.endswith('"'):
        op = op[1:-1]
    return op


def _a64_reloc(op):
    """``(kind, symbol)`` of an operand like ``#:abs_g1_nc:foo``/``:got:foo``."""
    m = _A64_RELOC.match(op.strip())
    return (m.group(1), _a64_symbol(m.group(2))) if m else (None, None)


def _a64_imm(op):
    m = _A64_IMM.match(op.strip())
    return int(m.group(1), 0) if m else None


def _a64_signed(imm):
    """A 64-bit logical immediate as a signed number (0 for None)."""
    if imm is None:
        return 0
    return imm - (1 << 64) if imm >= 1 << 63 else imm


def _a64_mem_base(op):
    """Base register of a memory operand ``[xN, ...]``, else None."""
    if not op.startswith('['):
        return None
    return op[1:].split(',')[0].split(']')[0].strip()


def _a64_writeback(ops):
    """``(base, offset)`` if the instruction updates its base register:
    pre-index ``[base, #off]!`` or post-index ``[base], #off``."""
    for i, op in enumerate(ops):
        if op.startswith('[') and op.endswith(']!'):
            inner = _a64_split_ops(op[1:-2])
            off = _a64_imm(inner[1]) if len(inner) > 1 else 0
            return inner[0], off
        if op.startswith('[') and op.endswith(']') and i + 1 < len(ops) \
                and ',' not in op and i + 1 == len(ops) - 1:
            nxt = ops[i + 1]
            return op[1:-1].strip(), _a64_imm(nxt)
    return None


def _a64_written(mnem, ops):
    """64-bit general-purpose registers an instruction may write."""
    out = set()
    if mnem == 'bl' or mnem.startswith('blr'):
        out.update(_A64_CALL_CLOBBERED)
    if mnem == 'svc':
        out.add('x0')
    wb = _a64_writeback(ops)
    if wb and _a64_reg(wb[0]):
        out.add(_a64_reg(wb[0]))
    if not ops or mnem in _A64_NO_WRITE or mnem.startswith('b.'):
        return out
    regs = [_a64_reg(o) for o in ops]
    if _A64_ATOMIC.match(mnem):
        out.update(r for r in regs if r)              # every register operand
    elif mnem.startswith('st'):
        if _A64_EXCLUSIVE_STORE.match(mnem) and regs[0]:
            out.add(regs[0])                          # the status register
    elif mnem in ('ldp', 'ldnp', 'ldpsw', 'ldxp', 'ldaxp'):
        out.update(r for r in regs[:2] if r)
    elif regs[0]:
        out.add(regs[0])
    return out


def _a64_value(state, mnem, ops):
    """What the destination of ``mnem ops`` holds: a set of symbols (complete
    addresses), of partial-address markers, or None (unknown)."""
    if len(ops) < 2:
        return None
    kind, sym = _a64_reloc(ops[1])
    src = state.get(_a64_reg(ops[1]) or '', None)
    if mnem == 'movz' and kind and kind.startswith('abs_g'):
        return frozenset([('@abs', sym, frozenset([int(kind[5])]))])
    if mnem == 'movk' and kind and kind.startswith('abs_g'):
        old = state.get(_a64_reg(ops[0]))
        if old and len(old) == 1:
            (mark,) = old
            if isinstance(mark, tuple) and mark[0] == '@abs' and mark[1] == sym:
                groups = mark[2] | {int(kind[5])}
                if groups == _A64_FULL:
                    return frozenset([sym])
                return frozenset([('@abs', sym, groups)])
        return None
    if mnem == 'adrp':
        if kind == 'got':
            return frozenset([('@gotpage', sym)])
        if kind is None:
            return frozenset([('@page', _a64_symbol(ops[1]))])
        return None
    if mnem == 'adr' and kind is None:
        return frozenset([_a64_symbol(ops[1])])
    base = _a64_mem_base(ops[1])
    if mnem == 'ldr' and base and len(ops) == 2:
        inner = _a64_split_ops(ops[1][1:-1]) if ops[1].endswith(']') else []
        if len(inner) == 2:
            kind, sym = _a64_reloc(inner[1])
            if kind == 'got_lo12' and state.get(_a64_reg(inner[0]) or '') \
                    == frozenset([('@gotpage', sym)]):
                return frozenset([sym])
        return None
    if mnem == 'add' and len(ops) >= 3:
        kind, sym = _a64_reloc(ops[2])
        if kind == 'lo12' and src == frozenset([('@page', sym)]):
            return frozenset([sym])
        # jump-table arithmetic: a local label plus a scaled table entry
        other = state.get(_a64_reg(ops[2]) or '', None)
        for labels in (src, other):
            if labels and all(isinstance(s, str) and s.startswith('.L')
                              for s in labels):
                return labels
        return None
    if mnem == 'mov' and len(ops) == 2 and ops[0].startswith('x') \
            and _a64_reg(ops[1]):
        return src
    if mnem == 'csel' and len(ops) == 4:
        a = state.get(_a64_reg(ops[1]) or '')
        b = state.get(_a64_reg(ops[2]) or '')
        if a is not None and b is not None:
            return a | b
    return None


def _a64_blocks(body):
    """Basic blocks of a function body and their successors."""
    blocks, labels = [[]], {}
    for item in body:
        if item[0] == ':label':
            blocks.append([])
            labels[item[1][0]] = len(blocks) - 1
            continue
        blocks[-1].append(item)
        mnem = item[0]
        if mnem in ('b', 'br', 'ret', 'cbz', 'cbnz', 'tbz', 'tbnz', 'brk',
                    'udf') or mnem.startswith(('b.', 'br', 'ret')):
            blocks.append([])
    succs = []
    for i, blk in enumerate(blocks):
        s = set()
        last = blk[-1] if blk else None
        mnem = last[0] if last else ''
        ends = mnem in ('b', 'br', 'ret', 'brk', 'udf') or (
            mnem.startswith(('br', 'ret')) and mnem not in ('b', 'bl'))
        if not ends and i + 1 < len(blocks):
            s.add(i + 1)
        if last is not None and (mnem in ('b', 'cbz', 'cbnz', 'tbz', 'tbnz')
                                 or mnem.startswith('b.')) and last[1]:
            target = _a64_symbol(last[1][-1])
            if target in labels:
                s.add(labels[target])
        succs.append(s)
    return blocks, succs


def _a64_with_register_contents(body):
    """Yield ``(mnem, ops, regs)`` like :func:`_with_register_contents`:
    ``regs`` maps each register that holds a symbol's address on every path
    into the instruction to the symbols it may hold (partial ``movz``/``movk``
    and ``adrp`` pages are markers, not symbols)."""
    blocks, succs = _a64_blocks(body)

    def transfer(state, mnem, ops):
        value = _a64_value(state, mnem, ops)
        new = dict(state)
        for reg in _a64_written(mnem, ops):
            new.pop(reg, None)
        dst = _a64_reg(ops[0]) if ops else None
        if value is not None and dst and dst.startswith('x') \
                and ops[0].startswith('x'):
            new[dst] = value
        return new

    yield from _solve_forward(blocks, succs, transfer)


def _a64_targets(regs, reg):
    """``('call', syms)``, ``('table', None)`` or ``('unknown', None)`` for a
    branch through ``reg``."""
    held = regs.get(_a64_reg(reg) or '')
    if held and all(isinstance(s, str) for s in held):
        if all(s.startswith('.L') for s in held):
            return 'table', None
        if not any(s.startswith('.L') for s in held):
            return 'call', set(held)
    return 'unknown', None


def _a64_step(info, mnem, ops, regs, sp_regs):
    if mnem == 'bl':
        info.calls = True
        info.callees.add(_a64_symbol(ops[0]))
        return
    if mnem.startswith('blr'):                    # blr, blraa, ...
        info.calls = True
        kind, syms = _a64_targets(regs, ops[0])
        if kind == 'call':
            info.callees |= syms
        else:
            info.indirect += 1
        return
    if mnem.startswith('br'):                     # br, braa, ...
        kind, syms = _a64_targets(regs, ops[0])
        if kind == 'table':
            return                                # jump table of this function
        info.calls = True
        if kind == 'call':
            info.callees |= syms                  # tail call via register
        else:
            info.indirect += 1
        return
    if mnem in ('b', 'cbz', 'cbnz', 'tbz', 'tbnz') or mnem.startswith('b.'):
        target = _a64_symbol(ops[-1]) if ops else ''
        if not target.startswith('.L'):
            info.calls = True                     # tail call
            info.callees.add(target)
        return
    text = '%s %s' % (mnem, ', '.join(ops))
    wb = _a64_writeback(ops)
    if wb and wb[0] in ('sp', 'wsp'):
        off = wb[1]
        if off is None:
            info.dynamic = info.dynamic or text
        elif off < 0:
            info.frame += -off                    # pre/post-index push
        return
    dst = ops[0] if ops else ''
    # Registers that hold sp minus a known amount (for realignment).
    if dst and _a64_reg(dst):
        reg = _a64_reg(dst)
        sp_regs.pop(reg, None)
        if mnem == 'mov' and len(ops) == 2 and ops[1] == 'sp':
            sp_regs[reg] = 0
        elif mnem == 'sub' and len(ops) == 3 and ops[1] == 'sp' \
                and _a64_imm(ops[2]) is not None:
            sp_regs[reg] = _a64_imm(ops[2])
    if dst not in ('sp', 'wsp') or mnem.startswith('st') or mnem in (
            'cmp', 'cmn', 'tst'):
        return
    # The stack pointer is the destination.
    src = ops[1] if len(ops) > 1 else ''
    rest = ops[2:]
    if mnem in ('sub', 'add') and src == 'sp' and rest \
            and _a64_imm(rest[0]) is not None:
        n = _a64_imm(rest[0])
        if len(rest) > 1:
            shift = re.match(r'^lsl #(\d+)$', rest[1])
            if not shift:
                info.dynamic = info.dynamic or text
                return
            n <<= int(shift.group(1))
        if mnem == 'add':
            n = -n
        info.frame += max(n, 0)
    elif mnem in ('addvl', 'addpl') and src == 'sp' and rest \
            and _a64_imm(rest[0]) is not None:
        n = _a64_imm(rest[0])
        unit = _SVE_VL_MAX if mnem == 'addvl' else _SVE_PL_MAX
        info.frame += max(-n, 0) * unit           # at the largest vector length
    elif src in ('x29', 'fp') and (mnem == 'mov' or (
            mnem in ('sub', 'add', 'addvl', 'addpl') and rest
            and _a64_imm(rest[0]) is not None)):
        pass                                      # frame-pointer epilogue
    elif mnem == 'mov' and _a64_reg(src) in sp_regs and not rest:
        info.frame += sp_regs[_a64_reg(src)]      # sp = a copy of sp - n
    elif mnem == 'and' and _a64_reg(src) in sp_regs and rest \
            and _a64_signed(_a64_imm(rest[0])) < 0:
        # realignment: sp = (sp - n) & -align
        info.frame += sp_regs[_a64_reg(src)] - _a64_signed(_a64_imm(rest[0]))
    else:
        info.dynamic = info.dynamic or text


def parse_aarch64(asm, functions):
    """Frame facts for every function in ``functions`` found in AArch64 ``asm``.

    Same contract as :func:`parse_x86_64`: ``{name: FrameInfo}``, with
    ``frame`` the sum of every stack-pointer decrement (no return address:
    ``bl`` keeps it in x30).
    """
    bodies = _function_bodies(asm, functions, _a64_strip_comment,
                              _a64_split_ops, ('\t', ' '), lower=True)
    infos = {}
    for name, body in bodies.items():
        info = infos[name] = FrameInfo(name, frame=0)
        sp_regs = {}
        for mnem, ops, regs in _a64_with_register_contents(body):
            _a64_step(info, mnem, ops, regs, sp_regs)
    return infos


PARSERS = {'x86_64': parse_x86_64, 'aarch64': parse_aarch64}


def frame_sizes(asm, functions, arch):
    """``{function: frame bytes}`` as the bound sees them, for cross-checks."""
    return {name: info.frame
            for name, info in PARSERS[arch](asm, set(functions)).items()}


# numba's C entry that runs a MemInfo's destructor (see ``destructors``).
CALL_DTOR = 'NRT_MemInfo_call_dtor'
_DTOR_NAME = re.compile(r'(^|\.)dtor\.|_dtor$')


def destructors(asm, functions):
    """The module's functions that ``NRT_MemInfo_call_dtor`` may run.

    A destructor is never called directly: its address is handed to numba's
    runtime (``NRT_MemInfo_new_varsize_dtor``, ``NRT_MemInfo_alloc_dtor``)
    and numba's C code calls it when the MemInfo dies.  The model: a call to
    ``NRT_MemInfo_call_dtor`` may run every destructor the module defines and
    references (numba names them ``.dtor.list.*``, ``.dtor.set.*``,
    ``_numba_*_dtor``), one nesting level deep; deeper nesting (a list of
    lists of lists ...) is data-dependent and left to the runtime's
    below-depth detection.
    """
    out = set()
    for name in functions:
        if not _DTOR_NAME.search(name):
            continue
        quoted = '"%s"' % name if re.search(r'[^\w.$]', name) else name
        # referenced somewhere besides its own definition (label, .type, .size)
        if asm.count(quoted) > 3 + asm.count(quoted + '-') + asm.count('-' + quoted):
            out.add(name)
    return out


def compute_bounds(asm, functions, roots, arch, data=(), extra_allowance=None,
                   indirect_allowance=None, module_name='<module>',
                   frames=None):
    """Stack depth bounds for ``roots`` from the module's assembly ``asm``.

    ``functions`` are the names the module defines and ``data`` its global
    variables (references to those are not calls); ``extra_allowance`` maps
    external names to known bounds (the secret runtime's functions).  Returns
    ``{root: StackBound}``.  A call through an unknown pointer counts
    ``indirect_allowance`` bytes; without one (the default for kernels) it is
    a ``bounded-stack`` policy error: an unknown callee gets no guessed
    allowance.  A call to ``NRT_MemInfo_call_dtor`` counts its allowance plus
    the deepest of the module's :func:`destructors`.  A dict passed as ``frames`` receives what
    :func:`frame_sizes` would return, from the same parse.
    """
    if arch not in PARSERS:
        raise NotImplementedError("no stack analysis for architecture %r" % arch)
    infos = PARSERS[arch](asm, set(functions))
    if frames is not None:
        frames.update((name, info.frame) for name, info in infos.items())
    data = set(data)
    for info in infos.values():
        info.callees -= data
    red_zone = RED_ZONE[arch]
    memo = {}
    dtors = sorted(destructors(asm, functions))

    def depth(name, chain, in_dtor=False):
        # in_dtor: below a modelled destructor call, where a nested
        # NRT_MemInfo_call_dtor counts its allowance only (see destructors)
        if (name, in_dtor) in memo:
            return memo[name, in_dtor]
        info = infos.get(name)
        if info is None:
            if name in functions:
                raise RuntimeError("function %s missing from the assembly of %s"
                                   % (name, module_name))
            if _INTERPRETER.match(name):
                raise SecretPolicyError(
                    'no-interpreter-calls',
                    "the secret call tree calls %s, which runs arbitrary Python "
                    "code on the kernel's stack (print, objmode, Python objects "
                    "or exceptions with runtime arguments)" % name,
                    "keep print() and Python objects out of secret kernels; "
                    "return values and print them outside")
            allowance = external_allowance(name, extra_allowance)
            memo[name, in_dtor] = (allowance, [(name, allowance)], {name: allowance})
            if name == CALL_DTOR and not in_dtor:
                memo[name, in_dtor] = _with_destructors(
                    allowance, [depth(d, [name], True) for d in dtors])
            return memo[name, in_dtor]
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
        below = 0 if info.calls else red_zone
        path, ext = [], {}
        if info.indirect:
            if indirect_allowance is None:
                raise SecretPolicyError(
                    'bounded-stack',
                    "%s calls through a function pointer the stack analysis "
                    "cannot resolve (a ctypes/cffi pointer, a function passed "
                    "as a value, or numba code the analysis does not follow): "
                    "its callee's stack use is unknown, so no scrub depth can "
                    "be guaranteed" % readable(name),
                    "call numba-compiled functions by name; call C code from "
                    "Python outside the secret kernel")
            below = max(below, indirect_allowance)
            path = [('<indirect call>', indirect_allowance)]
            ext['<indirect call>'] = indirect_allowance
        for callee in sorted(info.callees):
            d, p, e = depth(callee, chain + [name], in_dtor)
            ext.update(e)
            if d > below:
                below, path = d, p
        total = info.frame + below
        memo[name, in_dtor] = (total, [(name, total)] + path, ext)
        return memo[name, in_dtor]

    out = {}
    for root in roots:
        d, path, ext = depth(root, [])
        out[root] = StackBound(root, _round_up(d, 16), path, ext)
    return out


def _with_destructors(allowance, dtor_depths):
    """Depth of NRT_MemInfo_call_dtor: its own frames, then the deepest destructor."""
    ext = {CALL_DTOR: allowance}
    deepest, path = 0, []
    for d, p, e in dtor_depths:
        ext.update(e)
        if d > deepest:
            deepest, path = d, p
    total = allowance + deepest
    return total, [(CALL_DTOR, total)] + path, ext


def _round_up(n, k):
    return (n + k - 1) // k * k
