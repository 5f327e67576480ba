"""The machine-code stack analysis on small, hand-written x86-64 functions."""

import pytest

from secretjit import SecretPolicyError
from secretjit.stack_bound import (DEFAULT_ALLOWANCE, compute_bounds,
                                   external_allowance, parse_x86_64, readable)
from secretjit.stack_bound.x86_64 import below_sp

LEAF = '''
leaf:
\tsubq\t$24, %rsp
\tmovq\t%rdi, (%rsp)
\taddq\t$24, %rsp
\tretq
.Lfunc_end0:
'''

HOISTED = '''
caller:
\tpushq\t%rbx
\tpushq\t%r14
\tsubq\t$40, %rsp
\tmovabsq\t$leaf, %rbx
\tmovabsq\t$memset, %rax
\tcallq\t*%rax
.LBB1_1:
\tcallq\t*%rbx
\tmovq\t%rax, %r14
\tjne\t.LBB1_1
\tmovabsq\t$malloc, %rbx
\tcallq\t*%rbx
\taddq\t$40, %rsp
\tpopq\t%r14
\tpopq\t%rbx
\tretq
.Lfunc_end1:
'''


RED_ZONE_LEAF = '''
leaf:
\tmovq\t%rdi, -8(%rsp)
\tmovq\t-8(%rsp), %rax
\tretq
.Lfunc_end0:
'''


def test_leaf_frame_and_red_zone():
    info = parse_x86_64(LEAF, {'leaf'})['leaf']
    assert info.frame == 8 + 24 and not info.calls and not info.below_sp
    bound = compute_bounds(LEAF, {'leaf'}, ['leaf'], 'x86_64')['leaf']
    assert bound.depth == 32                # stores at or above rsp only
    # control: the same kind of leaf storing below rsp gets the red zone
    info = parse_x86_64(RED_ZONE_LEAF, {'leaf'})['leaf']
    assert info.below_sp == 'movq %rdi, -8(%rsp)'
    bound = compute_bounds(RED_ZONE_LEAF, {'leaf'}, ['leaf'], 'x86_64')['leaf']
    assert bound.depth == 16 + 128


# below_sp: the instructions that may reach the red zone (must fire) and the
# ones that stay at or above rsp or only move it (must not fire)
BELOW_SP = [
    ('movq', ['%rdi', '-8(%rsp)']),             # a store below rsp
    ('movups', ['-0x20(%rsp)', '%xmm0']),       # objdump's hex, a load
    ('movq', ['%rax', '8(%rsp,%rcx,8)']),       # indexed: any offset
    ('movl', ['%eax', 'foo(%rsp)']),            # symbolic displacement
    ('leaq', ['16(%rsp)', '%rax']),             # its address, offset later
    ('movq', ['%rsp', '%rbp']),                 # the frame-pointer idiom
    ('movq', ['%rsp', '%rax']),
    ('pushq', ['%rsp']),
    ('movq', ['%rax', '%fs:-8(%rsp)']),         # a form the rule does not parse
]
NOT_BELOW_SP = [
    ('movq', ['%rdi', '(%rsp)']),
    ('movq', ['24(%rsp)', '%rax']),
    ('movaps', ['%xmm0', '0x10(%rsp)']),
    ('subq', ['$24', '%rsp']),                  # frame accounting's cases
    ('addq', ['$24', '%rsp']),
    ('andq', ['$-32', '%rsp']),
    ('leaq', ['-16(%rbp)', '%rsp']),
    ('movq', ['%rbp', '%rsp']),
    ('pushq', ['%rbx']),
    ('popq', ['%rbx']),
    ('callq', ['*%rax']),
    ('retq', []),
    ('movq', ['-8(%rbp)', '%rax']),             # not rsp
]


@pytest.mark.parametrize('mnem,ops', BELOW_SP)
def test_below_sp_fires(mnem, ops):
    assert below_sp(mnem, ops)


@pytest.mark.parametrize('mnem,ops', NOT_BELOW_SP)
def test_below_sp_does_not_fire(mnem, ops):
    assert not below_sp(mnem, ops)


def test_frame_pointer_leaf_keeps_the_red_zone():
    asm = '''
leaf:
\tpushq\t%rbp
\tmovq\t%rsp, %rbp
\tmovq\t%rdi, -8(%rbp)
\tpopq\t%rbp
\tretq
.Lfunc_end0:
'''
    bound = compute_bounds(asm, {'leaf'}, ['leaf'], 'x86_64')['leaf']
    assert bound.depth == 16 + 128          # rbp = rsp, then below it


