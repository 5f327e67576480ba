"""Poly1305's lanes in base 2**44 with AVX-512 IFMA (``vpmadd52luq``/``vpmadd52huq``).

The x86-64 variant of :func:`secretjit.kernels._poly_simd.poly_lanes`, chosen at
code generation where the JIT compiles for a CPU with AVX-512 IFMA (the way
OpenSSL's poly1305-x86_64 ``avx512ifma`` path computes): three limbs of 44, 44
and 42 bits per lane instead of five of 26, so a block costs nine 52-bit
multiply-adds for the low and nine for the high halves of the products, against
25 ``vpmuludq`` and their adds.  ``pv`` keeps the portable layout (26-bit limbs):
the accumulators and multipliers are converted to base 2**44 before the loop and
back after it.  Lanes go eight to a zmm register (``<8 x i64>`` groups).

Bounds (per lane): accumulator limbs < 2**44 (the top one < 2**42) + 1 after each
chunk; with a block added < 2**45, multipliers (r**k limbs and 20 r_i) < 2**49, so
every IFMA operand is below 2**52 and every product below 2**94: the high halves
are < 2**42, their sums < 2**44, and the shifted sums fit 64 bits.
"""
from llvmlite import ir

from ._poly_simd import MUL_L, MUL_N

_M44 = (1 << 44) - 1
_M42 = (1 << 42) - 1
_M26 = (1 << 26) - 1
GROUP = 8                           # lanes per zmm register


class _V:
    """<8 x i64> operations, and the IFMA intrinsics."""

    def __init__(self, builder):
        self.b = builder
        self.ty = ir.VectorType(ir.IntType(64), GROUP)
        mod = builder.module
        fty = ir.FunctionType(self.ty, [self.ty] * 3)
        self._lo = _declare(mod, "llvm.x86.avx512.vpmadd52l.uq.512", fty)
        self._hi = _declare(mod, "llvm.x86.avx512.vpmadd52h.uq.512", fty)

    def c(self, v):
        return ir.Constant(self.ty, [v] * GROUP)

    def madd_lo(self, acc, a, b):
        return self.b.call(self._lo, [acc, a, b])

    def madd_hi(self, acc, a, b):
        return self.b.call(self._hi, [acc, a, b])

    def shr(self, a, n):
        return self.b.lshr(a, self.c(n))

    def shl(self, a, n):
        return self.b.shl(a, self.c(n))

    def mask(self, a, m):
        return self.b.and_(a, self.c(m))

    def add(self, *vs):
        out = vs[0]
        for v in vs[1:]:
            out = self.b.add(out, v)
        return out


def _declare(mod, name, fty):
    fn = mod.globals.get(name)
    return fn if fn is not None else ir.Function(mod, fty, name)


def _to44(v, l):
    """Five 26-bit limbs (each < 2**27) -> three 44-bit limbs (the top one unmasked)."""
    x = v.add(l[0], v.shl(l[1], 26))
    a0 = v.mask(x, _M44)
    x = v.add(v.shr(x, 44), v.shl(l[2], 8), v.shl(l[3], 34))
    a1 = v.mask(x, _M44)
    return [a0, a1, v.add(v.shr(x, 44), v.shl(l[4], 16))]


def _to26(v, a):
    """Three 44-bit limbs (a0 < 2**44, a1 <= 2**44, a2 < 2**42) -> five 26-bit limbs."""
    c = v.shr(a[1], 44)
    a1 = v.mask(a[1], _M44)
    a2 = v.add(a[2], c)
    return [v.mask(a[0], _M26), v.mask(v.b.or_(v.shr(a[0], 26), v.shl(a1, 18)), _M26),
            v.mask(v.shr(a1, 8), _M26), v.mask(v.b.or_(v.shr(a1, 34), v.shl(a2, 10)), _M26),
            v.shr(a2, 16)]


def _mult(v, r):
    """(r0, r1, r2, 20 r1, 20 r2) in base 2**44 from five 26-bit limbs."""
    r44 = _to44(v, r)
    return r44 + [v.b.mul(r44[1], v.c(20)), v.b.mul(r44[2], v.c(20))]


