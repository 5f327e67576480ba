"""The machine-code stack analysis on small, hand-written AArch64 functions.

Pure text analysis: runs on any host (and in the qemu AArch64 selection).
The snippets follow what LLVM emits for numba's JIT (large code model):
addresses by ``movz``/``movk`` ``:abs_g*:`` or ``adrp`` + ``:got_lo12:``.
"""

import pytest

from secretjit import SecretPolicyError
from secretjit.stack_bound import (DEFAULT_ALLOWANCE, compute_bounds,
                                   external_allowance, parse_aarch64)

pytestmark = pytest.mark.aarch64


def _info(asm, name='f', functions=None):
    return parse_aarch64(asm, set(functions or [name]))[name]


def _bound(asm, root='f', functions=None):
    return compute_bounds(asm, set(functions or [root]), [root], 'aarch64')[root]


LEAF = '''
\t.globl\tleaf
\t.p2align\t2
\t.type\tleaf,@function
leaf:
\t.cfi_startproc
\tsub\tsp, sp, #32
\tstr\tx0, [sp, #8]          // a spill
\tadd\tsp, sp, #32
\tret
.Lfunc_end0:
\t.size\tleaf, .Lfunc_end0-leaf
'''


def test_leaf_frame_without_red_zone():
    info = _info(LEAF, 'leaf')
    assert info.frame == 32 and not info.calls
    assert _bound(LEAF, 'leaf').depth == 32        # no red zone, no return address


def test_frameless_leaf_has_depth_zero():
    asm = 'f:\n\tadd\tx0, x0, #1\n\tret\n.Lfunc_end0:\n'
    assert _info(asm).frame == 0
    assert _bound(asm).depth == 0


def test_pushes_and_large_frames():
    asm = '''
f:
\tstp\tx29, x30, [sp, #-32]!
\tstp\td9, d8, [sp, #16]
\tsub\tsp, sp, #17, lsl #12
\tsub\tsp, sp, #368
\tstr\tx19, [sp, #-16]!
\tbl\tleaf
\tldr\tx19, [sp], #16
\tadd\tsp, sp, #17, lsl #12
\tadd\tsp, sp, #368
\tldp\td9, d8, [sp, #16]
\tldp\tx29, x30, [sp], #32
\tret
.Lfunc_end1:
'''
    info = _info(asm)
    assert info.frame == 32 + 17 * 4096 + 368 + 16
    assert info.calls and info.callees == {'leaf'}
    bound = _bound(LEAF + asm, 'f', ['f', 'leaf'])
    assert bound.depth == info.frame + 32


def test_addresses_in_registers_are_resolved():
    asm = '''
f:
\tstp\tx30, x19, [sp, #-16]!
\tmovz\tx8, #:abs_g0_nc:leaf
\tmovk\tx8, #:abs_g1_nc:leaf
\tmovk\tx8, #:abs_g2_nc:leaf
\tmovk\tx8, #:abs_g3:leaf
\tblr\tx8
\tadrp\tx9, :got:malloc
\tldr\tx19, [x9, :got_lo12:malloc]
\tmov\tx0, x19
\tblr\tx19
\tadrp\tx10, free
\tadd\tx10, x10, :lo12:free
\tblr\tx10
\tldp\tx30, x19, [sp], #16
\tret
.Lfunc_end1:
'''
    info = _info(asm)
    assert info.callees == {'leaf', 'malloc', 'free'} and info.indirect == 0
    bound = _bound(LEAF + asm, 'f', ['f', 'leaf'])
    assert bound.depth == 16 + external_allowance('malloc')


def test_partial_address_is_an_unknown_call():
    asm = '''
f:
\tstr\tx30, [sp, #-16]!
\tmovz\tx8, #:abs_g0_nc:leaf
\tmovk\tx8, #:abs_g1_nc:leaf
\tblr\tx8
\tldr\tx30, [sp], #16
\tret
.Lfunc_end0:
'''
    info = _info(asm)
    assert info.indirect == 1 and not info.callees
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\].*function pointer'):
        _bound(asm)
    assert compute_bounds(asm, {'f'}, ['f'], 'aarch64',
                          indirect_allowance=DEFAULT_ALLOWANCE)['f'].depth \
        == 16 + DEFAULT_ALLOWANCE


def test_hoisted_address_followed_through_a_loop():
    asm = '''
f:
\tstp\tx30, x19, [sp, #-16]!
\tmovz\tx19, #:abs_g0_nc:leaf
\tmovk\tx19, #:abs_g1_nc:leaf
\tmovk\tx19, #:abs_g2_nc:leaf
\tmovk\tx19, #:abs_g3:leaf
.LBB1_1:
\tblr\tx19
\tcbnz\tx0, .LBB1_1
\tldp\tx30, x19, [sp], #16
\tret
.Lfunc_end1:
'''
    info = _info(asm)
    assert info.callees == {'leaf'} and info.indirect == 0


