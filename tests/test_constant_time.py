"""The constant-time check on kernels: ``secret=``, findings at Python lines.

Every must-fire kernel of ``_ct_kernels`` raises ``SecretPolicyError``
(rule ``constant-time``) naming the line marked ``# CT: <kind>``; every
must-not-fire kernel compiles and returns what ``njit`` returns.
"""

import inspect
import re
import warnings

import numpy as np
import pytest
from numba import njit

import _ct_kernels as ck
from secretjit import (ConstantTimeWarning, SecretPolicyError, declassify,
                       secret_jit)

SOURCE = inspect.getsourcefile(ck)
MARKS = ck.marked_lines()
# The helper's violation is marked in the helper.
MARKS['violation_in_helper'] = MARKS.pop('_leaky_helper')


def _same(a, b):
    if isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize('name', ck.MUST_NOT_FIRE)
def test_must_not_fire_compiles_and_matches_njit(name):
    fn = getattr(ck, name)
    kernel = secret_jit(secret=ck.SECRET[name])(fn)
    args = ck.ARGS[name]()
    args2 = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    with warnings.catch_warnings():
        warnings.simplefilter('error', ConstantTimeWarning)
        got = kernel(*args)
    _same(got, njit(fn)(*args2))
    for a, b in zip(args, args2):
        _same(a, b)
    lib = kernel.overloads[kernel.signatures[0]].library
    assert lib.ct_findings == []
    report = [r for r in lib.pass_reports if r.name == 'constant_time']
    assert report and report[0]['functions_checked'] >= 1


@pytest.mark.parametrize('name', ck.MUST_FIRE)
def test_must_fire_names_the_python_line(name):
    fn = getattr(ck, name)
    kernel = secret_jit(secret=ck.SECRET[name])(fn)
    with pytest.raises(SecretPolicyError) as info:
        kernel(*ck.ARGS[name]())
    err = info.value
    assert err.rule == 'constant-time'
    errors = [f for f in err.findings if f.severity == 'error']
    found = {(f.kind, f.location) for f in errors}
    for kind, line in MARKS[name]:
        assert (kind, '%s:%d' % (SOURCE, line)) in found, (name, found)
        assert '%s:%d: %s' % (SOURCE, line, kind) in str(err)
    # nothing else is reported
    marked = {'%s:%d' % (SOURCE, line) for _, line in MARKS[name]}
    assert {f.location for f in errors} <= marked, errors


def test_the_same_kernels_compile_without_secret():
    """A kernel without ``secret=`` is not checked (control for the above)."""
    for name in ck.MUST_FIRE:
        fn = getattr(ck, name)
        _same(secret_jit(fn)(*ck.ARGS[name]()), njit(fn)(*ck.ARGS[name]()))


def test_warn_mode_warns_and_runs():
    kernel = secret_jit(secret=('key',), constant_time='warn')(ck.early_exit_compare)
    with pytest.warns(ConstantTimeWarning, match=r'_ct_kernels.py:\d+: branch'):
        assert kernel(ck.K.copy(), ck.K.copy()) is True


def test_constant_time_off_skips_the_check():
    kernel = secret_jit(secret=('key',), constant_time='off')(ck.early_exit_compare)
    assert kernel(ck.K.copy(), ck.K.copy()) is True


def test_unknown_secret_parameter_is_a_type_error():
    with pytest.raises(TypeError, match=r"'kee' is not a parameter of "
                       r"early_exit_compare\(key, tag\)"):
        secret_jit(secret=('kee',))(ck.early_exit_compare)
    with pytest.raises(TypeError, match=r"'kee', 'x' are not a parameter"):
        secret_jit(ck.early_exit_compare, secret=('kee', 'x'))
    with pytest.raises(TypeError, match='parameter names are strings'):
        secret_jit(secret=(1,))
    with pytest.raises(ValueError, match="constant_time='loud'.*'warn'"):
        secret_jit(secret=('key',), constant_time='loud')


def test_secret_accepts_one_name_and_signatures():
    kernel = secret_jit('uint64(uint8[::1])', secret='key')(ck.rotations_and_multiplications)
    assert kernel._ct_policy.secret == ('key',)
    assert kernel(ck.K.copy()) == njit(ck.rotations_and_multiplications)(ck.K.copy())


def test_declassify_is_identity_everywhere():
    assert declassify(5) == 5
    assert njit(lambda x: declassify(x))(7) == 7
    assert secret_jit(lambda x: declassify(x))(True) is True


def test_declassify_rejects_arrays():
    kernel = secret_jit(lambda x: declassify(x))
    with pytest.raises(Exception, match='declassify.. takes an integer or a boolean'):
        kernel(np.zeros(3))


