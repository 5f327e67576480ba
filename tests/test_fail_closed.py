"""The stack bound fails closed: an unknown external callee gets no guessed allowance.

Every external C function a secret call tree reaches has a measured allowance
(``secretjit.stack_bound.allowances``, re-measured by
``test_allowance_calibration.py``); any other is a ``bounded-stack`` error
naming the callee, the Python line and the fix, unless the kernel declares it
with ``secret_jit(stack_allowance={name: bytes})`` (shown in
``pass_reports()``).  numba's random states, which seed themselves through
the interpreter, are refused as interpreter calls.  Each must-fire case has
its must-not-fire twin and a plain-``@njit`` control that compiles the same
construct.
"""

import cmath
import math

import numpy as np
import pytest
from llvmlite import ir
from numba import njit, typed, types
from numba.core import cgutils
from numba.extending import intrinsic

from secretjit import SecretPolicyError, secret_jit
from secretjit.stack_bound import (NUMBA_HELPER_ALLOWANCE, compute_bounds,
                                   external_allowance, known_allowance)

from _dtor_asm import dtor_asm


@intrinsic
def _getpid(typingctx):
    """A call to libc's getpid, which no allowance table lists."""
    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.IntType(32), [])
        fn = cgutils.get_or_insert_function(builder.module, fnty, 'getpid')
        return builder.sext(builder.call(fn, []), ir.IntType(64))
    return types.int64(), codegen


def calls_unknown_c(x):
    return x[0] + _getpid()  # the unknown callee


def _marked_line(fn, mark):
    import inspect
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, l in enumerate(lines) if mark in l)


def test_unknown_external_is_refused_with_callee_line_and_fix():
    x = np.array([5], np.int64)
    assert njit(calls_unknown_c)(x) > 5            # control: the construct is valid numba
    with pytest.raises(SecretPolicyError) as info:
        secret_jit(calls_unknown_c)(x)
    err = info.value
    assert err.rule == 'bounded-stack'
    text = str(err)
    assert 'external function getpid' in text and 'no guessed allowance' in text
    line = _marked_line(calls_unknown_c, '# the unknown callee')
    assert '%s:%d: return x[0] + _getpid()' % (__file__, line) in text, text
    assert "secret_jit(stack_allowance={'getpid': nbytes})" in text


def test_declared_stack_allowance_compiles_and_is_reported():
    x = np.array([5], np.int64)
    k = secret_jit(stack_allowance={'getpid': 256})(calls_unknown_c)
    assert k(x) == njit(calls_unknown_c)(x)
    bound = k.stack_bound(k.signatures[0])
    assert bound.externals['getpid'] == 256
    reports = [str(r) for r in k.pass_reports(k.signatures[0])]
    assert any('stack_allowance getpid: 256 bytes' in r for r in reports), reports


def test_stack_allowance_is_validated():
    with pytest.raises(TypeError, match='takes a dict'):
        secret_jit(stack_allowance=[('getpid', 64)])
    with pytest.raises(TypeError, match='byte count'):
        secret_jit(stack_allowance={'getpid': -1})
    with pytest.raises(ValueError, match='malloc already has a measured allowance'):
        secret_jit(stack_allowance={'malloc': 64})
    with pytest.raises(ValueError, match='runs the Python interpreter'):
        secret_jit(stack_allowance={'PyObject_Call': 64})
    with pytest.raises(ValueError, match='numba_get_np_random_state runs the Python'):
        secret_jit(stack_allowance={'numba_get_np_random_state': 64})
    with pytest.raises(ValueError, match='cache=True'):
        secret_jit(stack_allowance={'getpid': 64}, cache=True)


def test_compute_bounds_refuses_an_unlisted_external():
    asm = 'f:\n\tpushq\t%rax\n\tcallq\tsome_c_function\n\tpopq\t%rax\n\tretq\n.Lfunc_end0:\n'
    with pytest.raises(SecretPolicyError, match=r'\[bounded-stack\]: the secret call '
                       r'tree calls the external function some_c_function \(f -> '
                       r'some_c_function\)') as info:
        compute_bounds(asm, {'f'}, ['f'], 'x86_64')
    assert info.value.callee == 'some_c_function'
    bound = compute_bounds(asm, {'f'}, ['f'], 'x86_64',
                           extra_allowance={'some_c_function': 100})['f']
    assert bound.depth == 16 + 112 and bound.externals == {'some_c_function': 100}
    # the audit's name keeps its meaning: a figure, never the bound's answer
    assert known_allowance('some_c_function') is None
    assert external_allowance('some_c_function') == 16384


def _np_random(s, out):
    np.random.seed(s[0])
    out[0] = np.random.randint(0, 2)


def test_numba_random_state_is_refused_as_an_interpreter_call():
    out = np.zeros(1, np.int64)
    njit(_np_random)(np.array([3]), out)            # control: valid numba
    with pytest.raises(SecretPolicyError, match=r'\[no-np-random\]'):
        secret_jit(_np_random)(np.array([3]), out)
    # The rule cannot be waived: past it, numba's random-state getters run the
    # interpreter (they seed from os.urandom() on first use).
    with pytest.raises(ValueError, match=r"rule 'np-random' cannot be waived "
                       r"\(numba's random-state getters seed the generator "
                       r"through the interpreter"):
        secret_jit(allow=('np-random',))(_np_random)
    asm = ('f:\n\tpushq\t%rax\n\tcallq\tnumba_get_np_random_state\n'
           '\tpopq\t%rax\n\tretq\n.Lfunc_end0:\n')
    with pytest.raises(SecretPolicyError, match=r'\[no-interpreter-calls\]: the secret '
                       r'call tree calls numba_get_np_random_state'):
        compute_bounds(asm, {'f'}, ['f'], 'x86_64')


