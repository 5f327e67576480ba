"""AOT shared libraries (secretjit.aot): build, C ABI, results, erasure, errors.

Every library is built for x86-64 (run natively) and AArch64 (cross-compiled
with aarch64-linux-gnu-gcc, run under qemu-aarch64); a target whose toolchain
or emulator is missing is skipped with the package to install.  The C
programs live in tests/aot/.  Each erasure assertion is paired with its
control: the same exports built without the secret passes (``secret=False``:
no boundaries, no register zeroing, and malloc/free without wiping in place
of the secret arena) must leak, or the probe proves nothing.
"""

import json
import os
import random
import shutil
import subprocess

import numpy as np
import pytest
from numba import njit

from secretjit import aot
from secretjit.aot import _link
from secretjit.pipeline import host_arch

from _child import run_python
from _kernels import stack_kernel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CDIR = os.path.join(HERE, 'aot')
PROBES = os.path.join(CDIR, 'probe_kernels.py')
KERNELS = os.path.join(ROOT, 'examples', 'aot', 'secretjit_kernels.py')
VECTORS = os.path.join(HERE, 'vectors')
TARGETS = ['x86_64-linux-gnu', 'aarch64-linux-gnu']
KEY = ['0123456789abcdef', 'fedcba9876543210', '1111111111111111',
       '2222222222222222']

pytestmark = pytest.mark.slow


def _arch(target):
    return aot.TARGETS[target][0]


def _missing(target):
    """Why ``target``'s programs cannot be built and run here, or None."""
    try:
        _link.toolchain(target)
    except aot.AotError as exc:
        return str(exc)
    arch = _arch(target)
    if arch != host_arch():
        if shutil.which('qemu-%s' % arch) is None:
            return 'qemu-%s not found: apt-get install qemu-user' % arch
        if not os.path.isdir('/usr/%s-linux-gnu' % arch):
            return '/usr/%s-linux-gnu (libc6-%s-cross) missing' % (
                arch, 'arm64' if arch == 'aarch64' else 'amd64')
    return None


def _need(target):
    why = _missing(target)
    if why:
        pytest.skip('%s: %s' % (target, why))


def _run(target, argv, stdin=None, env=None):
    arch = _arch(target)
    if arch != host_arch():
        argv = ['qemu-%s' % arch, '-L', '/usr/%s-linux-gnu' % arch] + argv
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                          env=full_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _cc(target, out, sources, libdir, lib):
    cc = _link.toolchain(target)
    subprocess.run(cc + ['-O1', '-I', libdir, '-o', out] + sources + [
        '-L', libdir, '-l' + lib, "-Wl,-rpath,$ORIGIN"], check=True,
        capture_output=True)
    return out


def _kv(text):
    return dict(line.split('=', 1) for line in text.split() if '=' in line)


# -- builds (once per module) ------------------------------------------------

@pytest.fixture(scope='module')
def probe_builds(tmp_path_factory):
    """probe_kernels.py for every available target, secret and control."""
    root = tmp_path_factory.mktemp('aot-probes')
    variants = []
    for target in TARGETS:
        if _missing(target) is None:
            for secret in (True, False):
                variants.append(dict(target=target, secret=secret, outdir=str(
                    root / ('%s-%s' % (target, 'secret' if secret else 'control')))))
    if not variants:
        pytest.skip('no AOT target available')
    infos = aot._build_variants(PROBES, variants)
    out = {}
    for v, info in zip(variants, infos):
        d = v['outdir']
        asm = 'probe_%s.S' % _arch(v['target'])
        exe = _cc(v['target'], os.path.join(d, 'harness'),
                  [os.path.join(CDIR, 'harness.c'), os.path.join(CDIR, asm)],
                  d, 'probe_kernels')
        out[v['target'], v['secret']] = dict(info, exe=exe, dir=d)
    return out


@pytest.fixture(scope='module')
def kernel_builds(tmp_path_factory):
    """examples/aot/secretjit_kernels.py for every available target.

    The build runs in its own process while this one computes the Python
    kernels' results for the same cases (two cores, two compilations).
    """
    root = tmp_path_factory.mktemp('aot-kernels')
    targets = [t for t in TARGETS if _missing(t) is None]
    if not targets:
        pytest.skip('no AOT target available')
    variants = [dict(target=t, outdir=str(root / t)) for t in targets]
    finish = aot._build_variants(KERNELS, variants, wait=False)
    try:
        expected = [_python_expected(c) for c in CASES]
    finally:
        infos = finish()
    out = {'expected': expected}
    for t, v, info in zip(targets, variants, infos):
        d = v['outdir']
        exe = _cc(t, os.path.join(d, 'kernels_test'),
                  [os.path.join(CDIR, 'kernels_test.c')], d,
                  'secretjit_kernels')
        out[t] = dict(info, exe=exe, dir=d)
    return out


