"""The exact secret entry for trees that allocate (issue 15, "semiexact").

The secret heap's C library calls below its kernel-path entries go through
marking wrappers (``secretjit/csrc/marked.h``) that set the thread's
``secretjit__inexact``; ``secretjit_secret_call_exact`` clears it before the
call and checks the 1 KiB frame window below the depth, as the plain entry
does, when it finds it set.  Then a tree whose only externals are the
runtime's entries (:func:`secretjit.stack_bound.native.markable`, with a
:class:`~secretjit.stack_bound.core.MarkedDepth`) takes the exact entry.
Checked here:

- C level (natively and for AArch64 under qemu): a word below the depth is
  found and zeroed when the slow path (a size class's first block) or a
  marked call ran, and left on the hot path; the control (the flag cleared
  by the tree, i.e. the check forced off) leaves it; every wrapper sets it;
- the machine-code proof (``native.marking_problems``): holds for the
  runtime's entries; fires for the public entries (unwrapped pthread_once)
  and, on a small C object, for a direct libc call, a wrapper that does not
  mark, one that marks a different TLS word, one that branches first, and a
  call through a pointer;
- the JIT: an allocating kernel takes the exact entry (with its whole
  register epilogue: no narrowing for trees with externals); its controls keep the
  plain one (libm, a string argument: not closed_arguments, a typed list:
  varsize, and runtime depths that are not marked);
- the audit: the allocating kernel on the exact entry passes; with the
  runtime's depths unmarked, or a non-runtime external marked, it fails;
- stack erasure of an allocating kernel on the exact entry, with its njit
  control;
- hot depths: the heap's slow paths are marked at their entry
  (``secretjit__cold_`` functions), each runtime entry's hot depth stops at
  them and the marked slack covers the rest; the exact call gets the hot
  depth (the fallback the whole bound) and the audit checks exactly that; at
  the C level a slack scrubs a word below the frame window (control: the
  flag cleared); a new thread's first call leaves its whole secret stack
  zero (control: no slack, frames below the hot depth).
"""

import ctypes
import math
import os
import platform
import re
import shutil
import subprocess

import numpy as np
import pytest
from numba import typeof

from secretjit import passes, secret_jit, secretmem
from secretjit.stack_bound import StackBound, native
from secretjit.stack_bound.core import MarkedDepth
from secretjit.testing import probes

from _entries import secret_calls

X86 = platform.machine() == 'x86_64' and shutil.which('objdump')
needs_x86 = pytest.mark.skipif(not X86, reason='the machine-code reader is x86-64 '
                               'only and needs objdump')
HEADER = os.path.join(os.path.dirname(secretmem.__file__), 'csrc', 'marked.h')


def _wrappers():
    """The wrappers marked.h declares (NAME of secretjit__m_NAME)."""
    with open(HEADER) as fh:
        return set(re.findall(r'\bsecretjit__m_(\w+)\(', fh.read().split(
            '#if defined(SECRETJIT_MARK_CALLS)')[0]))


@pytest.mark.parametrize('target,depth', [('native', 2048), ('native', 160),
                                          ('aarch64', 2048)])
