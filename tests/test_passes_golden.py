"""Golden tests for the LLVM passes: input IR -> expected IR, plus counters.

Cases live in ``tests/golden/cases.json`` (one line per case, named
``<pass>_<what>``: grep a pass's name to find its cases); inputs are
``<input>.input.ll`` and expected outputs ``<case>.expected.ll``.  Cases where
a pass must not fire expect the input back unchanged.  The generated C ABI
wrappers have their own cases, ``tests/golden/c_abi_cases.json``.
Regenerate expected files with ``SECRETJIT_REGOLD=1 pytest
tests/test_passes_golden.py`` and review the diff.
"""

import json
import os
import pathlib
import re

import llvmlite.binding as ll
import pytest

from secretjit import passes

GOLDEN = pathlib.Path(__file__).parent / 'golden'
CASES = json.loads((GOLDEN / 'cases.json').read_text())
C_ABI_CASES = json.loads((GOLDEN / 'c_abi_cases.json').read_text())
ROOT = pathlib.Path(__file__).parent.parent


def _canonical(text):
    """LLVM's own printing of ``text``: ignores formatting, checks validity."""
    mod = ll.parse_assembly(text)
    mod.verify()
    return str(mod)


@pytest.mark.parametrize('case', CASES, ids=[c['case'] for c in CASES])
def test_pass_golden(case):
    source = (GOLDEN / (case['input'] + '.input.ll')).read_text()
    run = getattr(passes, case['pass'])
    out, report = run(_canonical(source), **case['kwargs'])
    assert dict(report.counters) == case['counters']
    expected_file = GOLDEN / (case['case'] + '.expected.ll')
    if os.environ.get('SECRETJIT_REGOLD'):
        expected_file.write_text(_canonical(out))
    assert _canonical(out) == expected_file.read_text()


def test_write_depths_refuses_missing_depth():
    source = _canonical((GOLDEN / 'depths.input.ll').read_text())
    with pytest.raises(ValueError, match='no stack depth computed.*kernel'):
        passes.write_depths(source, {})


def test_boundary_rejects_unknown_arch():
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    with pytest.raises(NotImplementedError, match='riscv64'):
        passes.insert_boundaries(source, [('cpython.kernel', 'kernel')], 'riscv64')


def test_boundary_is_idempotent():
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    once, _ = passes.insert_boundaries(source, [('cpython.kernel', 'kernel')], 'x86_64')
    twice, report = passes.insert_boundaries(_canonical(once),
                                             [('cpython.kernel', 'kernel')], 'x86_64')
    assert report['boundaries_added'] == 0
    assert _canonical(twice) == _canonical(once)


def test_boundary_with_the_vector_epilogue_golden():
    """AVX-512 x86-64: LLVM zeroes the GPRs ("all-gpr"); one exit block runs
    passes.epilogue's asm (x87, xmm0-31 once each, k0-k7) before the ret."""
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    epilogue = passes.register_epilogue('x86_64', '+sse2,+avx,+avx2,+avx512f')
    out, report = passes.insert_boundaries(source, [('cpython.kernel', 'kernel')],
                                           'x86_64', epilogue)
    assert dict(report.counters) == {'boundaries_added': 1, 'calls_rerouted': 1}
    expected_file = GOLDEN / 'boundary_inserted_epilogue.expected.ll'
    if os.environ.get('SECRETJIT_REGOLD'):
        expected_file.write_text(_canonical(out))
    assert _canonical(out) == expected_file.read_text()
    asm = epilogue[0]
    assert asm.count('fldz') == 8 and asm.count('vxorps') == 16 and asm.count('kxorw') == 8
    # xmm16-31 and the masks with AVX512F-only instructions (EVEX vxorps on
    # xmm16+ needs AVX512DQ+VL, kxorq AVX512BW: both fault on such a CPU)
    assert asm.count('vpxord %zmm') == 16 and 'vxorps %xmm16' not in asm and 'kxorq' not in asm
    avx2 = passes.register_epilogue('x86_64', '+sse2,+avx,+avx2,-avx512f')[0]
    assert avx2.count('vxorps') == 16 and 'xmm16' not in avx2 and 'kxorq' not in avx2


@pytest.mark.parametrize('arch, features', [
    ('x86_64', '+sse2,-avx,-avx2'), ('aarch64', '+neon,+sve'), ('x86_64', '')])
def test_no_vector_epilogue_keeps_llvms_all(arch, features):
    assert passes.register_epilogue(arch, features) is None
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    with_none, _ = passes.insert_boundaries(source, [('cpython.kernel', 'kernel')],
                                            'x86_64', None)
    assert _canonical(with_none) == (GOLDEN / 'boundary_inserted.expected.ll').read_text()


