"""The exact secret call: no frame-window check where the depth is exact.

A call tree whose stack bound counts no allowance (``StackBound.externals``
empty: no external callee, no indirect call) runs through
``secretjit_secret_call_exact``, which skips the 1 KiB frame-window check
below the depth (the rseq-gated signal-window check stays).  Checked here:

- the runtime (C, natively and for AArch64 under qemu): every path of the
  exact entry (tests/c/exact_fast.c: the x86-64 fast path, the slow path,
  nested, too deep, signal-interrupted) zeroes its
  depth, with controls, and gdb counts which calls take the slow path; a write below the
  depth is found and zeroed by the plain entry every time (must-fire) and
  left by the exact entry (the check skipped), a signal frame below the depth
  is still found and zeroed by the exact entry, and left with the deep scrub
  off (its control);
- the JIT: a trivial kernel gets the exact entry (at a depth the fast
  path takes), a kernel that calls libm
  (an allowance) keeps the plain one (one that allocates takes the exact
  entry since issue 15: tests/test_semiexact.py);
- the audit: the exact entry on a clean build passes, and a build whose pass
  marked a tree with an external callee exact fails (must-fire).
"""

import math
import platform
import types

import numpy as np
import pytest
from numba import typeof

from secretjit import passes, secret_jit
from secretjit.stack_bound import StackBound

from _entries import secret_calls


def trivial(x):
    return x + 1


def allocating(x):
    a = np.empty(4, np.uint64)
    a[:] = x
    return a.sum()


def with_libm(x):
    return math.exp(x)


@pytest.mark.parametrize('target', ['native', 'aarch64'])
def test_c_level_exact_entry_skips_only_the_frame_window(tmp_path, target):
    from _c_runtime import run_c_test
    got = run_c_test(tmp_path, target, 'exact_call')
    r = types.SimpleNamespace(stdout=' '.join('%s=%s' % kv for kv in got.items()))
    assert got['setup'] == '0', r.stdout
    # The plain entry finds the word below the depth on every call ...
    assert (got['plain_left'], got['plain_scrubs']) == ('0', '5'), r.stdout
    # ... the exact one does not look (unless rseq says the call was
    # interrupted: a preemption in the few ns of a call is rare; without
    # rseq every call counts as interrupted and the whole window is checked).
    if got['rseq'] == '1':
        assert int(got['exact_left']) >= 1, r.stdout
    else:
        assert got['exact_left'] == '0', r.stdout
    # A signal frame below an exact call's depth is found and zeroed ...
    assert (got['sig_rc'], got['sig_handled'], got['sig_left'], got['sig_scrubs']) \
        == ('0', '1', '0', '1'), r.stdout
    # ... and left without the deep scrub (control).
    assert got['off_handled'] == '2' and int(got['off_left']) > 0, r.stdout


# -- the paths of the exact entry (x86-64: an assembly fast path, issue 15) --

FAST_DEPTHS = (32, 64, 160, 480, 512)      # <= 512, multiples of 32
SLOW_DEPTHS = (48, 144, 544, 2048)


