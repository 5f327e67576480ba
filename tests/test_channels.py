"""Fail closed: every channel kernel is either erased or refused, never silent.

The kernels are in tests/_channel_kernels.py (one per channel).  Two kinds:

- erased: ONE child process per mode (tests/_channel_child.py) runs every
  erased-channel kernel, ``secret_jit`` or the plain-``njit`` control; ONE
  ``gcore`` dump per mode, searched for every key word the kernels derived
  (tests/_corescan.py, as tests/test_core_dump.py does).  secret_jit: no key
  of any kernel in the dump; control: keys in the dump.
- refused: ``secret_jit`` raises SecretPolicyError with the kernel's rule,
  naming the file and the line marked ``# refused here``, never a
  numba-internal error.

Plus the ``allow=`` opt-outs and the destructor model of the stack bound.
"""

import inspect
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
from numba import njit, typed

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _channel_kernels as ck  # noqa: E402
import _corescan  # noqa: E402
from _dtor_asm import dtor_asm  # noqa: E402
from secretjit import SecretPolicyError, secret_jit  # noqa: E402
from secretjit.channels import ALLOWABLE, NOT_ALLOWABLE, OptOutReport  # noqa: E402
from secretjit import stack_bound  # noqa: E402
from secretjit.stack_bound import compute_bounds  # noqa: E402

CALLS = 16
SEED = np.frombuffer(secrets.token_bytes(32), np.uint64).copy()


# -- refused channels ---------------------------------------------------------

def _marked_line(fn):
    fn = getattr(fn, 'py_func', fn)
    lines, start = inspect.getsourcelines(fn)
    marked = [start + i for i, text in enumerate(lines) if '# refused here' in text]
    assert len(marked) == 1, fn
    return fn.__code__.co_filename, marked[0]


def _names_line(message, filename, line):
    base = os.path.basename(filename)
    return ('%s:%d' % (filename, line) in message
            or ('%s", line %d' % (base, line)) in message)


@pytest.mark.parametrize('entry', ck.REFUSED, ids=[e[0] for e in ck.REFUSED])
def test_refused_with_rule_and_line(entry):
    name, fn, build, options, rule = entry[:5]
    if fn is ck.cffi_call and ck.cffi_labs is None:
        pytest.skip('cffi is not installed')
    where = entry[5] if len(entry) > 5 else fn
    filename, line = _marked_line(where)
    with pytest.raises(SecretPolicyError) as ei:
        secret_jit(**options)(fn)(*build(SEED, 99, 0))
    err = ei.value
    assert err.rule == rule, str(err)
    message = str(err)
    assert 'secretjit policy [%s]' % rule in message
    assert 'Fix: ' in message
    assert _names_line(message, filename, line), \
        'the message does not name %s:%d:\n%s' % (filename, line, message)


def test_every_refusal_message_names_its_line():
    """All refused kernels at once: none compiles, every message has its line."""
    missing = []
    for entry in ck.REFUSED:
        name, fn, build, options, rule = entry[:5]
        if fn is ck.cffi_call and ck.cffi_labs is None:
            continue
        filename, line = _marked_line(entry[5] if len(entry) > 5 else fn)
        try:
            secret_jit(**options)(fn)(*build(SEED, 98, 0))
        except SecretPolicyError as e:
            if not _names_line(str(e), filename, line):
                missing.append((name, line, str(e)))
        else:
            missing.append((name, line, 'compiled'))
    assert not missing


def test_the_same_kernels_compile_under_njit():
    """The refusals are secretjit's: plain numba accepts these kernels (so the
    rule, not a numba limitation, is what stops them)."""
    for fn in (ck.typed_list, ck.np_random_seed, ck.ctypes_call, ck.dict_literal):
        njit(fn)(*ck._build(SEED, 97, 1))
    # and the exception channel carries the key word out, in a Python object
    with pytest.raises(ValueError) as ei:
        njit(ck.dynamic_exception)(*ck._build(SEED, 97, 1))
    assert ei.value.args[1] == int.from_bytes(ck.expected_keys(SEED, 97, 1)[:8], 'little')


