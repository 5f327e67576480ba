"""AOT libraries built for a CPU (``--cpu``, :mod:`secretjit.aot.cpu`).

One build of tests/aot/probe_kernels.py (x86-64, run natively) for three
variants: ``--cpu host`` (AVX-512 and more on the machines this runs on),
its control (the same CPU, ``secret=False``: no boundary, no register
zeroing, malloc without wiping), and ``x86-64-v3+sha``, run natively and
under ``qemu-x86_64 -cpu qemu64`` (a CPU without SSE4/AVX: the library must
refuse with SECRETJIT_ECPU and a message, never reach an illegal
instruction).  The erasure assertions are test_aot.py's, each with its
control; the audit must pass the --cpu build and catch a zeroing dropped
from it.  A SHA-256 export built with ``--cpu host`` uses SHA-NI.
"""

import hashlib
import io
import os
import shutil
import subprocess

import pytest

from secretjit import aot
from secretjit.aot import cpu as aot_cpu
from secretjit.aot import ct
from secretjit.pipeline import host_arch

from _child import run_python
import test_aot as base

TARGET = 'x86_64-linux-gnu'
pytestmark = pytest.mark.skipif(host_arch() != 'x86_64',
                                reason='--cpu builds: x86-64 hosts')


def _have(feature):
    import llvmlite.binding as ll
    return bool(ll.get_host_cpu_features().get(feature, False))


# -- naming the CPU: errors before anything is compiled ----------------------

def test_cpu_names_resolve():
    v3 = aot_cpu.resolve_cpu('x86_64', 'x86-64-v3')
    v4 = aot_cpu.resolve_cpu('x86_64', 'x86-64-v4')
    assert set(v3.features) < set(v4.features)
    assert {'avx2', 'bmi2', 'fma'} <= set(v3.features) and v3.vlevel == 1
    assert {'avx512f', 'avx512bw', 'avx512vl'} <= set(v4.features) and v4.vlevel == 2
    assert not v3.sha_ni and aot_cpu.resolve_cpu('x86_64', 'x86-64-v3+sha').sha_ni
    for name in (None, 'baseline', 'x86-64'):
        base_cpu = aot_cpu.resolve_cpu('x86_64', name)
        assert base_cpu.baseline and base_cpu.vlevel == 0
    assert aot_cpu.resolve_cpu('aarch64', None).llvm_cpu == 'generic'
    host = aot_cpu.resolve_cpu('x86_64', 'host')
    assert list(host.features) == [f for f in aot_cpu.X86_FEATURES if _have(f)]
    # every feature the target machine gets is one the load-time check tests
    assert set(v4.features) <= set(aot_cpu.X86_FEATURES)


def test_unknown_cpu_is_a_clear_error(tmp_path):
    with pytest.raises(aot.AotError, match=r"unknown --cpu 'pentium9'.*x86-64-v3"):
        aot.build(base.PROBES, cpu='pentium9', outdir=str(tmp_path))
    with pytest.raises(aot.AotError, match=r"unknown CPU feature 'avx9000'"):
        aot.build(base.PROBES, cpu='x86-64-v3+avx9000', outdir=str(tmp_path))
    with pytest.raises(aot.AotError, match=r'AArch64 libraries are built for the '
                       'baseline'):
        aot.build(base.PROBES, target='aarch64-linux-gnu', cpu='x86-64-v3',
                  outdir=str(tmp_path))
    proc = run_python('-m', 'secretjit', 'aot', base.PROBES, '--cpu', 'pentium9',
                      '-o', tmp_path)
    assert proc.returncode == 2 and "unknown --cpu 'pentium9'" in proc.stderr
    assert not list(tmp_path.iterdir())            # nothing was built