@pytest.mark.parametrize('target', ['native', 'aarch64'])
def test_c_level_exact_entry_paths(tmp_path, target):
    """Every path of the exact entry zeroes the scrub depth and only it
    (control: a marker 64 bytes deeper is found, 8 words, by the same count;
    without rseq the entry's own signal-window check zeroes it),
    nested calls run in place, too deep ones fall back, a signal during a
    call is found and zeroed (control: left with the deep scrub off), and
    an unwinder walks out of the secret stack (control: not without unwind
    information)."""
    from _c_runtime import run_c_test
    got = run_c_test(tmp_path, target, 'exact_fast')
    assert got['setup'] == '0', got
    # Without rseq (qemu-user) every call counts as interrupted: the signal
    # window check finds the deeper marker too.
    missed = '0,8' if got['rseq'] == '1' else '0,0'
    for hit, miss, depths in (('fast', 'miss', FAST_DEPTHS),
                              ('slow', 'slowmiss', SLOW_DEPTHS)):
        for d in depths:
            assert got['%s/%d' % (hit, d)] == '0,0', (d, got)
            assert got['%s/%d' % (miss, d)] == missed, (d, got)
    # Depth 0 zeroes nothing: the return address stays (without rseq the
    # signal-window check zeroes it).
    assert got['zero/0'] == ('0,1' if got['rseq'] == '1' else '0,0'), got
    assert got['nested'] == '0,1,1,0', got       # rc, inner rc, counted, left
    assert got['too_deep'] == '-1,1', got
    # The fast path's gate: open after a call through the C path, at the
    # inline scrub limit, on the calling thread's own rseq area; closed for
    # a thread that takes an exited thread's stack and in a forked child
    # until their first call.  Without an rseq area it never opens.
    gate = 512 if got['rseq'] == '1' else 0
    assert got['gate'] == '%d,%d' % (gate, gate > 0), got
    assert got['thread'] == '0,%d,%d' % (gate, gate > 0), got
    assert got['fork'] == '0,%d' % gate, got
    for d in (64, 160):
        assert got['sig/%d' % d] == '0,1,0,1', (d, got)  # rc, handled, left, scrubs
        rc, handled, left = got['sigoff/%d' % d].split(',')
        assert (rc, handled) == ('0', '2') and int(left) > 0, (d, got)
    if target == 'native' and platform.machine() == 'x86_64':
        # backtrace() from the secret stack walks back into libc through
        # the fast path's unwind information; through a switch without any
        # (the control) it stops at the switch.
        rc, n, libc = got['unwind'].split(',')
        assert rc == '0' and int(n) >= 4 and libc == '1', got
        n, libc = got['nocfi'].split(',')
        assert int(n) <= 3 and libc == '0', got


GDB_COUNT = """set pagination off
set confirm off
handle SIGUSR1 nostop noprint pass
break secret_call_exact_slow
commands
silent
continue
end
break exact_tail
commands
silent
continue
end
break exit
run > /dev/null
info breakpoints
kill
"""


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='the x86-64 fast path')
def test_fast_path_runs_where_it_applies(tmp_path):
    """Under gdb, tests/c/exact_fast.c enters the slow path exactly for the
    calls the fast path declines: the first (no stack yet), the four slow
    depths twice, depth 0, the nested call's outer (1024 bytes) and inner (stack in
    use) calls, the too deep one, the first call of each of the two gate
    threads (gdb does not follow the forked child): 15; and reaches the
    interrupted tail for the four signal calls.  (Were the fast path never
    taken: 30, every exact call, and 0.)"""
    import re
    import shutil
    import subprocess
    from _c_runtime import run_c_test
    gdb = shutil.which('gdb')
    if not gdb:
        pytest.skip('no gdb')
    got = run_c_test(tmp_path, 'native', 'exact_fast')
    if got['rseq'] != '1':
        pytest.skip('no rseq area for this thread: every exact call takes the slow path')
    script = tmp_path / 'count.gdb'
    script.write_text(GDB_COUNT)
    out = subprocess.run([gdb, '-q', '-batch', '-x', str(script), str(tmp_path / 'exact_fast')],
                         capture_output=True, text=True, timeout=120).stdout
    hits = {}
    for name, n in re.findall(r'<(\w+)>\s*\n\s*breakpoint already hit (\d+) time', out):
        hits[name] = int(n)
    assert hits == {'secret_call_exact_slow': 15, 'exact_tail': 4}, out




def test_exact_entry_only_for_a_tree_without_allowances():
    k = secret_jit(trivial)
    assert k(41) == 42
    assert k.stack_bound(k.signatures[0]).externals == {}
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]
    k = secret_jit(with_libm)
    assert k(1.0) == pytest.approx(math.e)
    assert k.stack_bound(k.signatures[0]).externals       # an allowance
    assert secret_calls(k) == [passes.SECRET_CALL]
    # Since issue 15 (semiexact) a tree whose only externals are the secret
    # runtime's marked entries takes the exact entry too (tests/test_semiexact.py).
    k = secret_jit(allocating)
    assert k(3) == 12
    b = k.stack_bound(k.signatures[0])
    assert b.externals and b.marked == set(b.externals)
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]


