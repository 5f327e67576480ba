"""An exact tree's boundary zeroes only the vector registers its code can write.

For an exact call tree (no external callee, no indirect call) the register
epilogue (passes/epilogue.py) keeps only the zeroing of the vector, mask and
x87 registers that the boundary or anything it reaches can write
(secretjit/stack_bound/vregs.py, passes/exact_call.py); the audit waives the
others only where its own scan of the loaded object finds them unwritten.
Checked here:

- the C runtime (x86-64 with AVX): in the interrupted path, where the exact
  entry loads stack bytes into vector registers to look for a signal frame,
  no register holds them afterwards (must-not-fire); built without
  secretjit__clear_vregs (the control) a canary from the window is in a
  register; on the uninterrupted path every register holds the caller's
  value or zero (control: a value the tree leaves is seen);
- the assembly scan: what it must count (named registers of every width,
  masks, implicit writes, x87, reachable functions) and must not (zeroing
  idioms, unreachable functions, comments), and None (keep everything) for a
  function it cannot read;
- the JIT: ``x + 1`` keeps only the VEX zeroing of xmm0-15 (a speed
  choice, passes.epilogue.KEEP_VEX_XMM; without it nothing) and passes the
  audit either way; a kernel
  that writes every register keeps it all; with the scan blinded (claiming
  nothing is written) that kernel's canary survives in vector registers and
  the audit fails its boundary (must-fire); an inexact tree keeps it all.
"""

import platform
import re

import numpy as np
import pytest
from numba import typeof

from secretjit import passes, pipeline, secret_jit
from secretjit.stack_bound.vregs import instruction_registers, tree_registers

X86 = platform.machine() == 'x86_64'


def _cpu_flags():
    try:
        with open('/proc/cpuinfo') as fh:
            for line in fh:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


needs_avx = pytest.mark.skipif(not X86 or 'avx' not in _cpu_flags(),
                               reason='x86-64 with AVX (the narrowed epilogue)')


def trivial(x):
    return x + 1


def scaled(x):
    return x * 2.5 + 1.0


def allocating(x):
    a = np.empty(4, np.uint64)
    a[:] = x
    return a.sum()


# -- the C runtime -----------------------------------------------------------

NO_RSEQ = {'GLIBC_TUNABLES': 'glibc.pthread.rseq=0'}


def _cpu_wrapper(cpu):
    """How to run a native test program as ``cpu`` ('native', or a
    qemu-x86_64 CPU model), skipping where that cannot be done."""
    if not X86:
        pytest.skip('x86-64 vector registers')
    if cpu == 'native':
        if 'avx' not in _cpu_flags():
            pytest.skip('the native run needs AVX (Nehalem covers SSE2)')
        return ()
    import shutil
    qemu = shutil.which('qemu-x86_64')
    if not qemu:
        pytest.skip('no qemu-x86_64')
    return (qemu, '-cpu', cpu)


@pytest.mark.parametrize('cpu', ['native', 'Nehalem', 'Haswell'])
def test_interrupted_path_leaves_no_stack_bytes_in_vector_registers(tmp_path, cpu):
    """Natively, and under qemu-x86_64 as an SSE2-only CPU (Nehalem: the
    legacy pxor path of secretjit__clear_vregs, xmm0-15) and an AVX2 one."""
    from _c_runtime import run_c_test
    wrapper = _cpu_wrapper(cpu)
    got = run_c_test(tmp_path, 'native', 'clear_vregs', env=NO_RSEQ, wrapper=wrapper)
    if got['rseq'] != '0':
        pytest.skip('glibc ignores glibc.pthread.rseq=0: calls not all interrupted')
    if cpu != 'native':
        assert got['level'] == {'Nehalem': '0', 'Haswell': '1'}[cpu], got
    # the canary in the signal window was found, the stack scrubbed from it ...
    assert (got['window_rc'], got['window_scrubs'], got['window_left']) == \
        ('0', '1', '0'), got
    # ... and every vector register is zero afterwards
    assert (got['window_canary_regs'], got['window_other_regs']) == ('0', '0'), got
    # Control: the same runtime without secretjit__clear_vregs leaves the
    # window's bytes (the canary) in vector registers.
    ctl = run_c_test(tmp_path, 'native', 'clear_vregs', env=NO_RSEQ, wrapper=wrapper,
                     defines=['SECRETJIT_TEST_NO_CLEAR_VREGS'])
    assert ctl['window_scrubs'] == '1' and int(ctl['window_canary_regs']) >= 1, ctl


