"""X25519 Diffie-Hellman (RFC 7748) as a constant-time numba kernel.

Field elements mod 2^255-19 are five uint64 limbs of 51 bits (fiat-crypto's 64-bit
layout), multiplied with 64x64->128-bit products by the LLVM IR intrinsics of
:mod:`secretjit.kernels._fe51`.  All field elements live in one uint64 scratch array,
wiped before return.  The Montgomery ladder uses a masked conditional swap; the scalar
bits select nothing but masks.  Inputs: the scalar is clamped, the top bit of u is
masked, non-canonical u (>= p) is accepted; low-order points yield the all-zero output
(returned, not raised).
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._fe51 import LIMBS, fe_add, fe_cswap, fe_mul, fe_mul121666, fe_sq, fe_sub
from ._util import IN, OUT, ZERO, api_entry, as_buf_sized

__all__ = ["x25519", "public_key", "x25519_kernel", "KEY_SIZE", "BASEPOINT"]

KEY_SIZE = 32
BASEPOINT = bytes([9]) + bytes(31)

_M51 = np.uint64((1 << 51) - 1)
_U64_0 = np.uint64(0)

# Element offsets in the scratch array F (LIMBS uint64 each).  They are numpy scalars,
# not Python ints: numba would compile a separate specialization of every helper for
# each distinct literal int argument.
_X1, _X2, _Z2, _X3, _Z3, _A, _B, _C, _D, _DA, _CB, _AA, _BB, _E, _T0, _T1, _T2, _T3 = (
    np.int64(LIMBS * i) for i in range(18))
_F_SIZE = LIMBS * 18


@njit
def _fe_sqn(F, h, f, n):
    """F[h] = F[f]^(2^n), n >= 1."""
    fe_sq(F, h, f)
    for _ in range(n - 1):
        fe_sq(F, h, h)


@njit
def _word(s, off):
    """The little-endian uint64 at s[off:off+8]."""
    v = _U64_0
    for i in range(8):
        v |= np.uint64(s[off + i]) << np.uint64(8 * i)
    return v


@njit
def _fe_frombytes(F, h, s):
    """F[h] = the 255-bit little-endian integer s[0:32], top bit masked (limbs < 2^51)."""
    w0 = _word(s, 0)
    w1 = _word(s, 8)
    w2 = _word(s, 16)
    w3 = _word(s, 24)
    F[h] = w0 & _M51
    F[h + 1] = ((w0 >> np.uint64(51)) | (w1 << np.uint64(13))) & _M51
    F[h + 2] = ((w1 >> np.uint64(38)) | (w2 << np.uint64(26))) & _M51
    F[h + 3] = ((w2 >> np.uint64(25)) | (w3 << np.uint64(39))) & _M51
    F[h + 4] = (w3 >> np.uint64(12)) & _M51


@njit
def _put_word(out, off, w):
    for i in range(8):
        out[off + i] = np.uint8((w >> np.uint64(8 * i)) & np.uint64(255))


@njit
def _fe_tobytes(out, F, h):
    """out[0:32] = the canonical encoding of F[h] (tight: value < 2p), fully reduced mod p."""
    s51 = np.uint64(51)
    q = (F[h] + np.uint64(19)) >> s51          # q = 1 iff F[h] >= p: the carry out of F[h] + 19
    for i in range(1, LIMBS):
        q = (F[h + i] + q) >> s51
    F[h] += np.uint64(19) * q                  # F[h] - q p = F[h] + 19 q - q 2^255
    for i in range(LIMBS - 1):
        F[h + i + 1] += F[h + i] >> s51
        F[h + i] &= _M51
    F[h + 4] &= _M51                           # drops the 2^255
    _put_word(out, 0, F[h] | (F[h + 1] << s51))
    _put_word(out, 8, (F[h + 1] >> np.uint64(13)) | (F[h + 2] << np.uint64(38)))
    _put_word(out, 16, (F[h + 2] >> np.uint64(26)) | (F[h + 3] << np.uint64(25)))
    _put_word(out, 24, (F[h + 3] >> np.uint64(39)) | (F[h + 4] << np.uint64(12)))
    q = _U64_0


@njit
def _fe_invert(F, out, z):
    """F[out] = F[z]^(p-2) (the fixed addition chain); clobbers _T0.._T3 (out may be z)."""
    fe_sq(F, _T0, z)                     # z^2
    _fe_sqn(F, _T1, _T0, np.int64(2))    # z^8
    fe_mul(F, _T1, z, _T1)               # z^9
    fe_mul(F, _T0, _T0, _T1)             # z^11
    fe_sq(F, _T2, _T0)                   # z^22
    fe_mul(F, _T1, _T1, _T2)             # z^(2^5 - 1)
    _fe_sqn(F, _T2, _T1, np.int64(5))
    fe_mul(F, _T1, _T2, _T1)             # 2^10 - 1
    _fe_sqn(F, _T2, _T1, np.int64(10))
    fe_mul(F, _T2, _T2, _T1)             # 2^20 - 1
    _fe_sqn(F, _T3, _T2, np.int64(20))
    fe_mul(F, _T2, _T3, _T2)             # 2^40 - 1
    _fe_sqn(F, _T2, _T2, np.int64(10))
    fe_mul(F, _T1, _T2, _T1)             # 2^50 - 1
    _fe_sqn(F, _T2, _T1, np.int64(50))
    fe_mul(F, _T2, _T2, _T1)             # 2^100 - 1
    _fe_sqn(F, _T3, _T2, np.int64(100))
    fe_mul(F, _T2, _T3, _T2)             # 2^200 - 1
    _fe_sqn(F, _T2, _T2, np.int64(50))
    fe_mul(F, _T1, _T2, _T1)             # 2^250 - 1
    _fe_sqn(F, _T1, _T1, np.int64(5))    # 2^255 - 2^5
    fe_mul(F, out, _T1, _T0)             # 2^255 - 21 = p - 2


@njit
def _ladder_step(F):
    """(x2, z2, x3, z3) <- (2 P2, P2 + P3) (RFC 7748 5; x1 is the difference P3 - P2)."""
    fe_add(F, _A, _X2, _Z2)
    fe_sub(F, _B, _X2, _Z2)
    fe_add(F, _C, _X3, _Z3)
    fe_sub(F, _D, _X3, _Z3)
    fe_mul(F, _DA, _D, _A)
    fe_mul(F, _CB, _C, _B)
    fe_sq(F, _AA, _A)
    fe_sq(F, _BB, _B)
    fe_add(F, _X3, _DA, _CB)
    fe_sq(F, _X3, _X3)                   # x3 = (DA + CB)^2
    fe_sub(F, _Z3, _DA, _CB)
    fe_sq(F, _Z3, _Z3)
    fe_mul(F, _Z3, _Z3, _X1)             # z3 = x1 (DA - CB)^2
    fe_mul(F, _X2, _AA, _BB)             # x2 = AA BB
    fe_sub(F, _E, _AA, _BB)
    fe_mul121666(F, _Z2, _E)
    fe_add(F, _Z2, _Z2, _BB)
    fe_mul(F, _Z2, _Z2, _E)              # z2 = E (BB + 121666 E) = E (AA + 121665 E)


@njit
def _ladder(F, e):
    """Montgomery ladder over the clamped scalar e[0:32] from u = F[_X1]; leaves x2, z2."""
    for i in range(LIMBS):
        F[_X2 + i] = _U64_0
        F[_Z2 + i] = _U64_0
        F[_X3 + i] = F[_X1 + i]
        F[_Z3 + i] = _U64_0
    F[_X2] = np.uint64(1)
    F[_Z3] = np.uint64(1)
    swap = _U64_0
    for pos in range(254, -1, -1):
        b = np.uint64((e[pos >> 3] >> (pos & 7)) & 1)
        swap ^= b
        fe_cswap(F, _X2, _X3, swap)
        fe_cswap(F, _Z2, _Z3, swap)
        swap = b
        _ladder_step(F)
    fe_cswap(F, _X2, _X3, swap)
    fe_cswap(F, _Z2, _Z3, swap)
    swap = _U64_0


@secret_jit(cache=True, nogil=True, secret=('scalar',))
def x25519_kernel(out, scalar, u):
    """out[0:32] = X25519(scalar[0:32], u[0:32]) (RFC 7748 5); all-zero for low-order u."""
    if out.size != 32:
        raise ValueError("out must be 32 bytes")
    if scalar.size != 32:
        raise ValueError("scalar must be 32 bytes")
    if u.size != 32:
        raise ValueError("u must be 32 bytes")
    F = np.zeros(_F_SIZE, np.uint64)
    e = np.empty(32, np.uint8)
    for i in range(32):
        e[i] = scalar[i]
    e[0] &= np.uint8(248)
    e[31] &= np.uint8(127)
    e[31] |= np.uint8(64)
    _fe_frombytes(F, _X1, u)
    _ladder(F, e)
    _fe_invert(F, _Z2, _Z2)
    fe_mul(F, _X2, _X2, _Z2)
    _fe_tobytes(out, F, _X2)
    wipe(F)
    wipe(e)


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