def _probe(builds, target, secret):
    _need(target)
    return builds[target, secret]


# -- C ABI ----------------------------------------------------------------

@pytest.mark.parametrize('target', TARGETS)
def test_abi_from_c(probe_builds, target):
    b = _probe(probe_builds, target, True)
    check_abi(_run(target, [b['exe'], 'abi']))


def check_abi(out):
    """The results harness.c's ``abi`` command prints (tests/test_aot_cpu.py too)."""
    lines = dict(line.split(' ', 1) for line in out.splitlines())
    key = bytes([1, 2, 3, 4, 5])
    t = bytes(k ^ 0x5A for k in key)
    assert lines['toy_mix'] == 'status=0 sum=%d out=%s' % (
        sum(t), bytes(t[i % 5] for i in range(12)).hex())
    assert lines['toy_mix_empty'] == 'status=1'        # the kernel raised
    assert lines['toy_mix_null'] == 'status=2'         # NULL with len > 0
    assert lines['toy_mix_neg'] == 'status=2'          # negative length
    assert lines['toy_mix_nullret'] == 'status=2'      # NULL result pointer
    assert lines['toy_mix_nullempty'] == 'status=0'    # NULL with len 0 is fine
    assert lines['scalars'] == 'status=0 value=%r' % -(1.5 * 3 + 200 - 7)
    assert lines['scalars2'] == 'status=0 value=%r' % (1.5 * -3 + 255 + 32767)
    assert lines['is_even42'] == 'status=0 value=1'
    assert lines['is_even7'] == 'status=0 value=0'
    assert lines['fill_f32'] == 'status=0 value=0.5,1.5,2.5,3.5'


def test_header_documents_abi(probe_builds):
    b = next(iter(probe_builds.values()))
    text = open(b['header']).read()
    assert ('int32_t toy_mix(uint8_t *key, int64_t key_len, uint8_t *out, '
            'int64_t out_len, int64_t *ret);') in text
    assert 'int32_t fill_f32(float *a, int64_t a_len, float v);' in text
    assert 'int32_t is_even(int64_t n, bool *ret);' in text
    assert 'extern "C"' in text and '#define SECRETJIT_EINVAL 2' in text


@pytest.mark.parametrize('target', TARGETS)
def test_library_needs_only_libc(probe_builds, target):
    """NEEDED entries are libc/libm/the loader; only the exports are exported."""
    b = _probe(probe_builds, target, True)
    elf = _read_elf_dynamic(b['library'])
    assert set(elf['needed']) <= {'libc.so.6', 'libm.so.6',
                                  'ld-linux-x86-64.so.2',
                                  'ld-linux-aarch64.so.1'}, elf['needed']
    assert set(elf['exports']) == set(b['exports'])


def _read_elf_dynamic(path):
    """NEEDED libraries and defined global dynamic symbols (readelf)."""
    readelf = shutil.which('readelf')
    if readelf is None:
        pytest.skip('readelf (binutils) not found')
    d = subprocess.run([readelf, '-dW', '--dyn-syms', path], check=True,
                       capture_output=True, text=True).stdout
    needed = [line.split('[')[1].split(']')[0] for line in d.splitlines()
              if '(NEEDED)' in line]
    exports = []
    for line in d.splitlines():
        f = line.split()
        if len(f) >= 8 and f[4] == 'GLOBAL' and f[6] != 'UND' \
                and f[3] in ('FUNC', 'OBJECT'):
            exports.append(f[7].split('@')[0])
    return dict(needed=needed, exports=exports)


# -- erasure ---------------------------------------------------------------

def _stack(builds, target, secret, raise_=False, env=None):
    b = _probe(builds, target, secret)
    argv = [b['exe'], 'stack'] + KEY + (['raise'] if raise_ else [])
    return _kv(_run(target, argv, env=env))


def _expected_stack_result():
    """What the kernel returns, from the plain numba build of the same source."""
    return int(njit(stack_kernel)(np.array([int(k, 16) for k in KEY], np.uint64)))