def test_constant_time_hardening_applies_to_the_cpu_features():
    feats = ct.target_features('x86_64', True, '+avx2,+bmi2')
    assert feats.split(',')[:2] == ['+avx2', '+bmi2']
    assert '-idivq-to-divl' in feats and '-idivl-to-divb' in feats
    assert ct.target_features('x86_64', False, '+avx2') == '+avx2'   # control


# -- the builds ----------------------------------------------------------------

@pytest.fixture(scope='module')
def cpu_builds(tmp_path_factory):
    why = base._missing(TARGET)
    if why:
        pytest.skip(why)
    root = tmp_path_factory.mktemp('aot-cpu')
    sha = aot._build_variants(base.KERNELS, [dict(
        target=TARGET, outdir=str(root / 'sha-host'), cpu='host')],
        exports=['secretjit_sha256'], wait=False)
    variants = {'host': dict(cpu='host'),
                'control': dict(cpu='host', secret=False),
                'v3': dict(cpu='x86-64-v3+sha')}
    try:
        infos = aot._build_variants(base.PROBES, [
            dict(v, target=TARGET, outdir=str(root / k)) for k, v in variants.items()])
    finally:
        sha_info = sha()[0]
    out = {}
    for name, info in zip(variants, infos):
        d = os.path.dirname(info['library'])
        exe = base._cc(TARGET, os.path.join(d, 'harness'),
                       [os.path.join(base.CDIR, 'harness.c'),
                        os.path.join(base.CDIR, 'probe_x86_64.S')], d, 'probe_kernels')
        out[name] = dict(info, exe=exe, dir=d)
    d = os.path.dirname(sha_info['library'])
    out['sha'] = dict(sha_info, dir=d, exe=base._cc(
        TARGET, os.path.join(d, 'sha256_main'),
        [os.path.join(base.CDIR, 'sha256_main.c')], d, 'secretjit_kernels'))
    return out


def _harness(b, *argv, env=None):
    return base._kv(base._run(TARGET, [b['exe']] + list(argv), env=env))


def test_header_names_the_cpu(cpu_builds):
    text = open(cpu_builds['host']['header']).read()
    assert ' * CPU: host (LLVM cpu x86-64, features ' in text
    assert '#define SECRETJIT_AOT_PROBE_KERNELS_CPU "host"' in text
    assert '#define SECRETJIT_ECPU 3' in text
    assert cpu_builds['host']['cpu_features'] == list(
        aot_cpu.resolve_cpu('x86_64', 'host').features)


def test_abi_on_cpu_builds(cpu_builds):
    for name in ('host', 'v3'):
        base.check_abi(base._run(TARGET, [cpu_builds[name]['exe'], 'abi']))


def test_registers_control_leaks(cpu_builds):
    r = _harness(cpu_builds['control'], 'regs', *base.KEY)
    assert r['status'] == '0' and r['copied'] == '1'
    assert int(r['leaks']) >= 1 and int(r['canaries']) > 0


@pytest.mark.parametrize('name', ['host', 'v3'])
def test_registers_erased(cpu_builds, name):
    """No key word in any register after the call, and no register holds a
    value the call tree made: each call-clobbered register but the status is
    zero, or still the caller's canary where the tree never writes it
    (``reg_kernel``'s tree is exact: a --cpu host boundary on an AVX-512 CPU
    leaves zmm16-31 and the masks alone, secretjit/stack_bound/vregs.py, and
    a v3 export drops its secretjit_aot_clear_vregs, passes.drop_clears: VEX
    code cannot write zmm16-31 or the masks).  The control (no boundary)
    leaves the key: test_registers_control_leaks."""
    r = _harness(cpu_builds[name], 'regs', *base.KEY)
    assert r['status'] == '0' and r['copied'] == '1' and r['result'] == '64'
    assert r['leaks'] == '0'
    # what is not zero is the caller's canary (upper zmm, masks), and the
    # tree's own copy loop left none of its values behind
    assert r['nonzero'] == r['canaries'], r
    if not _have('avx512f'):
        assert r['canaries'] == '0'     # ymm0-15 are all the vector registers


