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
    'getrandom': 512,
    '__udivti3': 256, '__umodti3': 256, '__divti3': 256, '__modti3': 256,
    '__multi3': 256, '__powidf2': 256, '__powisf2': 256,
    '__truncdfhf2': 256, '__extendhfsf2': 256, '__truncsfhf2': 256,
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


def parse_x86_64(asm, functions):
    """Frame facts for every function in ``functions`` found in ``asm``.

    ``functions`` are the names defined in the module; only their bodies are
    read.  Returns ``{name: FrameInfo}``.
    """
    bodies = {}
    cur = None
    for raw in asm.splitlines():
        stripped = _strip_comment(raw).strip()
        if not stripped:
            continue
        m = _X86_FUNC_LABEL.match(stripped)
        if m and not raw.startswith('\t'):
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
        ops = [o.strip() for o in _split_ops(parts[1])] if len(parts) > 1 else []
        cur.append((parts[0], ops))
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
_IMPLICIT_WRITES = ('cqto', 'cltq', 'cltd', 'cwtl', 'cqo', 'mul', 'div',
                    'idiv', 'cpuid', 'rdtsc', 'syscall', 'rep', 'stos', 'movs',
                    'lods', 'scas', 'cmps', 'xgetbv', 'lahf', 'cmpxchg', 'xadd')


def _written(mnem, ops):
    """64-bit registers an instruction may write (explicitly or implicitly)."""
    out = set()
    if mnem.startswith(_IMPLICIT_WRITES) or (mnem.startswith('imul')
                                            and len(ops) == 1):
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
        succs.append(s)

    def transfer(state, mnem, ops):
        state = dict(state)
        for reg in _written(mnem, ops):
            state.pop(reg, None)
        if mnem == 'movabsq' and len(ops) == 2 and _imm(ops[0]) is None \
                and ops[1] in _GPR64:
            sym = _x86_symbol(ops[0])
            if not sym.startswith('.L') or sym.startswith('.LJTI'):
                state[_GPR64[ops[1]]] = frozenset([sym])
        return state

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


PARSERS = {'x86_64': parse_x86_64}


def compute_bounds(asm, functions, roots, arch, data=(), extra_allowance=None,
                   indirect_allowance=DEFAULT_ALLOWANCE, module_name='<module>'):
    """Stack depth bounds for ``roots`` from the module's assembly ``asm``.

    ``functions`` are the names the module defines and ``data`` its global
    variables (references to those are not calls); ``extra_allowance`` maps
    external names to known bounds (the secret runtime's functions).  Returns
    ``{root: StackBound}``.  A call through an unknown pointer counts
    ``indirect_allowance`` bytes.
    """
    if arch not in PARSERS:
        raise NotImplementedError("no stack analysis for architecture %r" % arch)
    infos = PARSERS[arch](asm, set(functions))
    data = set(data)
    for info in infos.values():
        info.callees -= data
    red_zone = RED_ZONE[arch]
    memo = {}

    def depth(name, chain):
        if name in memo:
            return memo[name]
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
            memo[name] = (allowance, [(name, allowance)], {name: allowance})
            return memo[name]
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
            below = max(below, indirect_allowance)
            path = [('<indirect call>', indirect_allowance)]
            ext['<indirect call>'] = indirect_allowance
        for callee in sorted(info.callees):
            d, p, e = depth(callee, chain + [name])
            ext.update(e)
            if d > below:
                below, path = d, p
        total = info.frame + below
        memo[name] = (total, [(name, total)] + path, ext)
        return memo[name]

    out = {}
    for root in roots:
        d, path, ext = depth(root, [])
        out[root] = StackBound(root, _round_up(d, 16), path, ext)
    return out


def _round_up(n, k):
    return (n + k - 1) // k * k