@pytest.mark.parametrize('target', TARGETS)
def test_stack_control_leaks(probe_builds, target):
    r = _stack(probe_builds, target, False)
    assert int(r['leaks']) > 256, "control failed: the probe cannot see a leak"
    r = _stack(probe_builds, target, False, raise_=True)
    assert r['status'] == '1' and int(r['leaks']) > 256


@pytest.mark.parametrize('target', TARGETS)
@pytest.mark.parametrize('stack', ['secret-stack', 'in-place'])
def test_stack_erased(probe_builds, target, stack):
    """No derived key word below the caller's sp after the call returns.

    ``secret-stack``: the call tree runs on the library's secret stack.
    ``in-place``: SECRETJIT_STACK_SIZE too small for the kernel, so the
    boundary runs it on the caller's stack and scrubs the computed depth.
    """
    env = {'SECRETJIT_STACK_SIZE': '4K'} if stack == 'in-place' else None
    r = _stack(probe_builds, target, True, env=env)
    assert r['status'] == '0'
    assert int(r['result']) == _expected_stack_result()
    if stack == 'in-place':     # the kernel did run here: the scrub zeroed it
        assert int(r['written']) > 1024
    assert r['leaks'] == '0'
    r = _stack(probe_builds, target, True, raise_=True, env=env)
    assert r['status'] == '1'                # raised, reported as a status
    assert r['leaks'] == '0'


def _regs(builds, target, secret):
    b = _probe(builds, target, secret)
    return _kv(_run(target, [b['exe'], 'regs'] + KEY))


@pytest.mark.parametrize('target', TARGETS)
def test_registers_control_leaks(probe_builds, target):
    r = _regs(probe_builds, target, False)
    assert r['status'] == '0' and r['copied'] == '1'
    assert int(r['leaks']) >= 1, "control failed: no key word in registers"
    assert int(r['canaries']) > 0
    if int(r.get('sve_vl', 0)):               # SVE: predicates still all-true
        assert int(r['sve_nonzero']) > 0


@pytest.mark.parametrize('target', TARGETS)
def test_registers_erased(probe_builds, target):
    """After return no call-clobbered register holds a value the call tree
    made: each is zero or, on x86-64, still the caller's canary where the
    tree never writes it.

    The probe filled them (x86-64: r9-r11 and every vector and mask register
    the CPU has; AArch64: x5-x18, v0-v31 and, with SVE (qemu's default CPU),
    z0-z31 and p0-p15) with a canary before the call, and the kernel moved
    the key through registers.  ``reg_kernel``'s tree is exact, so the
    baseline x86-64 export drops its ``secretjit_aot_clear_vregs``
    (passes.drop_clears): its epilogue zeroes the xmm registers the tree
    writes, and the tree's SSE code cannot write the upper bits, zmm16-31
    or the masks, which keep the caller's canaries.  AArch64 keeps the
    clear (no register scan there): every register is zero.
    """
    r = _regs(probe_builds, target, True)
    assert r['status'] == '0' and r['copied'] == '1' and r['result'] == '64'
    assert r['leaks'] == '0'
    if _arch(target) == 'x86_64':
        # what is not zero is the caller's canary, and the tree's copy loop
        # left none of its values behind
        assert r['nonzero'] == r['canaries'], r
    else:
        assert r['canaries'] == '0'
        assert r['nonzero'] == '0'
    if _arch(target) == 'aarch64':           # d8-d15 are the caller's again
        assert r['callee_saved_kept'] == '16'
    if int(r.get('sve_vl', 0)):               # z0-z7, z16-z31, p0-p15 zero
        assert r['sve_nonzero'] == '0'


def _heap(builds, target, secret):
    b = _probe(builds, target, secret)
    return _kv(_run(target, [b['exe'], 'heap'] + KEY))


def _expected_heap_result():
    key = [int(k, 16) for k in KEY]
    m = (1 << 64) - 1
    t = [(key[i % 4] ^ (0xA5A5A5A55A5A5A5A * (i + 1))) & m for i in range(256)]
    return sum(t[(i * 3) % 256] for i in range(256)) & m


@pytest.mark.parametrize('target', TARGETS)
def test_heap_control_leaks(probe_builds, target):
    """Control: the same exports on malloc/free without wiping."""
    r = _heap(probe_builds, target, False)
    assert int(r['result']) == _expected_heap_result()
    assert int(r['leaks']) > 16, "control failed: the scan cannot see a leak"


