"""Poly1305's bulk loop in explicit LLVM vector IR (an intrinsic): lane accumulators in registers.

``poly_lanes(pv, d, lanes)`` absorbs the ``len(d) // (16 * lanes)`` chunks of
``lanes`` 16-byte blocks of the uint8 array ``d`` into ``lanes`` independent
accumulators (five 26-bit limbs each, as in :mod:`secretjit.kernels.poly1305`):
``acc[l] = (acc[l] + block[l]) * mult[l]`` with ``mult`` = r**lanes for every
chunk but the last and r**(lanes - l) for the last one, so that the sum of the
lanes is the serial evaluation.  ``pv`` (uint32) holds the accumulators
``pv[k * lanes + l]`` (limb k of lane l, in and out), then the two multiplier
tables of five rows each (the limbs r0..r4 per lane; 5 r_i is computed in the IR):
``pv[5 * lanes:]`` the r**lanes rows, ``pv[10 * lanes:]`` the last chunk's rows.

The loop is written in IR so that the accumulators are ``<lanes x i64>`` SSA
values carried across chunks by ``phi`` nodes (registers: five zmm pairs with
AVX-512 at 16 lanes) and r**lanes is splat once before the loop; a numba loop
over lanes loads and stores them every chunk, because numba arrays carry no
``noalias`` and LLVM cannot keep them in registers.  Each block is loaded as two
64-bit words (the lanes' low and high halves come out of two ``shufflevector``s
of whole-vector loads) and split into limbs with 64-bit shifts; every product
has both operands masked to 32 bits, which x86-64 selects as ``vpmuludq`` and
AArch64 as ``umull``.  Where the JIT compiles for a CPU with AVX-512 IFMA (and
``lanes`` is a multiple of 8), the loop is the base 2**44 one of
:mod:`secretjit.kernels._poly_ifma` instead (``poly_lanes_base26`` keeps the
portable one).  Every address depends on the public length only: no
data-dependent address or branch.
"""
from llvmlite import ir
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["poly_lanes", "poly_lanes_base26", "MUL_N", "MUL_L", "pv_size"]

MUL_N = 5          # row of the r**lanes table in pv (times lanes)
MUL_L = 10         # row of the last chunk's table
_ROWS = 15         # rows of pv


def pv_size(lanes):
    """uint32 words of the ``pv`` scratch for ``lanes`` lanes."""
    return _ROWS * lanes


_M26 = (1 << 26) - 1


def _py_chunk(pv, d, base, lanes, mul):
    """One chunk in Python ints (the reference for the IR below)."""
    for l in range(lanes):
        p = base + 16 * l
        lo = int.from_bytes(bytes(d[p:p + 8]), "little")
        hi = int.from_bytes(bytes(d[p + 8:p + 16]), "little")
        m = (lo & _M26, (lo >> 26) & _M26, ((lo >> 52) | (hi << 12)) & _M26,
             (hi >> 14) & _M26, (hi >> 40) | (1 << 24))
        h = [(int(pv[k * lanes + l]) + m[k]) & 0xFFFFFFFF for k in range(5)]
        r = [int(pv[(mul + k) * lanes + l]) for k in range(5)]
        r += [5 * x for x in r[1:]]
        for k, v in enumerate(_mulmod(h, r, _PyOps)):
            pv[k * lanes + l] = v


class _PyOps:
    """The operations :func:`_mulmod` uses, on Python ints."""
    mul = staticmethod(lambda a, b: a * b)
    add = staticmethod(lambda a, b: a + b)
    shr = staticmethod(lambda a, n: a >> n)
    mask = staticmethod(lambda a, m: a & m)
    const = staticmethod(lambda v: v)


def _mulmod(h, r, ops):
    """(h * r) mod 2**130 - 5 partially reduced; r = (r0..r4, s1..s4) with s_i = 5 r_i."""
    r0, r1, r2, r3, r4, s1, s2, s3, s4 = r
    rows = ((r0, s4, s3, s2, s1), (r1, r0, s4, s3, s2), (r2, r1, r0, s4, s3),
            (r3, r2, r1, r0, s4), (r4, r3, r2, r1, r0))
    d = []
    for row in rows:
        acc = ops.mul(h[0], row[0])
        for k in range(1, 5):
            acc = ops.add(acc, ops.mul(h[k], row[k]))
        d.append(acc)
    m26, n26 = ops.const(_M26), ops.const(26)
    out = [None] * 5
    c = None
    for k in range(5):
        if c is not None:
            d[k] = ops.add(d[k], c)
        c = ops.shr(d[k], n26)
        out[k] = ops.mask(d[k], m26)
    h0 = ops.add(out[0], ops.mul(c, ops.const(5)))
    out[1] = ops.add(out[1], ops.shr(h0, n26))
    out[0] = ops.mask(h0, m26)
    return out


def poly_lanes(pv, d, lanes):
    """Absorb every whole chunk of d (uint8) into the lane accumulators of pv (see the module).

    Called from Python (``NUMBA_DISABLE_JIT=1``) this is the same computation in
    Python ints.
    """
    nchunks = len(d) // (16 * lanes)
    for c in range(nchunks):
        _py_chunk(pv, d, 16 * lanes * c, lanes, MUL_L if c == nchunks - 1 else MUL_N)