def _mulmod(v, h, m):
    """h * r mod 2**130 - 5, partially reduced, with r = (r0, r1, r2, s1, s2)."""
    r0, r1, r2, s1, s2 = m
    rows = ((r0, s2, s1), (r1, r0, s2), (r2, r1, r0))
    zero = v.c(0)
    lo, hi = [], []
    for row in rows:
        low, high = zero, zero
        for hk, rk in zip(h, row):
            low = v.madd_lo(low, hk, rk)
            high = v.madd_hi(high, hk, rk)
        lo.append(low)
        hi.append(high)
    # hi[k] sits at 2**(44 k + 52): hi[0], hi[1] carry into the next limb (x 2**8),
    # hi[2] at 2**140 = 5 * 2**10 mod p into limb 0
    t0 = v.add(lo[0], v.b.mul(hi[2], v.c(5 << 10)))
    t1 = v.add(lo[1], v.shl(hi[0], 8))
    t2 = v.add(lo[2], v.shl(hi[1], 8))
    t1 = v.add(t1, v.shr(t0, 44))
    t0 = v.mask(t0, _M44)
    t2 = v.add(t2, v.shr(t1, 44))
    t1 = v.mask(t1, _M44)
    t0 = v.add(t0, v.b.mul(v.shr(t2, 42), v.c(5)))
    t2 = v.mask(t2, _M42)
    t1 = v.add(t1, v.shr(t0, 44))
    return [v.mask(t0, _M44), t1, t2]


def _load_group(v, p, row, lanes, g, splat=False):
    """Row ``row`` of pv, lanes 8g..8g+7, zero-extended (splat: lane 0 in every lane)."""
    i64 = ir.IntType(64)
    b = v.b
    if splat:
        w = b.zext(b.load(b.gep(p, [ir.Constant(i64, row * lanes)])), i64)
        one = b.insert_element(ir.Constant(v.ty, None), w, ir.Constant(ir.IntType(32), 0))
        return b.shuffle_vector(one, ir.Constant(v.ty, None),
                                ir.Constant(ir.VectorType(ir.IntType(32), GROUP), [0] * GROUP))
    q = b.gep(p, [ir.Constant(i64, row * lanes + GROUP * g)])
    v32 = ir.VectorType(ir.IntType(32), GROUP)
    return b.zext(b.load(b.bitcast(q, v32.as_pointer()), align=4), v.ty)


def _blocks(v, src, idx, lanes):
    """Per group: the (lo, hi) 64-bit words of the chunk's blocks."""
    b = v.b
    i64 = ir.IntType(64)
    wide = ir.VectorType(i64, 2 * lanes)
    base = b.gep(src, [b.mul(idx, ir.Constant(i64, 16 * lanes))])
    w = b.load(b.bitcast(base, wide.as_pointer()), align=1)
    mask = ir.VectorType(ir.IntType(32), GROUP)
    out = []
    for g in range(lanes // GROUP):
        out.append(tuple(b.shuffle_vector(w, w, ir.Constant(mask, [2 * (GROUP * g + j) + k
                                                                  for j in range(GROUP)]))
                         for k in (0, 1)))
    return out


def ifma_lanes(builder, dst, src, nitems, lanes, chunk_loop):
    """Emit poly_lanes(pv=dst, d=src[0:nitems], lanes) in base 2**44 (lanes % 8 == 0)."""
    v = _V(builder)
    i64 = ir.IntType(64)
    groups = lanes // GROUP
    nchunks = builder.udiv(nitems, ir.Constant(i64, 16 * lanes))
    acc0 = []
    for g in range(groups):
        acc0 += _to44(v, [_load_group(v, dst, k, lanes, g) for k in range(5)])
    mult_n = _mult(v, [_load_group(v, dst, MUL_N + k, lanes, 0, True) for k in range(5)])

    def body(acc, i, last):
        out = []
        for g, (lo, hi) in enumerate(_blocks(v, src, i, lanes)):
            m = (v.mask(lo, _M44), v.mask(v.b.or_(v.shr(lo, 44), v.shl(hi, 20)), _M44),
                 v.b.or_(v.shr(hi, 24), v.c(1 << 40)))
            h = [v.add(a, x) for a, x in zip(acc[3 * g:3 * g + 3], m)]
            mult = (_mult(v, [_load_group(v, dst, MUL_L + k, lanes, g) for k in range(5)])
                    if last else mult_n)
            out += _mulmod(v, h, mult)
        return out
    final = chunk_loop(builder, nchunks, acc0, body)
    v32 = ir.VectorType(ir.IntType(32), GROUP)
    for g in range(groups):
        for k, row in enumerate(_to26(v, final[3 * g:3 * g + 3])):
            p = builder.gep(dst, [ir.Constant(i64, k * lanes + GROUP * g)])
            builder.store(builder.trunc(row, v32), builder.bitcast(p, v32.as_pointer()),
                          align=4)
