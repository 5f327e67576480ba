"""The JIT's memset/memcpy/memmove for secret kernels (issue 15).

LLVM calls libc's memset, memcpy and memmove for the llvm.mem* it does not
expand in line (``np.zeros(n)``, ``a.copy()``, numba's copy of a slice that
may overlap).  The secret engine's runtime module (secretjit/arena_nrt.py)
defines those three names as calls of the C runtime's marking wrappers
(``secretjit__m_memset`` ..., csrc/marked.c), and MCJIT binds a kernel's
call to its own engine's definition first.  So a tree whose only C library
calls are these keeps the exact secret entry: bounded from machine code but
for the marked call, after which the entry checks the frame window like the
plain one.  Checked here, with controls:

- a kernel that zeroes and copies arrays of a run-time size counts the
  shadows' marked depths and takes the exact entry; with the runtime's
  depths unmarked it keeps the plain one (fail closed);
- its machine code calls the shadow, not libc's memcpy; plain numba's calls
  libc's (the binding is the engine's, not the process's);
- the results are numba's;
- the audit passes it, and fails it where the shadows' depths are not marked;
- stack erasure of a kernel that copies the key with memcpy on every call
  (the marked path runs), with its njit control;
- AOT libraries do not define the shadows (a shared object's memcpy would
  interpose libc's for the whole process).
"""
import ctypes
import platform
import shutil
import struct

import numpy as np
import pytest
from numba import njit, typeof

from secretjit import arena_nrt, passes, secret_jit
from secretjit.stack_bound.core import MarkedDepth
from secretjit.testing import probes

from _entries import secret_calls

X86 = platform.machine() == 'x86_64' and shutil.which('objdump')
needs_x86 = pytest.mark.skipif(not X86, reason='the runtime depths are read from '
                               'x86-64 machine code only (objdump)')


def zero_and_copy(key, n):
    z = np.zeros(n, np.uint8)             # memset of n bytes
    c = key.copy()                        # memcpy of key.size bytes
    for i in range(min(n, c.size)):
        z[i] = c[i]
    return z.sum()


def copy_key(key):
    """The key copied with memcpy on every call, and words of it on the stack."""
    c = key.copy()
    s = probes.stack_scratch(64)
    for i in range(64):
        s[i] = c[i % c.size] ^ np.uint64(0x9E3779B97F4A7C15 * (i + 1))
    acc = np.uint64(0)
    for i in range(64):
        acc ^= s[(i * 5) % 64]
    return acc


KEY = np.frombuffer(bytes(range(7, 7 + 64)), np.uint8).copy()
WORDS = np.random.default_rng(15).integers(1 << 62, 1 << 63, 4, dtype=np.uint64)


def _shadows(k):
    b = k.stack_bound(k.signatures[0])
    return {n: d for n, d in b.externals.items() if n in arena_nrt.LIBC_SHADOWED}


@needs_x86
def test_kernel_with_memset_and_memcpy_takes_the_exact_entry():
    k = secret_jit(zero_and_copy)
    assert k(KEY, 100) == zero_and_copy(KEY, 100)
    assert k(KEY, 3) == zero_and_copy(KEY, 3)
    shadows = _shadows(k)
    assert set(shadows) == {'memset', 'memcpy'}, shadows
    assert all(isinstance(d, MarkedDepth) for d in shadows.values()), shadows
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]


@needs_x86
def test_unmarked_shadow_depths_keep_the_plain_entry(monkeypatch):
    """Fail closed: the same kernel with the shadows' depths plain ints."""
    from secretjit.target import secret_target
    cg = secret_target.target_context.codegen()
    depths = dict(cg.runtime_depths)
    for name in arena_nrt.LIBC_SHADOWED:
        depths[name] = int(depths[name])
    monkeypatch.setattr(cg, 'runtime_depths', depths)
    k = secret_jit(zero_and_copy)
    assert k(KEY, 100) == zero_and_copy(KEY, 100)
    assert secret_calls(k) == [passes.SECRET_CALL]


def _calls_target(dispatcher, engine, address):
    """Whether the 8-byte absolute address appears in the machine code of
    dispatcher's kernel function (a JIT call: movabs $target, then call)."""
    lib = dispatcher.overloads[dispatcher.signatures[0]].library
    name = dispatcher.overloads[dispatcher.signatures[0]].fndesc.llvm_func_name
    start = engine.get_function_address(name)
    assert start, name
    return struct.pack('<Q', address) in ctypes.string_at(start, 4096), lib


@pytest.mark.skipif(platform.machine() != 'x86_64', reason='x86-64 call encoding')
def test_kernel_calls_the_shadow_and_plain_numba_calls_libc():
    from numba.core.registry import cpu_target
    from secretjit.target import secret_target
    k, plain = secret_jit(copy_key), njit(copy_key)
    assert k(WORDS) == plain(WORDS)
    engine = secret_target.target_context.codegen()._engine
    ours = engine.get_function_address('memcpy')
    libc = ctypes.cast(ctypes.CDLL(None).memcpy, ctypes.c_void_p).value
    assert ours and ours != libc
    assert _calls_target(k, engine, ours)[0]
    assert not _calls_target(k, engine, libc)[0]
    numba_engine = cpu_target.target_context.codegen()._engine
    assert _calls_target(plain, numba_engine, libc)[0]       # the control


def test_aot_runtime_module_defines_no_shadow():
    import llvmlite.binding as ll
    text = arena_nrt.build_module('x86_64-unknown-linux-gnu', '', standalone=True)
    names = {f.name for f in ll.parse_assembly(text).functions if not f.is_declaration}
    assert not names & set(arena_nrt.LIBC_SHADOWED), names
    jit = arena_nrt.build_module('x86_64-unknown-linux-gnu', '')
    names = {f.name for f in ll.parse_assembly(jit).functions if not f.is_declaration}
    assert names >= set(arena_nrt.LIBC_SHADOWED), names


audit = pytest.importorskip('secretjit.audit')
pytest.importorskip('capstone')


@needs_x86
def test_audit_passes_the_shadows_only_when_marked():
    copy = audit.fresh_copy(secret_jit(zero_and_copy), [(typeof(KEY), typeof(1))])
    (ok,) = audit.audit_dispatcher(copy)                     # must not fire
    assert ok.ok and passes.SECRET_CALL_EXACT in ok.externals, ok
    lib = copy.overloads[copy.signatures[0]].library
    data, depths = lib._get_compiled_object(), dict(lib.codegen.runtime_depths)
    depths['memcpy'] = int(depths['memcpy'])                 # must fire
    (bad,) = audit.audit_object(data, allowances=depths)
    assert not bad.ok and any('exact secret call' in p and 'memcpy' in p
                              for p in bad.scrub_problems), bad.scrub_problems


@needs_x86
def test_copying_kernel_on_the_exact_entry_leaves_no_stack_secret():
    from secretjit.testing import check_erased
    k = secret_jit(copy_key)
    assert k(WORDS) == njit(copy_key)(WORDS)
    assert secret_calls(k) == [passes.SECRET_CALL_EXACT]
    assert set(_shadows(k)) == {'memcpy'}
    report = check_erased(k, WORDS, mechanisms=['stack'])
    assert report.control['stack'].count > 0, 'control: the probe sees no stack leak'
    assert report.secret['stack'].count == 0, report.table()