def test_first_class_function_is_refused_not_a_numba_traceback():
    k = secret_jit(ck.function_argument)
    with pytest.raises(SecretPolicyError, match=r'\[no-function-arguments\]') as ei:
        k(ck._twice, *ck._build(SEED, 96, 0))
    assert 'No definition for lowering' not in str(ei.value)


# -- opt-outs -----------------------------------------------------------------

def test_allow_compiles_and_is_reported():
    k = secret_jit(allow=('typed-containers',))(ck.typed_list)
    args = ck._build(SEED, 95, 0)
    k(*args)
    k0 = ck.expected_keys(SEED, 95, 0)[:8]
    assert int(args[-1][0]) == int.from_bytes(k0, 'little') & 1
    reports = k.pass_reports(k.signatures[0])
    opt = [r for r in reports if isinstance(r, OptOutReport)]
    assert len(opt) == 1
    assert opt[0].allow == ['no-typed-containers']
    filename, line = _marked_line(ck.typed_list)
    assert {'rule': 'no-typed-containers', 'at': '%s:%d' % (filename, line)} in [
        {'rule': w['rule'], 'at': w['at']} for w in opt[0].waived]
    assert opt[0]['no-typed-containers'] >= 1
    assert 'no-typed-containers at %s:%d' % (filename, line) in str(opt[0])


def test_allow_reports_waived_sites_in_helpers():
    k = secret_jit(allow=('static-exceptions',))(ck.dynamic_exception_in_helper)
    k(*ck._build(SEED, 94, 0))
    (opt,) = [r for r in k.pass_reports(k.signatures[0]) if isinstance(r, OptOutReport)]
    filename, line = _marked_line(ck._check)
    assert any(w['rule'] == 'static-exceptions' and w['at'] == '%s:%d' % (filename, line)
               for w in opt.waived), opt.waived


def test_no_report_without_allow():
    k = secret_jit(ck.reflected_list)
    k(*ck._build(SEED, 93, 0))
    assert not [r for r in k.pass_reports(k.signatures[0]) if isinstance(r, OptOutReport)]


def test_allow_covers_only_its_rule():
    k = secret_jit(allow=('no-typed-containers',))(ck.np_random_seed)
    with pytest.raises(SecretPolicyError, match=r'\[no-np-random\]'):
        k(*ck._build(SEED, 92, 0))


def test_helper_compiled_under_allow_is_not_reused_without_it():
    @njit
    def helper(x):
        words = typed.List()
        words.append(x)
        return words[0]

    def kernel(a):
        return helper(a[0])

    a = np.arange(3, dtype=np.uint64)
    assert secret_jit(allow=('typed-containers',))(kernel)(a) == 0
    with pytest.raises(SecretPolicyError, match=r'\[no-typed-containers\]'):
        secret_jit(kernel)(a)


@pytest.mark.parametrize('rule', sorted(NOT_ALLOWABLE))
def test_allow_refuses_rules_that_cannot_be_waived(rule):
    with pytest.raises(ValueError, match='cannot be waived'):
        secret_jit(allow=(rule,))


def test_allow_is_not_cached():
    with pytest.raises(ValueError, match='cannot be combined with cache=True'):
        secret_jit(allow=('typed-containers',), cache=True)


def test_allow_bad_names_and_types():
    with pytest.raises(ValueError, match=r"unknown rule 'typed-contaners'.*no-typed-containers"):
        secret_jit(allow=('typed-contaners',))
    with pytest.raises(TypeError, match='rule names are strings'):
        secret_jit(allow=(1,))
    with pytest.raises(TypeError, match='tuple of rule names'):
        secret_jit(allow=3)
    # both spellings of an allowable rule
    for name in ALLOWABLE:
        secret_jit(allow=(name,))
        secret_jit(allow=(name[3:] if name.startswith('no-') else name,))


# -- destructors in the stack bound -------------------------------------------

_DTOR_ASM = dtor_asm('.dtor.list.T', 'NRT_MemInfo_new_varsize_dtor', nested_call=True)


