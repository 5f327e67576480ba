"""Machine-code audit of secret kernels that does not trust the passes.

It reads the object code that actually runs (the ELF object numba's JIT
loaded for a kernel, or an AOT ``.so``), disassembles it with capstone and
checks, for every boundary ``__secretjit.boundary.*``:

- ``registers``: on every path from the boundary's entry to each ``ret``,
  after the last call, every call-clobbered register the contract names
  (README, "The contract": rcx, rdx, rsi, rdi, r8-r11, xmm/ymm/zmm 0-15 or
  0-31, k0-k7 with AVX-512, the x87 stack) is zeroed and not written again;
- ``scrub``: on every path, each call into the kernel's tree (through
  ``secretjit_secret_call`` or in place) is followed by a scrub at least as
  deep as the tree's depth, which the audit computes itself from the frames
  of every function it reaches (return address, pushes, ``sub rsp``,
  realignment; the red zone for leaves; the contract's allowance for each
  allowed C function) and compares with ``stack_bound``'s result;
- ``calls``: every call leaving the analysed code goes to an allow-listed C
  function (``stack_bound.EXTERNAL_ALLOWANCE``, libm, the secret runtime's
  entries) and no call is through a pointer the audit cannot resolve.

x86-64 only for now (JIT objects and x86-64 AOT libraries); an AArch64
object is reported as not audited.
"""

import io
import json
import sys
from dataclasses import asdict, dataclass, field

from . import stack_bound

SECRET_CALL = 'secretjit_secret_call'
BOUNDARY = '__secretjit.boundary.'
GPRS = ('rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11')
RED_ZONE = stack_bound.RED_ZONE['x86_64']


class AuditError(Exception):
    """The target cannot be audited (not an ELF object, unsupported machine)."""


def _deps():
    try:
        import capstone
        from elftools.elf.elffile import ELFFile
    except ImportError as exc:            # pragma: no cover - install problem
        raise AuditError("the audit needs capstone and pyelftools: pip install "
                         "'secretjit[audit]' (%s)" % exc) from None
    return capstone, ELFFile


@dataclass
class Function:
    name: str
    section: int
    addr: int
    code: bytes
    insns: list = field(default_factory=list)
    frame: int = 8
    calls: list = field(default_factory=list)       # (insn addr, target name or None)
    leaf: bool = True


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
    stack_bound_depth: int
    calls_ok: bool
    externals: list
    unlisted: list

    @property
    def ok(self):
        return self.registers_ok and self.scrub_ok and self.calls_ok