def test_c_level_marked_calls_are_checked(tmp_path, target, depth):
    """depth 2048: the exact entry's C code; 160: on x86-64 with rseq its
    assembly fast path (depths <= 512), which clears and checks the flag
    itself."""
    from _c_runtime import run_c_test
    got = run_c_test(tmp_path, target, 'semiexact', defines=('DEPTH=%d' % depth,))
    assert got['setup'] == '0', got
    # A: the slow path of 5 fresh size classes marked the call: word zeroed
    # each time, the whole secret stack clean after.
    assert (got['A_left'], got['A_scrubs'], got['A_dirty']) == ('0', '5', '0'), got
    # D: a marked call itself.
    assert (got['D_left'], got['D_scrubs'], got['D_dirty']) == ('0', '1', '0'), got
    # E: with a marked slack, the exact entry scrubs it too: the word below
    # the frame window is zeroed without the deep search (no scrub counted;
    # an interrupted call may count one).
    assert (got['E_left'], got['E_dirty']) == ('0', '0'), got
    if got['rseq'] == '1':
        assert int(got['E_scrubs']) <= 1, got
    # F, its control: the flag cleared by the tree, so no slack: the word is
    # left (where rseq tells an uninterrupted call apart).
    assert got['F_flagged'] == '3', got
    if got['rseq'] == '1':
        assert int(got['F_left']) >= 1, got
    # The slow path set the flag in each control call ...
    assert got['C_flagged'] == '3', got
    if got['rseq'] == '1':
        # ... and with it cleared (the check off) the word is left (control),
        # as on the hot path, which marks nothing (B).  (An interrupted call
        # checks the whole signal window: rare, hence >= 1.)
        assert int(got['C_left']) >= 1 and int(got['B_left']) >= 1, got
    else:       # no rseq (qemu): every exact call checks the signal window
        assert got['C_left'] == got['B_left'] == '0', got
    wrapped = {k[len('wrap_'):] for k in got if k.startswith('wrap_')}
    assert wrapped == _wrappers(), wrapped ^ _wrappers()
    assert all(got['wrap_' + n] == '1' for n in wrapped), got


@needs_x86
def test_runtime_entries_are_marked_and_the_public_ones_are_not():
    lib = secretmem.library_path()
    assert native.marking_problems(lib, native.RUNTIME_ENTRIES) == []
    bounds = native.runtime_bounds('x86_64')
    assert set(bounds) == set(native.RUNTIME_ENTRIES)
    assert all(isinstance(d, MarkedDepth) for d in bounds.values()), bounds
    # Control on the same object: the public entries enrol their caller
    # (pthread_once, pthread_setspecific, not wrapped).
    public = native.marking_problems(lib, ['secretjit_arena_alloc'])
    assert any('pthread_once' in p for p in public), public
    # Every wrapper the object has is one marked.h declares (and vice versa).
    out = subprocess.run(['nm', lib], capture_output=True, text=True).stdout
    have = set(re.findall(r'\bsecretjit__m_(\w+)$', out, re.M))
    assert have == _wrappers(), have ^ _wrappers()


SMALL = r'''
#include <unistd.h>
__attribute__((visibility("hidden"))) __thread int secretjit__inexact
    __attribute__((tls_model("initial-exec")));
__attribute__((visibility("hidden"))) __thread int other_word
    __attribute__((tls_model("initial-exec")));
#define SET(v) do { __atomic_store_n(&(v), 1, __ATOMIC_RELAXED); \
                    __asm__ __volatile__("" : : : "memory"); } while (0)
__attribute__((noinline)) long secretjit__m_getpid(void) { SET(secretjit__inexact); return getpid(); }
__attribute__((noinline)) long secretjit__m_nomark(void) { return getpid(); }
__attribute__((noinline)) long secretjit__m_other(void) { SET(other_word); return getpid(); }
__attribute__((noinline)) long secretjit__m_late(long x)
{ if (x > 5) return getppid(); SET(secretjit__inexact); return getpid(); }
long good(long x) { return secretjit__m_getpid() + x; }
long direct(long x) { return getpid() + good(x); }
long unmarked(long x) { return secretjit__m_nomark() + x; }
long other(long x) { return secretjit__m_other() + x; }
long late(long x) { return secretjit__m_late(x) + 1; }
long through(long (*f)(void)) { return f() + 1; }
__attribute__((noinline)) long secretjit__cold_slow(long x)
{ SET(secretjit__inexact); return getpid() + x; }
__attribute__((noinline)) long secretjit__cold_nomark(long x) { return getpid() + x; }
long hot(long x) { return x > 3 ? secretjit__cold_slow(x) + 1 : x + 1; }
long coldbad(long x) { return secretjit__cold_nomark(x) + 1; }
'''


