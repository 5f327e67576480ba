"""Field arithmetic mod p = 2^255 - 19 in radix 2^51, as LLVM IR with 64x64->128-bit products.

A field element is five uint64 limbs ``F[o:o+5]`` of one scratch array ``F``
(value ``sum(F[o+i] << 51*i)``), the fiat-crypto 64-bit ``curve25519`` layout
and bounds: *tight* limbs are below 1.1 * 2^51, *loose* ones below 3.3 * 2^51.
``fe_mul``, ``fe_sq`` and ``fe_mul121666`` take loose inputs and give tight
outputs; ``fe_add`` and ``fe_sub`` take tight inputs and give loose outputs.

numba has no 128-bit integer, so each operation is an intrinsic that emits its
whole computation in LLVM IR: ``mul i128`` of zero-extended limbs (``mulx``/``mul``
on x86-64, ``mul``+``umulh`` on AArch64), ``add i128`` (``add``/``adc``),
``lshr i128`` by 51 (``shrd``).  ``o`` in every signature is an element offset
into ``F`` (any integer; constants give constant addresses), and an output may
overlap its inputs.  The arithmetic is written once, against a small set of
limb operations (:class:`_IR` emits IR, :class:`_Py` computes with Python ints
wrapped to the same widths), so called from Python (``NUMBA_DISABLE_JIT=1``)
every function computes exactly what the compiled code computes.
Nothing branches or indexes memory on limb values.
"""
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["fe_mul", "fe_sq", "fe_add", "fe_sub", "fe_mul121666", "fe_cswap", "LIMBS"]

LIMBS = 5
_M51 = (1 << 51) - 1
# 2p in radix 2^51: added before a subtraction so that tight - tight stays positive.
_TWO_P = (0xFFFFFFFFFFFDA, 0xFFFFFFFFFFFFE, 0xFFFFFFFFFFFFE, 0xFFFFFFFFFFFFE, 0xFFFFFFFFFFFFE)


# -- the arithmetic, once ------------------------------------------------------

def _carry(o, t):
    """Tight limbs of the five 128-bit column sums ``t`` (fiat-crypto's carry chain)."""
    c, r0 = o.split(t[0])
    c, r1 = o.split(o.add_wide(t[1], c))
    c, r2 = o.split(o.add_wide(t[2], c))
    c, r3 = o.split(o.add_wide(t[3], c))
    c, r4 = o.split(o.add_wide(t[4], c))
    r0 = o.add(r0, o.mulc(c, 19))
    r1 = o.add(r1, o.shr(r0))
    r0 = o.low(r0)
    r2 = o.add(r2, o.shr(r1))
    r1 = o.low(r1)
    return [r0, r1, r2, r3, r4]


def _mul(o, f, g):
    g19 = [o.mulc(x, 19) for x in g]
    cols = []
    for k in range(LIMBS):
        terms = [o.mul_wide(f[i], g[k - i] if i <= k else g19[k - i + LIMBS])
                 for i in range(LIMBS)]
        cols.append(o.sum_wide(terms))
    return _carry(o, cols)


def _sq(o, f):
    f0, f1, f2, f3, f4 = f
    d0, d1, d2, d3 = (o.mulc(x, 2) for x in (f0, f1, f2, f3))
    f3_19, f4_19 = o.mulc(f3, 19), o.mulc(f4, 19)
    m = o.mul_wide
    cols = [o.sum_wide([m(f0, f0), m(d1, f4_19), m(d2, f3_19)]),
            o.sum_wide([m(d0, f1), m(d2, f4_19), m(f3, f3_19)]),
            o.sum_wide([m(d0, f2), m(f1, f1), m(d3, f4_19)]),
            o.sum_wide([m(d0, f3), m(d1, f2), m(f4, f4_19)]),
            o.sum_wide([m(d0, f4), m(d1, f3), m(f2, f2)])]
    return _carry(o, cols)


def _mul121666(o, f):
    return _carry(o, [o.mul_wide(x, o.const(121666)) for x in f])


def _add(o, f, g):
    return [o.add(a, b) for a, b in zip(f, g)]


def _sub(o, f, g):
    return [o.sub(o.add(a, o.const(p2)), b) for a, p2, b in zip(f, _TWO_P, g)]


# -- the two ways of computing it ----------------------------------------------

class _Py:
    """Limb operations on Python ints, wrapped to 64 and 128 bits like the IR."""
    W64, W128 = (1 << 64) - 1, (1 << 128) - 1

    def const(self, v):
        return v

    def mul_wide(self, a, b):
        return (a * b) & self.W128

    def sum_wide(self, terms):
        return sum(terms) & self.W128

    def add_wide(self, t, c):
        return (t + c) & self.W128

    def split(self, t):
        return (t >> 51) & self.W64, t & _M51

    def mulc(self, a, k):
        return (a * k) & self.W64

    def add(self, a, b):
        return (a + b) & self.W64

    def sub(self, a, b):
        return (a - b) & self.W64

    def shr(self, a):
        return a >> 51

    def low(self, a):
        return a & _M51


