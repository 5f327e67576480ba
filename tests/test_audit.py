"""The machine-code audit passes clean builds and catches every mutation.

The mutations break the object code the JIT loaded (a copy of its bytes),
the way a broken pass or a bad merge would: a register zeroing dropped from
the boundary, the scrub depth shrunk by 16 bytes, the scrub skipped when the
kernel's status says it raised, a call to a C function that is not on the
allow-list.  Each must turn the audit's verdict to FAIL with the right check;
the unmutated object must pass.
"""

import io
import platform
import struct

import numpy as np
import pytest

capstone = pytest.importorskip('capstone')
elffile = pytest.importorskip('elftools.elf.elffile')

from secretjit import audit, secret_jit  # noqa: E402
from secretjit.__main__ import main  # noqa: E402

from _ctcheck_cases import vetted_entry_kernels  # noqa: E402
from _kernels import stack_kernel  # noqa: E402

pytestmark = pytest.mark.skipif(platform.machine() != 'x86_64',
                                reason='x86-64 machine-code audit')


@pytest.fixture(scope='module')
def built():
    from numba import typeof
    copy = audit.fresh_copy(secret_jit(stack_kernel),
                            [(typeof(np.arange(4, dtype=np.uint64)),)])
    lib = copy.overloads[copy.signatures[0]].library
    return (lib._get_compiled_object(), dict(lib.codegen.runtime_depths),
            lib.stack_bounds)


def _audit(data, built):
    (res,) = audit.audit_object(data, allowances=built[1], stack_bounds=built[2])
    return res


def _boundary(data):
    elf = elffile.ELFFile(io.BytesIO(data))
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym.name.startswith(audit.BOUNDARY) and sym['st_size']:
            sec = elf.get_section(sym['st_shndx'])
            base = sec['sh_offset'] + sym['st_value']
            md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
            code = data[base:base + sym['st_size']]
            return base, list(md.disasm(code, 0))
    raise AssertionError('no boundary in the object')


def _patch(data, offset, new):
    out = bytearray(data)
    out[offset:offset + len(new)] = new
    return bytes(out)


def test_clean_build_passes_and_matches_stack_bound(built):
    res = _audit(built[0], built)
    assert res.ok, res
    assert res.depth_scrubbed == res.stack_bound_depth >= res.depth_required > 0
    # memset is the secret engine's shadow (a marked runtime entry, issue 15):
    # the probe kernel takes the exact entry
    assert res.externals == ['memset', 'secretjit_secret_call_exact']


def test_dropped_register_zeroing_is_caught(built):
    base, insns = _boundary(built[0])
    xor = next(i for i in insns if i.mnemonic == 'xor' and i.op_str == 'r11d, r11d')
    res = _audit(_patch(built[0], base + xor.address, b'\x90' * xor.size), built)
    assert not res.registers_ok and res.registers_missing == ['r11'] and not res.ok


def _shrink_scrub(data, by=16):
    base, insns = _boundary(data)
    for i in insns:                      # both immediates: secret stack and in place
        if i.mnemonic == 'mov' and i.op_str.startswith(('edx, 0x', 'esi, 0x')):
            imm = int(i.op_str.split(',')[1], 0)
            data = _patch(data, base + i.address + 1, struct.pack('<I', imm - by))
    return data


def test_scrub_depth_shrunk_by_16_is_caught(built):
    res = _audit(_shrink_scrub(built[0]), built)
    assert not res.scrub_ok and not res.ok
    assert any('needs' in p for p in res.scrub_problems), res.scrub_problems


def test_scrub_skipped_on_the_raising_path_is_caught(built):
    """``test edx, edx; jne past rep stosq``: edx holds the kernel's status."""
    base, insns = _boundary(built[0])
    k = next(n for n, i in enumerate(insns)
             if i.mnemonic == 'mov' and i.op_str == 'rcx, rsi')
    assert insns[k + 1].op_str == 'rcx, 3' and insns[k + 3].mnemonic.startswith('rep')
    start = insns[k].address
    after = insns[k + 3].address + insns[k + 3].size
    jne = after - (start + 4)
    new = b'\x85\xd2' + bytes([0x75, jne]) + b'\x48\x89\xf1'
    assert len(new) == insns[k].size + insns[k + 1].size
    res = _audit(_patch(built[0], base + start, new), built)
    assert not res.scrub_ok and not res.ok
    assert any('no scrub' in p for p in res.scrub_problems), res.scrub_problems