class _Object:
    """Functions, symbols and call targets of one x86-64 ELF object or library."""

    def __init__(self, data, allowances=None):
        capstone, ELFFile = _deps()
        self.elf = ELFFile(io.BytesIO(data))
        machine = self.elf['e_machine']
        if machine != 'EM_X86_64':
            raise AuditError("the audit reads x86-64 machine code; this object "
                             "is %s" % machine)
        self.cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.cs.detail = True
        self.x86 = capstone.x86
        self.relocatable = self.elf['e_type'] == 'ET_REL'
        self.allowances = dict(allowances or {})
        self.functions = {}
        self.by_addr = {}
        self.undefined = set()
        self.relocs = {}               # (section, offset) -> symbol name
        self.plt = {}                  # address of a PLT stub -> symbol name
        self._read_symbols()
        self._read_relocations()
        for f in self.functions.values():
            self._analyse(f)

    def _symtab(self):
        return self.elf.get_section_by_name('.symtab') or \
            self.elf.get_section_by_name('.dynsym')

    def _read_symbols(self):
        symtab = self._symtab()
        for sym in symtab.iter_symbols():
            kind, shndx = sym['st_info']['type'], sym['st_shndx']
            if shndx == 'SHN_UNDEF' and sym.name:
                self.undefined.add(sym.name)
                continue
            if kind != 'STT_FUNC' or not sym['st_size'] or not isinstance(shndx, int):
                continue
            sec = self.elf.get_section(shndx)
            start = sym['st_value'] - (0 if self.relocatable else sec['sh_addr'])
            code = sec.data()[start:start + sym['st_size']]
            f = Function(sym.name, shndx, sym['st_value'], code)
            self.functions[sym.name] = f
            self.by_addr[(shndx if self.relocatable else 0, sym['st_value'])] = sym.name

    def _read_relocations(self):
        from elftools.elf.relocation import RelocationSection
        for sec in self.elf.iter_sections():
            if not isinstance(sec, RelocationSection):
                continue
            symtab = self.elf.get_section(sec['sh_link'])
            target = sec['sh_info']
            for r in sec.iter_relocations():
                sym = symtab.get_symbol(r['r_info_sym'])
                name = sym.name
                if not name and sym['st_info']['type'] == 'STT_SECTION':
                    # a local function, addressed as its section + addend
                    addend = r['r_addend'] if r.is_RELA() else 0
                    name = self.by_addr.get((sym['st_shndx'], addend))
                    if name is None:
                        continue
                if self.relocatable:
                    self.relocs[(target, r['r_offset'])] = name
                else:
                    self.relocs[(0, r['r_offset'])] = name
        if not self.relocatable:
            self._read_plt()

    def _read_plt(self):
        for name in ('.plt', '.plt.sec', '.plt.got'):
            sec = self.elf.get_section_by_name(name)
            if sec is None:
                continue
            base = sec['sh_addr']
            for ins in self.cs.disasm(sec.data(), base):
                if ins.mnemonic in ('jmp', 'bnd jmp') and 'rip' in ins.op_str:
                    disp = ins.operands[0].mem.disp
                    slot = ins.address + ins.size + disp
                    sym = self.relocs.get((0, slot))
                    if sym:
                        stub = ins.address - (ins.address - base) % 16
                        self.plt[stub] = sym

    def _target(self, f, ins):
        """Name of the function a direct call or jump goes to, or None."""
        op = ins.operands[0]
        if op.type != self.x86.X86_OP_IMM:
            return None
        if self.relocatable:
            offset = f.addr + (ins.address - f.addr) + 1
            name = self.relocs.get((f.section, offset))
            if name:
                return name
            return self.by_addr.get((f.section, op.imm))
        return self.by_addr.get((0, op.imm)) or self.plt.get(op.imm)

    def _analyse(self, f):
        consts = {}                     # register -> symbol loaded with movabs
        for ins in self.cs.disasm(f.code, f.addr):
            f.insns.append(ins)
            m, ops = ins.mnemonic, ins.op_str.replace(' ', '')
            if m == 'push':
                f.frame += 8
            elif m == 'sub' and ops.startswith('rsp,'):
                f.frame += int(ops[4:], 0)
            elif m == 'and' and ops.startswith('rsp,'):
                f.frame += -int(ops[4:], 0)
            if m == 'movabs' and self.relocatable:
                sym = self.relocs.get((f.section, ins.address + 2))
                consts[ops.split(',')[0]] = sym
                continue
            if m == 'mov' and len(ins.operands) == 2 and all(
                    o.type == self.x86.X86_OP_REG for o in ins.operands):
                src = consts.get(ins.reg_name(ins.operands[1].reg))
                dst = ins.reg_name(ins.operands[0].reg)
                if src:
                    consts[dst] = src
                else:
                    consts.pop(dst, None)
                continue
            if m == 'call':
                f.leaf = False
                if ins.operands[0].type == self.x86.X86_OP_REG:
                    reg = ins.reg_name(ins.operands[0].reg)
                    f.calls.append((ins.address, consts.get(reg)))
                else:
                    f.calls.append((ins.address, self._target(f, ins)))
                for reg in ('rax', 'rcx', 'rdx', 'rsi', 'rdi', 'r8', 'r9', 'r10', 'r11'):
                    consts.pop(reg, None)          # the callee may change them
                continue
            elif m == 'jmp' and ins.operands[0].type == self.x86.X86_OP_IMM:
                name = self._target(f, ins)
                if name and name != f.name and not (
                        f.addr <= ins.operands[0].imm < f.addr + len(f.code)):
                    f.leaf = False
                    f.calls.append((ins.address, name))      # tail call
            for reg in ins.regs_access()[1]:
                consts.pop(ins.reg_name(reg), None)

    # -- depth -----------------------------------------------------------

    def allowed(self, name):
        base = name[:-1] if name.endswith('f') and name[:-1] in stack_bound.LIBM else name
        return (name in stack_bound.EXTERNAL_ALLOWANCE or base in stack_bound.LIBM
                or name in self.allowances or name == SECRET_CALL)

    def depth(self, name, memo=None, seen=()):
        """Bytes the call of ``name`` may write below the caller's stack pointer."""
        memo = {} if memo is None else memo
        if name in memo:
            return memo[name]
        if name not in self.functions or self.allowed(name):
            # C code (external, or the runtime linked into an AOT library):
            # the contract's allowance, whose sufficiency the tests measure
            d = stack_bound.external_allowance(name, self.allowances)
        elif name in seen:
            raise AuditError("recursion through %s" % name)
        else:
            f = self.functions[name]
            below = RED_ZONE if f.leaf else 0
            for _, target in f.calls:
                if target is None:
                    below = max(below, stack_bound.DEFAULT_ALLOWANCE)
                elif target != SECRET_CALL:
                    below = max(below, self.depth(target, memo, seen + (name,)))
            d = f.frame + below
        memo[name] = d
        return d

    def reachable(self, root):
        out, todo = set(), [root]
        while todo:
            n = todo.pop()
            if n in out:
                continue
            out.add(n)
            if n in self.functions and not self.allowed(n):
                todo += [t for _, t in self.functions[n].calls if t]
        return out