def test_hoisted_function_address_is_followed_through_a_loop():
    asm = LEAF + HOISTED
    info = parse_x86_64(asm, {'leaf', 'caller'})['caller']
    assert info.frame == 8 + 16 + 40
    assert info.callees == {'leaf', 'memset', 'malloc'} and info.indirect == 0
    bound = compute_bounds(asm, {'leaf', 'caller'}, ['caller'], 'x86_64')['caller']
    assert bound.depth == 64 + external_allowance('malloc')
    assert set(bound.externals) == {'memset', 'malloc'}


def test_register_overwritten_on_one_path_is_unknown():
    asm = '''
f:
\tpushq\t%rbx
\tmovabsq\t$leaf, %rbx
\tjne\t.LBB0_2
\tmovq\t(%rdi), %rbx
.LBB0_2:
\tcallq\t*%rbx
\tpopq\t%rbx
\tretq
.Lfunc_end0:
'''
    info = parse_x86_64(asm, {'f'})['f']
    assert info.indirect == 1 and not info.callees
    # an unknown callee gets no guessed allowance: refused ...
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\]: f calls through a '
                       r'function pointer'):
        compute_bounds(asm, {'f'}, ['f'], 'x86_64')
    # ... unless the caller states one (the secret runtime does, for its callbacks)
    bound = compute_bounds(asm, {'f'}, ['f'], 'x86_64',
                           indirect_allowance=DEFAULT_ALLOWANCE)['f']
    assert bound.depth >= DEFAULT_ALLOWANCE


def test_jump_table_is_not_a_call():
    asm = '''
f:
\tmovabsq\t$.LJTI0_0, %rcx
\tjmpq\t*(%rcx,%rax,8)
.LBB0_1:
\tretq
.Lfunc_end0:
'''
    info = parse_x86_64(asm, {'f'})['f']
    assert info.indirect == 0 and not info.calls


def test_dynamic_frame_rejected():
    asm = '''
f:
\tpushq\t%rbp
\tmovq\t%rsp, %rbp
\tsubq\t%rax, %rsp
\tleave
\tretq
.Lfunc_end0:
'''
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\].*subq %rax, %rsp'):
        compute_bounds(asm, {'f'}, ['f'], 'x86_64')


def test_realignment_counts_as_slack():
    asm = '''
f:
\tpushq\t%rbp
\tmovq\t%rsp, %rbp
\tandq\t$-64, %rsp
\tsubq\t$128, %rsp
\tmovq\t%rbp, %rsp
\tpopq\t%rbp
\tretq
.Lfunc_end0:
'''
    assert parse_x86_64(asm, {'f'})['f'].frame == 8 + 8 + 64 + 128


def test_interpreter_callee_rejected():
    asm = '''
f:
\tpushq\t%rax
\tmovabsq\t$PyObject_Print, %rax
\tcallq\t*%rax
\tpopq\t%rcx
\tretq
.Lfunc_end0:
'''
    with pytest.raises(SecretPolicyError, match=r'no-interpreter-calls.*PyObject_Print'):
        compute_bounds(asm, {'f'}, ['f'], 'x86_64')


def test_readable_names():
    assert readable('_ZN3pkg3mod4funcB2v1E5Array') == 'pkg.mod.func'
    assert readable('_ZN8__main__12_3clocals_3e1fE') == '__main__.<locals>.f'
    assert readable('memset') == 'memset'


def _address_survives(between, reg):
    """Whether ``movabsq $leaf, reg; <between>; callq *reg`` resolves to leaf."""
    asm = ('\nf:\n\tpushq\t%%rbx\n\tmovabsq\t$leaf, %%%s\n%s\tcallq\t*%%%s\n'
           '\tpopq\t%%rbx\n\tretq\n.Lfunc_end0:\n'
           % (reg, ''.join('\t%s\n' % i for i in between), reg))
    info = parse_x86_64(asm, {'f'})['f']
    assert (info.callees, info.indirect) in (({'leaf'}, 0), (set(), 1)), info
    return info.indirect == 0


def test_one_operand_divide_writes_rdx_rax_only():
    # idivq/mulq write rdx:rax: an address held in rbx survives them (the
    # constant-time hardening keeps idivq without its divl bypass), one held
    # in rax does not
    between = ['idivq\t%rdi', 'mulq\t%rsi']
    assert _address_survives(between, 'rbx')
    assert not _address_survives(between, 'rax')


def test_valgrind_client_request_marker_keeps_the_address():
    # ctcheck's client requests end in xchgq %rbx, %rbx (a no-op; valgrind
    # writes its result to rdx): rbx keeps its address, rdx does not
    between = ['xchgq\t%rbx, %rbx']
    assert _address_survives(between, 'rbx')
    assert not _address_survives(between, 'rdx')