def test_call_to_an_unlisted_external_is_caught(built):
    data = built[0]
    elf = elffile.ELFFile(io.BytesIO(data))
    symtab = elf.get_section_by_name('.symtab')
    names = [s.name for s in symtab.iter_symbols()]
    unlisted = names.index('PyBytes_FromStringAndSize')
    rela = elf.get_section_by_name('.rela.ltext')
    for i, r in enumerate(rela.iter_relocations()):
        if names[r['r_info_sym']] == 'memset':
            off = rela['sh_offset'] + i * rela['sh_entsize'] + 8
            data = _patch(data, off, struct.pack('<Q', unlisted << 32 | r['r_info_type']))
    res = _audit(data, built)
    assert not res.calls_ok and 'PyBytes_FromStringAndSize' in res.unlisted and not res.ok


VETTED = sorted(vetted_entry_kernels())


@pytest.fixture(scope='module')
def vetted_cases():
    """Every vetted entry kernel with sample arguments (the ctcheck cases)."""
    from _ctcheck_cases import ctcheck_cases
    cases = {k.py_func.__name__: (k, args) for k, args in ctcheck_cases()
             if k.__module__.startswith('secretjit.kernels')}
    return cases


def test_every_vetted_entry_kernel_has_a_ctcheck_case(vetted_cases):
    # the valgrind run and the audit below cover exactly the kernels
    # secretjit.kernels defines: a new entry kernel without a case fails here
    assert len(VETTED) >= 14, VETTED
    assert sorted(vetted_cases) == VETTED


@pytest.mark.parametrize('name', VETTED)
def test_vetted_kernels_pass(name, vetted_cases):
    # the entry kernels themselves (the Python API runs its own API kernels)
    from numba import typeof
    kernel, args = vetted_cases[name]
    results = audit.audit_dispatcher(
        audit.fresh_copy(kernel, [tuple(typeof(a) for a in args)]))
    assert results and all(r.ok for r in results), results
    for r in results:
        assert r.depth_scrubbed >= r.depth_required
        assert r.depth_scrubbed == r.stack_bound_depth


def test_audit_cli_json_and_exit_status(tmp_path, capsys):
    import json
    import os
    example = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples',
                           'verify_kernels.py')
    out = tmp_path / 'audit.json'
    assert main(['audit', example + ':derive', '--json', str(out)]) == 0
    text = capsys.readouterr().out
    assert 'boundary of secretjit.demo.derive_session' in text and 'PASS' in text
    rep = json.loads(out.read_text())
    assert rep['ok'] and rep['boundaries'][0]['registers_ok']
    assert main(['audit', str(tmp_path / 'none.so')]) == 2


# -- calls through a register: the callee's address follows the control flow ----

def _fake_object(code, relocs):
    """An :class:`ObjectCode` stand-in holding one function, ``code`` at 0."""
    import types

    from secretjit.audit.elf import Function
    cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    cs.detail = True
    obj = types.SimpleNamespace(
        relocatable=True, cs=cs, relocs={(1, off + 2): name for off, name in relocs.items()}, by_addr={})
    obj.named = lambda f, offset, imm: obj.relocs.get((f.section, offset))
    f = Function('f', 1, 0, bytes(code))
    from secretjit.audit.x86_64 import ARCH
    ARCH.analyse(obj, f)
    return dict(f.calls)


MOVABS_R15 = [0x49, 0xbf] + [0] * 8          # movabs r15, imm64 (a relocation at +2)
CALL_R15 = [0x41, 0xff, 0xd7]                # call r15
TEST_EDI, RET, NOP = [0x85, 0xff], [0xc3], [0x90]