# Kernels whose call trees reach numba's C helpers (found by logging every
# external the channel kernels and these reach): each must still compile,
# with the measured allowance of each helper in its bound.
def _reshape(s, out):
    a = np.empty((4, 6), np.uint64)
    for i in range(24):
        a.ravel()[i] = s[i % 4] ^ np.uint64(i)
    out[0] = a.reshape((6, 4))[1, 1] % 5


def _math_helpers(x, out):
    m, e = math.frexp(x[0])
    z = complex(x[0], x[1]) ** complex(x[2], 0.5)
    out[0] = m + e + math.ldexp(x[1], 3) + math.gamma(x[2]) + np.nextafter(x[0], 1.0) \
        + z.real + cmath.phase(z)


def _unicode_case(s, out):
    out[0] = chr(0xDF + int(s[0] % 3)).isalpha()


def _typed_list(s, out):
    lst = typed.List()
    for i in range(40):
        lst.append(s[i % 4] + np.uint64(i))
    lst.pop()
    out[0] = len(lst)


@pytest.mark.parametrize('kernel,args,options,helpers', [
    (_reshape, (np.arange(4, dtype=np.uint64), np.zeros(1, np.int64)), {},
     {'numba_attempt_nocopy_reshape'}),
    (_math_helpers, (np.array([0.3, 0.4, 2.5]), np.zeros(1)), {},
     {'numba_frexp', 'numba_ldexp', 'numba_gamma', 'numba_nextafter', 'numba_cpow'}),
    (_unicode_case, (np.arange(4, dtype=np.uint64), np.zeros(1, np.int64)), {},
     {'numba_gettyperecord'}),
    (_typed_list, (np.arange(4, dtype=np.uint64), np.zeros(1, np.int64)),
     {'allow': ('typed-containers',)}, {'numba_list_new', 'numba_list_append'}),
], ids=['reshape', 'math', 'unicode', 'typed-list'])
def test_numba_helpers_compile_with_their_measured_allowance(kernel, args, options,
                                                             helpers):
    want = [a.copy() for a in args]
    njit(kernel)(*want)
    k = secret_jit(**options)(kernel)
    k(*args)
    assert np.array_equal(args[-1], want[-1])
    externals = k.stack_bound(k.signatures[0]).externals
    assert helpers <= set(externals), set(externals)
    for name in helpers:
        assert externals[name] == NUMBA_HELPER_ALLOWANCE[name]


# -- destructors the naming misses: found from the IR --------------------------

_STRUCT_DTOR_ASM = dtor_asm('_Dtor.T', 'NRT_MemInfo_alloc_dtor')
_STRUCT_DTOR_IR = '''
define void @kernel() {
  %m = call ptr @NRT_MemInfo_alloc_dtor(i64 64, ptr nonnull @"_Dtor.T")
  call void @NRT_MemInfo_call_dtor(ptr %m)
  ret void
}
'''


def test_destructor_passed_in_the_ir_is_counted_where_the_naming_misses_it():
    from secretjit.stack_bound import destructors
    funcs = {'kernel', '_Dtor.T'}
    extra = {'NRT_MemInfo_call_dtor': 1000, 'NRT_MemInfo_alloc_dtor': 500}
    # control: numba's naming (.dtor.*, *_dtor) does not announce a structref's
    # destructor, and the bound without the IR leaves its 4.8 KB frame out
    assert destructors(_STRUCT_DTOR_ASM, funcs) == set()
    old = compute_bounds(_STRUCT_DTOR_ASM, funcs, ['kernel'], 'x86_64',
                         extra_allowance=extra)['kernel']
    assert old.depth == 16 + 1008
    assert destructors(_STRUCT_DTOR_ASM, funcs, _STRUCT_DTOR_IR) == {'_Dtor.T'}
    new = compute_bounds(_STRUCT_DTOR_ASM, funcs, ['kernel'], 'x86_64',
                         extra_allowance=extra, ir_text=_STRUCT_DTOR_IR)['kernel']
    # kernel (16) + call_dtor (1000) + the destructor (8 + 4800, a leaf
    # storing nothing below rsp: no red zone)
    assert new.path[0][1] == 16 + 1000 + 4808
    assert [n for n, _ in new.path] == ['kernel', 'NRT_MemInfo_call_dtor', '_Dtor.T']


def test_structref_destructor_is_in_the_kernel_bound():
    from numba.experimental import structref

    @structref.register
    class KeyBoxType(types.StructRef):
        def preprocess_fields(self, fields):
            return tuple((n, types.unliteral(t)) for n, t in fields)

    class KeyBox(structref.StructRefProxy):
        pass

    structref.define_proxy(KeyBox, KeyBoxType, ['words', 'n'])

    def boxed(a):
        box = KeyBox(a * np.uint64(3), 4)
        return box.words[1] + box.n

    a = np.arange(4, dtype=np.uint64)
    assert njit(boxed)(a) == 7
    k = secret_jit(boxed)
    assert k(a) == 7
    names = [n for n, _ in k.stack_bound(k.signatures[0]).path]
    i = next(i for i, n in enumerate(names) if n.startswith('_Dtor.'))
    assert names[i - 1] == 'NRT_MemInfo_call_dtor', names


# -- numba's own compile-time function arguments are not first-class functions --

def _percentile(a, out):
    out[0] = np.percentile(a, 30.0)


def test_numba_internal_function_constants_are_not_refused():
    # np.percentile's implementation passes its validity check as a
    # compile-time function argument (types.Function); a user's function
    # argument stays refused (test_channels.py: '@njit function as an argument')
    a, out = np.arange(5.0), np.zeros(1)
    secret_jit(_percentile)(a, out)
    assert out[0] == pytest.approx(np.percentile(a, 30.0))
