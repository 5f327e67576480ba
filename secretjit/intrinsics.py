"""Functions secret kernels call: ``wipe`` and ``enabled``.

Both work in plain numba code too (``wipe`` is a useful tool anywhere;
``enabled`` then says False) and from Python.
"""

import ctypes

import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload


def wipe(array):
    """Overwrite every byte of ``array`` with zeros, in a way -O3 keeps.

    Inside a kernel this is a volatile ``llvm.memset`` over the array's
    buffer: dead-store elimination cannot remove it, unlike a trailing
    ``array[:] = 0`` on a buffer that is never read again.  ``array`` must be
    C- or Fortran-contiguous.  From Python it zeroes the buffer through
    ctypes.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError("wipe() takes a numpy array, got %s"
                        % type(array).__name__)
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        raise ValueError("wipe() needs a contiguous array; wipe its base "
                         "array instead of a strided view")
    if not array.flags.writeable:
        raise ValueError("wipe() needs a writeable array")
    if array.nbytes:
        ctypes.memset(array.ctypes.data, 0, array.nbytes)


@intrinsic
def _volatile_zero(typingctx, arr):
    if not isinstance(arr, types.Array) or arr.layout not in 'CF':
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(arr)(context, builder, args[0])
        nbytes = builder.mul(ary.nitems, ary.itemsize)
        i8p = ir.IntType(8).as_pointer()
        memset = builder.module.declare_intrinsic(
            'llvm.memset', [i8p, ir.IntType(64)])
        builder.call(memset, [builder.bitcast(ary.data, i8p),
                              ir.Constant(ir.IntType(8), 0), nbytes,
                              ir.Constant(ir.IntType(1), 1)])
        return context.get_dummy_value()

    return types.void(arr), codegen


@overload(wipe)
def _wipe_impl(array):
    if not isinstance(array, types.Array):
        raise TypingError("wipe() takes a numpy array, got %s" % array)
    if array.layout not in 'CF':
        raise TypingError(
            "wipe() needs a C- or F-contiguous array, got layout %r (%s); "
            "wipe the base array instead of a strided view" % (array.layout, array))
    if not array.mutable:
        raise TypingError("wipe() needs a writeable array, got %s" % array)

    def impl(array):
        _volatile_zero(array)
    return impl


def enabled():
    """Whether the caller runs inside a secret kernel.

    True in code compiled by ``secret_jit`` (including plain numba helpers
    it calls, which are compiled again for the secret target); False in
    plain numba code and in Python, like Go's ``secret.Enabled``.
    """
    return False


@intrinsic
def _in_secret_target(typingctx):
    def codegen(context, builder, sig, args):
        from .target import SecretContext
        return cgutils.true_bit if isinstance(context, SecretContext) \
            else cgutils.false_bit
    return types.boolean(), codegen


@overload(enabled)
def _enabled_impl():
    def impl():
        return _in_secret_target()
    return impl


def declassify(x):
    """Return ``x``, marked public for the constant-time check.

    Use it on a value that may be made public, e.g. the result of a
    constant-time tag comparison, before branching on it.  Inside a kernel
    it is an empty inline asm (an assembler comment, no machine
    instruction) that -O3 cannot see through, and which the check of
    ``secret_jit(secret=...)`` recognises.  Integers and booleans only.
    From Python and in plain numba code it returns ``x``.
    """
    return x


@intrinsic
def _declassify(typingctx, x):
    if not isinstance(x, (types.Integer, types.Boolean)):
        return None

    def codegen(context, builder, sig, args):
        from .passes import DECLASSIFY_ASM
        val = args[0]
        ty = val.type
        wide = ir.IntType(max(8, ty.width))
        if ty.width < 8:
            val = builder.zext(val, wide)
        fnty = ir.FunctionType(wide, [wide])
        out = builder.asm(fnty, DECLASSIFY_ASM, '=r,0', [val], False,
                          name='declassified')
        if _CTCHECK:
            out = _memcheck_defined(builder, out)
        return builder.trunc(out, ty) if ty.width < 8 else out

    return x(x), codegen


# Under ``python -m secretjit ctcheck`` (valgrind memcheck), declassify also
# tells memcheck its result is defined: a client request on a stack copy.
_CTCHECK = __import__('os').environ.get('SECRETJIT_CTCHECK') == '1'
_MC_MAKE_MEM_DEFINED = 0x4D430002       # VG_USERREQ_TOOL_BASE('M','C') + 2


def _memcheck_defined(builder, value):
    import platform
    i64 = ir.IntType(64)
    slot = cgutils.alloca_once(builder, value.type)
    builder.store(value, slot)
    req = cgutils.alloca_once(builder, ir.ArrayType(i64, 6))
    words = [ir.Constant(i64, _MC_MAKE_MEM_DEFINED), builder.ptrtoint(slot, i64),
             ir.Constant(i64, value.type.width // 8)] + [ir.Constant(i64, 0)] * 3
    for i, w in enumerate(words):
        builder.store(w, cgutils.gep(builder, req, 0, i))
    if platform.machine() in ('x86_64', 'AMD64'):
        seq = ('rolq $$3, %rdi; rolq $$13, %rdi; rolq $$61, %rdi; '
               'rolq $$51, %rdi; xchgq %rbx, %rbx')
        cons = '={dx},{ax},0,~{cc},~{memory}'
    else:
        seq = ('ror x12, x12, #3; ror x12, x12, #13; ror x12, x12, #51; '
               'ror x12, x12, #61; orr x10, x10, x10')
        cons = '={x3},{x4},0,~{cc},~{memory}'
    fnty = ir.FunctionType(i64, [req.type, i64])
    builder.asm(fnty, seq, cons, [req, ir.Constant(i64, 0)], True)
    return builder.load(slot)


@overload(declassify)
def _declassify_impl(x):
    if not isinstance(x, (types.Integer, types.Boolean)):
        raise TypingError("declassify() takes an integer or a boolean, got %s; "
                          "declassify the scalar you branch on" % x)

    def impl(x):
        return _declassify(x)
    return impl