# -- per-boundary checks ------------------------------------------------------

def _blocks(f):
    """Basic blocks of ``f``: {start: [insns]}, successors {start: [starts]}."""
    insns = f.insns
    if not insns:
        return {}, {}
    end = f.addr + len(f.code)
    leaders = {insns[0].address}
    for i, ins in enumerate(insns):
        if ins.group(1) or ins.mnemonic == 'ret' or ins.mnemonic.startswith('j'):
            if ins.operands and ins.operands[0].type == 2:       # X86_OP_IMM
                t = ins.operands[0].imm
                if f.addr <= t < end:
                    leaders.add(t)
            if i + 1 < len(insns):
                leaders.add(insns[i + 1].address)
    blocks, cur = {}, None
    for ins in insns:
        if ins.address in leaders:
            cur = ins.address
            blocks[cur] = []
        blocks[cur].append(ins)
    starts = sorted(blocks)
    succs = {}
    for k, s in enumerate(starts):
        last = blocks[s][-1]
        out = []
        m = last.mnemonic
        if m == 'ret':
            pass
        elif m.startswith('j'):
            op = last.operands[0] if last.operands else None
            if op is not None and op.type == 2 and f.addr <= op.imm < end:
                out.append(op.imm)
            if m != 'jmp' and k + 1 < len(starts):
                out.append(starts[k + 1])
        elif k + 1 < len(starts):
            out.append(starts[k + 1])
        succs[s] = out
    return blocks, succs


def _vector_count(obj_has_evex):
    return 32 if obj_has_evex else 16


def _required(nvec, masks):
    req = set(GPRS) | {'xmm%d' % i for i in range(nvec)} | {'x87'}
    if masks:
        req |= {'k%d' % i for i in range(8)}
    return req


_GPR64 = {}
for _r in ('ax', 'cx', 'dx', 'si', 'di', 'bx', 'bp', 'sp'):
    for _n in ('r' + _r, 'e' + _r, _r):
        _GPR64[_n] = 'r' + _r
    _GPR64[_r[0] + 'l' if _r in ('ax', 'cx', 'dx', 'bx') else _r + 'l'] = 'r' + _r
for _i in range(8, 16):
    for _s in ('', 'd', 'w', 'b'):
        _GPR64['r%d%s' % (_i, _s)] = 'r%d' % _i


def _canon(reg):
    """The contract's name of a register capstone names: ecx -> rcx, ymm3 -> xmm3."""
    if reg in _GPR64:
        return _GPR64[reg]
    for p in ('xmm', 'ymm', 'zmm'):
        if reg.startswith(p):
            return 'xmm' + reg[3:]
    if reg.startswith('st'):
        return 'x87'
    return reg


