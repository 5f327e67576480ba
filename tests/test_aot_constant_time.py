"""The constant-time check and the hardened backend in AOT builds.

The exports of ``tests/aot/ct_exports.py`` are the JIT check's kernels
(``tests/_ct_kernels.py``, lines marked ``# CT: kind``) with ``secret=``.
One ``warn`` build for x86-64 and AArch64 reports every finding: each
must-fire kernel at its marked line, each must-not-fire kernel nothing,
the variable division also in the machine code (``div`` / ``udiv``) and the
division by a constant not.  An ``error`` build fails with
``SecretPolicyError('constant-time')``; the same kernel exported without
``secret=`` builds and runs.  The hardening is compared with the same
build made with ``SECRETJIT_CT_HARDENING=0``.
"""

import io
import json
import os
import warnings

import pytest
from elftools.elf.elffile import ELFFile

import _ct_kernels as ck
from secretjit import ConstantTimeWarning, SecretPolicyError, aot, passes
from secretjit.aot import _link
from secretjit.ct_backend import disassembler, function_code

from _child import run_python

HERE = os.path.dirname(os.path.abspath(__file__))
EXPORTS = os.path.join(HERE, 'aot', 'ct_exports.py')
TARGETS = ['x86_64-linux-gnu', 'aarch64-linux-gnu']
# the warn build's variants: each target's baseline, and x86-64 --cpu host
VARIANTS = [dict(target=t) for t in TARGETS] + [
    dict(target='x86_64-linux-gnu', cpu='host')]
VARIANT_IDS = TARGETS + ['x86_64-linux-gnu-cpu-host']
CK = os.path.join(HERE, '_ct_kernels.py')

pytestmark = pytest.mark.slow


def _need(target):
    try:
        _link.toolchain(target)
    except aot.AotError as exc:
        pytest.skip(str(exc))


def _build(tmp, variants, mode, exports=None):
    os.environ['CT_EXPORTS_MODE'] = mode
    try:
        return aot._build_variants(EXPORTS, [
            dict(v, outdir=str(tmp / ('%s-%s-%s' % (v['target'], v.get('secret', True),
                                                    v.get('cpu')))))
            for v in variants], exports=exports)
    finally:
        os.environ.pop('CT_EXPORTS_MODE')


@pytest.fixture(scope='module')
def warn_builds(tmp_path_factory):
    for t in TARGETS:
        _need(t)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter('always')
        infos = _build(tmp_path_factory.mktemp('ct-warn'), VARIANTS, 'warn')
    return infos, [w for w in rec if issubclass(w.category, ConstantTimeWarning)]


# the must-fire kernels ct_exports.py exports (with secret=)
FIRING = ['early_exit_compare', 'sbox_lookup', 'secret_trip_count',
          'violation_in_helper', 'secret_division']


def _expected():
    """{(kind, file:line)} the warn build must report, from the markers."""
    marks = ck.marked_lines()
    marks['violation_in_helper'] = marks.pop('_leaky_helper')
    want = {(kind, '%s:%d' % (CK, line))
            for name in FIRING for kind, line in marks[name]}
    for kind, line in ck.marked_lines(EXPORTS, 'CT-WARN')['mod_by_constant']:
        want.add((kind, '%s:%d' % (EXPORTS, line)))
    div_line = dict(marks['secret_division'])['division']
    want.add(('machine-division', '%s:%d' % (CK, div_line)))
    return want


def _found(lines):
    """{(kind, file:line)} from the build's finding lines."""
    out = set()
    for line in lines:
        where, kind = line.split(': ', 1)[1].split(': ')[:2]
        out.add((kind.split(' in ')[0], where))
    return out


@pytest.mark.parametrize('index', [0, 1, 2], ids=VARIANT_IDS)
def test_aot_findings_name_the_python_lines(warn_builds, index):
    infos, rec = warn_builds
    info = infos[index]
    assert info['target'] == VARIANTS[index]['target']
    assert _found(info['constant_time']) == _expected()
    mnemonic = 'udiv' if info['target'].startswith('aarch64') else 'div'
    assert any('contains %s although' % mnemonic in line
               for line in info['constant_time'])
    # the findings reach the caller as warnings
    assert any(info['target'] in str(w.message) for w in rec)


def test_aot_error_mode_fails_with_the_python_line(tmp_path):
    """secret= inherited from a secret_jit dispatcher; a cross build."""
    _need('aarch64-linux-gnu')
    with pytest.raises(SecretPolicyError) as err:
        _build(tmp_path, [dict(target='aarch64-linux-gnu')], 'error',
               exports=['ct_inherited_early_exit'])
    assert err.value.rule == 'constant-time'
    assert isinstance(err.value, aot.AotError)      # a failed build as well
    line = dict(ck.marked_lines()['early_exit_compare'])['branch']
    assert '%s:%d: branch in _ct_kernels.early_exit_compare' % (CK, line) in str(err.value)