def test_destructor_frames_are_counted():
    funcs = {'kernel', '.dtor.list.T'}
    assert stack_bound.destructors(_DTOR_ASM, funcs) == {'.dtor.list.T'}
    extra = {'NRT_MemInfo_call_dtor': 1000, 'NRT_MemInfo_new_varsize_dtor': 500}
    b = compute_bounds(_DTOR_ASM, funcs, ['kernel'], 'x86_64', extra_allowance=extra)['kernel']
    # kernel (16) + call_dtor (1000) + dtor (8 + 4800) + the nested call_dtor (1000)
    assert b.path[0][1] == 16 + 1000 + 4808 + 1000
    assert b.depth == 6832                  # rounded up to 16
    assert [n for n, _ in b.path] == ['kernel', 'NRT_MemInfo_call_dtor', '.dtor.list.T',
                                      'NRT_MemInfo_call_dtor']


def test_unreferenced_destructor_is_not_counted():
    asm = _DTOR_ASM.replace('\tmovabsq\t$".dtor.list.T", %rsi\n', '')
    funcs = {'kernel', '.dtor.list.T'}
    assert stack_bound.destructors(asm, funcs) == set()
    extra = {'NRT_MemInfo_call_dtor': 1000, 'NRT_MemInfo_new_varsize_dtor': 500}
    b = compute_bounds(asm, funcs, ['kernel'], 'x86_64', extra_allowance=extra)['kernel']
    assert b.path[0][1] == 16 + 1000 and b.depth == 1024


def _list_of_big_tuples(a):
    keep = []
    for i in range(3):
        keep.append((a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a,
                     a, a, a, a, a, a, a, a, a, a, a, a, a, a, a, a))
    return len(keep)


def test_list_destructor_in_the_kernel_bound():
    k = secret_jit(_list_of_big_tuples)
    assert k(np.arange(4)) == 3
    b = k.stack_bound(k.signatures[0])
    names = [n for n, _ in b.path]
    assert any(n.startswith('.dtor.list.') for n in names), names
    i = next(i for i, n in enumerate(names) if n.startswith('.dtor.list.'))
    # the call_dtor entry above the destructor includes the destructor's depth
    assert names[i - 1] == 'NRT_MemInfo_call_dtor' and b.path[i - 1][1] > b.path[i][1]


# -- no guessed allowance: the analysis must not refuse what it can follow ----

_JUMP_TABLE_ASM = '''
f:
\tpushq\t%r14
\tmovabsq\t$.LJTI0_0, %r14
\tjmpq\t*(%r14,%rax,8)
.LBB0_1:
\tmovabsq\t$leaf, %rcx
\tcallq\t*%rcx
\tjmpq\t*(%r14,%rax,8)
.LBB0_2:
\tpopq\t%r14
\tretq
.Lfunc_end0:
leaf:
\tretq
.Lfunc_end1:
'''


def test_jump_table_in_a_jump_table_case_is_not_an_unknown_call():
    """A case block entered only through the jump table still knows the
    table's base register (x25519-style code was refused before the fix)."""
    b = compute_bounds(_JUMP_TABLE_ASM, {'f', 'leaf'}, ['f'], 'x86_64')['f']
    assert 'leaf' in [n for n, _ in b.path]


def test_unknown_pointer_in_a_jump_table_case_is_refused():
    asm = _JUMP_TABLE_ASM.replace('\tmovabsq\t$leaf, %rcx\n', '\tmovq\t(%rdi), %rcx\n')
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\]: f calls through a '
                       r'function pointer'):
        compute_bounds(asm, {'f', 'leaf'}, ['f'], 'x86_64')


def test_sign_extension_keeps_a_loaded_address():
    asm = '''
f:
\tpushq\t%rbx
\tmovabsq\t$leaf, %rbx
\tmovslq\t8(%rdi), %rax
\tcltq
\tcqto
\tcallq\t*%rbx
\tpopq\t%rbx
\tretq
.Lfunc_end0:
leaf:
\tretq
.Lfunc_end1:
'''
    b = compute_bounds(asm, {'f', 'leaf'}, ['f'], 'x86_64')['f']
    assert [n for n, _ in b.path] == ['f', 'leaf']
    # a string move does clobber rsi/rdi/rcx/rbx as before
    with pytest.raises(SecretPolicyError, match='function pointer'):
        compute_bounds(asm.replace('\tcltq\n', '\tmovsq\n'), {'f', 'leaf'}, ['f'], 'x86_64')