def _zeroes(ins):
    """Registers ``ins`` sets to zero (the idioms LLVM's zero-call-used-regs emits)."""
    m = ins.mnemonic
    regs = [ins.reg_name(o.reg) for o in ins.operands if o.type == 1]   # REG
    if len(regs) != len(ins.operands):
        return set()
    if m in ('xor', 'sub', 'xorps', 'xorpd', 'pxor') and len(regs) == 2 \
            and regs[0] == regs[1]:
        # legacy SSE forms leave bits above 128 alone: code for baseline
        # x86-64 (AOT) has no wider registers to clear
        return {_canon(regs[0])}
    if m in ('vxorps', 'vxorpd', 'vpxor', 'vpxord', 'vpxorq') and len(regs) == 3 \
            and regs[1] == regs[2]:
        return {_canon(regs[0])}
    if m in ('kxorq', 'kxord', 'kxorw', 'kxorb') and regs[1] == regs[2]:
        return {regs[0]}
    return set()


def _check_boundary(obj, f, required, memo):
    blocks, succs = _blocks(f)
    if not blocks:
        return None
    entry = min(blocks)
    # state: (zeroed registers, fldz count, pending tree depth or None, scrubbed)
    consts = {}

    def transfer(state, block):
        zeroed, fldz, pending, problems = state
        zeroed = set(zeroed)
        problems = list(problems)
        for ins in block:
            m = ins.mnemonic
            ops = ins.op_str.replace(' ', '')
            if m == 'mov' and ins.operands[1].type == 2 and ins.operands[0].type == 1:
                consts[_canon(ins.reg_name(ins.operands[0].reg))] = ins.operands[1].imm
            elif m == 'mov' and ins.operands[1].type == 1 and ins.operands[0].type == 1:
                src = _canon(ins.reg_name(ins.operands[1].reg))
                dst = _canon(ins.reg_name(ins.operands[0].reg))
                if src in consts:
                    consts[dst] = consts[src]
            elif m == 'shr' and ins.operands[1].type == 2:
                r = _canon(ins.reg_name(ins.operands[0].reg))
                if r in consts:
                    consts[r] = consts[r] >> ins.operands[1].imm
            if m == 'call':
                target = dict(obj.functions[f.name].calls).get(ins.address)
                zeroed, fldz = set(), 0
                if target == SECRET_CALL:
                    depth = consts.get('rdx')
                    tree = _secret_call_tree(obj, f, ins)
                    need = obj.depth(tree, memo) if tree else None
                    if depth is None or need is None or depth < need:
                        problems.append('secret stack scrub of %s bytes at 0x%x, tree '
                                        'needs %s' % (depth, ins.address, need))
                    pending = None
                elif target is not None and not obj.allowed(target):
                    pending = obj.depth(target, memo)
                continue
            if m == 'rep stosq' or (m == 'stosq' and 'rep' in ins.op_str) or \
                    ins.mnemonic.startswith('rep stos'):
                n = consts.get('rcx')
                scrubbed = None if n is None else 8 * n
                if pending is not None and (scrubbed is None or scrubbed < pending):
                    problems.append('in-place scrub of %s bytes at 0x%x, tree needs %d'
                                    % (scrubbed, ins.address, pending))
                pending = None
            if m == 'fldz':
                fldz += 1
                if fldz >= 8:              # eight zeros pushed: every st(i) is 0
                    zeroed.add('x87')
                continue
            if m == 'fstp' and ops == 'st(0)' or m in ('vzeroupper', 'vzeroall'):
                continue                   # pops / clears upper halves: no new value
            z = _zeroes(ins)
            written = {_canon(ins.reg_name(r)) for r in ins.regs_access()[1]}
            zeroed -= written - z
            zeroed |= z
        return (frozenset(zeroed), fldz, pending, tuple(problems))

    start = (frozenset(required), 0, None, ())        # nothing to zero before a call
    states = {entry: start}
    outs = {}
    work = [entry]
    visits = 0
    while work and visits < 10000:
        visits += 1
        b = work.pop()
        out = transfer(states[b], blocks[b])
        outs[b] = out
        for s in succs.get(b, []):
            new = out if s not in states else _meet(states[s], out)
            if s not in states or new != states[s]:
                states[s] = new
                work.append(s)
    missing, problems, rets = set(), [], 0
    for b, out in outs.items():
        if blocks[b][-1].mnemonic != 'ret':
            continue
        rets += 1
        zeroed, _, pending, probs = out
        missing |= required - zeroed
        problems += list(probs)
        if pending is not None:
            problems.append('a path reaches ret 0x%x after a call into the tree '
                            'with no scrub' % blocks[b][-1].address)
    return rets, sorted(missing), sorted(set(problems))


