"""Mutations of AArch64 object code for the audit tests (JIT and cross JIT objects)."""

import io
import struct

NOP = struct.pack('<I', 0xd503201f)


def boundary_insns(data):
    """``[(file offset of the boundary, its instructions)]`` of an ELF object."""
    import capstone
    from elftools.elf.elffile import ELFFile
    elf = ELFFile(io.BytesIO(data))
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    out = []
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym.name.startswith('__secretjit.boundary.') and sym['st_size']:
            base = elf.get_section(sym['st_shndx'])['sh_offset'] + sym['st_value']
            out.append((base, list(md.disasm(data[base:base + sym['st_size']], 0))))
    if not out:
        raise AssertionError('no boundary in the object')
    return out


def _patch(data, offset, new):
    out = bytearray(data)
    out[offset:offset + len(new)] = new
    return bytes(out)


def nop_in_boundary(data, op_str):
    """``data`` with the boundary's one instruction whose operands are ``op_str`` made a nop."""
    (base, insns), = boundary_insns(data)
    (ins,) = [i for i in insns if i.op_str == op_str]
    return _patch(data, base + ins.address, NOP)


def set_depth(data, old, new):
    """``data`` with every ``movz`` of ``old`` in the boundary (the depths it
    passes to the secret call and to the in-place scrub) loading ``new``."""
    (base, insns), = boundary_insns(data)
    hits = [i for i in insns if i.mnemonic in ('mov', 'movz') and len(i.operands) == 2
            and i.operands[1].type == 2 and i.operands[1].imm == old]
    assert hits and 0 <= new < 1 << 16 and old < 1 << 16, (old, new)
    for i in hits:
        word, = struct.unpack('<I', data[base + i.address:base + i.address + 4])
        assert word & 0x7f800000 == 0x52800000, hex(word)        # movz, hw = 0
        data = _patch(data, base + i.address,
                      struct.pack('<I', word & ~(0xffff << 5) | new << 5))
    return data, len(hits)