def test_declassify_costs_no_instruction():
    """The declassify asm is a comment: the machine code has no extra instruction."""
    plain = secret_jit('uint64(uint64)')(lambda x: x * np.uint64(3))
    marked = secret_jit('uint64(uint64)')(lambda x: declassify(x) * np.uint64(3))
    asm_plain = plain.inspect_asm(plain.signatures[0])
    asm_marked = marked.inspect_asm(marked.signatures[0])
    assert 'secretjit.declassify' in asm_marked

    def body(asm):
        """Instructions of the first function (the kernel)."""
        kernel = asm.split('.Lfunc_end0:')[0]
        return [ln.strip() for ln in kernel.splitlines()
                if ln.startswith('\t') and not ln.strip().startswith(('.', '#'))]
    assert body(asm_plain) and body(asm_marked) == body(asm_plain)
    assert body(asm_marked) == body(asm_plain)


# -- backend hardening --------------------------------------------------------

def _kernel_instructions(dispatcher):
    """Instructions of the kernel function (the first in the listing)."""
    asm = dispatcher.inspect_asm(dispatcher.signatures[0]).split('.Lfunc_end0:')[0]
    return [ln.strip() for ln in asm.splitlines()
            if ln.startswith('\t') and not ln.strip().startswith(('.', '#'))]


SELECT_ARGS = (np.arange(64, dtype=np.uint64), np.arange(64, dtype=np.uint64) * np.uint64(3),
               np.uint64(3))


@pytest.mark.skipif(__import__('platform').machine() != 'x86_64', reason='x86-64 backend')
def test_select_stays_cmov_in_secret_code_and_plain_njit_is_unchanged():
    before = njit(ck.select_loop)
    expected = before(*SELECT_ARGS)
    plain_before = _kernel_instructions(before)
    secret = secret_jit(ck.select_loop)
    assert secret(*SELECT_ARGS) == expected
    after = njit(ck.select_loop)
    assert after(*SELECT_ARGS) == expected
    plain_after = _kernel_instructions(after)

    def cmovs(ins):
        return [i for i in ins if i.startswith('cmov')]
    # numba's own engine: LLVM's x86 cmov conversion makes the select a branch
    assert not cmovs(plain_before), "control: njit kept the cmov, nothing to test"
    assert cmovs(_kernel_instructions(secret))
    # plain numba code compiled after a secret kernel is unchanged
    assert plain_after == plain_before


@pytest.mark.skipif(__import__('platform').machine() != 'x86_64', reason='x86-64 backend')
def test_no_division_width_bypass_in_secret_code():
    def div(a, b):
        return a // b
    plain = _kernel_instructions(njit('int64(int64, int64)')(div))
    secret = _kernel_instructions(secret_jit('int64(int64, int64)')(div))
    # njit: idivq, plus a divl path chosen by a branch on the operands' width
    assert any(i.startswith('divl') for i in plain), "control: no bypass in njit"
    assert not any(i.startswith('divl') for i in secret)
    assert any(i.startswith('idivq') for i in secret)


def test_division_by_a_constant_passes_the_machine_code_check():
    def mod255(key):
        acc = np.uint64(0)
        for i in range(key.size):
            h = np.uint64(key[i]) * np.uint64(0x9E3779B97F4A7C15)
            acc += h % np.uint64(1000003)
        return acc
    kernel = secret_jit(secret=('key',))(mod255)
    with pytest.warns(ConstantTimeWarning, match='constant-division'):
        assert kernel(ck.K.copy()) == njit(mod255)(ck.K.copy())
    lib = kernel.overloads[kernel.signatures[0]].library
    assert [f.kind for f in lib.ct_findings] == ['constant-division']


def test_machine_code_check_finds_the_divide_instruction():
    """In warn mode a secret division compiles; its div is reported too."""
    kernel = secret_jit(secret=('key',), constant_time='warn')(ck.secret_division)
    with pytest.warns(ConstantTimeWarning) as rec:
        kernel(*ck.ARGS['secret_division']())
    text = '\n'.join(str(w.message) for w in rec)
    assert re.search(r'_ct_kernels.py:\d+: machine-division in .*contains '
                     r'(div|idiv|udiv|sdiv)', text), text


def test_generated_code_has_no_debug_info():
    """Line tables feed the check and are stripped before code generation."""
    import io
    from elftools.elf.elffile import ELFFile
    kernel = secret_jit(secret=('key',), cache=False)(ck.public_index_and_bounds)
    kernel(*ck.ARGS['public_index_and_bounds']())
    lib = kernel.overloads[kernel.signatures[0]].library
    ir = lib.get_llvm_str()
    assert '!dbg' not in ir and 'DICompileUnit' not in ir
    elf = ELFFile(io.BytesIO(lib._get_compiled_object()))
    assert not [s.name for s in elf.iter_sections() if s.name.startswith('.debug')]
    # control: the check itself saw line tables (it named lines above)
    with pytest.raises(SecretPolicyError, match=r'_ct_kernels.py:\d+: branch'):
        secret_jit(secret=('key',))(ck.early_exit_compare)(ck.K.copy(), ck.K.copy())
