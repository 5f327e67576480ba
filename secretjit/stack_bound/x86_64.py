"""x86-64 (AT&T syntax, as LLVM prints it): frames, calls and loaded addresses.

``frame(f)`` is the return address plus every decrement of ``%rsp`` (pushes,
``sub $n, %rsp``, realignment with ``and``); function addresses reach
registers through ``movabsq $sym`` (the JIT's large code model) and are
followed through register copies.  A leaf may use the 128-byte red zone
below ``%rsp``; one that provably does not (:func:`below_sp`: no memory
operand below ``%rsp`` and no copy of it) is bounded without it.
"""

import re

from ..contract import X86_64_CALL_CLOBBERED
from .core import ARCHES, FrameInfo, Syntax, basic_blocks, function_bodies, \
    solve_forward

_LOCAL = re.compile(r'^\.L|^\.$')


def _symbol(op):
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
    infos = {}
    for name, body in function_bodies(asm, functions, SYNTAX).items():
        info = infos[name] = FrameInfo(name)
        for mnem, ops, regs in _with_register_contents(body):
            _step(info, mnem, ops, regs)
    return infos


_GPR64 = {}
for _r in ('ax', 'bx', 'cx', 'dx', 'si', 'di', 'bp', 'sp'):
    for _alias in ('r' + _r, 'e' + _r, _r, _r[0] + 'l' if _r[1] == 'x' else _r + 'l'):
        _GPR64['%' + _alias] = '%r' + _r
for _n in range(8, 16):
    for _suffix in ('', 'd', 'w', 'b'):
        _GPR64['%%r%d%s' % (_n, _suffix)] = '%%r%d' % _n
_CALLER_SAVED = tuple('%' + r for r in X86_64_CALL_CLOBBERED)
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
    if mnem.startswith('xchg') and len(ops) == 2 and ops[0] == ops[1]:
        # xchgq %rbx, %rbx: a no-op on the CPU, valgrind's client-request
        # marker (ctcheck), whose result valgrind writes to rdx
        return {'%rdx'}
    if len(ops) == 1 and mnem.startswith(('div', 'idiv', 'mul', 'imul')) \
            and not mnem.startswith('mulx'):
        # one-operand divide/multiply: rdx:rax only (the constant-time
        # hardening keeps idivq without its divl bypass, in loops too)
        return {'%rax', '%rdx'}
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


def _transfer(state, mnem, ops):
    """Which registers hold which function addresses after ``mnem ops``."""
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
        sym = _symbol(ops[0])
        if not sym.startswith('.L') or sym.startswith('.LJTI'):
            state[_GPR64[ops[1]]] = frozenset([sym])
    return state


def _with_register_contents(body):
    """Yield ``(mnem, ops, regs)``: ``regs`` maps each register that surely
    holds a function address (loaded by ``movabsq $sym``) to the symbols it
    may hold, on every path into the instruction.

    A forward data-flow pass over the function's basic blocks (labels start
    blocks; jumps and fall-through are edges), iterated to a fixed point, so
    an address hoisted into a callee-saved register before a loop is known
    inside the loop.
    """
    blocks, succs = basic_blocks(body, SYNTAX)
    yield from solve_forward(blocks, succs, _transfer)


def _imm(op):
    try:
        return int(op.lstrip('$'), 0)
    except ValueError:
        return None


_SP = frozenset(('%rsp', '%esp', '%sp', '%spl'))
_SP_MEMORY = re.compile(r'^(.*)\(%rsp(,[^)]*)?\)$')


def below_sp(mnem, ops):
    """Whether an instruction may reach memory below ``%rsp`` (the red
    zone): a memory operand off ``%rsp`` with a negative, symbolic or
    indexed displacement, ``%rsp``'s address or value copied into another
    register (from where it could be offset down), or ``%rsp`` read in any
    other way.  Instructions that only move ``%rsp`` (``sub $n, %rsp``,
    ``lea -n(%rsp), %rsp``...; :func:`_step` counts them in the frame) and
    the implicit stack accesses of push, pop, call and ret do not count.
    False means the function's stores stay at or above ``%rsp``, so as a
    leaf it needs no red zone in its bound; True (the safe answer) keeps
    the 128 bytes."""
    if not ops or (ops[-1] in _SP and not mnem.startswith('push')):
        return False                    # moves sp: the frame accounting's case
    for op in ops:
        if op in _SP:
            return True                 # sp read or copied
        m = _SP_MEMORY.match(op.strip())
        if m is None:
            if '%rsp' in op or '%esp' in op:
                return True             # an unrecognised form: fail closed
            continue
        disp, index = m.group(1).strip(), m.group(2)
        off = _imm(disp or '0')
        if index or off is None or off < 0 or mnem.startswith('lea'):
            return True
    return False


def _step(info, mnem, ops, regs):
    dst = ops[-1] if ops else ''
    if not info.below_sp and below_sp(mnem, ops):
        info.below_sp = '%s %s' % (mnem, ', '.join(ops))
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
            info.callees.add(_symbol(target))
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
        elif not _LOCAL.match(target):
            info.calls = True                     # tail call
            info.callees.add(_symbol(target))
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


SYNTAX = ARCHES['x86_64'] = Syntax(
    comment='#', opening='(', closing=')', indents=('\t',), lower=False,
    splits=lambda mnem: mnem.startswith(('j', 'ret', 'ud2')),
    falls_through=lambda mnem: not mnem.startswith(('jmp', 'ret', 'ud2')),
    label_target=lambda mnem, ops: ops[0] if mnem.startswith('j') and ops else None,
    # an indirect jump (a jump table): any labelled block may follow.
    indirect_jump=lambda mnem, ops: mnem.startswith('jmp') and bool(ops)
    and ops[0].startswith('*'),
    parse=parse_x86_64, red_zone=128)