@pytest.mark.parametrize('target', TARGETS)
def test_heap_erased(probe_builds, target):
    """After the call no derived word of the freed temporary is anywhere in
    the process's writable memory (heap, arena, stacks, secret stack)."""
    r = _heap(probe_builds, target, True)
    assert r['status'] == '0'
    assert int(r['result']) == _expected_heap_result()
    assert r['leaks'] == '0'


# -- the kernels library: results match the Python kernels ------------------

def _vector_cases():
    def load(name):
        with open(os.path.join(VECTORS, name + '.json')) as f:
            return json.load(f)['vectors']

    def h(b):
        return b if b else '-'
    cases = []
    v = load('aead')
    for name, op in (('chacha20poly1305', ''), ('xchacha20poly1305', 'x')):
        for c in v[name]:
            cases.append([op + 'seal', c['key'], c['nonce'], h(c['plaintext']),
                          h(c['aad'])])
            cases.append([op + 'open', c['key'], c['nonce'],
                          c['ciphertext'] + c['tag'], h(c['aad'])])
    for c in load('x25519')['scalarmult']:
        cases.append(['x25519', c['scalar'], c['u']])
    v = load('hmac')
    for c in v['hmac_sha256']:
        cases.append(['hmac', h(c['key']), h(c['msg'])])
    for c in v['hkdf_sha256']:
        cases.append(['hkdf', h(c['ikm']), h(c['salt']), h(c['info']),
                      str(c['length'])])
    for c in load('blake2b'):
        cases.append(['blake2b', h(c['msg']), h(c['key']), str(c['digest_size'])])
    for c in load('sha256'):
        if c.get('repeat', 1) * len(c['msg']) // 2 <= 4096:
            cases.append(['sha256', h(c['msg'] * c.get('repeat', 1))])
    v = load('chacha20')
    for c in v['encrypt']:
        cases.append(['chacha20', c['key'], c['nonce'], str(c['counter']),
                      h(c['plaintext'])])
    for c in load('poly1305')['mac']:
        cases.append(['poly1305', c['key'], h(c['msg'])])
    return cases


def _random_cases(seed=20261129, n=12):
    rng = random.Random(seed)

    def rb(k):
        return bytes(rng.getrandbits(8) for _ in range(k)).hex() or '-'
    cases = []
    for _ in range(n):
        size = rng.choice([0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1000])
        key, pt, aad = rb(32), rb(size), rb(rng.choice([0, 5, 16, 33]))
        cases.append(['seal', key, rb(12), pt, aad])
        cases.append(['xseal', key, rb(24), pt, aad])
        cases.append(['open', key, rb(12), rb(size + 16), aad])   # forged
        cases.append(['x25519', rb(32), rb(32)])
        cases.append(['hkdf', rb(size), rb(rng.choice([0, 13, 32])), rb(9),
                      str(rng.choice([0, 1, 32, 33, 100]))])
        cases.append(['blake2b', rb(size), rb(rng.choice([0, 1, 64])),
                      str(rng.choice([1, 20, 32, 64]))])
        cases.append(['sha256', rb(size)])
        cases.append(['hmac', rb(rng.choice([0, 32, 64, 65, 200])), rb(size)])
        cases.append(['chacha20', key, rb(12), str(rng.getrandbits(32)), rb(size)])
        cases.append(['poly1305', key, rb(size)])
    # bad sizes: the kernels raise, the export returns SECRETJIT_ERAISED
    cases.append(['seal', rb(16), rb(12), rb(10), '-'])
    cases.append(['x25519', rb(31), rb(32)])
    return cases


def _python_expected(case):
    from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, \
        sha256, x25519

    def b(s):
        return bytes.fromhex(s) if s != '-' else b''

    def line(data):
        return '0 ' + (data.hex() or '-')
    op, args = case[0], case[1:]
    try:
        if op in ('seal', 'xseal'):
            f = aead.seal if op == 'seal' else aead.xseal
            return line(f(b(args[0]), b(args[1]), b(args[2]), b(args[3])))
        if op in ('open', 'xopen'):
            f = aead.open if op == 'open' else aead.xopen
            try:
                return '0 ok ' + line(f(b(args[0]), b(args[1]), b(args[2]),
                                        b(args[3])))
            except Exception as exc:
                if type(exc).__name__ != 'InvalidTag':
                    raise
                return '0 fail 0 -'
        if op == 'x25519':
            return line(x25519.x25519(b(args[0]), b(args[1])))
        if op == 'hkdf':
            return line(hmac.hkdf_sha256(b(args[0]), b(args[1]), b(args[2]),
                                         int(args[3])))
        if op == 'hmac':
            return line(hmac.hmac_sha256(b(args[0]), b(args[1])))
        if op == 'blake2b':
            return line(blake2b.blake2b(b(args[0]), int(args[2]), b(args[1])))
        if op == 'sha256':
            return line(sha256.sha256(b(args[0])))
        if op == 'chacha20':
            return line(chacha20.chacha20(b(args[0]), b(args[1]), b(args[3]),
                                          int(args[2])))
        if op == 'poly1305':
            return line(poly1305.poly1305(b(args[0]), b(args[1])))
    except ValueError:
        return 'raised'
    raise AssertionError(op)