def test_register_overwritten_on_one_path_is_unknown():
    asm = '''
f:
\tstp\tx30, x19, [sp, #-16]!
\tadrp\tx8, :got:leaf
\tldr\tx19, [x8, :got_lo12:leaf]
\tcbz\tx0, .LBB0_2
\tldr\tx19, [x0]
.LBB0_2:
\tblr\tx19
\tldp\tx30, x19, [sp], #16
\tret
.Lfunc_end0:
'''
    info = _info(asm)
    assert info.indirect == 1 and not info.callees
    # a call clobbers x0-x18: an address kept there does not survive it
    asm2 = asm.replace('\tcbz\tx0, .LBB0_2\n\tldr\tx19, [x0]\n', '') \
        .replace('x19, [x8', 'x9, [x8').replace('.LBB0_2:\n', '\tbl\tother\n') \
        .replace('blr\tx19', 'blr\tx9')
    info = _info(asm2)
    assert info.indirect == 1 and info.callees == {'other'}


def test_select_between_two_functions():
    asm = '''
f:
\tstp\tx30, x19, [sp, #-16]!
\tadrp\tx8, :got:e3
\tadrp\tx9, :got:e2
\tcmp\tx0, #0
\tldr\tx8, [x8, :got_lo12:e3]
\tldr\tx9, [x9, :got_lo12:e2]
\tcsel\tx19, x9, x8, eq
\tblr\tx19
\tldp\tx30, x19, [sp], #16
\tret
.Lfunc_end0:
'''
    assert _info(asm).callees == {'e2', 'e3'}


def test_jump_table_is_not_a_call():
    asm = '''
f:
\tcmp\tx0, #19
\tb.hi\t.LBB0_3
\tmovz\tx8, #:abs_g0_nc:.LJTI0_0
\tmovk\tx8, #:abs_g1_nc:.LJTI0_0
\tmovk\tx8, #:abs_g2_nc:.LJTI0_0
\tmovk\tx8, #:abs_g3:.LJTI0_0
\tadr\tx9, .LBB0_2
\tldrb\tw10, [x8, x0]
\tadd\tx9, x9, x10, lsl #2
\tbr\tx9
.LBB0_2:
\tmov\tx0, xzr
\tret
.LBB0_3:
\tret
.Lfunc_end0:
'''
    info = _info(asm)
    assert info.indirect == 0 and not info.calls


def test_tail_calls():
    asm = '''
f:
\tmov\tw1, #2
\tb\tleaf
.Lfunc_end0:
g:
\tldr\tx2, [x0]
\tbr\tx2
.Lfunc_end1:
'''
    infos = parse_aarch64(asm, {'f', 'g'})
    assert infos['f'].calls and infos['f'].callees == {'leaf'}
    assert infos['g'].calls and infos['g'].indirect == 1


@pytest.mark.parametrize('insn', ['mov\tsp, x0', 'sub\tsp, sp, x8',
                                  'add\tsp, sp, x8', 'sub\tsp, x29, x8'])
def test_dynamic_frame_rejected(insn):
    asm = '''
f:
\tstp\tx29, x30, [sp, #-16]!
\tmov\tx29, sp
\t%s
\tbl\tleaf
\tmov\tsp, x29
\tldp\tx29, x30, [sp], #16
\tret
.Lfunc_end0:
''' % insn
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\]'):
        _bound(asm)


def test_frame_pointer_epilogue_and_realignment():
    asm = '''
f:
\tstp\tx29, x30, [sp, #-16]!
\tmov\tx29, sp
\tsub\tx9, sp, #112
\tand\tsp, x9, #0xffffffffffffffc0
\tbl\tleaf
\tmov\tsp, x29
\tldp\tx29, x30, [sp], #16
\tret
.Lfunc_end0:
'''
    assert _info(asm).frame == 16 + 112 + 64


def test_stack_pointer_set_from_a_copy_of_itself():
    asm = '''
f:
\tsub\tx9, sp, #4096
\tmov\tsp, x9
\tadd\tsp, sp, #4096
\tret
.Lfunc_end0:
'''
    assert _info(asm).frame == 4096


def test_sve_frames_count_the_largest_vector_length():
    asm = '''
f:
\tstr\tx29, [sp, #-16]!
\taddvl\tsp, sp, #-2
\taddpl\tsp, sp, #-1
\taddvl\tsp, sp, #2
\tldr\tx29, [sp], #16
\tret
.Lfunc_end0:
'''
    assert _info(asm).frame == 16 + 2 * 256 + 32


def test_interpreter_callee_rejected():
    asm = '''
f:
\tstr\tx30, [sp, #-16]!
\tbl\tPyObject_Print
\tldr\tx30, [sp], #16
\tret
.Lfunc_end0:
'''
    with pytest.raises(SecretPolicyError, match=r'no-interpreter-calls.*PyObject_Print'):
        _bound(asm)


def test_boundary_scrub_loop_is_not_a_call():
    """The boundary's inline asm (after LLVM printed it) parses as a loop."""
    asm = '''
"__secretjit.boundary.k":
\tstr\tx30, [sp, #-16]!
\tbl\tk
\tmov\tw8, #4096
\t//APP
\tmov\tx9, sp
\tsub\tx10, x9, x8
\tb\t.Ltmp1
.Ltmp0:
\tstp\txzr, xzr, [x10], #16
.Ltmp1:
\tcmp\tx10, x9
\tb.lo\t.Ltmp0
\t//NO_APP
\tldr\tx30, [sp], #16
\tret
.Lfunc_end0:
k:
\tret
.Lfunc_end1:
'''
    info = _info(asm, '__secretjit.boundary.k', ['__secretjit.boundary.k', 'k'])
    assert info.frame == 16 and info.callees == {'k'} and info.indirect == 0
