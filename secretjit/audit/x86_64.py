"""x86-64: frames, calls, PLT stubs, zeroing idioms and scrubs (capstone's x86 mode).

``frame(f)`` is the return address plus every decrement of rsp (pushes,
``sub rsp``, realignment with ``and``); function addresses reach registers
through ``movabs`` (the JIT's large code model, with a relocation) and are
followed through register copies.  A leaf may use the 128-byte red zone,
unless no instruction of it reaches below rsp (:func:`below_sp`, the rule of
``stack_bound.x86_64.below_sp`` on capstone's operands).  The boundary
passes its scrub depth to ``secretjit_secret_call`` in edx and scrubs in
place with ``rep stosq`` (rcx = depth / 8).
"""

from .. import contract
from ..stack_bound.vregs import implicit_registers
from ..stack_bound.x87 import x87_mnemonic
from . import core

_REG, _IMM, _MEM = 1, 2, 3              # capstone X86_OP_REG, _IMM, _MEM

_GPR64 = {}
for _r in ('ax', 'cx', 'dx', 'si', 'di', 'bx', 'bp', 'sp'):
    for _n in ('r' + _r, 'e' + _r, _r):
        _GPR64[_n] = 'r' + _r
    _GPR64[_r[0] + 'l' if _r in ('ax', 'cx', 'dx', 'bx') else _r + 'l'] = 'r' + _r
for _i in range(8, 16):
    for _s in ('', 'd', 'w', 'b'):
        _GPR64['r%d%s' % (_i, _s)] = 'r%d' % _i


def canon(reg):
    """The contract's name of a register capstone names: ecx -> rcx, ymm3 -> xmm3."""
    if reg in _GPR64:
        return _GPR64[reg]
    for p in ('xmm', 'ymm', 'zmm'):
        if reg.startswith(p):
            return 'xmm' + reg[3:]
    if reg.startswith('st'):
        return 'x87'
    return reg


def _x87(ins):
    """Whether ``ins`` is x87 or MMX code (touches the x87 register stack)."""
    if x87_mnemonic(ins.mnemonic):
        return True
    read, written = ins.regs_access()
    return any(ins.reg_name(r).startswith(('st', 'mm')) for r in read + written) or \
        any(o.type == _REG and ins.reg_name(o.reg).startswith(('st', 'mm'))
            for o in ins.operands)


# the registers an exact tree's boundary may leave alone (contract names)
_WAIVABLE = frozenset(contract.x86_64_vectors(True) + contract.X86_64_MASKS + ('x87',))


def tree_writes(ins):
    """The waivable registers ``ins`` may write: every vector or mask
    register capstone says it reads or writes or names as an operand (an
    over-approximation), the implicit ones (stack_bound.vregs'
    implicit_registers: xrstor, pcmpistrm, ...) and 'x87' for x87/MMX code;
    nothing for an unmasked zeroing idiom, ``vzeroupper``/``vzeroall``
    (capstone lists ymm0-15 as written: with zeros, which the text scan
    does not count either), ``fldz`` or ``fstp st(0)`` (they leave zeros
    or pop).  Every register where capstone cannot say."""
    m = ins.mnemonic
    z = zeroes(ins)
    if (z and z <= _WAIVABLE and '{' not in ins.op_str) or m in (
            'fldz', 'vzeroupper', 'vzeroall') or (
            m == 'fstp' and ins.op_str.replace(' ', '') == 'st(0)'):
        return set()                    # (an MMX pxor is x87 code: counted)
    try:
        read, written = ins.regs_access()
    except Exception:                   # capstone has no details: fail closed
        return set(_WAIVABLE)
    names = {canon(ins.reg_name(r)) for r in read + written}
    names |= {canon(ins.reg_name(o.reg)) for o in ins.operands if o.type == _REG}
    out = (names | implicit_registers(m, names)) & _WAIVABLE
    if _x87(ins):
        out.add('x87')
    return out


def zeroes(ins):
    """Registers ``ins`` sets to zero (the idioms LLVM's zero-call-used-regs emits)."""
    m = ins.mnemonic
    regs = [ins.reg_name(o.reg) for o in ins.operands if o.type == _REG]
    if len(regs) != len(ins.operands):
        return set()
    if m in ('xor', 'sub', 'xorps', 'xorpd', 'pxor') and len(regs) == 2 \
            and regs[0] == regs[1]:
        # legacy SSE forms leave bits above 128 alone: code for baseline
        # x86-64 (AOT) has no wider registers to clear
        return {canon(regs[0])}
    if m in ('vxorps', 'vxorpd', 'vpxor', 'vpxord', 'vpxorq') and len(regs) == 3 \
            and regs[1] == regs[2]:
        return {canon(regs[0])}
    if m in ('kxorq', 'kxord', 'kxorw', 'kxorb') and regs[1] == regs[2]:
        return {regs[0]}
    return set()