# -- erased channels: one child per mode, one core dump each ------------------

_children = {}
_dumps = {}


@pytest.fixture(scope='module')
def channel_children():
    for mode in ('secret', 'control'):
        err = tempfile.TemporaryFile('w+')
        # one malloc arena per thread (each kernel runs on its own thread):
        # the control's freed buffers are not reused by the next kernel
        env = dict(os.environ, MALLOC_ARENA_MAX='64')
        child = subprocess.Popen(
            [sys.executable, os.path.join(HERE, '_channel_child.py'), mode, str(CALLS),
             SEED.tobytes().hex()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=err, text=True, env=env)
        _children[mode] = child, err
    yield
    for child, err in _children.values():
        if child.poll() is None:
            child.kill()
            child.wait()
        err.close()


def _dump(mode):
    if mode in _dumps:
        return _dumps[mode]
    child, err = _children[mode]
    line = child.stdout.readline()
    if not line:
        child.wait(timeout=60)
        err.seek(0)
        raise RuntimeError('child failed (%s): %s' % (child.returncode, err.read()[-3000:]))
    info = json.loads(line)
    keys, owner = [], []
    for kid, entry in enumerate(ck.ERASED):
        secret = entry[5] if len(entry) > 5 else ck.expected_keys
        for c in range(CALLS):
            keys.append(secret(SEED, kid, c))
            owner.append(kid)
    index = _corescan.KeyIndex(keys)
    tmp = _corescan.tempdir()
    try:
        path = _corescan.gcore(info['pid'], tmp)
        scan = _corescan.scan_core(path, index)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        child.stdin.write('done\n')
        child.stdin.flush()
        child.wait(timeout=60)
    per_kernel = [0] * len(ck.ERASED)
    for k in scan['memory']:
        per_kernel[owner[k]] += 1
    result = {'info': info, 'per_kernel': per_kernel,
              'words': sum(map(len, scan['memory'].values()))}
    _dumps[mode] = result
    print('\n%s: keys in the core per channel (of %d each): %s; child %.0f s'
          % (mode, CALLS, ', '.join('%s %d' % (ck.ERASED[i][0], n)
                                    for i, n in enumerate(per_kernel)),
             info['seconds']))
    return result


def _check_raised(info):
    for (name, fn, build, options, exc, *_), r in zip(ck.ERASED, info['results']):
        assert 'error' not in r, r
        if exc is None:
            assert r['raised'] == [], (name, r)
        else:
            assert r['raised'] == [exc.__name__] and r['raised_all'], (name, r)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('gdb') is None, reason='gdb (for gcore) is not installed')
@pytest.mark.skipif(platform.machine() not in ('x86_64', 'aarch64'),
                    reason='core layout known for x86-64 and AArch64 only')
@pytest.mark.usefixtures('channel_children')
@pytest.mark.parametrize('mode', ['control', 'secret'])
def test_erased_channels_leave_no_key_in_a_core_dump(mode):
    r = _dump(mode)
    _check_raised(r['info'])
    if mode == 'control':
        silent = [ck.ERASED[i][0] for i, n in enumerate(r['per_kernel'])
                  if n == 0 and ck.ERASED[i][0] not in ck.REGISTER_ONLY]
        assert not silent, \
            'control failed: plain numba left no key of %s in the core' % silent
        return
    leaked = {ck.ERASED[i][0]: n for i, n in enumerate(r['per_kernel']) if n}
    assert not leaked, 'secret_jit left keys in the core: %s' % leaked


def test_channel_lists_are_consistent():
    names = [e[0] for e in ck.ERASED] + [e[0] for e in ck.REFUSED]
    assert len(names) == len(set(names))
    assert ck.REGISTER_ONLY <= {e[0] for e in ck.ERASED}
    # the bar: at least 25 channel kernels erased with a leaking
    # control, or refused with a rule and line
    assert len(ck.ERASED) - len(ck.REGISTER_ONLY) + len(ck.REFUSED) >= 25