@needs_x86
def test_marking_proof_fires_on_a_small_object(tmp_path):
    (tmp_path / 'm.c').write_text(SMALL)
    so = str(tmp_path / 'm.so')
    subprocess.run(['gcc', '-O2', '-fPIC', '-shared', '-o', so, str(tmp_path / 'm.c')],
                   check=True)
    problems = lambda root: native.marking_problems(so, [root])      # noqa: E731
    assert problems('good') == []                    # must not fire
    assert problems('direct') == ['direct calls getpid, not through a marking wrapper']
    for root, wrapper in (('unmarked', 'nomark'), ('other', 'other'), ('late', 'late')):
        assert problems(root) == ['secretjit__m_%s does not set secretjit__inexact before '
                                  'its first branch or call' % wrapper], root
    assert problems('through') == ['through calls through a pointer']
    # The store is found only through the flag's GOT slot.
    code = native._entry_code(native._dump(so, os.stat(so).st_mtime_ns))
    slots = native._flag_slots(so, os.stat(so).st_mtime_ns)
    assert slots and native.marks_first(code['secretjit__m_getpid'], slots)
    assert not native.marks_first(code['secretjit__m_getpid'], frozenset())
    assert not native.marks_first(code['secretjit__m_getpid'],
                                  frozenset(s + 8 for s in slots))
    # A cold path (secretjit__cold_) is a marking function too: proved the
    # same way (must fire where it does not mark), and the hot depth stops
    # at it: the caller's frame and the call's return address.
    assert problems('hot') == []
    assert problems('coldbad') == ['secretjit__cold_nomark does not set '
                                   'secretjit__inexact before its first branch or call']
    (b,) = native.so_bounds(so, ['hot'], 'x86_64', {'getpid': 64}).values()
    assert b.hot < b.depth and b.depth >= 64, b
    frame = b.path[0][1] - b.path[1][1]              # hot's own frame
    assert b.hot == (frame + 8 + 15) // 16 * 16, b   # + the call's return address


@needs_x86
def test_runtime_hot_depths_leave_out_the_slow_paths_and_the_slack_covers_them():
    """Each runtime entry's hot depth stops at its marking functions (the
    slab fast paths: a frame and a return address); the slack the runtime
    was given covers the most any entry's marked paths go deeper."""
    bounds = native.runtime_bounds('x86_64')
    assert all(d.hot < int(d) for d in bounds.values()), bounds
    assert bounds['secretjit_slab_alloc'].hot <= 64, bounds
    assert bounds['secretjit_slab_free'].hot <= 64, bounds
    slack = secretmem.marked_slack()
    assert slack == native.marked_slack(bounds)
    assert all(slack >= int(d) - d.hot for d in bounds.values()), (slack, bounds)
    assert native.marked_slack({'f': 100}) is None       # nothing marked: no slack
    # MarkedDepth keeps its hot part through pickling (numba's cache)
    import pickle
    m = pickle.loads(pickle.dumps(MarkedDepth(960, hot=128)))
    assert (type(m), int(m), m.hot) == (MarkedDepth, 960, 128)
    assert MarkedDepth(960).hot == 960 and MarkedDepth(64, hot=99).hot == 64


def test_exact_kernels_accepts_only_marked_runtime_entries():
    m = MarkedDepth
    bounds = {'a': StackBound('a', 160, [], {}),
              'alloc': StackBound('alloc', 1024, [], {'NRT_MemInfo_alloc_aligned': m(960),
                                                      'NRT_MemInfo_call_dtor': m(736)}),
              'plain': StackBound('plain', 1024, [], {'NRT_MemInfo_alloc_aligned': 960,
                                                      'NRT_MemInfo_call_dtor': m(736)}),
              'libm': StackBound('libm', 1600, [], {'exp': m(1536)}),
              'ind': StackBound('ind', 320, [], {'<indirect call>': m(1024)})}
    assert passes.exact_kernels(bounds) == ['a', 'alloc']
    assert isinstance(m(3) + 1, int) and not isinstance(m(3) + 1, MarkedDepth)


def temp64(x):
    a = np.empty(64, np.uint8)
    for i in range(64):
        a[i] = x + i
    return a.sum()


def with_libm(x):
    a = np.empty(8)
    a[:] = x
    return math.exp(a.sum())