def test_pass_golden_unchanged_cases_are_really_unchanged():
    """A must-not-fire case reports nothing and gives its input back."""
    quiet = [c for c in CASES if not c['counters']]
    assert len(quiet) >= 8
    for case in quiet:
        source = _canonical((GOLDEN / (case['input'] + '.input.ll')).read_text())
        out, _ = getattr(passes, case['pass'])(source, **case['kwargs'])
        assert _canonical(out) == source, case['case']


@pytest.mark.parametrize('case', C_ABI_CASES, ids=[c['case'] for c in C_ABI_CASES])
def test_c_abi_wrappers_golden(case):
    specs = [passes.WrapperSpec(**dict(
        s, params=[tuple(p) for p in s['params']],
        result=tuple(s['result']) if s['result'] else None))
        for s in case['specs']]
    mod, report = passes.c_abi_wrappers(specs)
    assert dict(report.counters) == case['counters']
    expected_file = GOLDEN / (case['case'] + '.expected.ll')
    out = _canonical(str(mod))
    if os.environ.get('SECRETJIT_REGOLD'):
        expected_file.write_text(out)
    assert out == expected_file.read_text()


def test_neutral_atomics_refuses_unknown_condition():
    source = _canonical((GOLDEN / 'bad_atomic.input.ll').read_text())
    with pytest.raises(ValueError, match='condition 7'):
        passes.neutral_atomics(source)


def test_empty_inline_asm_refuses_other_asm_and_restore_scrubs_puts_it_back():
    """Other inline asm (here the x86-64 scrub) cannot be emitted empty; the
    AArch64 scrub goes back after the //APP of a boundary, not elsewhere."""
    source = _canonical((GOLDEN / 'after_boundary.input.ll').read_text())
    with pytest.raises(ValueError, match='inline asm other than the scrub'):
        passes.empty_inline_asm(source, 'aarch64')
    asm = ('f:\n\t//APP\n\t//NO_APP\n\tret\n__secretjit.boundary.k:\n\tmov\tx8, #64\n'
           '.LBB1_1:\n\t//APP\n\t//NO_APP\n\tret\n')
    out = passes.restore_scrubs(asm, 'aarch64', 1)
    assert out.count('sub x10, x9, x8') == 1
    assert out.index('sub x10, x9, x8') > out.index('.LBB1_1:')
    with pytest.raises(ValueError, match='1 empty asm blocks in the boundaries, 2'):
        passes.restore_scrubs(asm, 'aarch64', 2)


def test_passes_chain_on_one_parsed_module():
    """A Module handed from pass to pass gives what the text round trips give."""
    from secretjit.passes.textir import Module
    source = _canonical((GOLDEN / 'wrapper_and_kernel.input.ll').read_text())
    entries = [('cpython.kernel', 'kernel')]
    text, _ = passes.insert_boundaries(source, entries, 'x86_64')
    text, _ = passes.zero_call_used_regs(_canonical(text), skip=['cpython.kernel'])
    text, _ = passes.write_depths(_canonical(text), {'kernel': 4160})
    mod = Module.parse(source)
    passes.insert_boundaries(mod, entries, 'x86_64')
    passes.zero_call_used_regs(mod, skip=['cpython.kernel'])
    assert passes.placeholders(mod) == ['kernel']
    passes.write_depths(mod, {'kernel': 4160})
    assert _canonical(mod.text()) == _canonical(text)


# What editing IR looks like: IR text in Python strings, textir's editing
# API, string surgery on printed modules.  Only passes/ may do it.
_IR_EDITS = re.compile(
    r"""['"](?:define|declare) |attributes #|target (?:triple|datalayout) ="""
    r"""|asm sideeffect|\.header = |\.body = |set_linkage\(|append_text\("""
    r"""|add_function_attribute\(|\.linkage = ll\.""")
_TEXT_SURGERY = re.compile(r're\.sub\(|\.subn\(|\.replace\(')
# Modules that handle module text and do string surgery on something else.
_NOT_IR = {('secretjit/aot/_build.py', "re.sub(r'\\W', '_', stem)"),
           ('secretjit/aot/_build.py', "doc.replace('*/', '* /')")}


def test_no_ir_is_edited_outside_passes():
    found = []
    for path in sorted((ROOT / 'secretjit').rglob('*.py')):
        rel = path.relative_to(ROOT).as_posix()
        text = path.read_text()
        handles_ir = re.search(r'parse_assembly|textir|_final_module', text)
        for n, line in enumerate(text.splitlines(), 1):
            if _IR_EDITS.search(line) or (handles_ir and _TEXT_SURGERY.search(line)
                                          and not any(rel == f and s in line
                                                      for f, s in _NOT_IR)):
                found.append('%s:%d: %s' % (rel, n, line.strip()))
    assert not found, 'IR edited outside passes/:\n' + '\n'.join(found)
