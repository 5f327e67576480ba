"""BLAKE2b's compression function in explicit LLVM vector IR (an intrinsic): G on four columns at once.

``blake2b_compress(h, blk, t0, t1, last)`` compresses the 128-byte block at the
start of the uint8 array ``blk`` into the chaining value ``h`` (uint64[8]),
with the 128-bit byte counter ``(t0, t1)`` and the final-block flag ``last``
(0 or 2**64 - 1) of RFC 7693 3.2.  The 4 x 4 working matrix is held as four
``<4 x i64>`` rows (a ymm register each with AVX2/AVX-512, two NEON registers):
one G step computes the four columns, the diagonal step rotates rows b, c, d
by one, two and three lanes (``shufflevector``) and back.  The message words
of each step are picked out of the block (loaded once as ``<16 x i64>``) with
one constant ``shufflevector`` (``vpermt2q`` with AVX-512), the rotations are
shift/shift/or, which LLVM selects as ``vprorq`` (AVX-512VL), ``vpshufd``/
``vpshufb`` (AVX2) or NEON shifts.  All 12 rounds are unrolled; every index is
a compile-time constant: no data-dependent address or branch.
"""
from llvmlite import ir
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["blake2b_compress", "IV", "SIGMA"]

IV = (0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
      0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179)

SIGMA = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
    (14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3),
    (11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4),
    (7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8),
    (9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13),
    (2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9),
    (12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11),
    (13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10),
    (6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5),
    (10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0),
)
ROUNDS = 12
_ROT = (32, 24, 16, 63)
_MASK64 = (1 << 64) - 1


def _message_picks(r):
    """The four (x, y) message-word index tuples of round r: columns, then diagonals."""
    s = SIGMA[r % 10]
    return ((s[0], s[2], s[4], s[6]), (s[1], s[3], s[5], s[7]),
            (s[8], s[10], s[12], s[14]), (s[9], s[11], s[13], s[15]))


def _g_steps(ops, a, b, c, d, x, y):
    """One G on whatever ``ops`` computes with (four columns or four diagonals at once)."""
    a = ops.add(ops.add(a, b), x)
    d = ops.rotr(ops.xor(d, a), _ROT[0])
    c = ops.add(c, d)
    b = ops.rotr(ops.xor(b, c), _ROT[1])
    a = ops.add(ops.add(a, b), y)
    d = ops.rotr(ops.xor(d, a), _ROT[2])
    c = ops.add(c, d)
    b = ops.rotr(ops.xor(b, c), _ROT[3])
    return a, b, c, d


def _rounds(ops, a, b, c, d, pick):
    """The 12 rounds on rows a..d; pick(indices) gives the four message words as a row."""
    for r in range(ROUNDS):
        xc, yc, xd, yd = _message_picks(r)
        a, b, c, d = _g_steps(ops, a, b, c, d, pick(xc), pick(yc))
        b, c, d = ops.lanes(b, 1), ops.lanes(c, 2), ops.lanes(d, 3)
        a, b, c, d = _g_steps(ops, a, b, c, d, pick(xd), pick(yd))
        b, c, d = ops.lanes(b, 3), ops.lanes(c, 2), ops.lanes(d, 1)
    return a, b, c, d


class _PyOps:
    """Rows as lists of four Python ints."""
    add = staticmethod(lambda u, v: [(p + q) & _MASK64 for p, q in zip(u, v)])
    xor = staticmethod(lambda u, v: [p ^ q for p, q in zip(u, v)])
    rotr = staticmethod(lambda u, n: [((p >> n) | (p << (64 - n))) & _MASK64 for p in u])
    lanes = staticmethod(lambda u, k: u[k:] + u[:k])