def test_stack_control_leaks(cpu_builds):
    r = _harness(cpu_builds['control'], 'stack', *base.KEY)
    assert int(r['leaks']) > 256


@pytest.mark.parametrize('stack', ['secret-stack', 'in-place'])
def test_stack_erased(cpu_builds, stack):
    env = {'SECRETJIT_STACK_SIZE': '4K'} if stack == 'in-place' else None
    for raise_ in ([], ['raise']):
        r = _harness(cpu_builds['host'], 'stack', *(base.KEY + raise_), env=env)
        assert r['status'] == ('1' if raise_ else '0') and r['leaks'] == '0'
        if not raise_:
            assert int(r['result']) == base._expected_stack_result()
        if stack == 'in-place' and not raise_:
            assert int(r['written']) > 1024


def test_heap_erased_and_control_leaks(cpu_builds):
    r = _harness(cpu_builds['control'], 'heap', *base.KEY)
    assert int(r['result']) == base._expected_heap_result() and int(r['leaks']) > 16
    r = _harness(cpu_builds['host'], 'heap', *base.KEY)
    assert r['status'] == '0' and r['leaks'] == '0'
    assert int(r['result']) == base._expected_heap_result()


# -- a CPU without the build's features -----------------------------------------

def test_cpu_without_the_features_refuses_at_load(cpu_builds):
    """qemu's qemu64 CPU (no SSSE3, SSE4, AVX, SHA): every export returns
    SECRETJIT_ECPU, the loader's constructor names what is missing, and the
    program exits normally (no SIGILL)."""
    if shutil.which('qemu-x86_64') is None:
        pytest.skip('qemu-x86_64 not found: apt-get install qemu-user')
    proc = subprocess.run(['qemu-x86_64', '-cpu', 'qemu64', cpu_builds['v3']['exe'],
                           'abi'], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    statuses = [line.split()[1] for line in proc.stdout.splitlines()]
    assert len(statuses) == 11 and set(statuses) == {'status=3'}, proc.stdout
    assert ('libprobe_kernels.so was built for CPU x86-64-v3+sha, and this CPU '
            'lacks: popcnt ssse3 sse4.1 sse4.2 avx avx2') in proc.stderr
    assert ' sha.' in proc.stderr and 'SECRETJIT_ECPU' in proc.stderr
    # must not fire on a CPU with the features: test_abi_on_cpu_builds (v3)


# -- the audit on a --cpu build ---------------------------------------------------

def _boundary(data, kernel):
    """(file offset, instructions) of the boundary of ``kernel`` in a library."""
    capstone = pytest.importorskip('capstone')
    from elftools.elf.elffile import ELFFile
    from secretjit import audit
    elf = ELFFile(io.BytesIO(data))
    for sym in elf.get_section_by_name('.symtab').iter_symbols():
        if sym.name.startswith(audit.BOUNDARY) and kernel in sym.name:
            sec = elf.get_section(sym['st_shndx'])
            off = sec['sh_offset'] + sym['st_value'] - sec['sh_addr']
            md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
            return off, list(md.disasm(data[off:off + sym['st_size']], 0))
    raise AssertionError('no boundary of %s' % kernel)


def _nop_out(data, kernel, mnemonic, op_str):
    off, insns = _boundary(data, kernel)
    out, hits = bytearray(data), 0
    for i in insns:
        if i.mnemonic == mnemonic and i.op_str == op_str:
            out[off + i.address:off + i.address + i.size] = b'\x90' * i.size
            hits += 1
    assert hits, (mnemonic, op_str, [(i.mnemonic, i.op_str) for i in insns])
    return bytes(out)


def _upper_or_mask_zeroing(insns, kind):
    """(mnemonic, op_str, register) of the first zeroing of a zmm16-31
    (``kind='zmm'``) or of a mask register (``'k'``) in a boundary."""
    for i in insns:
        ops = i.op_str.split(', ')
        if kind == 'zmm' and i.mnemonic == 'vpxord' and len(set(ops)) == 1 \
                and ops[0].startswith('zmm') and int(ops[0][3:]) >= 16:
            return i.mnemonic, i.op_str, 'x' + ops[0][1:]
        if kind == 'k' and i.mnemonic == 'kxorw' and ops[1:] == ['k0', 'k0']:
            return i.mnemonic, i.op_str, ops[0]
    raise AssertionError('no %s zeroing in %s' % (kind, [(i.mnemonic, i.op_str) for i in insns]))


# the host build's boundaries use passes/epilogue.py's sequence (vpxord on
# zmm16-31, kxorw on k0-k7, as the JIT's do) for the registers the tree
# writes: vec_kernel writes upper zmm and masks, reg_kernel only GPRs
@pytest.mark.parametrize('kernel,drop', [('vec_kernel', 'zmm'), ('vec_kernel', 'k'),
                                         ('reg_kernel', ('xor', 'r10d, r10d', 'r10'))],
                         ids=['upper-zmm', 'mask', 'r10'])
def test_audit_passes_cpu_build_and_catches_a_dropped_zeroing(cpu_builds, kernel, drop):
    pytest.importorskip('capstone')
    from secretjit import audit
    if not _have('avx512f'):
        pytest.skip('the host build has no AVX-512 zeroing on this CPU')
    with open(cpu_builds['host']['library'], 'rb') as f:
        data = f.read()
    clean = audit.audit_object(data)
    assert len(clean) >= 7 and all(r.ok for r in clean), clean
    assert audit.audit_library(cpu_builds['control']['library']) == []
    if isinstance(drop, str):
        drop = _upper_or_mask_zeroing(_boundary(data, kernel)[1], drop)
    mnemonic, op_str, reg = drop
    broken = {r.name: r for r in audit.audit_object(
        _nop_out(data, kernel, mnemonic, op_str))}
    bad = [r for n, r in broken.items() if kernel in n]
    assert len(bad) == 1 and not bad[0].ok and not bad[0].registers_ok
    assert reg in bad[0].registers_missing, bad[0].registers_missing
    assert all(r.ok for n, r in broken.items() if kernel not in n)


# -- SHA-NI ----------------------------------------------------------------------

def test_sha256_export_uses_sha_ni_with_cpu_host(cpu_builds):
    b = cpu_builds['sha']
    dis = subprocess.run(['objdump', '-d', b['library']], capture_output=True,
                         text=True, check=True).stdout
    assert ('sha256rnds2' in dis) == _have('sha')
    for msg in (b'', b'abc', bytes(range(256)) * 5):
        out = base._kv(base._run(TARGET, [b['exe'], msg.hex()]))
        assert out == {'status': '0', 'digest': hashlib.sha256(msg).hexdigest()}


def test_cpu_build_exports_only_the_declared_names_as_ifuncs(cpu_builds):
    d = subprocess.run(['readelf', '-W', '--dyn-syms', cpu_builds['v3']['library']],
                       check=True, capture_output=True, text=True).stdout
    defined = {f[7]: f[3] for f in (line.split() for line in d.splitlines())
               if len(f) >= 8 and f[4] == 'GLOBAL' and f[6] != 'UND'}
    assert defined == {name: 'IFUNC' for name in cpu_builds['v3']['exports']}


def test_cli_cpu_option(tmp_path):
    proc = run_python('-m', 'secretjit', 'aot', base.PROBES, '--export', 'is_even',
                      '--cpu', 'x86-64-v2', '-o', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert 'CPU x86-64-v2 (LLVM cpu x86-64, features cx16 sahf popcnt' in proc.stdout
    header = (tmp_path / 'probe_kernels.h').read_text()
    assert ' * CPU: x86-64-v2 (' in header and 'int32_t is_even(' in header