@needs_avx
def test_uninterrupted_path_leaves_the_callers_vector_registers(tmp_path):
    from _c_runtime import run_c_test
    got = run_c_test(tmp_path, 'native', 'clear_vregs')
    if got['rseq'] != '1':
        pytest.skip('no rseq: every call takes the interrupted path (tested above)')
    # the scrub (memset/zero_range) of a canary inside the depth, and a call
    # that leaves one below it unlooked-at: each register holds the value
    # the caller put there, or zero (vzeroupper, the scrub's zero vector)
    for case in ('inside', 'window'):
        assert got[case + '_rc'] == '0', got
        assert (got[case + '_canary_regs'], got[case + '_other_regs']) == ('0', '0'), \
            (case, got)
    assert got['inside_left'] == '0'
    # Control: a value the tree leaves in ymm5 is seen by the same detector
    # (which is why the boundary zeroes what its tree writes).
    assert (got['tree_canary_regs'], got['tree_other_regs']) == ('1', '1'), got


# -- the assembly scan -------------------------------------------------------

@pytest.mark.parametrize('mnem, ops, expected', [
    ('vaddpd', ['%ymm1', '%ymm2', '%ymm3'], {'xmm1', 'xmm2', 'xmm3'}),
    ('vmovdqu64', ['%zmm20', '(%rdi)'], {'xmm20'}),
    ('movsd', ['(%rdi)', '%xmm7'], {'xmm7'}),
    ('vpaddd', ['%zmm1', '%zmm2', '%zmm3 {%k2} {z}'], {'xmm1', 'xmm2', 'xmm3', 'k2'}),
    ('kmovw', ['%eax', '%k5'], {'k5'}),
    ('vp2intersectd', ['%zmm1', '%zmm2', '%k2'], {'xmm1', 'xmm2', 'k2', 'k3'}),
    ('pcmpistrm', ['$0', '%xmm2', '%xmm1'], {'xmm0', 'xmm1', 'xmm2'}),
    ('fld', ['(%rax)'], {'x87'}),
    ('movq', ['%mm1', '%rax'], {'x87'}),
    ('vpxor', ['%xmm1', '%xmm2', '%xmm3'], {'xmm1', 'xmm2', 'xmm3'}),   # not an idiom
    ('vpxord', ['%zmm1', '%zmm1', '%zmm2 {%k1}'], {'xmm1', 'xmm2', 'k1'}),  # masked
    ('xorps', ['(%rax)', '%xmm4'], {'xmm4'}),
])
def test_scan_counts(mnem, ops, expected):
    assert instruction_registers(mnem, ops) == expected


def test_scan_counts_every_register_for_a_state_restore():
    got = instruction_registers('xrstor', ['(%rdi)'])
    assert {'xmm0', 'xmm31', 'k7', 'x87'} <= got and len(got) == 32 + 8 + 1


@pytest.mark.parametrize('mnem, ops', [
    ('vxorps', ['%xmm3', '%xmm3', '%xmm3']), ('vxorps', ['%xmm3', '%xmm3', '%xmm9']),
    ('vpxord', ['%zmm17', '%zmm17', '%zmm17']), ('xorps', ['%xmm2', '%xmm2']),
    ('pxor', ['%xmm5', '%xmm5']), ('kxorw', ['%k0', '%k0', '%k4']),
    ('fldz', []), ('fstp', ['%st(0)']), ('movq', ['%rax', '%rbx']), ('retq', []),
    ('vzeroupper', []), ('vzeroall', []),
])
def test_scan_does_not_count(mnem, ops):
    assert instruction_registers(mnem, ops) == set()


ASM = '\n'.join([
    'boundary:', '\tmovabsq $thunk, %rdi', '\tcallq secretjit_secret_call_exact@PLT',
    '\tvxorps %xmm0, %xmm0, %xmm0', '\tfldz', '\tfstp %st(0)', '\tretq', '.Lfunc_end0:',
    'thunk:', '\tcallq kernel', '\tretq  # vmovaps %xmm9, %xmm9', '.Lfunc_end1:',
    'kernel:', '\tvmovapd %ymm1, %ymm2', '.LBB2_1:', '\tjmp "helper.q"', '.Lfunc_end2:',
    '"helper.q":', '\tkmovw %eax, %k3', '\tretq', '.Lfunc_end3:',
    'unreached:', '\tvmovaps %zmm30, %zmm31', '\tfld1', '\tretq', '.Lfunc_end4:',
])
FUNCS = ['boundary', 'thunk', 'kernel', 'helper.q', 'unreached']