def blake2b_compress(h, blk, t0, t1, last):
    """Compress blk[0:128] into h (uint64[8]) with counter (t0, t1) and flag last (see the module).

    Called from Python (``NUMBA_DISABLE_JIT=1``) this is the same computation in
    Python ints.
    """
    m = [int.from_bytes(bytes(blk[8 * i:8 * i + 8]), "little") for i in range(16)]
    hv = [int(v) for v in h]
    d = [IV[4] ^ int(t0), IV[5] ^ int(t1), IV[6] ^ int(last), IV[7]]
    a, b, c, d = _rounds(_PyOps, hv[0:4], hv[4:8], list(IV[0:4]), d,
                         lambda idx: [m[i] for i in idx])
    for i in range(4):
        h[i] = hv[i] ^ a[i] ^ c[i]
        h[4 + i] = hv[4 + i] ^ b[i] ^ d[i]


class _IROps:
    """Rows as ``<4 x i64>`` IR values."""

    def __init__(self, builder):
        self.b = builder
        self.ty = ir.VectorType(ir.IntType(64), 4)

    def add(self, u, v):
        return self.b.add(u, v)

    def xor(self, u, v):
        return self.b.xor(u, v)

    def rotr(self, u, n):
        return self.b.or_(self.b.lshr(u, ir.Constant(self.ty, [n] * 4)),
                          self.b.shl(u, ir.Constant(self.ty, [64 - n] * 4)))

    def lanes(self, u, k):
        """Row u rotated left by k lanes: lane j gets lane (j + k) % 4."""
        return self.b.shuffle_vector(u, u, _mask([(j + k) % 4 for j in range(4)]))


def _mask(indices):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), indices)


def _is_c(a, dtype):
    return isinstance(a, types.Array) and a.dtype == dtype and a.ndim == 1 and a.layout == "C"


@overload(blake2b_compress)
def _blake2b_compress_overload(h, blk, t0, t1, last):
    def impl(h, blk, t0, t1, last):
        _compress_ir(h, blk, t0, t1, last)
    return impl


def _row(builder, p, vty):
    return builder.load(builder.bitcast(p, vty.as_pointer()), align=8)


@intrinsic
def _compress_ir(typingctx, h, blk, t0, t1, last):
    """:func:`blake2b_compress` in compiled code."""
    if not (_is_c(h, types.uint64) and _is_c(blk, types.uint8) and h.mutable):
        raise TypingError("blake2b_compress(h, blk, t0, t1, last): h must be a writable 1-D "
                          "C-contiguous uint64 array and blk a 1-D C-contiguous uint8 array, "
                          "got %s, %s" % (h, blk))
    if not all(t == types.uint64 for t in (t0, t1, last)):
        raise TypingError("blake2b_compress(h, blk, t0, t1, last): t0, t1 and last must be "
                          "uint64, got %s, %s, %s" % (t0, t1, last))

    def codegen(context, builder, sig, args):
        i32, i64 = ir.IntType(32), ir.IntType(64)
        ops = _IROps(builder)
        vty = ops.ty
        hp = context.make_array(sig.args[0])(context, builder, args[0]).data
        src = context.make_array(sig.args[1])(context, builder, args[1]).data
        words = builder.load(builder.bitcast(src, ir.VectorType(i64, 16).as_pointer()), align=1)
        h_lo = _row(builder, hp, vty)
        h_hi = _row(builder, builder.gep(hp, [ir.Constant(i64, 4)]), vty)
        d = ir.Constant(vty, list(IV[4:8]))
        counter = ir.Constant(vty, None)
        for lane, v in enumerate(args[2:5]):
            counter = builder.insert_element(counter, v, ir.Constant(i32, lane))
        counter = builder.insert_element(counter, ir.Constant(i64, 0), ir.Constant(i32, 3))
        d = builder.xor(d, counter)
        a, b, c, d = _rounds(ops, h_lo, h_hi, ir.Constant(vty, list(IV[0:4])), d,
                             lambda idx: builder.shuffle_vector(words, words, _mask(list(idx))))
        out_lo = builder.xor(h_lo, builder.xor(a, c))
        out_hi = builder.xor(h_hi, builder.xor(b, d))
        builder.store(out_lo, builder.bitcast(hp, vty.as_pointer()), align=8)
        builder.store(out_hi, builder.bitcast(builder.gep(hp, [ir.Constant(i64, 4)]),
                                              vty.as_pointer()), align=8)
        return context.get_dummy_value()

    return types.void(h, blk, t0, t1, last), codegen
