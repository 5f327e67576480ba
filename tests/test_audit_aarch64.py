"""The AArch64 machine-code audit passes clean builds and catches every mutation.

The input is the cheapest honest one: an AOT library cross-compiled for
AArch64 (no qemu: the audit is static), mutated the way a broken pass or a
bad merge would break it: a register zeroing dropped from the boundary, the
scrub depth 16 bytes short of the tree's depth, the in-place scrub skipped
when the kernel's status says it raised, a call to a C function that is not
on the allow-list.  Each must turn the verdict to FAIL with the right check;
the unmutated library must pass.  The rule on v8-v15 (a 128-bit write must be
followed by a 64-bit restore before ``ret``) is checked on two hand-written
objects, one that restores d8-d15 and one that does not.
"""

import io
import os
import shutil
import struct
import subprocess

import pytest

capstone = pytest.importorskip('capstone')
elffile = pytest.importorskip('elftools.elf.elffile')

from secretjit import aot, audit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PROBES = os.path.join(HERE, 'aot', 'probe_kernels.py')
TARGET = 'aarch64-linux-gnu'
NOP = struct.pack('<I', 0xd503201f)

pytestmark = pytest.mark.skipif(shutil.which('aarch64-linux-gnu-gcc') is None,
                                reason='aarch64-linux-gnu-gcc not found: apt-get '
                                       'install gcc-aarch64-linux-gnu')


@pytest.fixture(scope='module')
def library(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('audit-a64'))
    (info,) = aot._build_variants(PROBES, [dict(target=TARGET, secret=True, outdir=out)],
                                  exports=['stack_kernel', 'reg_kernel'])
    with open(info['library'], 'rb') as fh:
        return fh.read()


def _function(data, needle):
    """(file offset of the boundary whose name contains ``needle``, its insns)."""
    elf = elffile.ELFFile(io.BytesIO(data))
    text = elf.get_section_by_name('.text')
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym.name.startswith(audit.BOUNDARY) and needle in sym.name:
            off = text['sh_offset'] + sym['st_value'] - text['sh_addr']
            md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
            md.detail = True
            return off, list(md.disasm(data[off:off + sym['st_size']], 0))
    raise AssertionError('no boundary %s in the library' % needle)


def _patch(data, offset, new):
    out = bytearray(data)
    out[offset:offset + len(new)] = new
    return bytes(out)


def _movz_w(rd, imm):
    return struct.pack('<I', 0x52800000 | imm << 5 | rd)


def _result(data, needle):
    (res,) = [r for r in audit.audit_object(data) if needle in r.name]
    return res


def test_clean_library_passes(library):
    results = audit.audit_object(library)
    assert len(results) == 2 and all(r.ok and r.arch == 'aarch64' for r in results), results
    res = _result(library, 'stack_kernel')
    assert res.depth_scrubbed >= res.depth_required > 8192     # the kernel's 8 KiB frame
    assert res.externals == ['NRT_MemInfo_call_dtor', 'memset', 'secretjit_secret_call']


def test_dropped_register_zeroing_is_caught(library):
    off, insns = _function(library, 'stack_kernel')
    mov = next(i for i in insns if i.mnemonic == 'mov' and i.op_str == 'x11, #0')
    res = _result(_patch(library, off + mov.address, NOP), 'stack_kernel')
    assert not res.registers_ok and res.registers_missing == ['x11'] and not res.ok
    vec = next(i for i in insns if i.mnemonic == 'movi' and i.op_str.startswith('v17.'))
    res = _result(_patch(library, off + vec.address, NOP), 'stack_kernel')
    assert res.registers_missing == ['v17'] and not res.ok


def _with_depth(data, needle, reg, depth):
    """The scrub immediate in ``reg`` (w2: secret stack, w0: in place) set to ``depth``."""
    off, insns = _function(data, needle)
    (site,) = [i for i in insns if i.mnemonic == 'mov' and i.op_str.startswith(reg + ', #0x')]
    return _patch(data, off + site.address, _movz_w(int(reg[1:]), depth))


def _needs(res):
    (need,) = {int(p.rsplit(' ', 1)[1]) for p in res.scrub_problems}
    return need


@pytest.mark.parametrize('reg', ['w2', 'w0'], ids=['secret_stack', 'in_place'])
def test_scrub_depth_short_by_16_is_caught(library, reg):
    """The depth each scrub needs (the audit's own, read from its report for a
    scrub of 0 bytes) passes; 16 bytes less fails."""
    need = _needs(_result(_with_depth(library, 'stack_kernel', reg, 0), 'stack_kernel'))
    assert need > 8192                                  # the kernel's 8 KiB frame
    assert _result(_with_depth(library, 'stack_kernel', reg, need), 'stack_kernel').ok
    res = _result(_with_depth(library, 'stack_kernel', reg, need - 16), 'stack_kernel')
    assert not res.scrub_ok and not res.ok and _needs(res) == need
    kind = 'secret stack' if reg == 'w2' else 'in-place'
    assert res.scrub_problems == ['%s scrub of %d bytes at 0x%x, tree needs %d' % (
        kind, need - 16, int(res.scrub_problems[0].split(' at 0x')[1].split(',')[0], 16),
        need)]
    if reg == 'w2':     # a leaf kernel inlined into its thunk, which has no
        # frame: the build passes 0 (mov x2, xzr), which the audit reads, and
        # the tree needs 0
        res = _result(library, 'reg_kernel')
        assert res.ok and res.depth_scrubbed == res.depth_required == 0, res


