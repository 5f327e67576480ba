"""AArch64: the erasure contract on AArch64 Linux, run under qemu-aarch64.

Run with ``bash tools/aarch64/test.sh`` (it builds an AArch64 root with
Debian's python3.11 and the aarch64 wheels of numba/llvmlite/numpy, then runs
``pytest -m aarch64`` in the emulated interpreter).  On any other machine
these tests are skipped.  As on x86-64, every erasure test runs the same
probe on plain ``@njit`` as a control that must find the leak.  Compiled
kernels are shared by the tests of this module (a compile takes seconds
under qemu).
"""

import ctypes
import platform
import re

import numpy as np
import pytest
from numba import njit

from secretjit import secret_jit
from secretjit.testing import calibration, probes
from secretjit.testing.heaplog import heap_log
from secretjit.stack_bound import (NUMBA_HELPER_ALLOWANCE, external_allowance,
                                   readable)

import _a64_cross
import _a64_mutate as mutate
from _child import run_python
from _kernels import (derived_words, heap_temp_kernel, register_kernel,
                      stack_kernel, stack_kernel_raises)

pytestmark = [
    pytest.mark.aarch64,
    pytest.mark.skipif(platform.machine() != 'aarch64',
                       reason='AArch64 only: run bash tools/aarch64/test.sh '
                              '(qemu-aarch64)'),
]

_COMPILED = {}


def _pair(fn):
    """(njit(fn), secret_jit(fn)), made once per module."""
    if fn not in _COMPILED:
        _COMPILED[fn] = (njit(fn), secret_jit(fn))
    return _COMPILED[fn]


def trivial(x):
    return x + 1


def _boundary_asm(dispatcher):
    asm = dispatcher.inspect_asm(dispatcher.signatures[0])
    label = re.search(r'^"?__secretjit\.boundary\.[^\s:"]+"?:$', asm, re.M)
    assert label, "no boundary in the kernel's assembly"
    body = asm[label.end():]
    return body[:body.index('.Lfunc_end')]


# -- the machine ----------------------------------------------------------------

def test_machine_and_subprocesses_are_aarch64():
    assert probes.describe_machine().startswith('aarch64')
    # sys.executable is the root's launcher: subprocesses go through qemu too
    out = run_python(code='import platform; print(platform.machine())',
                     check=True)
    assert out.stdout.strip() == 'aarch64'


# -- stack -------------------------------------------------------------------------

def _stack_leaks(dispatcher, *args):
    result, stack = probes.stack_after_call(dispatcher, *args)
    return result, probes.count_words(stack, derived_words(args[0]))


def test_trivial_kernel_has_no_frame_and_scrubs_nothing():
    """A leaf without a frame adds nothing (no red zone on AArch64 Linux).

    The bound is the secret-stack thunk's frame alone (its saved x29/x30).
    """
    plain, secret = _pair(trivial)
    assert secret(41) == plain(41) == 42
    bound = secret.stack_bound(secret.signatures[0])
    assert bound.depth == 16 and bound.externals == {}
    assert len(bound.path) == 1             # the thunk; the kernel is frameless
    result, stack = probes.stack_after_call(secret, 41)
    assert result == 42


def test_stack_control_njit_leaks(key):
    plain, _ = _pair(stack_kernel)
    _, leaks = _stack_leaks(plain, key)
    assert leaks > 256, "control failed: the probe cannot see a stack leak"


def test_stack_secret_is_clean(key):
    plain, secret = _pair(stack_kernel)
    result, leaks = _stack_leaks(secret, key)
    assert result == plain(key)
    assert leaks == 0
    bound = secret.stack_bound(secret.signatures[0])
    # two 4 KiB buffers of secrets (the helper is inlined) plus memset
    assert 8192 <= bound.depth < 8192 + 1024, bound
    assert '<indirect call>' not in bound.externals


