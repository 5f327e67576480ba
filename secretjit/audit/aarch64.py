"""AArch64: frames, calls, PLT stubs, zeroing idioms and scrubs (capstone's ARM64 mode).

Frames: the return address lives in x30, so a frame starts at 0 and there is
no red zone; the stack pointer moves by ``sub sp, sp, #N`` (``lsl #12``
too), pre-indexed stores ``stp x29, x30, [sp, #-N]!``, ``addvl sp, sp, #-k``
(k vectors at the architectural maximum of 256 bytes) and realignment
(``sub xR, sp, #N`` + ``and sp, xR, #-A``); ``sub sp, sp, xR`` is a dynamic
frame the audit cannot bound.  Function addresses reach registers through
``adrp`` + ``add`` (libraries), ``adrp`` + ``ldr`` of a GOT slot, or
``movz``/``movk`` with relocations (the JIT's large code model).

The boundary passes the tree (x0) and the scrub depth (w2) to
``secretjit_secret_call``; the in-place scrub is the loop
``mov x9, sp; sub x10, x9, xD; ...; stp xzr, xzr, [x10], #16`` inline (JIT)
or in ``secretjit_aot_scrub`` (AOT, depth in x0).

Registers (the contract): x1-x18 and v0-v7, v16-v31 zeroed after the last
call.  v8-v15 are callee-saved in their low 64 bits; their high bits are the
tree's to clear: every function that writes one of them with a 128-bit (or
SVE) write must write it again with a 64-bit or narrower write (restoring
d8-d15 does) on every path to its ``ret``.  SVE: an Advanced SIMD write to vN
zeroes zN above bit 128, so zeroing v0-v31 zeroes z0-z31 (reported under the
v names).  The predicates p0-p15 (and FFR) can only be checked where the
code itself uses SVE: then the boundary must zero every pN (``pfalse``).
Code compiled without SVE (AOT libraries, JIT on CPUs without it) never
writes them; libc's SVE routines may, which the AOT exports clear at run
time with ``secretjit_aot_clear_vregs`` (not checked here).
"""

import re

from .. import contract, stack_bound
from . import core

_REG, _IMM, _MEM = 1, 2, 3             # capstone ARM64_OP_REG, _IMM, _MEM
_JUMP, _CALL, _RET = 1, 2, 3           # capstone groups
_ALIASES = {'fp': 'x29', 'lr': 'x30', 'wzr': 'xzr', 'wsp': 'sp'}
_SVE_VL_MAX = 256
_SVE_ZERO = re.compile(r'^z\d+\.[bhsdq], #0(x0)?$')
_HIGH_NAMED = re.compile(r'\b[bhsdqvz](8|9|1[0-5])\b')
_ADDRESSING = frozenset(('mov', 'movz', 'movk', 'adrp', 'add', 'ldr'))
_MOVES_SP = frozenset(('sub', 'addvl', 'and', 'mov'))
_HIGH_HALF = tuple(int(r[1:]) for r in contract.AARCH64_CALLEE_SAVED_VECTORS)


def canon(reg):
    """The contract's name of a register: w5 -> x5; b/h/s/d/q/v/z 3 -> v3."""
    reg = _ALIASES.get(reg, reg)
    if reg[0] in 'wx' and reg[1:].isdigit():
        return 'x' + reg[1:]
    if reg[0] in 'bhsdqvz' and reg[1:].isdigit():
        return 'v' + reg[1:]
    return reg


def _regs(ins):
    return [ins.reg_name(o.reg) for o in ins.operands if o.type == _REG]


def written(ins):
    """Registers (capstone's names) ``ins`` writes; capstone 5 lists none for
    SVE instructions, whose first operand is then the destination."""
    out = [ins.reg_name(r) for r in ins.regs_access()[1]]
    ops = ins.operands
    if ops and ops[0].type == _REG and not ins.mnemonic.startswith(('st', 'prf')):
        first = ins.reg_name(ops[0].reg)
        if first[0] in 'zp' and first[1:].isdigit() and first not in out:
            out.append(first)
    return out