class _IR:
    """Limb operations emitted as LLVM IR (i64 limbs, i128 products and sums)."""
    I64, I128 = ir.IntType(64), ir.IntType(128)

    def __init__(self, builder):
        self.b = builder

    def const(self, v):
        return ir.Constant(self.I64, v)

    def mul_wide(self, a, b):
        return self.b.mul(self.b.zext(a, self.I128), self.b.zext(b, self.I128))

    def sum_wide(self, terms):
        acc = terms[0]
        for t in terms[1:]:
            acc = self.b.add(acc, t)
        return acc

    def add_wide(self, t, c):
        return self.b.add(t, self.b.zext(c, self.I128))

    def split(self, t):
        hi = self.b.trunc(self.b.lshr(t, ir.Constant(self.I128, 51)), self.I64)
        return hi, self.low(self.b.trunc(t, self.I64))

    def mulc(self, a, k):
        return self.b.mul(a, self.const(k))

    def add(self, a, b):
        return self.b.add(a, b)

    def sub(self, a, b):
        return self.b.sub(a, b)

    def shr(self, a):
        return self.b.lshr(a, self.const(51))

    def low(self, a):
        return self.b.and_(a, self.const(_M51))


# -- the functions and their intrinsics ----------------------------------------

def _run_py(F, offsets, arith):
    """Apply ``arith`` to the elements of F at ``offsets[1:]``, result at ``offsets[0]``."""
    o = _Py()
    srcs = [[int(F[int(s) + i]) for i in range(LIMBS)] for s in offsets[1:]]
    out = arith(o, *srcs)
    for i in range(LIMBS):
        F[int(offsets[0]) + i] = out[i]


def _is_u64_c(a):
    return (isinstance(a, types.Array) and a.dtype == types.uint64 and a.ndim == 1
            and a.layout == "C" and a.mutable)


def _check(name, F, offsets):
    if not _is_u64_c(F):
        raise TypingError("%s(F, ...): F must be a writable 1-D C-contiguous uint64 array, "
                          "got %s" % (name, F))
    for o in offsets:
        if not isinstance(o, types.Integer):
            raise TypingError("%s(F, ...): element offsets must be integers, got %s" % (name, o))


def _codegen(arith):
    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        offs = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:], sig.args[1:])]

        def ptr(off, i):
            return builder.gep(data, [builder.add(off, ir.Constant(_IR.I64, i))])

        srcs = [[builder.load(ptr(off, i)) for i in range(LIMBS)] for off in offs[1:]]
        out = arith(_IR(builder), *srcs)
        for i in range(LIMBS):
            builder.store(out[i], ptr(offs[0], i))
        return context.get_dummy_value()
    return codegen


def _binary(name, arith, doc):
    def py(F, h, f, g):
        _run_py(F, (h, f, g), arith)
    py.__name__ = py.__qualname__ = name
    py.__doc__ = doc

    @intrinsic
    def ir_op(typingctx, F, h, f, g):
        _check(name, F, (h, f, g))
        return types.void(F, h, f, g), _codegen(arith)

    @overload(py, inline="always")
    def _ov(F, h, f, g):
        return lambda F, h, f, g: ir_op(F, h, f, g)
    return py


def _unary(name, arith, doc):
    def py(F, h, f):
        _run_py(F, (h, f), arith)
    py.__name__ = py.__qualname__ = name
    py.__doc__ = doc

    @intrinsic
    def ir_op(typingctx, F, h, f):
        _check(name, F, (h, f))
        return types.void(F, h, f), _codegen(arith)

    @overload(py, inline="always")
    def _ov(F, h, f):
        return lambda F, h, f: ir_op(F, h, f)
    return py


fe_mul = _binary("fe_mul", _mul, "F[h:h+5] = F[f:f+5] * F[g:g+5] mod p (loose in, tight out).")
fe_add = _binary("fe_add", _add, "F[h:h+5] = F[f:f+5] + F[g:g+5] (tight in, loose out, no carry).")
fe_sub = _binary("fe_sub", _sub, "F[h:h+5] = F[f:f+5] - F[g:g+5] + 2p (tight in, loose out).")
fe_sq = _unary("fe_sq", _sq, "F[h:h+5] = F[f:f+5]^2 mod p (loose in, tight out).")
fe_mul121666 = _unary("fe_mul121666", _mul121666,
                      "F[h:h+5] = 121666 * F[f:f+5] mod p (loose in, tight out).")


def fe_cswap(F, a, b, swap):
    """Swap F[a:a+5] and F[b:b+5] iff swap == 1 (swap is 0 or 1), without a branch."""
    mask = (-int(swap)) & _Py.W64
    for i in range(LIMBS):
        x, y = int(F[int(a) + i]), int(F[int(b) + i])
        t = mask & (x ^ y)
        F[int(a) + i], F[int(b) + i] = x ^ t, y ^ t


@overload(fe_cswap, inline="always")
def _fe_cswap_ov(F, a, b, swap):
    _check("fe_cswap", F, (a, b))
    if not isinstance(swap, types.Integer):
        raise TypingError("fe_cswap(F, a, b, swap): swap must be an integer 0 or 1, got %s" % swap)

    def impl(F, a, b, swap):
        mask = np.uint64(0) - np.uint64(swap)
        for i in range(LIMBS):
            t = mask & (F[a + i] ^ F[b + i])
            F[a + i] ^= t
            F[b + i] ^= t
    return impl
