"""ChaCha20 on several blocks at once, in explicit LLVM vector IR (an intrinsic).

``chacha_lanes(st, ctr, out, lanes)`` computes ``lanes`` keystream blocks
(counters ``ctr, ctr + 1, ...`` mod 2**32) entirely in registers: the state is
16 vectors of ``lanes`` uint32 words (structure of arrays: ``<16 x i32>`` is
one zmm register with AVX-512, two ymm with AVX2, four NEON registers), the 20
rounds are unrolled (rotations as shift/shift/or, which LLVM turns into
``vprold``, ``vpshufb`` or NEON shifts), the input is added, and the 16 x
``lanes`` result is transposed to block-major order (``out[16 * lane + word]``,
the keystream bytes in order) in ``log2(lanes)`` stages of two-input
``shufflevector``s (the blockwise Eklundh transpose: stage ``s`` swaps the
off-diagonal ``s``-blocks of rows ``a`` and ``a + s``; ``vpermt2d``/``vpunpck*``
on x86-64, ``zip``/``trn`` on AArch64) and stored as whole vectors.

Why not a numba loop over lanes: LLVM's loop vectorizer sizes vectors by the
preferred width (256 bits on Intel AVX-512 parts), keeps the state in memory
between calls, and vectorizes the final transpose with gathers and scatters
or not at all; written as vectors, the state stays in registers and the
shuffles are the ones asked for.
Every index is a compile-time constant: no data-dependent address or branch.
"""
from llvmlite import ir
from numba.core import types
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

__all__ = ["chacha_lanes"]

WORDS = 16                       # rows: the 16 words of a ChaCha20 state


def _stage_masks(lanes, s):
    """shufflevector masks of stage s for rows (a, a + s): (new a, new a + s)."""
    lo = [j if j & s == 0 else lanes + j - s for j in range(lanes)]
    hi = [j + s if j & s == 0 else lanes + j for j in range(lanes)]
    return lo, hi


def _mask(indices):
    return ir.Constant(ir.VectorType(ir.IntType(32), len(indices)), indices)


def _transpose(builder, rows, lanes):
    """Transpose the square list of ``lanes`` vectors (each ``<lanes x i32>``)."""
    rows = list(rows)
    s = 1
    while s < lanes:
        lo, hi = _stage_masks(lanes, s)
        for a in range(lanes):
            if a & s:
                continue
            b = a + s
            rows[a], rows[b] = (builder.shuffle_vector(rows[a], rows[b], _mask(lo)),
                                builder.shuffle_vector(rows[a], rows[b], _mask(hi)))
        s *= 2
    return rows


def _lane_count(lanes):
    n = getattr(lanes, "literal_value", None)
    if not isinstance(n, int) or n < 1 or n > WORDS or n & (n - 1) or WORDS % n:
        raise TypingError("chacha_lanes(st, ctr, out, lanes): lanes must be a constant power "
                          "of two up to %d, got %s" % (WORDS, lanes))
    return n


def _is_u32_c(a):
    return isinstance(a, types.Array) and a.dtype == types.uint32 and a.ndim == 1 \
        and a.layout == "C"


def _rotl(builder, v, n, lanes):
    ty = ir.VectorType(ir.IntType(32), lanes)
    return builder.or_(builder.shl(v, ir.Constant(ty, [n] * lanes)),
                       builder.lshr(v, ir.Constant(ty, [32 - n] * lanes)))


def _quarter_round(builder, x, a, b, c, d, lanes):
    for p, q, r, n in ((a, b, d, 16), (c, d, b, 12), (a, b, d, 8), (c, d, b, 7)):
        x[p] = builder.add(x[p], x[q])
        x[r] = _rotl(builder, builder.xor(x[r], x[p]), n, lanes)


_ROUNDS = ((0, 4, 8, 12), (1, 5, 9, 13), (2, 6, 10, 14), (3, 7, 11, 15),
           (0, 5, 10, 15), (1, 6, 11, 12), (2, 7, 8, 13), (3, 4, 9, 14))


def _state_rows(builder, st, ctr, lanes):
    """The 16 input rows: st[w] in every lane, word 12 the counters ctr + lane."""
    i32, i64 = ir.IntType(32), ir.IntType(64)
    vec = ir.VectorType(i32, lanes)
    rows = []
    for w in range(WORDS):
        word = ctr if w == 12 else builder.load(builder.gep(st, [ir.Constant(i64, w)]))
        row = builder.shuffle_vector(builder.insert_element(ir.Constant(vec, None), word,
                                                            ir.Constant(i32, 0)),
                                     ir.Constant(vec, None), _mask([0] * lanes))
        rows.append(builder.add(row, _mask(list(range(lanes)))) if w == 12 else row)
    return rows


def chacha_lanes(st, ctr, out, lanes):
    """out[16 * l + w] = ChaCha20 block (st with counter ctr + l) word w, for l < lanes.

    st: uint32[16] (the input state; its word 12 is not read), ctr: uint32,
    out: uint32[16 * lanes] (sizes not checked in compiled code).  Called from
    Python (``NUMBA_DISABLE_JIT=1``) this is the same computation in Python ints.
    """
    m = 0xFFFFFFFF
    for lane in range(lanes):
        x0 = [int(v) for v in st]
        x0[12] = (int(ctr) + lane) & m
        x = list(x0)
        for _ in range(10):
            for a, b, c, d in _ROUNDS:
                for p, q, r, n in ((a, b, d, 16), (c, d, b, 12), (a, b, d, 8), (c, d, b, 7)):
                    x[p] = (x[p] + x[q]) & m
                    v = x[r] ^ x[p]
                    x[r] = ((v << n) | (v >> (32 - n))) & m
        for w in range(WORDS):
            out[16 * lane + w] = (x[w] + x0[w]) & m


@overload(chacha_lanes, prefer_literal=True)
def _chacha_lanes_overload(st, ctr, out, lanes):
    def impl(st, ctr, out, lanes):
        _chacha_lanes_ir(st, ctr, out, lanes)
    return impl


@intrinsic
def _chacha_lanes_ir(typingctx, st, ctr, out, lanes):
    """:func:`chacha_lanes` in compiled code."""
    if not (_is_u32_c(st) and _is_u32_c(out) and ctr == types.uint32):
        raise TypingError("chacha_lanes(st, ctr, out, lanes): st and out must be 1-D "
                          "C-contiguous uint32 arrays and ctr a uint32, got %s, %s, %s"
                          % (st, ctr, out))
    n = _lane_count(lanes)
    if not out.mutable:
        raise TypingError("chacha_lanes(st, ctr, out, lanes): out must be writable")

    def codegen(context, builder, sig, args):
        vec = ir.VectorType(ir.IntType(32), n)
        src = context.make_array(sig.args[0])(context, builder, args[0]).data
        dst = context.make_array(sig.args[2])(context, builder, args[2]).data
        start = _state_rows(builder, src, args[1], n)
        x = list(start)
        for _ in range(10):
            for a, b, c, d in _ROUNDS:
                _quarter_round(builder, x, a, b, c, d, n)
        x = [builder.add(v, s0) for v, s0 in zip(x, start)]
        for g in range(WORDS // n):
            for lane, v in enumerate(_transpose(builder, x[g * n:(g + 1) * n], n)):
                p = builder.gep(dst, [ir.Constant(ir.IntType(64), lane * WORDS + g * n)])
                builder.store(v, builder.bitcast(p, vec.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.void(st, ctr, out, lanes), codegen