def test_tree_registers_follows_the_tree():
    assert tree_registers(ASM, FUNCS, 'boundary') == {'xmm1', 'xmm2', 'k3'}
    # what the unreached function writes counts once something reaches it
    reach = ASM.replace('\tretq  # vmovaps', '\tleaq unreached(%rip), %rax\n\tretq  #')
    assert tree_registers(reach, FUNCS, 'boundary') == \
        {'xmm1', 'xmm2', 'k3', 'xmm30', 'xmm31', 'x87'}


def test_tree_registers_fails_closed():
    # a reachable function without a body, or a stub standing in for one
    assert tree_registers(ASM, FUNCS + ['missing'],
                          'boundary') == {'xmm1', 'xmm2', 'k3'}   # unreached: fine
    gone = ASM.replace('\tcallq kernel', '\tcallq missing')
    assert tree_registers(gone, FUNCS + ['missing'], 'boundary') is None
    assert tree_registers(ASM, FUNCS, 'boundary', opaque=['kernel']) is None


# -- the JIT and the audit ---------------------------------------------------

def _library(kernel):
    return kernel.overloads[kernel.signatures[0]].library


def _epilogue(kernel):
    """The asm string of the boundary's register epilogue in the final IR."""
    for line in str(_library(kernel)._final_module).splitlines():
        if '%stz = call' in line:
            return re.search(r'asm sideeffect "([^"]*)"', line).group(1)
    return None


def _zeroed(kernel):
    return passes.epilogue.zeroed_registers(_epilogue(kernel) or '')


@needs_avx
def test_trivial_tree_keeps_only_the_vex_xmm_zeroing(monkeypatch):
    k = secret_jit(trivial)
    assert k(41) == 42
    # x + 1 writes no vector register: what stays is the VEX zeroing of
    # xmm0-15 (passes.epilogue.KEEP_VEX_XMM, a speed choice); x87, and with
    # AVX-512 zmm16-31 and k0-k7, are dropped
    assert _zeroed(k) == {'xmm%d' % i for i in range(16)}
    report = [r for r in _library(k).pass_reports if r.name == 'use_exact_calls'][0]
    assert report['x87_dropped'] == 1
    if 'avx512f' in _cpu_flags():
        assert (report['vectors_dropped'], report['masks_dropped']) == (16, 8)
    # without the speed choice: nothing at all
    monkeypatch.setattr(passes.epilogue, 'KEEP_VEX_XMM', False)
    bare = secret_jit(trivial)
    assert bare(41) == 42
    assert _epilogue(bare) == ''
    # a float kernel keeps what it writes: at least xmm0 (argument and result)
    f = secret_jit(scaled)
    assert f(2.0) == 6.0
    assert 'xmm0' in _zeroed(f) and 'x87' not in _zeroed(f)


@needs_avx
def test_inexact_tree_keeps_every_register():
    k = secret_jit(allocating)
    assert k(3) == 12
    assert k.stack_bound(k.signatures[0]).externals
    vectors = 32 if 'avx512f' in _cpu_flags() else 16
    assert len(_zeroed(k)) == vectors + (8 if vectors == 32 else 0) + 1


audit = pytest.importorskip('secretjit.audit')
pytest.importorskip('capstone')


@needs_avx
def test_audit_waives_only_unwritten_registers():
    from _kernels import register_kernel
    (clean,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(trivial),
                                                       [(typeof(1),)]))
    assert clean.ok, clean
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(passes.epilogue, 'KEEP_VEX_XMM', False)
        (bare,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(trivial),
                                                          [(typeof(1),)]))
    assert bare.ok, bare
    (scaled_ok,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(scaled),
                                                           [(typeof(1.0),)]))
    assert scaled_ok.ok, scaled_ok
    # the register canary kernel writes every register: all kept, audit passes
    r = secret_jit(register_kernel)
    r(np.uint64(1))
    assert {'xmm0', 'xmm15', 'x87'} <= _zeroed(r)
    (full,) = audit.audit_dispatcher(audit.fresh_copy(r, [(typeof(np.uint64(1)),)]))
    assert full.ok, full


@needs_avx
def test_blind_scan_leaks_and_the_audit_fails_it(monkeypatch):
    """Must-fire: with the pipeline's scan claiming nothing is written, the
    canary kernel's boundary loses its vector zeroing; the register probe
    finds the canary in vector registers and the audit, which scans the
    object itself, fails the boundary (missing vector registers)."""
    from secretjit.testing import probes

    from _kernels import register_kernel
    monkeypatch.setattr(pipeline, 'tree_registers',
                        lambda asm, functions, boundary, opaque=(): set())
    monkeypatch.setattr(passes.epilogue, 'KEEP_VEX_XMM', False)
    blind = secret_jit(register_kernel)
    blind(np.uint64(1))
    assert _epilogue(blind) == ''
    found = probes.canary_registers(probes.registers_after_call(blind, probes.CANARY))
    assert any(r.startswith(('xmm', 'ymm', 'zmm')) for r in found), found
    (bad,) = audit.audit_dispatcher(audit.fresh_copy(blind, [(typeof(np.uint64(1)),)]))
    assert not bad.registers_ok and not bad.ok
    assert {'xmm1', 'xmm15', 'x87'} <= set(bad.registers_missing), bad


