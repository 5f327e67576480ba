"""Reading one ELF object or library: functions, symbols, relocations, PLT.

Architecture-neutral: the machine's module (:mod:`.x86_64`, :mod:`.aarch64`)
registers itself in :data:`ARCHES` under its ``e_machine`` and supplies the
disassembler, the PLT stub layout and the per-function analysis (frame size,
calls) that :class:`ObjectCode` runs on every function it reads.
"""

import io
from dataclasses import dataclass, field

# e_machine -> the architecture's module-level ``ARCH`` object
ARCHES = {}
BOUNDARY = '__secretjit.boundary.'
SECRET_CALL = 'secretjit_secret_call'
# The runtime's entry for a tree whose depth is exact (no frame-window check):
# the audit requires that tree to call nothing outside its own machine code.
SECRET_CALL_EXACT = 'secretjit_secret_call_exact'
SECRET_CALLS = (SECRET_CALL, SECRET_CALL_EXACT)


class AuditError(Exception):
    """The target cannot be audited (not an ELF object, unsupported machine)."""


def deps():
    """capstone and pyelftools' ELFFile, or an :class:`AuditError` naming the fix."""
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
    frame: int = 0                                  # None: not bounded statically
    calls: list = field(default_factory=list)       # (insn addr, target name or None)
    leaf: bool = True
    below_sp: bool = True                           # may reach below sp (red zone)
    scrub_arg: str = None                           # a scrub routine's depth register


class ObjectCode:
    """Functions, symbols and call targets of one ELF object or library."""

    def __init__(self, data, allowances=None):
        capstone, ELFFile = deps()
        try:
            self.elf = ELFFile(io.BytesIO(data))
        except Exception as exc:           # pyelftools raises its own error types
            raise AuditError("not an ELF object (%s)" % exc) from None
        machine = self.elf['e_machine']
        if machine not in ARCHES:
            raise AuditError("the audit reads x86-64 and AArch64 machine code; "
                             "this object is %s" % machine)
        self.arch = ARCHES[machine]
        self.cs = self.arch.disassembler(capstone)
        self.cs.detail = True
        self.relocatable = self.elf['e_type'] == 'ET_REL'
        self.allowances = dict(allowances or {})
        self.functions = {}
        self.by_addr = {}
        self.undefined = set()
        self.relocs = {}               # (section, offset) -> symbol name
        self.plt = {}                  # address of a PLT stub -> symbol name
        self._read_symbols()
        self._read_relocations()
        if not self.relocatable:
            self.arch.read_plt(self)
        self._analysed = set()

    def fn(self, name):
        """The function ``name`` defined in the object, disassembled and
        analysed on first use (the audit reads only what the boundaries
        reach), or None."""
        f = self.functions.get(name)
        if f is not None and name not in self._analysed:
            self._analysed.add(name)
            self.arch.analyse(self, f)
        return f

    def _symtab(self):
        return self.elf.get_section_by_name('.symtab') or \
            self.elf.get_section_by_name('.dynsym')

    def _read_symbols(self):
        symtab = self._symtab()
        if symtab is None:
            raise AuditError("the object has no symbol table")
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
            f = Function(sym.name, shndx, sym['st_value'], code,
                         frame=self.arch.return_address)
            self.functions[sym.name] = f
            self.by_addr[(shndx if self.relocatable else 0, sym['st_value'])] = sym.name

    def _read_relocations(self):
        from elftools.elf.relocation import RelocationSection
        for sec in self.elf.iter_sections():
            if not isinstance(sec, RelocationSection):
                continue
            symtab = self.elf.get_section(sec['sh_link'])
            target = sec['sh_info'] if self.relocatable else 0
            for r in sec.iter_relocations():
                sym = symtab.get_symbol(r['r_info_sym'])
                name = sym.name
                if not name and sym['st_info']['type'] == 'STT_SECTION':
                    # a local function, addressed as its section + addend
                    addend = r['r_addend'] if r.is_RELA() else 0
                    name = self.by_addr.get((sym['st_shndx'], addend))
                    if name is None:
                        continue
                self.relocs[(target, r['r_offset'])] = name

    def named(self, f, offset, imm):
        """The function an instruction names: its relocation at ``offset``
        (relocatable objects), else the function or PLT stub at ``imm``."""
        if self.relocatable:
            name = self.relocs.get((f.section, offset))
            if name:
                return name
            return self.by_addr.get((f.section, imm))
        return self.by_addr.get((0, imm)) or self.plt.get(imm)