def test_stack_secret_clean_when_kernel_raises(key):
    plain, secret = _pair(stack_kernel_raises)
    exc, leaks = _stack_leaks(plain, key, True)
    assert isinstance(exc, ValueError)
    assert leaks > 32, "control failed: the probe cannot see a stack leak"
    exc, leaks = _stack_leaks(secret, key, True)
    assert isinstance(exc, ValueError) and "after touching secrets" in str(exc)
    assert leaks == 0


# -- registers -----------------------------------------------------------------------

def test_registers_control_njit_leaks():
    plain, _ = _pair(register_kernel)
    spill = probes.registers_after_call(plain, probes.CANARY)
    found = probes.canary_registers(spill)
    assert any(re.fullmatch(r'x\d+', r) for r in found), found
    assert any(re.fullmatch(r'v\d+', r) for r in found), found
    if spill['vl'] > 16:              # SVE wider than NEON: the high z bits
        assert any(r.endswith('_hi') for r in found), found
    if spill['vl']:
        assert any(re.fullmatch(r'p\d+', r) for r in found), found


def test_registers_secret_are_zero():
    plain, secret = _pair(register_kernel)
    assert secret(np.uint64(probes.CANARY)) == plain(np.uint64(probes.CANARY))
    spill = probes.registers_after_call(secret, probes.CANARY)
    assert probes.canary_registers(spill) == []
    # x1-x18 exactly zero (x0 is the return register: the result, 0 here)
    assert all(v == 0 for v in spill['gpr'].values()), spill['gpr']
    vec = np.frombuffer(spill['vector'], np.uint8).reshape(32, 16)
    # v8-v15 low halves are callee-saved (the caller's values come back);
    # everything else, and the high halves of v8-v15, must be zero
    for i in range(32):
        part = vec[i, 8:] if 8 <= i <= 15 else vec[i]
        assert not part.any(), 'v%d' % i
    if spill['vl']:
        z = np.frombuffer(spill['sve'], np.uint8).reshape(32, spill['vl'])
        assert not z[:, 16:].any(), "SVE bits above 128 not zero"
        assert not any(spill['pred']), "SVE predicate registers not zero"


def test_boundary_asm_scrubs_and_zeroes_registers():
    """The boundary's machine code: the common return first (its register
    epilogue), the fallback's scrub loop out of line after it, branching
    back to that one epilogue (passes.boundary.LIKELY)."""
    _, secret = _pair(register_kernel)
    secret(np.uint64(1))
    body = _boundary_asm(secret)
    # scrub: x10 = sp - depth; tested at the top; 16 bytes per store; never
    # at or above sp (x9)
    scrub = re.search(
        r'mov\tx9, sp\n\tsub\tx10, x9, x\d+\n\tb\t(\.Ltmp\d+)\n(\.Ltmp\d+):\n'
        r'\tstp\txzr, xzr, \[x10\], #16\n\1:\n\tcmp\tx10, x9\n'
        r'\tb\.lo\t\2\n', body)
    assert scrub, body
    # The fallback is out of line and branches back to the one epilogue
    # before the common return.
    ret = body.index('\tret')
    back = re.search(r'\tb\t(\.LBB\w+)\n', body[scrub.end():])
    assert scrub.start() > ret and back, body
    epilogue = body[body.index(back.group(1) + ':'):ret]
    for i in range(1, 19):
        assert re.search(r'\tmov\tx%d, #0\n' % i, epilogue), 'x%d' % i
    # v8-v15 are callee-saved (their low halves); LLVM zeroes the others,
    # as z registers when it compiles for SVE, with p0-p15
    sve = 'mov\tz0.d, #0' in epilogue
    for i in list(range(8)) + list(range(16, 32)):
        pattern = r'\tmov\tz%d\.d, #0\n' if sve else r'\tmovi\tv%d\.2d, #0+\n'
        assert re.search(pattern % i, epilogue), 'v%d' % i
    if probes.sve_vector_length():
        assert sve, "the CPU has SVE but the boundary does not zero z/p"
        for i in range(16):
            assert '\tpfalse\tp%d.b\n' % i in epilogue, 'p%d' % i


# -- heap ----------------------------------------------------------------------------