CASES = _vector_cases() + _random_cases()


def test_vectors_cover_every_kernel():
    ops = {c[0] for c in _vector_cases()}
    assert ops >= {'seal', 'open', 'xseal', 'xopen', 'x25519', 'hkdf', 'hmac',
                   'blake2b', 'sha256', 'chacha20', 'poly1305'}


@pytest.mark.parametrize('target', TARGETS)
def test_kernels_match_python(kernel_builds, target):
    """RFC vectors and random inputs: every C result equals the Python kernel's."""
    _need(target)
    cases = CASES
    out = _run(target, [kernel_builds[target]['exe']],
               stdin=''.join(' '.join(c) + '\n' for c in cases))
    got = out.splitlines()
    assert len(got) == len(cases)
    for case, line, want in zip(cases, got, kernel_builds['expected']):
        if want == 'raised':
            assert line.split()[0] == '1', (case, line)    # SECRETJIT_ERAISED
        else:
            assert line == want, case


@pytest.mark.parametrize('target', TARGETS)
def test_example_program(kernel_builds, target):
    """examples/aot/main.c compiles against the header and runs."""
    _need(target)
    d = kernel_builds[target]['dir']
    exe = _cc(target, os.path.join(d, 'main'),
              [os.path.join(ROOT, 'examples', 'aot', 'main.c')], d,
              'secretjit_kernels')
    out = _run(target, [exe])
    assert 'shared agrees     yes' in out
    # RFC 7748 6.1 shared secret
    assert ('4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742'
            in out)
    assert 'authentic "attack at dawn"' in out
    assert 'tampered          rejected' in out
    assert 'bad key status    1' in out


# -- build-time errors -------------------------------------------------------

def test_unsupported_signatures():
    def f(a, b):
        return 0
    with pytest.raises(TypeError, match=r"parameter 'a'.*1-D and C-contiguous"):
        aot.export('f2d', 'int64(uint8[:, ::1], int64)')(f)
    with pytest.raises(TypeError, match=r"parameter 'a'.*1-D and C-contiguous"):
        aot.export('fa', 'int64(uint8[:], int64)')(f)
    with pytest.raises(TypeError, match=r"parameter 'b' has type complex128"):
        aot.export('fc', 'int64(uint8[::1], complex128)')(f)
    with pytest.raises(TypeError, match=r"the result has type"):
        aot.export('fr', 'uint8[::1](uint8[::1], int64)')(f)
    with pytest.raises(TypeError, match=r"2 parameters.*has 1"):
        aot.export('fn', 'int64(int64, int64)')(lambda a: a)
    with pytest.raises(ValueError, match='not a C identifier'):
        aot.export('1bad', 'int64(int64, int64)')(f)
    with pytest.raises(ValueError, match='reserved'):
        aot.export('NRT_decref', 'int64(int64, int64)')(f)
    with pytest.raises(TypeError, match='cannot parse signature'):
        aot.export('fp', 'int64(notatype, int64)')(f)


def test_unknown_and_unexported_kernels(tmp_path):
    with pytest.raises(aot.AotError, match='has no export named nope'):
        aot.build(PROBES, outdir=str(tmp_path), exports=['nope'])
    partial = tmp_path / 'partial.py'
    partial.write_text('from secretjit.aot import export\n'
                       '@export("f", "int64(int64)")\n'
                       'def f(x):\n    return x\n'
                       'def mix(x):\n    return x\n')
    with pytest.raises(aot.AotError, match='mix is defined in .* but not exported'):
        aot.build(str(partial), outdir=str(tmp_path), exports=['mix'])
    empty = tmp_path / 'empty.py'
    empty.write_text('X = 1\n')
    with pytest.raises(aot.AotError, match='declares no exports'):
        aot.build(str(empty), outdir=str(tmp_path))


