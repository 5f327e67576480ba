"""Golden tests for the constant-time pass: input IR -> expected findings.

Cases live in ``tests/golden/ct_cases.json`` (case name, input
``<input>.input.ll``, secret parameters per kernel, expected findings as
``[kind, function, file:line]`` in module order); an empty list is a case
where the pass must not fire.
"""

import json
import pathlib

import llvmlite.binding as ll
import pytest

from secretjit import passes

GOLDEN = pathlib.Path(__file__).parent / 'golden'
CASES = json.loads((GOLDEN / 'ct_cases.json').read_text())


def _canonical(name):
    mod = ll.parse_assembly((GOLDEN / (name + '.input.ll')).read_text())
    mod.verify()
    return str(mod)


@pytest.mark.parametrize('case', CASES, ids=[c['case'] for c in CASES])
def test_constant_time_golden(case):
    findings, report = passes.find_ct_violations(_canonical(case['input']),
                                                 case['kernels'])
    got = [[f.kind, f.function, f.location] for f in findings]
    assert got == case['findings']
    assert report['functions_checked'] >= 1
    for f in findings:
        assert f.severity == ('warning' if f.kind in passes.constant_time.WARNING_KINDS
                              else 'error')
        assert 'Fix: ' in f.line()


def test_must_fire_and_must_not_fire_cases_are_both_present():
    assert any(c['findings'] for c in CASES)
    assert any(not c['findings'] for c in CASES)


def test_unknown_kernel_is_an_error():
    with pytest.raises(ValueError, match='kernel nothere is not defined'):
        passes.find_ct_violations(_canonical('ct_early_exit'), {'nothere': ['key']})


def test_strip_debug_info_keeps_the_code():
    text = _canonical('ct_helper_branch')
    stripped, report = passes.strip_debug_info(text)
    assert report['removed_attachments'] > 0 and report['removed_lines'] == 1
    mod = ll.parse_assembly(stripped)
    mod.verify()
    assert '!dbg' not in str(mod) and 'DICompileUnit' not in str(mod)
    # the same finding, now without a line
    findings, _ = passes.find_ct_violations(str(mod), {'kernel': ['key']})
    assert [(f.kind, f.function, f.location) for f in findings] == [('branch', 'helper', '')]
    assert passes.strip_debug_info(str(mod))[1].counters == {}


def test_function_attribute_goes_before_metadata_attachments():
    """Regression: with line tables, ``define`` lines end in ``!dbg !N``."""
    from secretjit.passes.textir import add_function_attribute
    header = 'define i32 @f(i32 %x) local_unnamed_addr #0 !dbg !4 {'
    out = add_function_attribute(header, '"zero-call-used-regs"="used"')
    assert out == ('define i32 @f(i32 %x) local_unnamed_addr #0 '
                   '"zero-call-used-regs"="used" !dbg !4 {')
    assert add_function_attribute('define void @g() {', 'x') == 'define void @g() x {'


def test_lower_declassify_replaces_the_marker_asm():
    text = _canonical('ct_branch_on_public_or_declassified')
    out, report = passes.lower_declassify(text)
    assert report['lowered'] == 1
    assert 'asm' not in out and '%pub = freeze i8 %zb' in out
    ll.parse_assembly(out).verify()
    # without the marker, the branch on the key byte is a finding again
    findings, _ = passes.find_ct_violations(out, {'kernel': ['key']})
    assert [f.kind for f in findings] == ['branch']


def test_line_tables_for_dwarf_makes_a_line_tables_only_unit():
    text = ('define void @f() !dbg !4 {\n'
            '  #dbg_value(i64 0, !5, !DIExpression(), !6)\n'
            '  ret void, !dbg !6\n}\n'
            '!0 = distinct !DICompileUnit(language: DW_LANG_C89, '
            'emissionKind: DebugDirectivesOnly)\n')
    out, report = passes.line_tables_for_dwarf(text)
    assert report['units'] == 1 and report['removed_records'] == 1
    assert 'emissionKind: LineTablesOnly' in out and '#dbg_' not in out
    assert 'ret void, !dbg !6' in out           # locations stay
    # must not fire: a module without line tables is returned as it was
    plain = 'define void @g() {\n  ret void\n}\n'
    same, report = passes.line_tables_for_dwarf(plain)
    assert same == plain and not report.counters


def test_lower_declassify_drops_operand_attributes():
    """Regression: after -O3 the marker's operand carries ``range(...)``."""
    line = ('  %d.i = tail call i8 asm "${:comment} secretjit.declassify", '
            '"=r,0"(i8 range(i8 0, 2) %acc) #6, !dbg !57, !noalias !66')
    out, report = passes.lower_declassify(line + '\n')
    assert report['lowered'] == 1
    assert out == '  %d.i = freeze i8 %acc, !dbg !57, !noalias !66\n'
    # must not fire: another asm is left alone
    other = line.replace('secretjit.declassify', 'nop')
    assert passes.lower_declassify(other)[0] == other