def below_sp(ins):
    """Whether ``ins`` may reach memory below rsp (a leaf's red zone): a
    memory operand off rsp with a negative displacement or an index, rsp's
    address (``lea``) or value in any operand but the destination of an
    instruction that moves rsp, which the frame accounting counts; push,
    pop, call and ret touch the stack implicitly, not below rsp."""
    ops = ins.operands
    if not ops or (ops[0].type == _REG and canon(ins.reg_name(ops[0].reg)) == 'rsp'
                   and not ins.mnemonic.startswith('push')):
        return False
    for o in ops:
        if o.type == _REG and canon(ins.reg_name(o.reg)) == 'rsp':
            return True
        if o.type == _MEM and o.mem.base and canon(ins.reg_name(o.mem.base)) == 'rsp':
            if o.mem.index or o.mem.disp < 0 or ins.mnemonic == 'lea':
                return True
    return False


class X86_64(core.Arch):
    def disassembler(self, capstone):
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    # -- reading ---------------------------------------------------------------

    def read_plt(self, obj):
        for name in ('.plt', '.plt.sec', '.plt.got'):
            sec = obj.elf.get_section_by_name(name)
            if sec is None:
                continue
            base = sec['sh_addr']
            for ins in obj.cs.disasm(sec.data(), base):
                if ins.mnemonic in ('jmp', 'bnd jmp') and 'rip' in ins.op_str:
                    slot = ins.address + ins.size + ins.operands[0].mem.disp
                    sym = obj.relocs.get((0, slot))
                    if sym:
                        obj.plt[ins.address - (ins.address - base) % 16] = sym

    def _target(self, obj, f, ins):
        """Name of the function a direct call or jump goes to, or None."""
        op = ins.operands[0]
        if op.type != _IMM:
            return None
        return obj.named(f, ins.address + 1, op.imm)

    def analyse(self, obj, f):
        f.insns.extend(obj.cs.disasm(f.code, f.addr))
        f.below_sp = any(below_sp(ins) for ins in f.insns)
        for ins in f.insns:
            m, ops = ins.mnemonic, ins.op_str.replace(' ', '')
            if m == 'push':
                f.frame += 8
            elif m == 'sub' and ops.startswith('rsp,'):
                f.frame += int(ops[4:], 0)
            elif m == 'and' and ops.startswith('rsp,'):
                f.frame += -int(ops[4:], 0)
        # register -> symbol loaded with movabs, per block: a forward data
        # flow over the function's blocks (a value holds where every path in
        # agrees), so a callee address kept in a callee-saved register across
        # blocks is followed, and one that differs on some path is not
        blks, succs = core.blocks(f, self)
        if not blks:
            return
        outs = core.solve(blks, succs, {}, lambda c, b: self._consts(obj, f, c, b),
                          _agree)
        preds = {}
        for b, ss in succs.items():
            for s in ss:
                preds.setdefault(s, []).append(b)
        for b in sorted(blks):
            into = [outs[p] for p in preds.get(b, []) if p in outs]
            consts = {} if b == min(blks) or not into else _agree_all(into)
            self._consts(obj, f, consts, blks[b], calls=f.calls)

    def _consts(self, obj, f, consts, block, calls=None):
        """Symbols in registers after ``block``; ``calls``: append its calls."""
        consts = dict(consts)
        for ins in block:
            m = ins.mnemonic
            if m == 'movabs' and obj.relocatable:
                reg = canon(ins.reg_name(ins.operands[0].reg))
                consts[reg] = obj.relocs.get((f.section, ins.address + 2))
                continue
            if m == 'mov' and len(ins.operands) == 2 and all(
                    o.type == _REG for o in ins.operands):
                src, dst = (ins.reg_name(o.reg) for o in (ins.operands[1], ins.operands[0]))
                if src == canon(src) and dst == canon(dst) and consts.get(src):
                    consts[dst] = consts[src]       # a 64-bit copy keeps the address
                else:
                    consts.pop(canon(dst), None)
                continue
            if m == 'call':
                if calls is not None:
                    f.leaf = False
                    if ins.operands[0].type == _REG:
                        calls.append((ins.address, consts.get(canon(
                            ins.reg_name(ins.operands[0].reg)))))
                    else:
                        calls.append((ins.address, self._target(obj, f, ins)))
                for reg in contract.X86_64_CALL_CLOBBERED:
                    consts.pop(reg, None)          # the callee may change them
                continue
            if m == 'jmp' and ins.operands[0].type == _IMM and calls is not None:
                name = self._target(obj, f, ins)
                if name and name != f.name and not (
                        f.addr <= ins.operands[0].imm < f.addr + len(f.code)):
                    f.leaf = False
                    calls.append((ins.address, name))      # tail call
            for reg in ins.regs_access()[1]:
                consts.pop(canon(ins.reg_name(reg)), None)
        return {r: v for r, v in consts.items() if v}

    # -- the boundary ------------------------------------------------------------

    def required(self, obj, boundaries, avx512=None):
        evex = avx512 if avx512 is not None else any('zmm' in i.op_str or 'xmm16' in i.op_str or i.mnemonic.startswith('kxor')
                   for f in boundaries for i in f.insns)
        req = set(contract.X86_64_ZEROED) | set(contract.x86_64_vectors(evex)) | {'x87'}
        if evex:
            req |= set(contract.X86_64_MASKS)
        return req

    def optional(self, obj, f):
        """The vector, mask and x87 registers boundary ``f`` need not zero:
        it calls only the exact entry, each of its trees reaches no code
        outside the object's own (:func:`core.inexact`), it calls nothing
        else outside the object but that entry, and no instruction of
        anything it or its trees reach (itself included) may write them
        (:func:`tree_writes`); else nothing (fail closed)."""
        calls = [(a, t) for a, t in f.calls if t in core.SECRET_CALLS]
        if not calls or any(t != core.SECRET_CALL_EXACT for _, t in calls):
            return set()
        by_addr = {i.address: i for i in f.insns}
        names = set(core.reachable(obj, f.name))
        for a, _ in calls:
            tree = self.secret_call_tree(obj, f, by_addr[a])
            if core.inexact(obj, tree):
                return set()
            names |= core.reachable(obj, tree)
        used = set()
        for n in names:
            if n == core.SECRET_CALL_EXACT:
                continue                # the runtime: see stack_bound.vregs
            if n not in obj.functions or core.allowed(obj, n):
                return set()            # other C code the boundary calls
            for i in obj.fn(n).insns:
                used |= tree_writes(i)
        return set(_WAIVABLE) - used

    def branch(self, ins):
        m = ins.mnemonic
        if not (ins.group(1) or m == 'ret' or m.startswith('j')):
            return None
        op = ins.operands[0] if ins.operands else None
        target = op.imm if op is not None and op.type == _IMM else None
        return target, not (m == 'ret' or m == 'jmp')

    def is_return(self, ins):
        return ins.mnemonic == 'ret'

    def _track(self, consts, ins):
        m, ops = ins.mnemonic, ins.operands
        if m == 'mov' and ops[1].type == _IMM and ops[0].type == _REG:
            consts[canon(ins.reg_name(ops[0].reg))] = ops[1].imm
        elif m == 'mov' and ops[1].type == _REG and ops[0].type == _REG:
            src, dst = canon(ins.reg_name(ops[1].reg)), canon(ins.reg_name(ops[0].reg))
            if src in consts:
                consts[dst] = consts[src]
        elif m == 'shr' and ops[1].type == _IMM:
            r = canon(ins.reg_name(ops[0].reg))
            if r in consts:
                consts[r] = consts[r] >> ops[1].imm

    def step(self, walk, ins):
        ctx, m = walk.ctx, ins.mnemonic
        self._track(ctx.consts, ins)
        if m == 'call':
            target = ctx.calls.get(ins.address)
            tree = self.secret_call_tree(ctx.obj, ctx.f, ins) \
                if target in core.SECRET_CALLS else None
            core.on_call(walk, ins, target, ctx.consts.get('rdx'), tree)
            return
        if m.startswith('rep stos') or (m == 'stosq' and 'rep' in ins.op_str):
            n = ctx.consts.get('rcx')
            core.on_scrub(walk, ins, None if n is None else 8 * n)
        if m == 'fldz':
            walk.aux += 1
            if walk.aux >= 8:              # eight zeros pushed: every st(i) is 0
                walk.zeroed.add('x87')
            return
        if m == 'fstp' and ins.op_str.replace(' ', '') == 'st(0)' or \
                m in ('vzeroupper', 'vzeroall'):
            return                         # pops / clears upper halves: no new value
        z = zeroes(ins)
        written = {canon(ins.reg_name(r)) for r in ins.regs_access()[1]}
        walk.zeroed -= written - z
        walk.zeroed |= z

    def secret_call_tree(self, obj, f, call):
        """The function whose address the boundary passes to secretjit_secret_call (rdi)."""
        tree = None
        for ins in f.insns:
            if ins.address >= call.address:
                break
            if ins.mnemonic == 'movabs' and ins.op_str.startswith('rdi') and obj.relocatable:
                tree = obj.relocs.get((f.section, ins.address + 2)) or tree
            elif ins.mnemonic == 'lea' and ins.op_str.startswith('rdi') and \
                    'rip' in ins.op_str and not obj.relocatable:
                addr = ins.address + ins.size + ins.operands[1].mem.disp
                tree = obj.by_addr.get((0, addr)) or tree
        return tree

    def passed_depth(self, f):
        """The depth immediate the boundary passes (``mov edx, imm`` before the call)."""
        for ins in f.insns:
            if ins.mnemonic == 'mov' and ins.op_str.startswith('edx,') and \
                    ins.operands[1].type == _IMM:
                return ins.operands[1].imm
        return None


def _agree(a, b):
    """The registers two paths give the same symbol."""
    return {r: v for r, v in a.items() if b.get(r) == v}


def _agree_all(states):
    out = states[0]
    for st in states[1:]:
        out = _agree(out, st)
    return out


# every call-clobbered register the tree writes is the boundary's to zero:
# no per-function findings (Arch.tree_problems)
ARCH = X86_64('x86_64', 'EM_X86_64', return_address=8)