def _imm_zero(op):
    return op.type == _IMM and op.imm == 0


def zeroes(ins):
    """Registers ``ins`` sets to zero (the idioms LLVM's zero-call-used-regs emits)."""
    m, ops, regs = ins.mnemonic, ins.operands, _regs(ins)
    if not ops or ops[0].type != _REG:
        return set()
    dst = canon(regs[0])
    if m in ('mov', 'movz', 'movi', 'fmov', 'dup') and len(ops) == 2 and (
            _imm_zero(ops[1]) or (ops[1].type == _REG and canon(regs[1]) == 'xzr')):
        return {dst}
    if m == 'eor' and len(regs) == 3 and regs[1] == regs[2]:
        return {dst}
    if m == 'pfalse':
        return {regs[0]}
    if m in ('mov', 'dup') and _SVE_ZERO.match(ins.op_str):
        return {dst}                # capstone 5 gives SVE immediates no operand
    return set()


class AArch64(core.Arch):
    @staticmethod
    def register_order(reg):
        return (reg[0], int(reg[1:]) if reg[1:].isdigit() else -1, reg)

    def disassembler(self, capstone):
        return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)

    # -- reading ---------------------------------------------------------------

    def read_plt(self, obj):
        """PLT stubs: ``adrp x16, page; ldr x17, [x16, #lo]; add; br x17``."""
        sec = obj.elf.get_section_by_name('.plt')
        if sec is None:
            return
        page = {}
        for ins in obj.cs.disasm(sec.data(), sec['sh_addr']):
            if ins.mnemonic == 'adrp':
                page[ins.reg_name(ins.operands[0].reg)] = (ins.address, ins.operands[1].imm)
            elif ins.mnemonic == 'ldr' and ins.operands[1].type == _MEM:
                base = ins.reg_name(ins.operands[1].mem.base)
                if base in page:
                    start, p = page.pop(base)
                    sym = obj.relocs.get((0, p + ins.operands[1].mem.disp))
                    if sym:
                        obj.plt[start] = sym

    def _address(self, obj, f, ins, names, pages):
        """Track symbol addresses in registers (``names``: reg -> symbol)."""
        m = ins.mnemonic
        if m not in _ADDRESSING:
            return False
        ops = ins.operands
        dst = canon(ins.reg_name(ops[0].reg)) if ops and ops[0].type == _REG else None
        reloc = obj.relocs.get((f.section, ins.address)) if obj.relocatable else None
        if reloc and dst and m in ('mov', 'movz', 'movk', 'adrp', 'add', 'ldr'):
            names[dst] = reloc
            return True
        if m == 'adrp' and not obj.relocatable:
            pages[dst] = ops[1].imm
            return True
        if m in ('add', 'ldr') and not obj.relocatable and len(ops) >= 2:
            base = ins.reg_name(ops[1].mem.base if ops[1].type == _MEM else ops[1].reg)
            if canon(base) in pages:
                lo = ops[1].mem.disp if ops[1].type == _MEM else (
                    ops[2].imm if len(ops) > 2 and ops[2].type == _IMM else None)
                if lo is not None:
                    addr = pages[canon(base)] + lo
                    name = obj.by_addr.get((0, addr)) if m == 'add' else \
                        obj.relocs.get((0, addr))
                    if name:
                        names[dst] = name
                        return True
        if m == 'mov' and len(ops) == 2 and ops[1].type == _REG and \
                canon(ins.reg_name(ops[1].reg)) in names:
            names[dst] = names[canon(ins.reg_name(ops[1].reg))]
            return True
        return False

    def _frame(self, f, ins, sp_rel):
        """Add what ``ins`` moves the stack pointer down by to ``f.frame``."""
        m = ins.mnemonic
        if f.frame is None or m not in _MOVES_SP and not (m.startswith('st') and
                                                          '!' in ins.op_str):
            return
        ops, regs = ins.operands, [canon(r) for r in _regs(ins)]
        if m.startswith('st'):                      # pre-indexed: [sp, #-N]!
            f.frame += max([-o.mem.disp for o in ops if o.type == _MEM and
                            canon(ins.reg_name(o.mem.base)) == 'sp'] + [0])
        elif m == 'sub' and len(regs) >= 2 and regs[1] == 'sp':
            if ops[2].type == _IMM:
                n = ops[2].imm << (ops[2].shift.value if ops[2].shift.type else 0)
                if regs[0] == 'sp':
                    f.frame += n
                else:
                    sp_rel[regs[0]] = n
            elif regs[0] == 'sp':
                f.frame = None                      # sub sp, sp, xR: dynamic
        elif m == 'addvl' and regs[:2] == ['sp', 'sp'] and ops[2].imm < 0:
            f.frame += -ops[2].imm * _SVE_VL_MAX
        elif m == 'and' and len(regs) == 2 and regs[0] == 'sp' and regs[1] in sp_rel:
            f.frame += sp_rel[regs[1]] - ops[2].imm       # imm = -alignment
        elif m == 'mov' and regs == ['sp', regs[-1]] and regs[-1] in sp_rel:
            f.frame += sp_rel[regs[-1]]

    def analyse(self, obj, f):
        names, pages, sp_rel = {}, {}, {}
        for ins in obj.cs.disasm(f.code, f.addr):
            f.insns.append(ins)
            self._frame(f, ins, sp_rel)
            m = ins.mnemonic
            if m == 'sub' and [canon(r) for r in _regs(ins)][:3] == ['x10', 'x9', 'x0']:
                f.scrub_arg = 'x0'              # secretjit_aot_scrub (checked below)
            if m in ('bl', 'blr'):
                f.leaf = False
                op = ins.operands[0]
                target = obj.named(f, ins.address, op.imm) if op.type == _IMM else \
                    names.get(canon(ins.reg_name(op.reg)))
                f.calls.append((ins.address, target))
                for reg in contract.AARCH64_CALL_CLOBBERED:
                    names.pop(reg, None)
                continue
            if m == 'b' and ins.operands[0].type == _IMM:
                t = ins.operands[0].imm
                name = obj.named(f, ins.address, t)
                if name and name != f.name and not f.addr <= t < f.addr + len(f.code):
                    f.leaf = False
                    f.calls.append((ins.address, name))      # tail call
            if self._address(obj, f, ins, names, pages) or not (names or pages):
                continue
            for reg in written(ins):
                names.pop(canon(reg), None)
                pages.pop(canon(reg), None)
        # a scrub routine: frameless (so sp is its caller's), x9 = sp, and the
        # loop storing zeros from x10 = x9 - x0 up
        ops = [(i.mnemonic, i.op_str) for i in f.insns]
        if f.scrub_arg and not (f.frame == 0 and ('mov', 'x9, sp') in ops and any(
                m == 'stp' and o.startswith('xzr, xzr, [x10]') for m, o in ops)):
            f.scrub_arg = None

    # -- the boundary ------------------------------------------------------------

    def uses_sve(self, functions):
        return any(r[0] in 'zp' and r[1:].isdigit()
                   for f in functions for i in f.insns for r in _regs(i))

    def required(self, obj, boundaries, avx512=None):
        req = set(contract.AARCH64_ZEROED) | (
            set(contract.AARCH64_VECTORS) - set(contract.AARCH64_CALLEE_SAVED_VECTORS))
        tree = [obj.fn(n) for b in boundaries
                for n in core.tree_functions(obj, b.name)]
        if self.uses_sve(tree):
            req |= set(contract.AARCH64_SVE_PREDICATES)
        return req

    def branch(self, ins):
        g = ins.groups
        if _RET in g:
            return None, False
        if _JUMP not in g or _CALL in g:
            return None
        op = ins.operands[-1] if ins.operands else None
        target = op.imm if op is not None and op.type == _IMM else None
        return target, ins.mnemonic not in ('b', 'br')

    def is_return(self, ins):
        return _RET in ins.groups

    @staticmethod
    def _const(consts, reg):
        """The constant in ``reg`` (xzr: 0), or None."""
        return 0 if reg == 'xzr' else consts.get(reg)

    def _track(self, consts, sp_copies, ins):
        m, ops, regs = ins.mnemonic, ins.operands, [canon(r) for r in _regs(ins)]
        if m in ('mov', 'movz') and len(ops) == 2 and ops[1].type == _IMM and regs:
            consts[regs[0]] = ops[1].imm << (ops[1].shift.value if ops[1].shift.type else 0)
        elif m == 'movk' and regs and regs[0] in consts:
            shift = ops[1].shift.value if ops[1].shift.type else 0
            consts[regs[0]] = consts[regs[0]] & ~(0xffff << shift) | ops[1].imm << shift
        elif m == 'mov' and len(regs) == 2:
            if regs[1] == 'sp':
                sp_copies.add(regs[0])
            elif self._const(consts, regs[1]) is not None:
                consts[regs[0]] = self._const(consts, regs[1])

    def step(self, walk, ins):
        ctx, m = walk.ctx, ins.mnemonic
        self._track(ctx.consts, ctx.sp_copies, ins)
        if m in ('bl', 'blr'):
            target = ctx.calls.get(ins.address)
            f = ctx.obj.fn(target)
            if f is not None and f.scrub_arg:
                core.on_scrub(walk, ins, self._const(ctx.consts, f.scrub_arg))
                walk.zeroed = set()
                return
            tree = self.secret_call_tree(ctx.obj, ctx.f, ins) \
                if target in core.SECRET_CALLS else None
            core.on_call(walk, ins, target, self._const(ctx.consts, 'x2'), tree)
            return
        regs = [canon(r) for r in _regs(ins)]
        if m == 'sub' and len(regs) == 3 and regs[1] in ctx.sp_copies:
            core.on_scrub(walk, ins, self._const(ctx.consts, regs[2]))     # the inline scrub
        z = zeroes(ins)
        w = {canon(r) for r in written(ins)}
        walk.zeroed -= w - z
        walk.zeroed |= z

    def secret_call_tree(self, obj, f, call):
        """The function whose address the boundary passes to secretjit_secret_call (x0)."""
        names, pages = {}, {}
        for ins in f.insns:
            if ins.address >= call.address:
                break
            if not self._address(obj, f, ins, names, pages):
                for reg in written(ins):
                    names.pop(canon(reg), None)
        return names.get('x0')

    def passed_depth(self, f):
        """The depth the boundary passes in x2 to its first call (the secret
        call), read as the audit's walk reads constants (:meth:`_track`)."""
        consts = {}
        for ins in f.insns:
            self._track(consts, set(), ins)
            if ins.mnemonic == 'bl' and 'x2' in consts:
                return consts['x2']
        return consts.get('x2')
        return depth

    def _dirty_high(self, state, block):
        dirty = set(state)
        for ins in block:
            if not _HIGH_NAMED.search(ins.op_str):
                continue
            for r in written(ins):
                if r[0] in 'bhsdqvz' and r[1:].isdigit() and int(r[1:]) in _HIGH_HALF:
                    (dirty.add if r[0] in 'qvz' else dirty.discard)('v' + r[1:])
        return frozenset(dirty)

    def tree_problems(self, obj, root):
        """v8-v15 whose high half a function of the tree may leave written at a ret."""
        out = []
        for name in core.tree_functions(obj, root):
            f = obj.fn(name)
            blks, succs = core.blocks(f, self)
            if not blks:
                continue
            outs = core.solve(blks, succs, frozenset(), self._dirty_high,
                              lambda a, b: a | b)
            dirty = set()
            for b, state in outs.items():
                if self.is_return(blks[b][-1]):
                    dirty |= state
            out += ['%s high half (in %s)' % (r, stack_bound.readable(name))
                    for r in sorted(dirty, key=self.register_order)]
        return out


ARCH = AArch64('aarch64', 'EM_AARCH64', return_address=0)     # x30 holds it