def _meet(a, b):
    pend = a[2] if b[2] is None else b[2] if a[2] is None else max(a[2], b[2])
    return (a[0] & b[0], min(a[1], b[1]), pend, tuple(sorted(set(a[3]) | set(b[3]))))


def _secret_call_tree(obj, f, call):
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


def audit_object(data, allowances=None, stack_bounds=None, avx512=None):
    """Audit every boundary of one ELF object or library; a list of :class:`BoundaryAudit`."""
    obj = _Object(data, allowances)
    memo = {}
    dtor = 'NRT_MemInfo_call_dtor'
    if dtor in obj.functions and dtor not in obj.allowances:
        # an AOT library links numba's C destructor path in: the contract's
        # allowance around the callbacks it runs, whose depth the audit computes
        from . import arena_nrt
        from .pipeline import NUMBA_DTOR_ALLOWANCE
        obj.allowances[dtor] = NUMBA_DTOR_ALLOWANCE + max(
            [obj.depth(cb, {}) for cb in arena_nrt.CALLBACKS if cb in obj.functions]
            or [stack_bound.external_allowance('malloc')])
    out = []
    evex = avx512 if avx512 is not None else any(
        'zmm' in i.op_str or 'xmm16' in i.op_str or i.mnemonic.startswith('kxor')
        for f in obj.functions.values() if f.name.startswith(BOUNDARY) for i in f.insns)
    required = _required(_vector_count(evex), evex)
    for name, f in sorted(obj.functions.items()):
        if not name.startswith(BOUNDARY):
            continue
        checked = _check_boundary(obj, f, required, memo)
        if checked is None:
            continue
        rets, missing, problems = checked
        reach = obj.reachable(name)
        externals = sorted(n for n in reach if n not in obj.functions or obj.allowed(n))
        unlisted = sorted(n for n in externals if not obj.allowed(n))
        for g in reach:
            if g in obj.functions and not obj.allowed(g):
                unlisted += ['indirect call in %s at 0x%x' % (stack_bound.readable(g), a)
                             for a, t in obj.functions[g].calls if t is None]
        tree = next((t for _, t in f.calls if t and t != SECRET_CALL
                     and not obj.allowed(t)), None)
        secret_tree = None
        for ins in f.insns:
            if ins.mnemonic == 'call' and dict(f.calls).get(ins.address) == SECRET_CALL:
                secret_tree = _secret_call_tree(obj, f, ins)
        need = max([obj.depth(t, memo) for t in (tree, secret_tree) if t] or [0])
        kernel = name[len(BOUNDARY):]
        sb = (stack_bounds or {}).get(kernel)
        scrubbed = _passed_depth(f)
        out.append(BoundaryAudit(
            name=name, registers_ok=not missing and rets > 0,
            registers_missing=missing, rets=rets,
            scrub_ok=not problems and scrubbed is not None and scrubbed >= need,
            scrub_problems=problems, depth_required=need,
            depth_scrubbed=scrubbed or 0,
            stack_bound_depth=sb.depth if sb is not None else -1,
            calls_ok=not unlisted, externals=externals, unlisted=unlisted))
    return out


def _passed_depth(f):
    """The depth immediate the boundary passes (``mov edx, imm`` before the call)."""
    for ins in f.insns:
        if ins.mnemonic == 'mov' and ins.op_str.startswith('edx,') and \
                ins.operands[1].type == 2:
            return ins.operands[1].imm
    return None


# -- targets -------------------------------------------------------------------

def audit_dispatcher(kernel):
    """Audit every compiled signature of a ``secret_jit`` dispatcher (JIT object code).

    numba keeps a library's object code only when it caches it: compile the
    kernel with ``cache=True``, or audit :func:`fresh_copy` of it.
    """
    results = []
    for sig in kernel.signatures:
        lib = kernel.overloads[sig].library
        try:
            data = lib._get_compiled_object()
        except RuntimeError:
            raise AuditError("numba kept no object code for %s%s: compile it with "
                             "cache=True, or audit secretjit.audit.fresh_copy(kernel)"
                             % (kernel.py_func.__qualname__, sig)) from None
        allow = dict(getattr(lib.codegen, 'runtime_depths', {}) or {})
        results += audit_object(data, allowances=allow,
                                stack_bounds=getattr(lib, 'stack_bounds', None))
    return results