class _IROps:
    """The operations :func:`_mulmod` uses, as IR on ``<lanes x i64>`` vectors."""

    def __init__(self, builder, lanes):
        self.b = builder
        self.ty = ir.VectorType(ir.IntType(64), lanes)

    def const(self, v):
        return ir.Constant(self.ty, [v] * self.ty.count)

    def mul(self, a, b):
        return self.b.mul(a, b)

    def add(self, a, b):
        return self.b.add(a, b)

    def shr(self, a, n):
        return self.b.lshr(a, n)

    def mask(self, a, m):
        return self.b.and_(a, m)


def _lane_count(lanes):
    n = getattr(lanes, "literal_value", None)
    if not isinstance(n, int) or n < 1 or n > 64 or n & (n - 1):
        raise TypingError("poly_lanes(pv, d, lanes): lanes must be a constant power of two "
                          "up to 64, got %s" % (lanes,))
    return n


def _is_c(a, dtype):
    return isinstance(a, types.Array) and a.dtype == dtype and a.ndim == 1 and a.layout == "C"


def poly_lanes_base26(pv, d, lanes):
    """:func:`poly_lanes` always in the portable base 2**26 code (on any CPU)."""
    poly_lanes(pv, d, lanes)


@overload(poly_lanes, prefer_literal=True)
def _poly_lanes_overload(pv, d, lanes):
    def impl(pv, d, lanes):
        _poly_lanes_ir(pv, d, lanes)
    return impl


@overload(poly_lanes_base26, prefer_literal=True)
def _poly_lanes_base26_overload(pv, d, lanes):
    def impl(pv, d, lanes):
        _poly_lanes26_ir(pv, d, lanes)
    return impl


def _load_rows(builder, pv, row, n, lanes, splat):
    """n rows of pv from ``row * lanes`` as zero-extended <lanes x i64> (splat: lane 0 only)."""
    i64 = ir.IntType(64)
    v32 = ir.VectorType(ir.IntType(32), lanes)
    v64 = ir.VectorType(i64, lanes)
    out = []
    for k in range(n):
        p = builder.gep(pv, [ir.Constant(i64, (row + k) * lanes)])
        if splat:
            w = builder.zext(builder.load(p), i64)
            one = builder.insert_element(ir.Constant(v64, None), w, ir.Constant(ir.IntType(32), 0))
            out.append(builder.shuffle_vector(one, ir.Constant(v64, None),
                                              ir.Constant(v32, [0] * lanes)))
        else:
            out.append(builder.zext(builder.load(builder.bitcast(p, v32.as_pointer()), align=4),
                                    v64))
    return out


def _chunk(builder, ops, src, idx, acc, mult, lanes):
    """IR of one chunk: the limbs of the blocks at src + 16 * lanes * idx added, times mult."""
    i64 = ir.IntType(64)
    wide = ir.VectorType(i64, 2 * lanes)
    base = builder.gep(src, [builder.mul(idx, ir.Constant(i64, 16 * lanes))])
    v = builder.load(builder.bitcast(base, wide.as_pointer()), align=1)
    i32v = ir.VectorType(ir.IntType(32), lanes)
    lo = builder.shuffle_vector(v, v, ir.Constant(i32v, [2 * l for l in range(lanes)]))
    hi = builder.shuffle_vector(v, v, ir.Constant(i32v, [2 * l + 1 for l in range(lanes)]))
    m26, c = ops.const(_M26), ops.const
    b = builder
    limbs = (b.and_(lo, m26), b.and_(b.lshr(lo, c(26)), m26),
             b.and_(b.or_(b.lshr(lo, c(52)), b.shl(hi, c(12))), m26),
             b.and_(b.lshr(hi, c(14)), m26), b.or_(b.lshr(hi, c(40)), c(1 << 24)))
    # the 32-bit masks are exact (limbs < 2**28) and tell the selector the products are 32x32
    h = [b.and_(b.add(a, m), c(0xFFFFFFFF)) for a, m in zip(acc, limbs)]
    return _mulmod(h, mult, ops)