_RUN = r'''
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
u8 = ctypes.c_uint8 * 16
key = u8(*range(16)); tag = u8(*range(16)); bad = u8(*range(1, 17))
out = {}
for name, a, b in (('same', key, tag), ('differ', key, bad)):
    for export in ('ct_unchecked_early_exit', 'ct_or_accumulated_compare'):
        ret = ctypes.c_uint8(7)
        status = getattr(lib, export)(a, ctypes.c_int64(16), b, ctypes.c_int64(16),
                                      ctypes.byref(ret))
        out['%s %s' % (export, name)] = [status, ret.value]
print(json.dumps(out))
'''


def _kernel_mnemonics(info, name, arch):
    """Mnemonics of the numba kernel ``name`` in a built library.

    The control build inlines the kernel into its export ``ct_<name>``.
    """
    with open(info['library'], 'rb') as f:
        obj = f.read()
    names = [s.name for s in ELFFile(io.BytesIO(obj)).get_section_by_name(
        '.symtab').iter_symbols()]
    syms = [n for n in names if name in n and n.startswith('_ZN')] or \
        [n for n in names if n == 'ct_' + name]
    assert len(syms) == 1, syms
    code = function_code(obj, set(syms))[syms[0]]
    return [i.mnemonic for i in disassembler(arch).disasm(code, 0)]


def _thunk_mnemonics(info, name, arch):
    """Mnemonics of the secret stack thunk of the kernel ``name``."""
    with open(info['library'], 'rb') as f:
        obj = f.read()
    names = [s.name for s in ELFFile(io.BytesIO(obj)).get_section_by_name(
        '.symtab').iter_symbols()]
    (sym,) = [n for n in names if n.startswith(passes.THUNK_PREFIX) and name in n]
    code = function_code(obj, {sym})[sym]
    return [i.mnemonic for i in disassembler(arch).disasm(code, 0)]


@pytest.mark.parametrize('index', range(len(TARGETS)), ids=TARGETS)
def test_aot_thunk_inlines_only_unchecked_kernels(warn_builds, index):
    """An export without secret= lets LLVM inline its kernel into the
    secret stack thunk (``a // b``: small enough, no call left); one the
    constant-time check read keeps the call, so that the code checked is
    the only copy that runs (must-fire and must-not-fire)."""
    info, arch = warn_builds[0][index], TARGETS[index].split('-')[0]
    call = 'call' if arch == 'x86_64' else 'bl'
    assert call not in _thunk_mnemonics(info, 'signed_division', arch)
    assert call in _thunk_mnemonics(info, 'mod_by_constant', arch)


def test_aot_unchecked_kernel_builds_and_runs(warn_builds):
    """Without secret= the early exit is not checked (the warn build has no
    finding in it) and runs; the must-not-fire compare gives its result."""
    info = warn_builds[0][0]
    assert not [line for line in info['constant_time'] if 'unchecked' in line]
    proc = run_python(info['library'], code=_RUN)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        'ct_unchecked_early_exit same': [0, 1],
        'ct_unchecked_early_exit differ': [0, 0],
        'ct_or_accumulated_compare same': [0, 1],
        'ct_or_accumulated_compare differ': [0, 0]}


def test_aot_hardening_against_a_build_without_it(warn_builds, tmp_path):
    """The hardened backend keeps the select a cmov and the division without
    its width bypass; the same build with SECRETJIT_CT_HARDENING=0 does not."""
    os.environ['SECRETJIT_CT_HARDENING'] = '0'
    try:
        controls = _build(tmp_path, [VARIANTS[0], VARIANTS[2]], 'warn',
                          exports=['ct_select_loop', 'ct_signed_division'])
    finally:
        os.environ.pop('SECRETJIT_CT_HARDENING')
    # the baseline build, and --cpu host (AVX-512, BMI2...: the same hardening)
    for secret, control in zip([warn_builds[0][0], warn_builds[0][2]], controls):
        hard = _kernel_mnemonics(secret, 'select_loop', 'x86_64')
        soft = _kernel_mnemonics(control, 'select_loop', 'x86_64')
        assert not any(m.startswith('cmov') for m in soft), "control kept the cmov"
        assert any(m.startswith('cmov') for m in hard)
        hard = _kernel_mnemonics(secret, 'signed_division', 'x86_64')
        soft = _kernel_mnemonics(control, 'signed_division', 'x86_64')
        assert 'div' in soft and 'idiv' in soft, "control: no width bypass"
        assert 'idiv' in hard and 'div' not in hard