def with_string(s, x):
    a = np.empty(8, np.int64)
    a[:] = x + len(s)
    return a.sum()


def with_list(x):
    lst = [x]
    lst.append(x + 1)
    return lst[0] + lst[1]




@needs_x86
def test_allocating_kernel_takes_the_exact_entry_and_its_controls_do_not():
    k = secret_jit(temp64)
    assert k(3) == temp64(3)
    b = k.stack_bound(k.signatures[0])
    assert set(b.externals) == {'NRT_MemInfo_alloc_aligned', 'NRT_MemInfo_call_dtor'}
    assert b.marked == set(b.externals)
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]
    # Its epilogue is not narrowed (the runtime's C, outside the module's
    # assembly, writes vector registers): x87 and every vector zeroed.
    lib = k.overloads[k.signatures[0]].library
    (report,) = [r for r in lib.pass_reports if r.name == 'use_exact_calls']
    assert dict(report.counters) == {'calls_exact': 1, 'hot_depths': 1}, report
    assert 'fldz' in k.inspect_asm(k.signatures[0])
    for fn, args in ((with_libm, (1.0,)), (with_string, ('ab', 3)), (with_list, (3,))):
        c = secret_jit(fn)
        assert c(*args) == pytest.approx(fn(*args))
        cb = c.stack_bound(c.signatures[0])
        assert set(cb.externals) - cb.marked, (fn.__name__, cb.externals)
        assert secret_calls(c) == [passes.SECRET_CALL], fn.__name__


@needs_x86
def test_unmarked_runtime_depths_keep_the_plain_entry(monkeypatch):
    """Fail closed: where the runtime's depths are not marked (the proof did
    not hold), the same kernel keeps the plain entry."""
    from secretjit.target import secret_target
    cg = secret_target.target_context.codegen()
    monkeypatch.setattr(cg, 'runtime_depths',
                        {n: int(d) for n, d in cg.runtime_depths.items()})
    k = secret_jit(temp64)
    assert k(3) == temp64(3)
    assert secret_calls(k) == [passes.SECRET_CALL]


audit = pytest.importorskip('secretjit.audit')
pytest.importorskip('capstone')


@needs_x86
def test_audit_accepts_exactly_the_marked_runtime_entries():
    copy = audit.fresh_copy(secret_jit(temp64), [(typeof(1),)])
    (ok,) = audit.audit_dispatcher(copy)                     # must not fire
    assert ok.ok and passes.SECRET_CALL_EXACT in ok.externals, ok
    lib = copy.overloads[copy.signatures[0]].library
    data, depths = lib._get_compiled_object(), lib.codegen.runtime_depths
    # Must fire: the same object with the runtime's depths unmarked ...
    (bad,) = audit.audit_object(data, allowances={n: int(d) for n, d in depths.items()})
    assert not bad.ok and any('exact secret call' in p and 'NRT_MemInfo_alloc_aligned' in p
                              for p in bad.scrub_problems), bad.scrub_problems
    # ... and a marked depth for a name that is not a runtime entry.
    libm = audit.fresh_copy(secret_jit(with_libm), [(typeof(1.0),)])
    lib = libm.overloads[libm.signatures[0]].library
    (plain,) = audit.audit_object(lib._get_compiled_object(),
                                  allowances=dict(depths, exp=MarkedDepth(1536)))
    assert plain.ok and passes.SECRET_CALL in plain.externals, plain
    import secretjit.passes as P
    saved = P.exact_kernels
    P.exact_kernels = lambda bounds: sorted(bounds)
    try:
        forced = audit.fresh_copy(secret_jit(with_libm), [(typeof(1.0),)])
    finally:
        P.exact_kernels = saved
    lib = forced.overloads[forced.signatures[0]].library
    (bad,) = audit.audit_object(lib._get_compiled_object(),
                                allowances=dict(depths, exp=MarkedDepth(1536)))
    assert not bad.ok and any('exact secret call' in p and 'exp' in p
                              for p in bad.scrub_problems), bad.scrub_problems


