"""The constant-time backend (secretjit.ct_backend) for both architectures.

Compiled here with llvmlite's target machines for x86-64 and AArch64 triples
and read back with capstone, so no AArch64 machine or qemu is needed:

- the machine-code division check finds ``udiv``/``sdiv`` (AArch64) and
  ``div``/``idiv`` (x86-64) in a function dividing by a variable, and none
  where the division is by a constant (a multiplication);
- a ``select`` in a loop stays a conditional select under the hardening on
  AArch64 (LLVM has no cmov converter there; SelectOptimize and
  CodeGenPrepare's select-to-branch are off) and on x86-64, where the same
  detector finds the branch LLVM makes of it without the hardening;
- the AArch64 hardening features are ones LLVM knows.
"""

import llvmlite.binding as ll
import pytest

from secretjit.ct_backend import (disassembler, division_instructions,
                                  harden_features, hardened_backend)

TRIPLES = {'x86_64': 'x86_64-unknown-linux-gnu',
           'aarch64': 'aarch64-unknown-linux-gnu'}
CPUS = {'x86_64': ['x86-64', 'skylake'],
        'aarch64': ['generic', 'cortex-a72', 'neoverse-n1', 'neoverse-v2',
                    'cortex-a710', 'apple-m1']}

DIVISIONS = '''
define i64 @by_variable_u(i64 %a, i64 %b) {
  %q = udiv i64 %a, %b
  ret i64 %q
}
define i64 @by_variable_s(i64 %a, i64 %b) {
  %q = srem i64 %a, %b
  ret i64 %q
}
define i64 @by_constant(i64 %a) {
  %q = urem i64 %a, 1000003
  ret i64 %q
}
'''

# acc += (a[i] >> s) & 1 ? a[i] : b[i]: the select becomes a branch on x86
# without -x86-cmov-converter=false (tests/test_constant_time.py's case).
SELECT_LOOP = '''
define i64 @select_loop(ptr %a, ptr %b, i64 %n, i64 %s) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %loop]
  %acc = phi i64 [0, %entry], [%acc1, %loop]
  %pa = getelementptr i64, ptr %a, i64 %i
  %va = load i64, ptr %pa
  %pb = getelementptr i64, ptr %b, i64 %i
  %vb = load i64, ptr %pb
  %sh = lshr i64 %va, %s
  %bit = and i64 %sh, 1
  %c = icmp ne i64 %bit, 0
  %v = select i1 %c, i64 %va, i64 %vb
  %acc1 = add i64 %acc, %v
  %i1 = add i64 %i, 1
  %done = icmp eq i64 %i1, %n
  br i1 %done, label %exit, label %loop
exit:
  ret i64 %acc1
}
'''


def _machine(arch, cpu, hardened):
    ll.initialize_all_targets()
    ll.initialize_all_asmprinters()
    features = harden_features('', arch) if hardened else ''
    return ll.Target.from_triple(TRIPLES[arch]).create_target_machine(
        cpu=cpu, features=features, opt=3, reloc='pic', codemodel='default')


def _object(ir, arch, cpu, hardened):
    mod = ll.parse_assembly(ir)
    mod.triple = TRIPLES[arch]
    tm = _machine(arch, cpu, hardened)
    if not hardened:
        return tm.emit_object(mod)
    with hardened_backend(arch):
        return tm.emit_object(mod)


@pytest.mark.parametrize('arch', ['aarch64', 'x86_64'])
def test_division_check_finds_divides_by_a_variable_only(arch):
    obj = _object(DIVISIONS, arch, CPUS[arch][0], hardened=True)
    found = division_instructions(
        obj, arch, {'by_variable_u', 'by_variable_s', 'by_constant'})
    if arch == 'aarch64':
        assert found == {'by_variable_u': ['udiv'], 'by_variable_s': ['sdiv']}
    else:
        assert found == {'by_variable_u': ['div'], 'by_variable_s': ['idiv']}


def _conditional_branches(obj, arch):
    from secretjit.ct_backend import function_code
    code = function_code(obj, {'select_loop'})['select_loop']
    ins = [i.mnemonic for i in disassembler(arch).disasm(code, 0)]
    if arch == 'aarch64':
        branches = [m for m in ins if m.startswith('b.') or
                    m in ('cbz', 'cbnz', 'tbz', 'tbnz')]
        selects = [m for m in ins if m.startswith('cs')]
    else:
        branches = [m for m in ins if m.startswith('j') and m != 'jmp']
        selects = [m for m in ins if m.startswith('cmov')]
    return branches, selects


@pytest.mark.parametrize('arch,cpu', [(a, c) for a in CPUS for c in CPUS[a]])
def test_select_in_a_loop_stays_a_conditional_select(arch, cpu):
    branches, selects = _conditional_branches(
        _object(SELECT_LOOP, arch, cpu, hardened=True), arch)
    assert len(branches) == 1, branches     # the loop's own back edge
    assert selects
    if arch == 'x86_64':
        # the control: without the hardening the same detector sees the
        # branch LLVM made of the select (after a hardened block: reset)
        branches, selects = _conditional_branches(
            _object(SELECT_LOOP, arch, cpu, hardened=False), arch)
        assert len(branches) > 1 and not selects, (branches, selects)


def test_aarch64_hardening_features_are_known_to_llvm(capfd):
    features = harden_features('+neon', 'aarch64')
    assert features == '+neon,-enable-select-opt,-predictable-select-expensive'
    _object(SELECT_LOOP, 'aarch64', 'neoverse-v2', hardened=True)
    # must fire: LLVM warns (on fd 2) about a feature it does not know
    ll.Target.from_triple(TRIPLES['aarch64']).create_target_machine(
        cpu='generic', features='-no-such-feature').emit_object(
            ll.parse_assembly(SELECT_LOOP))
    err = capfd.readouterr().err
    assert "'-no-such-feature' is not a recognized feature" in err
    assert 'select-opt' not in err and 'predictable' not in err