def test_callee_in_a_saved_register_is_followed_across_blocks():
    """``movabs r15, A``; a side block (before the call in address order,
    not on its path) overwrites r15 and returns; the call through r15 is A.
    (A scan in address order lost r15 at the side block: LLVM lays out
    ``_seal``'s decref calls that way, and the audit failed it.)"""
    code = (MOVABS_R15 + TEST_EDI + [0x75, 0x06]          # 0, 10; 12: jne 20
            + [0x49, 0x89, 0xcf] + RET + NOP + NOP        # 14: mov r15, rcx; ret
            + CALL_R15 + RET)                             # 20: call r15
    assert _fake_object(code, {0: 'NRT_decref'}) == {20: 'NRT_decref'}


def test_callee_that_differs_between_paths_is_not_resolved():
    """Two paths load different functions into r15 before a shared call:
    the call's target is unknown (None), where a scan in address order
    would have named the last one it read; the same code loading one
    function on both paths names it (must-not-fire)."""
    code = (MOVABS_R15 + TEST_EDI + [0x74, 0x05]          # 0, 10; 12: je 19
            + CALL_R15 + [0xeb, 0x0a]                     # 14: call r15; 17: jmp 29
            + MOVABS_R15                                  # 19: movabs r15, B
            + CALL_R15 + RET)                             # 29: call r15
    assert _fake_object(code, {0: 'A', 19: 'B'}) == {14: 'A', 29: None}
    assert _fake_object(code, {0: 'A', 19: 'A'}) == {14: 'A', 29: 'A'}
    # a 32-bit write replaces the whole register (the scan missed it)
    code = MOVABS_R15 + [0x45, 0x31, 0xff] + CALL_R15 + RET     # xor r15d, r15d
    assert _fake_object(code, {0: 'A'}) == {13: None}


# the red zone (audit.x86_64.below_sp, the rule of stack_bound.x86_64's):
# a leaf that reaches below rsp keeps the 128 bytes in its depth
REACHES_BELOW_RSP = [
    '48897c24f8',           # mov [rsp - 8], rdi
    '488b4424f8',           # mov rax, [rsp - 8]
    '488944cc08',           # mov [rsp + rcx*8 + 8], rax: indexed
    '488d442410',           # lea rax, [rsp + 0x10]: its address
    '4889e5',               # mov rbp, rsp
    '54',                   # push rsp
]
STAYS_AT_OR_ABOVE_RSP = [
    '48893c24',             # mov [rsp], rdi
    '488b442418',           # mov rax, [rsp + 0x18]
    '0f2944240f',           # movaps [rsp + 0xf], xmm0
    '4883ec18',             # sub rsp, 0x18 (the frame accounting's)
    '4883e4e0',             # and rsp, -32
    '4889ec',               # mov rsp, rbp
    '53', '5b', 'c3',       # push rbx, pop rbx, ret
    '0f1144f0e0',           # movups [rax + rsi*8 - 0x20], xmm0: not rsp
]


def _one(hexcode):
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.detail = True
    (ins,) = md.disasm(bytes.fromhex(hexcode), 0)
    return ins


@pytest.mark.parametrize('hexcode', REACHES_BELOW_RSP)
def test_below_rsp_fires(hexcode):
    from secretjit.audit.x86_64 import below_sp
    assert below_sp(_one(hexcode))


@pytest.mark.parametrize('hexcode', STAYS_AT_OR_ABOVE_RSP)
def test_below_rsp_does_not_fire(hexcode):
    from secretjit.audit.x86_64 import below_sp
    assert not below_sp(_one(hexcode))


def test_trivial_leaf_is_bounded_without_the_red_zone():
    """``x + 1``: the kernel is a leaf that stores nothing below rsp, so the
    audit requires (and the boundary scrubs) the thunk's frame and the
    return addresses only, not the 128-byte red zone; the audit passes and
    still fails the scrub shrunk by 16 bytes (must-fire)."""
    from numba import typeof

    def plus_one(x):
        return x + 1

    copy = audit.fresh_copy(secret_jit(plus_one), [(typeof(1),)])
    lib = copy.overloads[copy.signatures[0]].library
    data = lib._get_compiled_object()
    built = (data, dict(lib.codegen.runtime_depths), lib.stack_bounds)
    res = _audit(data, built)
    assert res.ok, res
    assert res.depth_scrubbed == res.stack_bound_depth >= res.depth_required
    assert res.depth_scrubbed < 128
    res = _audit(_shrink_scrub(data), built)
    assert not res.scrub_ok and any('needs' in p for p in res.scrub_problems), res