def test_heap_temporary_wiped(key):
    plain, secret = _pair(heap_temp_kernel)
    words = derived_words(key, 384)
    plain(key)
    with heap_log().window():       # the freed temporary is held back, not reused
        addr, _ = plain(key)
        leaks = probes.count_words(probes.freed_memory(addr, 384 * 8), words)
    assert leaks > 300, "control failed: the probe cannot see a heap leak"
    addr, _ = secret(key)
    assert probes.count_words(probes.freed_memory(addr, 384 * 8), words) == 0


# -- external allowances, re-measured on AArch64 glibc ------------------------------

libc = ctypes.CDLL(None)


def _depth(lib, name, ints=(), floats=()):
    return probes.c_call_depth(calibration.symbol(lib, name), ints, floats)


def test_malloc_free_and_libm_fit_their_allowances():
    depths = calibration.malloc_free_depths((24, 4096, 200_000, 50_000_000), 16)
    assert 0 < max(depths) <= min(external_allowance('malloc'),
                                  external_allowance('free')), max(depths)
    libm = ctypes.CDLL('libm.so.6')
    for name, args in (('sin', [1e22]), ('cos', [1e300]), ('pow', [1.0000001, 1e15]),
                       ('tgamma', [171.5]), ('lgamma', [-2.5]), ('exp', [709.7])):
        assert _depth(libm, name, floats=args) <= external_allowance(name), name
    buf = np.zeros(1 << 16, np.uint8)
    for name in ('memset', 'memcpy'):
        assert _depth(libc, name, [buf.ctypes.data, buf.ctypes.data, buf.size]) \
            <= external_allowance(name)
    for n in (1, 32, 1 << 16):
        assert _depth(libc, 'getrandom', [buf.ctypes.data, n, 0]) \
            <= external_allowance('secretjit_libc_getrandom')
    assert _depth(libc, '__errno_location') \
        <= external_allowance('secretjit_libc_errno_location')


def test_numba_c_helpers_fit_their_allowances():
    measured = calibration.numba_helper_depths()
    assert set(measured) == set(NUMBA_HELPER_ALLOWANCE)
    over = {n: (d, NUMBA_HELPER_ALLOWANCE[n]) for n, d in measured.items()
            if not d <= NUMBA_HELPER_ALLOWANCE[n]}
    assert not over, over
    # the probe saw the slow paths (AArch64 leaves write nothing: no
    # return address on the stack)
    assert measured['numba_list_append'] > 0
    assert measured['numba_attempt_nocopy_reshape'] > 512


# -- vetted kernels: known answers under the secret target ---------------------------