@needs_x86
def test_exact_call_passes_the_hot_depth_and_the_audit_checks_it():
    """The allocating kernel's exact call gets its hot depth (the runtime's
    slow paths left out), its in-place fallback the whole bound; the audit
    accepts exactly that, and fails it where the runtime's depths carry no
    hot part."""
    copy = audit.fresh_copy(secret_jit(temp64), [(typeof(1),)])
    b = copy.stack_bound(copy.signatures[0])
    assert b.hot < b.depth, b
    (ok,) = audit.audit_dispatcher(copy)                     # must not fire
    assert ok.ok and ok.depth_scrubbed == ok.stack_bound_depth == passes.exact_depth(
        b.hot, 'x86_64'), ok
    asm = copy.inspect_asm(copy.signatures[0])
    assert '$%d' % b.depth in asm, 'the in-place scrub keeps the whole bound'
    lib = copy.overloads[copy.signatures[0]].library
    data, depths = lib._get_compiled_object(), lib.codegen.runtime_depths
    # Must fire: the same object, the runtime's entries marked without hot parts.
    whole = {n: MarkedDepth(int(d)) if isinstance(d, MarkedDepth) else d
             for n, d in depths.items()}
    (bad,) = audit.audit_object(data, allowances=whole)
    scrubbed = passes.exact_depth(b.hot, 'x86_64')
    assert not bad.ok and any('secret stack scrub of %d bytes' % scrubbed in p
                              for p in bad.scrub_problems), bad.scrub_problems


@needs_x86
@pytest.mark.parametrize('slack', ['set', 'control'])
def test_first_call_in_a_new_thread_leaves_its_slow_paths_nothing(slack, monkeypatch):
    """A new thread's first call of the allocating kernel takes the heap's
    slow paths (its bins are empty: a marked call), which write below the
    hot depth; the exact entry scrubs the slack too, so the whole secret
    stack is zero after it, found without the deep search.  Control: with
    no slack and the deep search off, the slow paths' frames stay below the
    hot depth."""
    import threading
    from _stack_scan import _MarkedSlack
    k = secret_jit(temp64)
    assert k(3) == temp64(3)
    hot = k.stack_bound(k.signatures[0]).hot
    if slack == 'control':
        monkeypatch.setattr(_MarkedSlack(), 'value', 0)
    out = {}

    def first_call():
        before = secretmem.memory_status()['signal_scrubs']
        out['result'] = k(5)
        out['scrubs'] = secretmem.memory_status()['signal_scrubs'] - before
        lo, hi = secretmem.stack_range()
        words = np.frombuffer(ctypes.string_at(lo, hi - lo), dtype=np.uint64)
        nz = np.flatnonzero(words)
        out['nonzero'] = nz.size
        out['deepest'] = 0 if nz.size == 0 else (hi - lo) - 8 * int(nz[0])
    deep = secretmem.test_deep_scrub(slack == 'set')
    try:
        t = threading.Thread(target=first_call)
        t.start()
        t.join()
    finally:
        secretmem.test_deep_scrub(deep)
    assert out['result'] == temp64(5)
    if slack == 'set':
        assert (out['nonzero'], out['scrubs']) == (0, 0), out
    else:
        assert out['nonzero'] > 0 and out['deepest'] > hot, (hot, out)


def alloc_stack_kernel(key):
    """Secrets in its stack frame and in a temporary array it frees."""
    s = probes.stack_scratch(64)
    for i in range(64):
        s[i] = key[i % 4] ^ np.uint64(0x9E3779B97F4A7C15 * (i + 1))
    a = np.empty(16, np.uint64)
    for i in range(16):
        a[i] = s[(i * 5) % 64]
    return a.sum()


@needs_x86
def test_allocating_kernel_on_the_exact_entry_leaves_no_stack_secret(key):
    from numba import njit
    from secretjit.testing import check_erased
    k = secret_jit(alloc_stack_kernel)
    assert k(key) == njit(alloc_stack_kernel)(key)
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]
    report = check_erased(k, key, mechanisms=['stack'])
    assert report.control['stack'].count > 0, 'control: the probe sees no stack leak'
    assert report.secret['stack'].count == 0, report.table()