def _thunks(kernel):
    """{thunk: (its body calls a function, the exact call's depth)} of
    ``kernel``'s final module."""
    import re
    from secretjit.passes.textir import Module
    lib = kernel.overloads[kernel.signatures[0]].library
    mod = Module.parse(str(lib._final_module))
    out = {}
    for name, fn in mod.functions.items():
        if name.startswith(passes.THUNK_PREFIX):
            boundary = mod.functions[passes.BOUNDARY_PREFIX + name[len(passes.THUNK_PREFIX):]]
            depths = [int(d) for line in boundary.body
                      for d in re.findall(r'@%s\(.*, i64 (\d+)\)' % passes.SECRET_CALL_EXACT, line)]
            out[name] = (any(' call ' in line for line in fn.body), depths)
    return out


def test_jit_thunk_calls_the_kernel_at_an_exact_depth():
    """The JIT's thunk calls the kernel (its constant-time check and
    ctcheck's line maps read the kernel's own function; AOT exports without
    secret= may inline it: tests/test_aot_constant_time.py), checked or
    not; the exact call's depth is the hot bound rounded up to the x86-64
    fast path's 32-byte step."""
    for k in (secret_jit(trivial), secret_jit(trivial, secret=('x',))):
        assert k(41) == 42
        ((calls, depths),) = _thunks(k).values()
        assert calls
        hot = k.stack_bound(k.signatures[0]).hot
        assert depths == [passes.exact_depth(hot, platform.machine())]
        if platform.machine() == 'x86_64':
            assert depths[0] % 32 == 0 and depths[0] >= hot


def test_exact_depth_rounds_to_the_fast_paths_step():
    assert [passes.exact_depth(d, 'x86_64') for d in (0, 16, 32, 48, 512)] == [
        0, 32, 32, 64, 512]
    assert [passes.exact_depth(d, 'aarch64') for d in (0, 16, 32, 48)] == [0, 16, 32, 48]


def test_exact_kernels_reads_the_externals():
    bounds = {'a': StackBound('a', 160, [], {}),
              'b': StackBound('b', 2640, [], {'NRT_MemInfo_alloc_aligned': 1024}),
              'c': StackBound('c', 320, [], {'<indirect call>': 1024})}
    assert passes.exact_kernels(bounds) == ['a']


audit = pytest.importorskip('secretjit.audit')
pytest.importorskip('capstone')


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='x86-64 JIT audit')
def test_audit_passes_exact_call_and_fails_a_wrong_one(monkeypatch):
    (clean,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(trivial),
                                                       [(typeof(1),)]))
    assert clean.ok and clean.externals == [passes.SECRET_CALL_EXACT], clean
    (plain,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(with_libm),
                                                       [(typeof(1.0),)]))
    assert plain.ok and passes.SECRET_CALL in plain.externals, plain
    # A broken pass: every tree marked exact, also one that calls libm.
    monkeypatch.setattr(passes, 'exact_kernels', lambda bounds: sorted(bounds))
    (bad,) = audit.audit_dispatcher(audit.fresh_copy(secret_jit(with_libm),
                                                     [(typeof(1.0),)]))
    assert passes.SECRET_CALL_EXACT in bad.externals
    assert not bad.scrub_ok and not bad.ok
    assert any('exact secret call' in p and 'exp' in p
               for p in bad.scrub_problems), bad.scrub_problems


# -- x87: the epilogue leaves the x87 stack alone only where no code touches it --