def test_bad_signature_in_module_is_a_build_error(tmp_path):
    mod = tmp_path / 'badsig.py'
    mod.write_text('from secretjit.aot import export\n'
                   '@export("f", "int64(uint8[:, :])")\n'
                   'def f(a):\n    return 0\n')
    with pytest.raises(TypeError, match="parameter 'a'"):
        aot.build(str(mod), outdir=str(tmp_path))


def test_unknown_target(tmp_path):
    with pytest.raises(aot.AotError, match='supported targets: x86_64-linux-gnu, '
                       'aarch64-linux-gnu'):
        aot.build(PROBES, target='riscv64-linux-gnu', outdir=str(tmp_path))
    proc = run_python('-m', 'secretjit', 'aot', PROBES,
                      '--target', 'riscv64-linux-gnu', '-o', tmp_path)
    assert proc.returncode == 2
    assert 'unknown target' in proc.stderr and 'aarch64-linux-gnu' in proc.stderr


def test_missing_toolchain(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(tmp_path))
    monkeypatch.delenv('SECRETJIT_AOT_CC', raising=False)
    with pytest.raises(aot.AotError,
                       match='apt-get install gcc-aarch64-linux-gnu'):
        aot.build(PROBES, target='aarch64-linux-gnu', outdir=str(tmp_path))


def test_cli_builds_library_and_header(tmp_path):
    proc = run_python('-m', 'secretjit', 'aot', PROBES,
                      '--export', 'toy_mix', '-o', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'libprobe_kernels.so').exists()
    header = (tmp_path / 'probe_kernels.h').read_text()
    assert 'int32_t toy_mix(' in header and 'stack_kernel' not in header


def test_kernel_needing_python_runtime_is_a_build_error(tmp_path):
    """An exception with runtime arguments needs CPython: refused at build time,
    by the static-exceptions rule, with its line."""
    mod = tmp_path / 'dynexc.py'
    mod.write_text('from secretjit.aot import export\n'
                   '@export("dyn_raise", "int64(int64)")\n'
                   'def dyn_raise(n):\n'
                   '    if n > 3:\n'
                   '        raise ValueError("too big", n)\n'
                   '    return n\n')
    with pytest.raises(aot.AotError, match=r'\[static-exceptions\].*dynexc\.py:5'):
        aot.build(str(mod), outdir=str(tmp_path))


# -- machine-code audit of the libraries built above (secretjit.audit) --------

def test_audit_passes_every_secret_library_and_fails_the_controls(probe_builds):
    """x86-64 and AArch64: every boundary of the secret library passes; the
    control build (no erasure) has no boundary and must fail."""
    pytest.importorskip('capstone')
    from secretjit import audit
    for (target, secret), info in sorted(probe_builds.items()):
        lib = os.path.join(info['dir'], 'libprobe_kernels.so')
        results = audit.audit_library(lib)
        if secret:
            assert len(results) >= 6 and all(r.ok for r in results), results
            assert {r.arch for r in results} == {_arch(target)}
            assert audit.main(lib) == 0
        else:       # the control has no boundary at all: nothing zeroes or scrubs
            assert results == [] and audit.main(lib) == 2


def test_audit_passes_the_crypto_kernel_libraries(kernel_builds):
    """examples/aot/secretjit_kernels.py (SHA-256, ChaCha20, X25519...) built
    for each target: every boundary passes the audit."""
    pytest.importorskip('capstone')
    from secretjit import audit
    for target in TARGETS:
        if target not in kernel_builds:
            continue
        lib = os.path.join(kernel_builds[target]['dir'], 'libsecretjit_kernels.so')
        results = audit.audit_library(lib)
        assert results and all(r.ok for r in results), [r for r in results if not r.ok]
        assert {r.arch for r in results} == {_arch(target)}


def test_exports_of_exact_trees_drop_the_vector_clear(probe_builds):
    """x86-64 baseline build: the exports whose trees are exact with known
    written registers (reg_kernel, toy_mix...) lose their
    secretjit_aot_clear_vregs call, and any other keeps it (heap_kernel's
    tree calls the secret heap's C code, which the scan cannot see)."""
    target = next((t for t in TARGETS if _arch(t) == 'x86_64'), None)
    if target is None:
        pytest.skip('no x86-64 target')
    b = _probe(probe_builds, target, True)
    (line,) = [r for r in b['reports'] if r.startswith('drop_clears:')]
    counts = dict(kv.split('=') for kv in line.split(': ', 1)[1].split(', '))
    assert int(counts.get('dropped', 0)) >= 1 and int(counts.get('kept', 0)) >= 1, line