def test_sha256_known_answer():
    sha = pytest.importorskip('secretjit.kernels.sha256')
    # FIPS 180-4, example "abc"
    assert sha.sha256(b'abc').hex() == (
        'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
    k = sha._sha256_api                 # the API kernel sha256() runs (issue 16)
    bound = k.stack_bound(k.signatures[0])
    assert '<indirect call>' not in bound.externals
    assert readable(bound.path[0][0]).endswith('_sha256_api')


def test_chacha20_block_known_answer():
    cc = pytest.importorskip('secretjit.kernels.chacha20')
    # RFC 8439 section 2.3.2
    key = np.arange(32, dtype=np.uint8)
    nonce = np.frombuffer(bytes.fromhex('000000090000004a00000000'),
                          np.uint8).copy()
    out = np.zeros(64, np.uint8)
    cc.chacha20_block(key, nonce, 1, out)
    assert out.tobytes().hex() == (
        '10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e'
        'd2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e')
    k = cc.chacha20_block
    assert '<indirect call>' not in k.stack_bound(k.signatures[0]).externals


def test_chacha20_stream_vectorized_path():
    """The 16-block chunks of chacha20_xor (vector IR, NEON) and a chunk-sized
    tail against RFC 8439 section 2.4.2 and the block function."""
    cc = pytest.importorskip('secretjit.kernels.chacha20')
    key = np.arange(32, dtype=np.uint8)
    nonce = np.frombuffer(bytes.fromhex('000000000000004a00000000'),
                          np.uint8).copy()
    plaintext = (b"Ladies and Gentlemen of the class of '99: If I could offer "
                 b"you only one tip for the future, sunscreen would be it.")
    assert cc.chacha20(key.tobytes(), nonce.tobytes(), plaintext, 1)[:16].hex() \
        == '6e2e359a2568f98041ba0728dd0d6981'
    data = bytes(range(256)) * 5                   # a 1024-byte chunk + a 256-byte tail
    stream = bytearray()
    for i in range((len(data) + 63) // 64):
        block = np.zeros(64, np.uint8)
        cc.chacha20_block(key, nonce, 7 + i, block)
        stream += block.tobytes()
    expected = bytes(a ^ b for a, b in zip(data, stream))
    assert cc.chacha20(key.tobytes(), nonce.tobytes(), data, 7) == expected


# -- machine-code audit of the object code the JIT loaded (secretjit.audit) ---------

def test_audit_passes_jit_kernels_and_catches_a_dropped_zeroing(key):
    """Every boundary of the JIT's object code passes, scrubbing exactly the
    stack bound, which the audit's own depth reaches; the same object with
    one zeroing of x11 (and, with SVE, one ``pfalse p3.b``) dropped fails."""
    pytest.importorskip('capstone')
    pytest.importorskip('elftools')
    from numba import typeof

    from secretjit import audit
    cc = pytest.importorskip('secretjit.kernels.chacha20')
    u8 = typeof(np.zeros(1, np.uint8))
    # the AOT tests audit the other probe kernels (tests/test_audit_aarch64.py)
    cases = [(secret_jit(stack_kernel_raises), (typeof(key), typeof(True))),
             (secret_jit(heap_temp_kernel), (typeof(key),)),
             (cc.chacha20_block, (u8, u8, typeof(1), u8))]    # a vetted kernel
    for kernel, sig in cases:
        copy = audit.fresh_copy(kernel, [sig])
        _COMPILED['audited', kernel] = copy     # the cross JIT agreement test reuses it
        results = audit.audit_dispatcher(copy)
        assert results and all(r.ok and r.arch == 'aarch64' for r in results), results
        for r in results:
            assert r.depth_scrubbed == r.stack_bound_depth >= r.depth_required > 0, r
    lib = copy.overloads[copy.signatures[0]].library
    drops = [('x11, #0', 'x11')]
    if probes.sve_vector_length():            # SVE code: the predicates are required
        drops.append(('p3.b', 'p3'))
    for op_str, reg in drops:
        data = mutate.nop_in_boundary(lib._get_compiled_object(), op_str)
        (res,) = audit.audit_object(data, allowances=dict(lib.codegen.runtime_depths),
                                    stack_bounds=lib.stack_bounds)
        assert res.registers_missing == [reg] and not res.ok


def test_cross_jit_object_agrees_with_the_qemu_jit(tmp_path, key):
    """The cross JIT object of chacha20_block (built by the host's Python for
    this JIT's CPU and features, secretjit.audit.cross) and the object the JIT loaded
    here agree on everything the audit checks: the boundaries, the registers
    required and zeroed, the scrub depths (audit's, scrubbed, stack_bound's),
    the calls.  This justifies auditing every vetted kernel on cross objects
    (tests/test_audit_aarch64_jit.py)."""
    import json

    import llvmlite.binding as ll
    from numba import typeof

    from secretjit import audit
    from secretjit.audit import cross
    cc = pytest.importorskip('secretjit.kernels.chacha20')
    u8 = typeof(np.zeros(1, np.uint8))
    copy = _COMPILED.get(('audited', cc.chacha20_block)) or audit.fresh_copy(
        cc.chacha20_block, [(u8, u8, typeof(1), u8)])
    lib = copy.overloads[copy.signatures[0]].library
    cpu, features = ll.get_host_cpu_name(), lib.codegen._tm_features
    if cpu == 'generic':                # qemu-user: what the cross audit builds for
        assert features.split(',')[:4] == cross.QEMU_JIT[2].split(','), (
            "the JIT under qemu compiles for %s: update secretjit.audit.cross.QEMU_JIT"
            % features)
    here = cross.summary(lib._get_compiled_object(), dict(lib.codegen.runtime_depths),
                         lib.stack_bounds)
    cases = tmp_path / 'block_cases.py'
    cases.write_text('import numpy as np\nfrom secretjit.kernels import chacha20\n'
                     'def ctcheck_cases():\n'
                     '    u8 = np.uint8\n'
                     '    return [(chacha20.chacha20_block, (np.zeros(32, u8), '
                     'np.zeros(12, u8), 1, np.zeros(64, u8)))]\n')
    there = _a64_cross.cross_summary(cases, cpu, features)
    # keyed by the kernel's name: the mangled names' ABI tags hash the options
    there = {readable(k): v for k, v in there.items()}
    here = {readable(k): v for k, v in json.loads(json.dumps(here)).items()}
    assert there == here and len(here) == 1, (there, here)
    (row,) = here.values()
    assert row['registers_ok'] and row['scrub_ok']
    assert ('p15' in row['required']) == bool(probes.sve_vector_length())


# -- constant time ------------------------------------------------------------------

def test_constant_time_check_and_hardening_on_aarch64():
    """The check names the early exit's line on AArch64 code too; the
    OR-accumulated compare passes and gives njit's result; the secret target
    machine has the AArch64 hardening features."""
    import _ct_kernels as ck
    from secretjit import SecretPolicyError
    line = dict(ck.marked_lines()['early_exit_compare'])['branch']
    with pytest.raises(SecretPolicyError, match=r'_ct_kernels.py:%d: branch' % line):
        secret_jit(secret=('key',))(ck.early_exit_compare)(*ck.ARGS['early_exit_compare']())
    ok = secret_jit(secret=('key',))(ck.or_accumulated_compare)
    args = ck.ARGS['or_accumulated_compare']()
    assert ok(*args) == njit(ck.or_accumulated_compare)(*args)
    lib = ok.overloads[ok.signatures[0]].library
    assert not lib.ct_findings
    features = lib._codegen._tm_features.split(',')
    assert '-enable-select-opt' in features
    assert '-predictable-select-expensive' in features


def test_poly1305_lanes_path_against_python_integers():
    """Poly1305's 16-lane bulk path (and the serial tail) against the RFC 8439
    definition in Python integers, at lengths around the chunk size."""
    pp = pytest.importorskip('secretjit.kernels.poly1305')
    key = bytes(range(1, 33))

    def ref(msg):
        r = int.from_bytes(key[:16], 'little') & 0x0ffffffc0ffffffc0ffffffc0fffffff
        acc, p = 0, (1 << 130) - 5
        for i in range(0, len(msg), 16):
            acc = (acc + int.from_bytes(msg[i:i + 16] + b'\x01', 'little')) * r % p
        return ((acc + int.from_bytes(key[16:], 'little')) % (1 << 128)).to_bytes(16, 'little')

    data = bytes((7 * i + 3) % 256 for i in range(1100))
    for n in (16 * 32 - 1, 16 * 32, 16 * 48 + 5, 1100):
        assert pp.poly1305(key, data[:n]) == ref(data[:n]), n


def test_blake2b_vector_compression_against_hashlib():
    """BLAKE2b's vector-IR compression (four <4 x i64> rows, NEON here) against
    hashlib, keyed and unkeyed, around the block size."""
    import hashlib
    bb = pytest.importorskip('secretjit.kernels.blake2b')
    data = bytes((11 * i + 5) % 256 for i in range(600))
    for n in (0, 1, 127, 128, 129, 256, 600):
        assert bb.blake2b(data[:n]) == hashlib.blake2b(data[:n]).digest(), n
        assert (bb.blake2b(data[:n], 32, b'k' * 20)
                == hashlib.blake2b(data[:n], digest_size=32, key=b'k' * 20).digest()), n
