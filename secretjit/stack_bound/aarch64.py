"""AArch64 (LLVM's assembly): frames, calls and loaded addresses.

``//`` comments, ``#`` immediates, destination first.  Function addresses
reach registers through ``movz``/``movk`` with ``:abs_g0_nc:``..``:abs_g3:``
relocations (the JIT's large code model), ``adrp`` + ``ldr :got_lo12:`` (GOT
entries of external functions) or ``adrp`` + ``add :lo12:``; jump tables are
``adr xN, .LBB`` plus a scaled offset, then ``br xN``.  The return address
lives in x30 (a callee that calls saves it with the other registers it
pushes), so a frame starts at 0 and there is no red zone.
"""

import re

from ..contract import AARCH64_CALL_CLOBBERED, AARCH64_LINK
from .core import ARCHES, FrameInfo, Syntax, basic_blocks, function_bodies, \
    solve_forward, split_operands

_A64_GPR = re.compile(r'^[xw]([0-9]|[12][0-9]|30)$')
_A64_RELOC = re.compile(r'^#?:([a-z0-9_]+):(.+)$')
_A64_IMM = re.compile(r'^#(-?(?:0x[0-9a-fA-F]+|\d+))$')
_A64_EXCLUSIVE_STORE = re.compile(r'^stl?x[rp][bh]?$')
_A64_ATOMIC = re.compile(r'^(ld(add|clr|eor|set|smax|smin|umax|umin)|swp|cas)')
_A64_NO_WRITE = frozenset('''
    cmp cmn tst fcmp fcmpe ccmp ccmn fccmp fccmpe b br bl blr ret cbz cbnz tbz
    tbnz prfm prfum nop hint dmb dsb isb brk udf msr'''.split())
_A64_CALL_CLOBBERED = AARCH64_CALL_CLOBBERED + (AARCH64_LINK,)
_A64_FULL = frozenset(range(4))       # movz/movk groups of a 64-bit address
# Bytes of one SVE vector / predicate at the architectural maximum
# vector length (2048 bits), for ``addvl``/``addpl`` on the stack pointer.
_SVE_VL_MAX = 256
_SVE_PL_MAX = 32


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
            inner = split_operands(op[1:-2], '[{', ']}')
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
        inner = split_operands(ops[1][1:-1], '[{', ']}') if ops[1].endswith(']') else []
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


_BRANCHES = ('b', 'cbz', 'cbnz', 'tbz', 'tbnz')


def _splits(mnem):
    return mnem in _BRANCHES + ('br', 'ret', 'brk', 'udf') or mnem.startswith(
        ('b.', 'br', 'ret'))


def _falls_through(mnem):
    return not (mnem in ('b', 'br', 'ret', 'brk', 'udf') or (
        mnem.startswith(('br', 'ret')) and mnem not in ('b', 'bl')))


def _label_target(mnem, ops):
    if (mnem in _BRANCHES or mnem.startswith('b.')) and ops:
        return _a64_symbol(ops[-1])
    return None


def _a64_with_register_contents(body):
    """Yield ``(mnem, ops, regs)`` like the x86-64 one:
    ``regs`` maps each register that holds a symbol's address on every path
    into the instruction to the symbols it may hold (partial ``movz``/``movk``
    and ``adrp`` pages are markers, not symbols)."""
    blocks, succs = basic_blocks(body, SYNTAX)

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

    yield from solve_forward(blocks, succs, transfer)


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


def _a64_branch(info, mnem, ops, regs):
    """Calls, tail calls and jumps: True if ``mnem`` is a branch."""
    if mnem == 'bl':
        info.calls = True
        info.callees.add(_a64_symbol(ops[0]))
        return True
    if mnem.startswith('blr'):                    # blr, blraa, ...
        info.calls = True
        kind, syms = _a64_targets(regs, ops[0])
        if kind == 'call':
            info.callees |= syms
        else:
            info.indirect += 1
        return True
    if mnem.startswith('br'):                     # br, braa, ...
        kind, syms = _a64_targets(regs, ops[0])
        if kind == 'table':
            return True                           # jump table of this function
        info.calls = True
        if kind == 'call':
            info.callees |= syms                  # tail call via register
        else:
            info.indirect += 1
        return True
    if mnem in ('b', 'cbz', 'cbnz', 'tbz', 'tbnz') or mnem.startswith('b.'):
        target = _a64_symbol(ops[-1]) if ops else ''
        if not target.startswith('.L'):
            info.calls = True                     # tail call
            info.callees.add(target)
        return True
    return False


def _a64_step(info, mnem, ops, regs, sp_regs):
    if _a64_branch(info, mnem, ops, regs):
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

    Same contract as ``parse_x86_64``: ``{name: FrameInfo}``, with
    ``frame`` the sum of every stack-pointer decrement (no return address:
    ``bl`` keeps it in x30).
    """
    infos = {}
    for name, body in function_bodies(asm, functions, SYNTAX).items():
        info = infos[name] = FrameInfo(name, frame=0)
        sp_regs = {}
        for mnem, ops, regs in _a64_with_register_contents(body):
            _a64_step(info, mnem, ops, regs, sp_regs)
    return infos


SYNTAX = ARCHES['aarch64'] = Syntax(
    comment='//', opening='[{', closing=']}', indents=('\t', ' '), lower=True,
    splits=_splits, falls_through=_falls_through, label_target=_label_target,
    parse=parse_aarch64, red_zone=0)