def chunk_loop(builder, nchunks, acc0, body):
    """Emit ``acc = body(acc, i, last)`` for chunk i = 0 .. nchunks - 1 (nothing if 0).

    acc0: the IR values carried across chunks (``phi`` nodes in the loop);
    ``body(acc, i, False)`` is the loop body, ``body(acc, nchunks - 1, True)`` the
    last chunk, after the loop.  Returns the final values and leaves the builder in
    the block after them (where every path, the empty one too, arrives).
    """
    i64 = ir.IntType(64)
    loop = builder.append_basic_block("poly.loop")
    last = builder.append_basic_block("poly.last")
    done = builder.append_basic_block("poly.done")
    nloop = builder.sub(nchunks, ir.Constant(i64, 1))
    entry = builder.block
    pre = builder.append_basic_block("poly.some")
    builder.cbranch(builder.icmp_signed("==", nchunks, ir.Constant(i64, 0)), done, pre)
    builder.position_at_end(pre)
    builder.cbranch(builder.icmp_signed(">", nloop, ir.Constant(i64, 0)), loop, last)
    builder.position_at_end(loop)
    i = builder.phi(i64)
    acc = [builder.phi(v.type) for v in acc0]
    out = body(acc, i, False)
    inext = builder.add(i, ir.Constant(i64, 1))
    i.add_incoming(ir.Constant(i64, 0), pre)
    i.add_incoming(inext, builder.block)
    for a, a0, o in zip(acc, acc0, out):
        a.add_incoming(a0, pre)
        a.add_incoming(o, builder.block)
    loop_end = builder.block
    builder.cbranch(builder.icmp_signed("<", inext, nloop), loop, last)
    builder.position_at_end(last)
    final = body(_merge(builder, acc0, pre, out, loop_end), nloop, True)
    tail = builder.block
    builder.branch(done)
    builder.position_at_end(done)
    return _merge(builder, acc0, entry, final, tail)


def _merge(builder, first, first_block, second, second_block):
    """phi nodes joining the values ``first`` (from first_block) and ``second``."""
    out = []
    for a, b in zip(first, second):
        p = builder.phi(a.type)
        p.add_incoming(a, first_block)
        p.add_incoming(b, second_block)
        out.append(p)
    return out


def _with_fives(ops, r):
    """(r0..r4) -> (r0..r4, 5 r1..5 r4); the (exact) 32-bit masks keep the products 32x32."""
    return r + [ops.mask(ops.mul(x, ops.const(5)), ops.const(0xFFFFFFFF)) for x in r[1:]]


def _lanes_26(builder, dst, src, nitems, n):
    """The portable loop: five 26-bit limbs per lane, 32x32->64-bit products."""
    i64 = ir.IntType(64)
    ops = _IROps(builder, n)
    nchunks = builder.udiv(nitems, ir.Constant(i64, 16 * n))
    acc0 = _load_rows(builder, dst, 0, 5, n, False)
    mult_n = _with_fives(ops, _load_rows(builder, dst, MUL_N, 5, n, True))

    def body(acc, i, last):
        mult = (_with_fives(ops, _load_rows(builder, dst, MUL_L, 5, n, False)) if last
                else mult_n)
        return _chunk(builder, ops, src, i, acc, mult, n)
    final = chunk_loop(builder, nchunks, acc0, body)
    store_rows(builder, dst, final, n)


def store_rows(builder, dst, rows, n):
    """pv[k * n:(k + 1) * n] = rows[k] truncated to uint32."""
    i64 = ir.IntType(64)
    v32 = ir.VectorType(ir.IntType(32), n)
    for k, v in enumerate(rows):
        p = builder.gep(dst, [ir.Constant(i64, k * n)])
        builder.store(builder.trunc(v, v32), builder.bitcast(p, v32.as_pointer()), align=4)


def _use_ifma(context, lanes):
    """Base 2**44 with AVX-512 IFMA: where the JIT compiles for a CPU that has it.

    IR that leaves this machine (the AOT build re-targets the JIT's IR, see
    ``SecretCodeLibrary.keep_pre_secret_ir``) stays portable.
    """
    if lanes % 8:
        return False
    from ..codegen import SecretCodeLibrary
    if getattr(SecretCodeLibrary, "keep_pre_secret_ir", False):
        return False
    features = getattr(context.codegen(), "_tm_features", "") or ""
    return "+avx512ifma" in features.split(",") and "+avx512f" in features.split(",")


def _typing(pv, d, lanes, allow_ifma):
    """The signature and code generator of the two intrinsics below."""
    if not (_is_c(pv, types.uint32) and _is_c(d, types.uint8)):
        raise TypingError("poly_lanes(pv, d, lanes): pv must be a 1-D C-contiguous uint32 "
                          "array and d a 1-D C-contiguous uint8 array, got %s, %s" % (pv, d))
    n = _lane_count(lanes)
    if not pv.mutable:
        raise TypingError("poly_lanes(pv, d, lanes): pv must be writable")

    def codegen(context, builder, sig, args):
        pvs = context.make_array(sig.args[0])(context, builder, args[0])
        ds = context.make_array(sig.args[1])(context, builder, args[1])
        if allow_ifma and _use_ifma(context, n):
            from ._poly_ifma import ifma_lanes
            ifma_lanes(builder, pvs.data, ds.data, ds.nitems, n, chunk_loop)
        else:
            _lanes_26(builder, pvs.data, ds.data, ds.nitems, n)
        return context.get_dummy_value()

    return types.void(pv, d, lanes), codegen


@intrinsic
def _poly_lanes_ir(typingctx, pv, d, lanes):
    """:func:`poly_lanes` in compiled code."""
    return _typing(pv, d, lanes, True)


@intrinsic
def _poly_lanes26_ir(typingctx, pv, d, lanes):
    """:func:`poly_lanes_base26` in compiled code."""
    return _typing(pv, d, lanes, False)
