"""X25519 Diffie-Hellman (RFC 7748) as a constant-time numba kernel.

Field elements mod 2^255-19 are ten signed int64 limbs of alternately 26 and 25 bits
(ref10 layout); all products fit in 64 bits.  All field elements live in the rows of
one (9, 10) int64 scratch array, wiped before return.  The Montgomery ladder uses a masked
conditional swap; the scalar bits select nothing but masks.  Inputs: the scalar is
clamped, the top bit of u is masked, non-canonical u (>= p) is accepted; low-order
points yield the all-zero output (returned, not raised).
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._util import IN, OUT, ZERO, api_entry, as_buf_sized

__all__ = ["x25519", "public_key", "x25519_kernel", "KEY_SIZE", "BASEPOINT"]

KEY_SIZE = 32
BASEPOINT = bytes([9]) + bytes(31)

_B25 = np.int64(1 << 25)
_B24 = np.int64(1 << 24)

# Rows of the field-element scratch array F (shape (_NF, 10): one element per row).  They
# are numpy scalars, not Python ints: numba would compile a separate specialization of
# every helper for each distinct literal int argument.
_X1 = np.int64(0)
_X2 = np.int64(1)
_Z2 = np.int64(2)
_X3 = np.int64(3)
_Z3 = np.int64(4)
_T0 = np.int64(5)
_T1 = np.int64(6)
_T2 = np.int64(7)
_T3 = np.int64(8)
_NF = 9
# Offsets in the int32 lane scratch W of the 4-lane operands L, R, the product H and the
# ladder state S (10 limbs x 4 lanes each; Python ints: only used as index constants).
_L = 0
_R = 40
_H = 80
_S = 120
_W_SIZE = 160


@njit
def _fe_mul(F, h, f, g):
    """Row h of F = row f * row g (ref10 schoolbook, carried; h may equal f or g)."""
    f0 = F[f, 0]; f1 = F[f, 1]; f2 = F[f, 2]; f3 = F[f, 3]; f4 = F[f, 4]
    f5 = F[f, 5]; f6 = F[f, 6]; f7 = F[f, 7]; f8 = F[f, 8]; f9 = F[f, 9]
    g0 = F[g, 0]; g1 = F[g, 1]; g2 = F[g, 2]; g3 = F[g, 3]; g4 = F[g, 4]
    g5 = F[g, 5]; g6 = F[g, 6]; g7 = F[g, 7]; g8 = F[g, 8]; g9 = F[g, 9]
    h0 = (f0 * g0 + f1 * (g9 * 38) + f2 * (g8 * 19) + f3 * (g7 * 38) + f4 * (g6 * 19)
          + f5 * (g5 * 38) + f6 * (g4 * 19) + f7 * (g3 * 38) + f8 * (g2 * 19) + f9 * (g1 * 38))
    h1 = (f0 * g1 + f1 * g0 + f2 * (g9 * 19) + f3 * (g8 * 19) + f4 * (g7 * 19)
          + f5 * (g6 * 19) + f6 * (g5 * 19) + f7 * (g4 * 19) + f8 * (g3 * 19) + f9 * (g2 * 19))
    h2 = (f0 * g2 + f1 * (g1 * 2) + f2 * g0 + f3 * (g9 * 38) + f4 * (g8 * 19)
          + f5 * (g7 * 38) + f6 * (g6 * 19) + f7 * (g5 * 38) + f8 * (g4 * 19) + f9 * (g3 * 38))
    h3 = (f0 * g3 + f1 * g2 + f2 * g1 + f3 * g0 + f4 * (g9 * 19)
          + f5 * (g8 * 19) + f6 * (g7 * 19) + f7 * (g6 * 19) + f8 * (g5 * 19) + f9 * (g4 * 19))
    h4 = (f0 * g4 + f1 * (g3 * 2) + f2 * g2 + f3 * (g1 * 2) + f4 * g0
          + f5 * (g9 * 38) + f6 * (g8 * 19) + f7 * (g7 * 38) + f8 * (g6 * 19) + f9 * (g5 * 38))
    h5 = (f0 * g5 + f1 * g4 + f2 * g3 + f3 * g2 + f4 * g1
          + f5 * g0 + f6 * (g9 * 19) + f7 * (g8 * 19) + f8 * (g7 * 19) + f9 * (g6 * 19))
    h6 = (f0 * g6 + f1 * (g5 * 2) + f2 * g4 + f3 * (g3 * 2) + f4 * g2
          + f5 * (g1 * 2) + f6 * g0 + f7 * (g9 * 38) + f8 * (g8 * 19) + f9 * (g7 * 38))
    h7 = (f0 * g7 + f1 * g6 + f2 * g5 + f3 * g4 + f4 * g3
          + f5 * g2 + f6 * g1 + f7 * g0 + f8 * (g9 * 19) + f9 * (g8 * 19))
    h8 = (f0 * g8 + f1 * (g7 * 2) + f2 * g6 + f3 * (g5 * 2) + f4 * g4
          + f5 * (g3 * 2) + f6 * g2 + f7 * (g1 * 2) + f8 * g0 + f9 * (g9 * 38))
    h9 = (f0 * g9 + f1 * g8 + f2 * g7 + f3 * g6 + f4 * g5
          + f5 * g4 + f6 * g3 + f7 * g2 + f8 * g1 + f9 * g0)
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h1 + _B24) >> 25
    h2 += c
    h1 -= c << 25
    c = (h5 + _B24) >> 25
    h6 += c
    h5 -= c << 25
    c = (h2 + _B25) >> 26
    h3 += c
    h2 -= c << 26
    c = (h6 + _B25) >> 26
    h7 += c
    h6 -= c << 26
    c = (h3 + _B24) >> 25
    h4 += c
    h3 -= c << 25
    c = (h7 + _B24) >> 25
    h8 += c
    h7 -= c << 25
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h8 + _B25) >> 26
    h9 += c
    h8 -= c << 26
    c = (h9 + _B24) >> 25
    h0 += c * 19
    h9 -= c << 25
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    F[h, 0] = h0; F[h, 1] = h1; F[h, 2] = h2; F[h, 3] = h3; F[h, 4] = h4
    F[h, 5] = h5; F[h, 6] = h6; F[h, 7] = h7; F[h, 8] = h8; F[h, 9] = h9


@njit
def _fe_sq(F, h, f):
    """Row h of F = (row f)^2 (carried; h may equal f)."""
    f0 = F[f, 0]; f1 = F[f, 1]; f2 = F[f, 2]; f3 = F[f, 3]; f4 = F[f, 4]
    f5 = F[f, 5]; f6 = F[f, 6]; f7 = F[f, 7]; f8 = F[f, 8]; f9 = F[f, 9]
    h0 = (f0 * f0 + f1 * (f9 * 76) + f2 * (f8 * 38)
          + f3 * (f7 * 76) + f4 * (f6 * 38) + f5 * (f5 * 38))
    h1 = (f0 * (f1 * 2) + f2 * (f9 * 38) + f3 * (f8 * 38) + f4 * (f7 * 38) + f5 * (f6 * 38))
    h2 = (f0 * (f2 * 2) + f1 * (f1 * 2) + f3 * (f9 * 76)
          + f4 * (f8 * 38) + f5 * (f7 * 76) + f6 * (f6 * 19))
    h3 = (f0 * (f3 * 2) + f1 * (f2 * 2) + f4 * (f9 * 38) + f5 * (f8 * 38) + f6 * (f7 * 38))
    h4 = (f0 * (f4 * 2) + f1 * (f3 * 4) + f2 * f2
          + f5 * (f9 * 76) + f6 * (f8 * 38) + f7 * (f7 * 38))
    h5 = (f0 * (f5 * 2) + f1 * (f4 * 2) + f2 * (f3 * 2) + f6 * (f9 * 38) + f7 * (f8 * 38))
    h6 = (f0 * (f6 * 2) + f1 * (f5 * 4) + f2 * (f4 * 2)
          + f3 * (f3 * 2) + f7 * (f9 * 76) + f8 * (f8 * 19))
    h7 = (f0 * (f7 * 2) + f1 * (f6 * 2) + f2 * (f5 * 2) + f3 * (f4 * 2) + f8 * (f9 * 38))
    h8 = (f0 * (f8 * 2) + f1 * (f7 * 4) + f2 * (f6 * 2) + f3 * (f5 * 4) + f4 * f4 + f9 * (f9 * 38))
    h9 = (f0 * (f9 * 2) + f1 * (f8 * 2) + f2 * (f7 * 2) + f3 * (f6 * 2) + f4 * (f5 * 2))
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h1 + _B24) >> 25
    h2 += c
    h1 -= c << 25
    c = (h5 + _B24) >> 25
    h6 += c
    h5 -= c << 25
    c = (h2 + _B25) >> 26
    h3 += c
    h2 -= c << 26
    c = (h6 + _B25) >> 26
    h7 += c
    h6 -= c << 26
    c = (h3 + _B24) >> 25
    h4 += c
    h3 -= c << 25
    c = (h7 + _B24) >> 25
    h8 += c
    h7 -= c << 25
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h8 + _B25) >> 26
    h9 += c
    h8 -= c << 26
    c = (h9 + _B24) >> 25
    h0 += c * 19
    h9 -= c << 25
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    F[h, 0] = h0; F[h, 1] = h1; F[h, 2] = h2; F[h, 3] = h3; F[h, 4] = h4
    F[h, 5] = h5; F[h, 6] = h6; F[h, 7] = h7; F[h, 8] = h8; F[h, 9] = h9


@njit
def _fe_sqn(F, h, f, n):
    """Row h of F = (row f)^(2^n), n >= 1."""
    _fe_sq(F, h, f)
    for _ in range(n - 1):
        _fe_sq(F, h, h)


@njit(inline="always")
def _carry121666(f0, f1, f2, f3, f4, f5, f6, f7, f8, f9):
    """Limbs of 121666 * f, carried (ref10 fe_mul121666)."""
    h0 = f0 * 121666; h1 = f1 * 121666; h2 = f2 * 121666; h3 = f3 * 121666; h4 = f4 * 121666
    h5 = f5 * 121666; h6 = f6 * 121666; h7 = f7 * 121666; h8 = f8 * 121666; h9 = f9 * 121666
    c = (h9 + _B24) >> 25
    h0 += c * 19
    h9 -= c << 25
    c = (h1 + _B24) >> 25
    h2 += c
    h1 -= c << 25
    c = (h3 + _B24) >> 25
    h4 += c
    h3 -= c << 25
    c = (h5 + _B24) >> 25
    h6 += c
    h5 -= c << 25
    c = (h7 + _B24) >> 25
    h8 += c
    h7 -= c << 25
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    c = (h2 + _B25) >> 26
    h3 += c
    h2 -= c << 26
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h6 + _B25) >> 26
    h7 += c
    h6 -= c << 26
    c = (h8 + _B25) >> 26
    h9 += c
    h8 -= c << 26
    return h0, h1, h2, h3, h4, h5, h6, h7, h8, h9


@njit
def _ld(s, off, n):
    v = np.int64(0)
    for i in range(n):
        v |= np.int64(s[off + i]) << (8 * i)
    return v


@njit
def _fe_frombytes(F, h, s):
    """Row h of F = the 255-bit little-endian integer s[0:32], top bit masked (ref10)."""
    h0 = _ld(s, 0, 4)
    h1 = _ld(s, 4, 3) << 6
    h2 = _ld(s, 7, 3) << 5
    h3 = _ld(s, 10, 3) << 3
    h4 = _ld(s, 13, 3) << 2
    h5 = _ld(s, 16, 4)
    h6 = _ld(s, 20, 3) << 7
    h7 = _ld(s, 23, 3) << 5
    h8 = _ld(s, 26, 3) << 4
    h9 = (_ld(s, 29, 3) & 8388607) << 2
    c = (h9 + _B24) >> 25
    h0 += c * 19
    h9 -= c << 25
    c = (h1 + _B24) >> 25
    h2 += c
    h1 -= c << 25
    c = (h3 + _B24) >> 25
    h4 += c
    h3 -= c << 25
    c = (h5 + _B24) >> 25
    h6 += c
    h5 -= c << 25
    c = (h7 + _B24) >> 25
    h8 += c
    h7 -= c << 25
    c = (h0 + _B25) >> 26
    h1 += c
    h0 -= c << 26
    c = (h2 + _B25) >> 26
    h3 += c
    h2 -= c << 26
    c = (h4 + _B25) >> 26
    h5 += c
    h4 -= c << 26
    c = (h6 + _B25) >> 26
    h7 += c
    h6 -= c << 26
    c = (h8 + _B25) >> 26
    h9 += c
    h8 -= c << 26
    F[h, 0] = h0; F[h, 1] = h1; F[h, 2] = h2; F[h, 3] = h3; F[h, 4] = h4
    F[h, 5] = h5; F[h, 6] = h6; F[h, 7] = h7; F[h, 8] = h8; F[h, 9] = h9


@njit
def _fe_tobytes(out, ooff, F, h):
    """out[ooff:ooff+32] = canonical encoding of row h of F (fully reduced mod p, ref10)."""
    h0 = F[h, 0]; h1 = F[h, 1]; h2 = F[h, 2]; h3 = F[h, 3]; h4 = F[h, 4]
    h5 = F[h, 5]; h6 = F[h, 6]; h7 = F[h, 7]; h8 = F[h, 8]; h9 = F[h, 9]
    q = (19 * h9 + _B24) >> 25
    q = (h0 + q) >> 26
    q = (h1 + q) >> 25
    q = (h2 + q) >> 26
    q = (h3 + q) >> 25
    q = (h4 + q) >> 26
    q = (h5 + q) >> 25
    q = (h6 + q) >> 26
    q = (h7 + q) >> 25
    q = (h8 + q) >> 26
    q = (h9 + q) >> 25
    h0 += 19 * q
    c = h0 >> 26
    h1 += c
    h0 -= c << 26
    c = h1 >> 25
    h2 += c
    h1 -= c << 25
    c = h2 >> 26
    h3 += c
    h2 -= c << 26
    c = h3 >> 25
    h4 += c
    h3 -= c << 25
    c = h4 >> 26
    h5 += c
    h4 -= c << 26
    c = h5 >> 25
    h6 += c
    h5 -= c << 25
    c = h6 >> 26
    h7 += c
    h6 -= c << 26
    c = h7 >> 25
    h8 += c
    h7 -= c << 25
    c = h8 >> 26
    h9 += c
    h8 -= c << 26
    c = h9 >> 25
    h9 -= c << 25                      # the carry out of limb 9 is 2^255: dropped
    F[h, 0] = h0; F[h, 1] = h1; F[h, 2] = h2; F[h, 3] = h3; F[h, 4] = h4
    F[h, 5] = h5; F[h, 6] = h6; F[h, 7] = h7; F[h, 8] = h8; F[h, 9] = h9
    # pack the limbs (26, 25, 26, ... bits, now all non-negative) little-endian
    acc = np.int64(0)
    nbits = 0
    pos = 0
    for i in range(10):
        acc |= F[h, i] << nbits
        nbits += 26 - (i & 1)
        while nbits >= 8:
            out[ooff + pos] = np.uint8(acc & 255)
            acc >>= 8
            nbits -= 8
            pos += 1
    out[ooff + 31] = np.uint8(acc & 255)
    acc = 0


@njit
def _fe_invert(F, out, z):
    """Row out of F = (row z)^(p-2); clobbers rows _T0.._T3 (out, z: other rows; out may be z)."""
    _fe_sq(F, _T0, z)                    # z^2
    _fe_sqn(F, _T1, _T0, np.int64(2))    # z^8
    _fe_mul(F, _T1, z, _T1)              # z^9
    _fe_mul(F, _T0, _T0, _T1)            # z^11
    _fe_sq(F, _T2, _T0)                  # z^22
    _fe_mul(F, _T1, _T1, _T2)            # z^(2^5 - 1)
    _fe_sqn(F, _T2, _T1, np.int64(5))
    _fe_mul(F, _T1, _T2, _T1)            # 2^10 - 1
    _fe_sqn(F, _T2, _T1, np.int64(10))
    _fe_mul(F, _T2, _T2, _T1)            # 2^20 - 1
    _fe_sqn(F, _T3, _T2, np.int64(20))
    _fe_mul(F, _T2, _T3, _T2)            # 2^40 - 1
    _fe_sqn(F, _T2, _T2, np.int64(10))
    _fe_mul(F, _T1, _T2, _T1)            # 2^50 - 1
    _fe_sqn(F, _T2, _T1, np.int64(50))
    _fe_mul(F, _T2, _T2, _T1)            # 2^100 - 1
    _fe_sqn(F, _T3, _T2, np.int64(100))
    _fe_mul(F, _T2, _T3, _T2)            # 2^200 - 1
    _fe_sqn(F, _T2, _T2, np.int64(50))
    _fe_mul(F, _T1, _T2, _T1)            # 2^250 - 1
    _fe_sqn(F, _T1, _T1, np.int64(5))    # 2^255 - 2^5
    _fe_mul(F, out, _T1, _T0)            # 2^255 - 21 = p - 2


@njit
def _fe_mul_lanes(W):
    """H = L * R in each of 4 lanes: W[_H:] = W[_L:] * W[_R:] (limb k of lane l at 4k + l).

    The lanes are independent field multiplications; with every operand an int32
    sign-extended to int64 (as in ref10, 19*g and 2*f fit in 32 bits), LLVM vectorizes
    the lane loop with 32x32->64-bit multiplies (vpmuldq).  L, R and H being constant
    offsets into one array lets LLVM prove independence without runtime alias checks.
    """
    for l in range(4):
        f0 = np.int64(W[_L + 0 + l]); f1 = np.int64(W[_L + 4 + l]); f2 = np.int64(W[_L + 8 + l])
        f3 = np.int64(W[_L + 12 + l]); f4 = np.int64(W[_L + 16 + l])
        f5 = np.int64(W[_L + 20 + l]); f6 = np.int64(W[_L + 24 + l]); f7 = np.int64(W[_L + 28 + l])
        f8 = np.int64(W[_L + 32 + l]); f9 = np.int64(W[_L + 36 + l])
        g0 = np.int64(W[_R + 0 + l]); g1 = np.int64(W[_R + 4 + l]); g2 = np.int64(W[_R + 8 + l])
        g3 = np.int64(W[_R + 12 + l]); g4 = np.int64(W[_R + 16 + l])
        g5 = np.int64(W[_R + 20 + l]); g6 = np.int64(W[_R + 24 + l]); g7 = np.int64(W[_R + 28 + l])
        g8 = np.int64(W[_R + 32 + l]); g9 = np.int64(W[_R + 36 + l])
        f1_2 = np.int64(np.int32(2 * f1)); f3_2 = np.int64(np.int32(2 * f3))
        f5_2 = np.int64(np.int32(2 * f5))
        f7_2 = np.int64(np.int32(2 * f7)); f9_2 = np.int64(np.int32(2 * f9))
        g1_19 = np.int64(np.int32(19 * g1)); g2_19 = np.int64(np.int32(19 * g2))
        g3_19 = np.int64(np.int32(19 * g3))
        g4_19 = np.int64(np.int32(19 * g4))
        g5_19 = np.int64(np.int32(19 * g5)); g6_19 = np.int64(np.int32(19 * g6))
        g7_19 = np.int64(np.int32(19 * g7))
        g8_19 = np.int64(np.int32(19 * g8)); g9_19 = np.int64(np.int32(19 * g9))
        h0 = (f0 * g0 + f1_2 * g9_19 + f2 * g8_19 + f3_2 * g7_19 + f4 * g6_19
              + f5_2 * g5_19 + f6 * g4_19 + f7_2 * g3_19 + f8 * g2_19 + f9_2 * g1_19)
        h1 = (f0 * g1 + f1 * g0 + f2 * g9_19 + f3 * g8_19 + f4 * g7_19
              + f5 * g6_19 + f6 * g5_19 + f7 * g4_19 + f8 * g3_19 + f9 * g2_19)
        h2 = (f0 * g2 + f1_2 * g1 + f2 * g0 + f3_2 * g9_19 + f4 * g8_19
              + f5_2 * g7_19 + f6 * g6_19 + f7_2 * g5_19 + f8 * g4_19 + f9_2 * g3_19)
        h3 = (f0 * g3 + f1 * g2 + f2 * g1 + f3 * g0 + f4 * g9_19
              + f5 * g8_19 + f6 * g7_19 + f7 * g6_19 + f8 * g5_19 + f9 * g4_19)
        h4 = (f0 * g4 + f1_2 * g3 + f2 * g2 + f3_2 * g1 + f4 * g0
              + f5_2 * g9_19 + f6 * g8_19 + f7_2 * g7_19 + f8 * g6_19 + f9_2 * g5_19)
        h5 = (f0 * g5 + f1 * g4 + f2 * g3 + f3 * g2 + f4 * g1
              + f5 * g0 + f6 * g9_19 + f7 * g8_19 + f8 * g7_19 + f9 * g6_19)
        h6 = (f0 * g6 + f1_2 * g5 + f2 * g4 + f3_2 * g3 + f4 * g2
              + f5_2 * g1 + f6 * g0 + f7_2 * g9_19 + f8 * g8_19 + f9_2 * g7_19)
        h7 = (f0 * g7 + f1 * g6 + f2 * g5 + f3 * g4 + f4 * g3
              + f5 * g2 + f6 * g1 + f7 * g0 + f8 * g9_19 + f9 * g8_19)
        h8 = (f0 * g8 + f1_2 * g7 + f2 * g6 + f3_2 * g5 + f4 * g4
              + f5_2 * g3 + f6 * g2 + f7_2 * g1 + f8 * g0 + f9_2 * g9_19)
        h9 = (f0 * g9 + f1 * g8 + f2 * g7 + f3 * g6 + f4 * g5
              + f5 * g4 + f6 * g3 + f7 * g2 + f8 * g1 + f9 * g0)
        c = (h0 + _B25) >> 26
        h1 += c
        h0 -= c << 26
        c = (h4 + _B25) >> 26
        h5 += c
        h4 -= c << 26
        c = (h1 + _B24) >> 25
        h2 += c
        h1 -= c << 25
        c = (h5 + _B24) >> 25
        h6 += c
        h5 -= c << 25
        c = (h2 + _B25) >> 26
        h3 += c
        h2 -= c << 26
        c = (h6 + _B25) >> 26
        h7 += c
        h6 -= c << 26
        c = (h3 + _B24) >> 25
        h4 += c
        h3 -= c << 25
        c = (h7 + _B24) >> 25
        h8 += c
        h7 -= c << 25
        c = (h4 + _B25) >> 26
        h5 += c
        h4 -= c << 26
        c = (h8 + _B25) >> 26
        h9 += c
        h8 -= c << 26
        c = (h9 + _B24) >> 25
        h0 += c * 19
        h9 -= c << 25
        c = (h0 + _B25) >> 26
        h1 += c
        h0 -= c << 26
        W[_H + 0 + l] = np.int32(h0); W[_H + 4 + l] = np.int32(h1); W[_H + 8 + l] = np.int32(h2)
        W[_H + 12 + l] = np.int32(h3); W[_H + 16 + l] = np.int32(h4)
        W[_H + 20 + l] = np.int32(h5); W[_H + 24 + l] = np.int32(h6); W[_H + 28 + l] = np.int32(h7)
        W[_H + 32 + l] = np.int32(h8); W[_H + 36 + l] = np.int32(h9)


@njit
def _ladder(F, e, W):
    """Montgomery ladder (RFC 7748 5) over the clamped scalar e[0:32] and u = row _X1 of F.

    The ladder state lives in the int32 lanes of S = W[_S:] (limb k of lane l at 4k + l):
    (x2, z2, x3, z3).  Each step runs three 4-lane field multiplications:
    [DA, CB, AA, BB], then [(DA+CB)^2, (DA-CB)^2, AA*BB, E*(BB + 121666 E)], then
    x1 * (DA-CB)^2 (one lane used).  Leaves x2 in row _X2 and z2 in row _Z2 of F.
    """
    for k in range(10):
        W[_S + 4 * k + 0] = 0
        W[_S + 4 * k + 1] = 0
        W[_S + 4 * k + 2] = np.int32(F[_X1, k])
        W[_S + 4 * k + 3] = 0
        W[_L + 4 * k + 0] = 0
        W[_R + 4 * k + 0] = 0
    W[_S + 0] = 1
    W[_S + 3] = 1
    swap = np.int32(0)
    for pos in range(254, -1, -1):
        b = np.int32((e[pos >> 3] >> (pos & 7)) & 1)
        swap ^= b
        _cswap_lanes(W, swap)
        swap = b
        for k in range(10):
            x2 = W[_S + 4 * k + 0]
            z2 = W[_S + 4 * k + 1]
            x3 = W[_S + 4 * k + 2]
            z3 = W[_S + 4 * k + 3]
            a = np.int32(x2 + z2)
            bb = np.int32(x2 - z2)
            W[_L + 4 * k + 0] = np.int32(x3 - z3)    # D
            W[_L + 4 * k + 1] = np.int32(x3 + z3)    # C
            W[_L + 4 * k + 2] = a
            W[_L + 4 * k + 3] = bb
            W[_R + 4 * k + 0] = a
            W[_R + 4 * k + 1] = bb
            W[_R + 4 * k + 2] = a
            W[_R + 4 * k + 3] = bb
        _fe_mul_lanes(W)                         # H = [DA, CB, AA, BB]
        _e_and_t(W)                              # L[3] = E, R[3] = BB + 121666 E
        for k in range(10):
            da = W[_H + 4 * k + 0]
            cb = W[_H + 4 * k + 1]
            p = np.int32(da + cb)
            m = np.int32(da - cb)
            W[_L + 4 * k + 0] = p
            W[_R + 4 * k + 0] = p
            W[_L + 4 * k + 1] = m
            W[_R + 4 * k + 1] = m
            W[_L + 4 * k + 2] = W[_H + 4 * k + 2]    # AA
            W[_R + 4 * k + 2] = W[_H + 4 * k + 3]    # BB
        _fe_mul_lanes(W)                         # H = [x3', (DA-CB)^2, x2', z2']
        for k in range(10):
            W[_S + 4 * k + 0] = W[_H + 4 * k + 2]
            W[_S + 4 * k + 1] = W[_H + 4 * k + 3]
            W[_S + 4 * k + 2] = W[_H + 4 * k + 0]
            W[_L + 4 * k + 0] = np.int32(F[_X1, k])
            W[_R + 4 * k + 0] = W[_H + 4 * k + 1]
        _fe_mul_lanes(W)                         # H[0] = z3' = x1 (DA-CB)^2
        for k in range(10):
            W[_S + 4 * k + 3] = W[_H + 4 * k + 0]
    _cswap_lanes(W, swap)
    swap = 0
    for k in range(10):
        F[_X2, k] = W[_S + 4 * k + 0]
        F[_Z2, k] = W[_S + 4 * k + 1]


@njit
def _cswap_lanes(W, swap):
    """Swap lanes (0, 1) with (2, 3) of S = W[_S:] iff swap == 1, without a branch."""
    mask = -swap
    for k in range(10):
        t = mask & (W[_S + 4 * k + 0] ^ W[_S + 4 * k + 2])
        W[_S + 4 * k + 0] ^= t
        W[_S + 4 * k + 2] ^= t
        t = mask & (W[_S + 4 * k + 1] ^ W[_S + 4 * k + 3])
        W[_S + 4 * k + 1] ^= t
        W[_S + 4 * k + 3] ^= t


@njit
def _e_and_t(W):
    """From H = [DA, CB, AA, BB]: lane 3 of L = E = AA - BB, lane 3 of R = BB + 121666 E."""
    for k in range(10):
        W[_L + 4 * k + 3] = W[_H + 4 * k + 2] - W[_H + 4 * k + 3]
    e0 = np.int64(W[_L + 3]); e1 = np.int64(W[_L + 7]); e2 = np.int64(W[_L + 11])
    e3 = np.int64(W[_L + 15]); e4 = np.int64(W[_L + 19]); e5 = np.int64(W[_L + 23])
    e6 = np.int64(W[_L + 27]); e7 = np.int64(W[_L + 31]); e8 = np.int64(W[_L + 35])
    e9 = np.int64(W[_L + 39])
    h0, h1, h2, h3, h4, h5, h6, h7, h8, h9 = _carry121666(e0, e1, e2, e3, e4, e5, e6, e7, e8, e9)
    W[_R + 3] = np.int32(h0 + W[_H + 3]); W[_R + 7] = np.int32(h1 + W[_H + 7])
    W[_R + 11] = np.int32(h2 + W[_H + 11]); W[_R + 15] = np.int32(h3 + W[_H + 15])
    W[_R + 19] = np.int32(h4 + W[_H + 19]); W[_R + 23] = np.int32(h5 + W[_H + 23])
    W[_R + 27] = np.int32(h6 + W[_H + 27]); W[_R + 31] = np.int32(h7 + W[_H + 31])
    W[_R + 35] = np.int32(h8 + W[_H + 35]); W[_R + 39] = np.int32(h9 + W[_H + 39])


@secret_jit(cache=True, nogil=True, secret=('scalar',))
def x25519_kernel(out, scalar, u):
    """out[0:32] = X25519(scalar[0:32], u[0:32]) (RFC 7748 5); all-zero for low-order u."""
    if out.size != 32:
        raise ValueError("out must be 32 bytes")
    if scalar.size != 32:
        raise ValueError("scalar must be 32 bytes")
    if u.size != 32:
        raise ValueError("u must be 32 bytes")
    F = np.zeros((_NF, 10), np.int64)
    e = np.empty(32, np.uint8)
    W = np.zeros(_W_SIZE, np.int32)
    for i in range(32):
        e[i] = scalar[i]
    e[0] &= np.uint8(248)
    e[31] &= np.uint8(127)
    e[31] |= np.uint8(64)
    _fe_frombytes(F, _X1, u)
    _ladder(F, e, W)
    _fe_invert(F, _Z2, _Z2)
    _fe_mul(F, _X2, _X2, _Z2)
    _fe_tobytes(out, np.int64(0), F, _X2)
    wipe(F)
    wipe(e)
    wipe(W)


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_X25519 = api_entry(x25519_kernel, "_x25519_api", OUT, IN, IN)
_x25519_api = _X25519.kernel


def x25519(scalar, u):
    """X25519(scalar, u) -> 32 bytes (RFC 7748).  A low-order u gives 32 zero bytes."""
    if (type(scalar) is bytes and type(u) is bytes and len(scalar) == KEY_SIZE
            and len(u) == KEY_SIZE):
        call = _X25519.fast
    else:
        scalar = as_buf_sized(scalar, "scalar", KEY_SIZE)
        u = as_buf_sized(u, "u", KEY_SIZE)
        call = _X25519.call
    out = ZERO * KEY_SIZE
    call(out, scalar, u)
    return out


def public_key(scalar):
    """X25519 public key: X25519(scalar, 9)."""
    return x25519(scalar, BASEPOINT)