def fresh_copy(kernel, signatures=None):
    """``kernel`` compiled again with ``cache=True`` into a temporary cache folder.

    The copy's libraries keep the object code the JIT loads, which the audit
    reads.  ``signatures`` default to the kernel's compiled ones.
    """
    import tempfile

    import numba.core.config as config

    from .decorators import secret_jit
    opts = {k: v for k, v in kernel.targetoptions.items() if k != 'cache'}
    saved = config.CACHE_DIR
    config.CACHE_DIR = tempfile.mkdtemp(prefix='secretjit-audit-')
    try:
        copy = secret_jit(cache=True, **opts)(kernel.py_func)
        for sig in signatures or kernel.signatures:
            copy.compile(sig)
    finally:
        config.CACHE_DIR = saved
    return copy


def audit_library(path):
    """Audit an AOT shared library."""
    with open(path, 'rb') as fh:
        data = fh.read()
    from .aot import _build
    return audit_object(data, allowances=getattr(_build, '_c_allowances', dict)())


def table(results, out=print):
    out('%-44s %-9s %-30s %-8s %s' % ('boundary', 'registers', 'scrub: scrubbed/needed/stack_bound',
                                      'calls', 'verdict'))
    for r in results:
        out('%-44s %-9s %-30s %-8s %s' % (
            stack_bound.readable(r.name)[:44],
            'ok' if r.registers_ok else 'MISSING',
            '%s %d/%d/%d' % ('ok' if r.scrub_ok else 'SHORT', r.depth_scrubbed,
                             r.depth_required, r.stack_bound_depth),
            'ok' if r.calls_ok else 'UNLISTED', 'PASS' if r.ok else 'FAIL'))
        if r.registers_missing:
            out('    registers not zeroed on some path to ret: %s'
                % ', '.join(r.registers_missing))
        for p in r.scrub_problems:
            out('    scrub: %s' % p)
        for u in r.unlisted:
            out('    call leaves the audited code: %s' % u)


def report(results):
    """JSON-ready dict of the results."""
    return {'ok': bool(results) and all(r.ok for r in results),
            'boundaries': [dict(asdict(r), ok=r.ok) for r in results]}


def main(target, json_path=None):
    """``python -m secretjit audit``: exit 0 when every boundary passes."""
    try:
        if target.endswith('.so') or '.so.' in target:
            results = audit_library(target)
        else:
            from .testing.verify import VerifyError, load_module
            path, _, only = target.partition(':')
            try:
                module = load_module(path)
            except VerifyError as exc:
                raise AuditError(str(exc)) from None
            from . import SecretDispatcher
            results = []
            for name, value in vars(module).items():
                if isinstance(value, SecretDispatcher) and (not only or name == only):
                    from numba import typeof
                    from .testing import samples_of
                    sigs = [tuple(typeof(a) for a in args)
                            for args in samples_of(value, module)]
                    sigs += [s for s in value.signatures if s not in sigs]
                    if not sigs:
                        print('audit: %s: no sample arguments and no compiled '
                              'signature (declare them with secretjit.testing.'
                              'sample_args): skipped' % name, file=sys.stderr)
                        continue
                    print('audit: compiling %s (%d signatures)' % (name, len(sigs)),
                          file=sys.stderr, flush=True)
                    results += audit_dispatcher(fresh_copy(value, sigs))
    except (AuditError, OSError) as exc:
        print('secretjit audit: error: %s' % exc, file=sys.stderr)
        return 2
    if not results:
        print('secretjit audit: error: no boundary found in %s' % target, file=sys.stderr)
        return 2
    table(results)
    rep = report(results)
    if json_path == '-':
        print(json.dumps(rep, indent=1))
    elif json_path:
        with open(json_path, 'w') as fh:
            json.dump(rep, fh, indent=1)
    return 0 if rep['ok'] else 1