def _x87_zeroing(kernel):
    lib = kernel.overloads[kernel.signatures[0]].library
    return 'fldz' in ''.join(line for line in str(lib._final_module).splitlines()
                             if '%stz = call' in line)


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='x86-64 x87')
def test_x87_zeroing_dropped_only_without_x87_code():
    from _kernels import register_kernel
    k = secret_jit(trivial)
    k(1)
    if not any('x87_dropped' in str(r) for r in k.overloads[k.signatures[0]]
               .library.pass_reports):
        pytest.skip('no register epilogue on this CPU (no AVX)')
    assert not _x87_zeroing(k)
    # The register canary kernel writes the x87 stack: exact, but zeroing kept.
    r = secret_jit(register_kernel)
    r(np.uint64(1))
    assert secret_calls(r) == [passes.SECRET_CALL_EXACT]
    assert _x87_zeroing(r)


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='x86-64 x87')
def test_x87_scan_is_what_keeps_the_zeroing(monkeypatch):
    """Control: with the scan forced blind, the canary kernel's boundary loses
    its x87 zeroing, the probe finds the canary in st registers and the audit
    fails the boundary (registers: x87)."""
    from secretjit import pipeline
    from secretjit.testing import probes

    from _kernels import register_kernel
    real = pipeline.tree_registers
    monkeypatch.setattr(pipeline, 'tree_registers', lambda *a, **k: real(*a, **k) - {'x87'})
    blind = secret_jit(register_kernel)
    blind(np.uint64(1))
    if _x87_zeroing(blind):
        pytest.skip('no register epilogue on this CPU (no AVX)')
    found = probes.canary_registers(probes.registers_after_call(blind, probes.CANARY))
    assert found and all(r.startswith('st') for r in found), found
    (bad,) = audit.audit_dispatcher(audit.fresh_copy(blind, [(typeof(np.uint64(1)),)]))
    assert not bad.registers_ok and bad.registers_missing == ['x87'], bad


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='x86-64 x87')
def test_c_runtime_has_no_x87_code():
    """The rest of the x87 argument: what runs around an exact tree (the
    runtime's call, its checks and scrub) is C without x87 or MMX code;
    must-fire: the scan finds the x87 stack's zeroing in a boundary."""
    from secretjit import secretmem
    from secretjit.audit.elf import ObjectCode
    from secretjit.audit.x86_64 import _x87
    with open(secretmem.lib()._name, 'rb') as fh:
        obj = ObjectCode(fh.read())
    assert passes.SECRET_CALL_EXACT in obj.functions
    found = sorted(n for n in obj.functions if any(_x87(i) for i in obj.fn(n).insns))
    assert found == []
    r = secret_jit(trivial)
    r(1)
    lib = r.overloads[r.signatures[0]].library
    boundary = ObjectCode(lib._get_compiled_object())
    names = [n for n in boundary.functions if n.startswith(passes.BOUNDARY_PREFIX)]
    assert names
    # the trivial boundary has none where the epilogue dropped it; an fldz is found
    if any('x87_dropped' in str(rep) for rep in lib.pass_reports):
        assert not any(_x87(i) for i in boundary.fn(names[0]).insns)
    fldz = next(boundary.cs.disasm(b'\xd9\xee', 0))
    assert _x87(fldz)


def test_x87_scan_of_assembly_text():
    """The x87 rule as the epilogue applies it (vregs.tree_registers).
    Must-fire: x87 mnemonics (with a prefix too), MMX registers, st operands,
    x87 state saves; must-not-fire: SSE/AVX code, labels and comments naming
    them, and the epilogue's own fldz / fstp %st(0) (a zero pushed, popped)."""
    from secretjit.stack_bound.vregs import X87, tree_registers
    asm = '\n'.join([
        'clean:', '\tvxorps %xmm0, %xmm0, %xmm0', '\tmovq %rax, %rbx  # fldz %st(0)',
        '.Lfldz:', '\tretq', '.Lfunc_end0:',
        'fpu:', '\tfldl (%rdi)', '\tretq', '.Lfunc_end1:',
        'mmx:', '\tmovq %mm0, %rax', '\tretq', '.Lfunc_end2:',
        'prefixed:', '\tlock fstp %st(1)', '.Lfunc_end3:',
        'state:', '\tfxsave (%rdi)', '.Lfunc_end4:',
        'zeroing:', '\tfldz', '\tfstp %st(0)', '\tretq', '.Lfunc_end5:'])
    names = ['clean', 'fpu', 'mmx', 'prefixed', 'state', 'zeroing']
    writes = {n: X87 in tree_registers(asm, names, n) for n in names}
    assert writes == {'clean': False, 'fpu': True, 'mmx': True, 'prefixed': True,
                      'state': True, 'zeroing': False}