def test_scrub_skipped_on_the_raising_path_is_caught(library):
    """``bl kernel; cbnz w0, past the scrub``: w0 holds the kernel's status."""
    off, insns = _function(library, 'stack_kernel')
    k = next(n for n, i in enumerate(insns) if i.mnemonic == 'mov'
             and i.op_str.startswith('w0, #0x'))
    mov, bl, after = insns[k:k + 3]
    assert insns[k - 1].mnemonic == 'bl' and bl.mnemonic == 'bl'
    cbnz = struct.pack('<I', 0x35000000 | ((after.address + 4 - mov.address) // 4) << 5)
    moved = (bl.operands[0].imm - (bl.address + 4)) // 4 & 0x3ffffff      # bl, 4 bytes on
    new = cbnz + library[off + mov.address:off + bl.address] + \
        struct.pack('<I', 0x94000000 | moved)
    res = _result(_patch(library, off + mov.address, new), 'stack_kernel')
    assert not res.scrub_ok and not res.ok
    assert any('no scrub' in p for p in res.scrub_problems), res.scrub_problems


def test_call_to_an_unlisted_external_is_caught(library):
    elf = elffile.ELFFile(io.BytesIO(library))
    dynsym = elf.get_section_by_name('.dynsym')
    names = [s.name for s in dynsym.iter_symbols()]
    unlisted = names.index('getenv')
    rela = elf.get_section_by_name('.rela.plt')
    data = library
    for i, r in enumerate(rela.iter_relocations()):
        if names[r['r_info_sym']] == 'memset':
            at = rela['sh_offset'] + i * rela['sh_entsize'] + 8
            data = _patch(data, at, struct.pack('<Q', unlisted << 32 | r['r_info_type']))
    res = _result(data, 'stack_kernel')
    assert not res.calls_ok and res.unlisted == ['getenv'] and not res.ok


# -- v8-v15: high halves cleared by the d8-d15 restore --------------------------

_ZERO = ''.join('    mov x%d, #0\n' % i for i in range(1, 19)) + ''.join(
    '    movi v%d.2d, #0\n' % i for i in list(range(8)) + list(range(16, 32)))
_HIGH = """
    stp d8, d9, [sp, #-16]!
    ldr q8, [x0]
    str q8, [x1]
    %s
"""
_OBJECT = '''
    .text
    .arch armv8-a+sve
    .globl kern
    .type kern, %%function
kern:
%s
    ret
    .size kern, .-kern
    .globl "__secretjit.boundary.kern"
    .type "__secretjit.boundary.kern", %%function
"__secretjit.boundary.kern":
    stp x29, x30, [sp, #-16]!
    adrp x0, kern
    add x0, x0, :lo12:kern
    mov w2, #%d
    bl secretjit_secret_call
    cbz w0, 3f
    bl kern
    mov x9, sp
    mov x8, #%d
    sub x10, x9, x8
    b 2f
1:  stp xzr, xzr, [x10], #16
2:  cmp x10, x9
    b.lo 1b
3:  ldp x29, x30, [sp], #16
%s    ret
    .size "__secretjit.boundary.kern", .-"__secretjit.boundary.kern"
'''


def _assemble(tmp_path, body, depth=32):
    src, obj = tmp_path / 'k.s', tmp_path / 'k.o'
    src.write_text(_OBJECT % (body, depth, depth, _ZERO))
    subprocess.run(['aarch64-linux-gnu-gcc', '-c', '-o', str(obj), str(src)], check=True)
    return obj.read_bytes()


def test_v8_v15_high_halves(tmp_path):
    """Must not fire: ``ldp d8, d9`` restores (and clears) them; must fire: the
    same object that only pops the stack leaves v8's high half written."""
    (clean,) = audit.audit_object(_assemble(tmp_path, _HIGH % 'ldp d8, d9, [sp], #16'))
    assert clean.ok, clean
    assert clean.depth_required == 16 and clean.depth_scrubbed == 32
    (broken,) = audit.audit_object(_assemble(tmp_path, _HIGH % 'add sp, sp, #16'))
    assert broken.registers_missing == ['v8 high half (in kern)'] and not broken.ok
    assert broken.scrub_ok and broken.calls_ok


_FRAMES = """
    str x29, [sp, #-32]!
    sub sp, sp, #1, lsl #12
    addvl sp, sp, #-2
    addvl sp, sp, #2
    add sp, sp, #1, lsl #12
    ldr x29, [sp], #32
"""


def test_frames_the_audit_counts(tmp_path):
    """A pre-indexed store (32), ``sub .. lsl #12`` (4096) and ``addvl #-2``
    (2 x 256, the largest SVE vectors): the scrub needs exactly their sum;
    16 bytes less is caught; ``sub sp, sp, x8`` cannot be bounded."""
    need = 32 + 4096 + 2 * 256
    (exact,) = audit.audit_object(_assemble(tmp_path, _FRAMES, need))
    assert exact.ok and exact.depth_required == need, exact
    (short,) = audit.audit_object(_assemble(tmp_path, _FRAMES, need - 16))
    assert not short.scrub_ok and len(short.scrub_problems) == 2, short.scrub_problems
    with pytest.raises(audit.AuditError, match=r'kern .*dynamic frame'):
        audit.audit_object(_assemble(tmp_path, 'sub sp, sp, x8\n    add sp, sp, x8'))


def test_unreadable_targets_are_clear_errors(tmp_path, library, capsys):
    junk = tmp_path / 'libjunk.so'
    junk.write_bytes(b'not an ELF file')
    assert audit.main(str(junk)) == 2
    assert 'not an ELF object' in capsys.readouterr().err
    riscv = tmp_path / 'libriscv.so'
    riscv.write_bytes(_patch(library, 18, struct.pack('<H', 243)))       # e_machine
    assert audit.main(str(riscv)) == 2
    assert 'x86-64 and AArch64' in capsys.readouterr().err