@needs_avx
def test_audit_with_avx512_registers_required():
    """The audit's AVX-512 contract (zmm16-31, k0-k7 required; forced here,
    on any CPU): the trivial boundary zeroes none of them and passes, since
    no code it reaches writes them."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(passes.epilogue, 'KEEP_VEX_XMM', False)
    try:
        lib = _library(_compiled(trivial, 1))
    finally:
        monkeypatch.undo()
    (r,) = audit.audit_object(lib._get_compiled_object(), avx512=True)
    assert r.ok, r


def _compiled(fn, arg):
    k = secret_jit(fn)
    k(arg)
    return k


@pytest.mark.skipif(not X86, reason='x86-64 assembly')
def test_scan_of_the_canary_kernel_finds_every_register(monkeypatch):
    """Must-fire on real assembly: the canary kernel's tree writes every
    vector register and the x87 stack, and the scan of LLVM's assembly for
    it says so (so nothing may be dropped)."""
    from _kernels import register_kernel
    seen = {}
    real = pipeline.tree_registers

    def spy(asm, functions, boundary, opaque=()):
        seen[boundary] = real(asm, functions, boundary, opaque)
        return seen[boundary]

    monkeypatch.setattr(pipeline, 'tree_registers', spy)
    _compiled(register_kernel, np.uint64(1))
    (regs,) = seen.values()
    assert {'xmm%d' % i for i in range(16)} | {'x87'} <= regs, regs


CASES_S = r'''
.text
.macro fn name
.globl \name
.type \name, @function
\name:
.endm
.macro end name
ret
.size \name, .-\name
.endm
fn idioms
vxorps %xmm3, %xmm3, %xmm3
vxorps %xmm4, %xmm4, %xmm9
vpxord %zmm17, %zmm17, %zmm17
xorps %xmm2, %xmm2
pxor %xmm5, %xmm5
kxorw %k0, %k0, %k3
fldz
fstp %st(0)
vzeroupper
vzeroall
end idioms
fn vadd
vaddps %ymm1, %ymm2, %ymm3
end vadd
fn masked
vpxord %zmm2, %zmm2, %zmm1{%k1}
end masked
fn kmov
kmovw %eax, %k5
end kmov
fn strm
pcmpistrm $0, %xmm2, %xmm1
end strm
fn restore
xrstor (%rdi)
end restore
fn x87
fldl (%rdi)
end x87
fn mmx
movq %mm0, %rax
end mmx
fn mmxzero
pxor %mm1, %mm1
end mmxzero
'''


@pytest.mark.skipif(not X86, reason='x86-64 machine code')
def test_audit_scan_of_machine_code(tmp_path):
    """The audit's own scan (capstone on an object): must-not-count the
    zeroing idioms the epilogue is made of; must-count named, masked,
    implicit and x87/MMX writes, and every register for a state restore."""
    import shutil
    import subprocess

    from secretjit.audit.elf import ObjectCode
    from secretjit.audit.x86_64 import tree_writes
    if not shutil.which('as'):
        pytest.skip('no assembler')
    (tmp_path / 'cases.s').write_text(CASES_S)
    subprocess.run(['as', '-o', str(tmp_path / 'cases.o'), str(tmp_path / 'cases.s')],
                   check=True)
    obj = ObjectCode((tmp_path / 'cases.o').read_bytes())

    def regs(name):
        out = set()
        for ins in obj.fn(name).insns:
            out |= tree_writes(ins)
        return out

    assert len(obj.fn('idioms').insns) == 11        # the ten idioms and ret
    assert regs('idioms') == set()
    assert regs('vadd') == {'xmm1', 'xmm2', 'xmm3'}
    assert regs('masked') == {'xmm1', 'xmm2', 'k1'}
    assert regs('kmov') == {'k5'}
    assert 'xmm0' in regs('strm') and {'xmm1', 'xmm2'} <= regs('strm')
    assert len(regs('restore')) == 32 + 8 + 1
    assert regs('x87') == {'x87'} and regs('mmx') == {'x87'}
    assert regs('mmxzero') == {'x87'}               # an MMX idiom is x87 code
    assert instruction_registers('pxor', ['%mm1', '%mm1']) == {'x87'}   # the text scan too
