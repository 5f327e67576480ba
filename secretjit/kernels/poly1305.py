"""Poly1305 one-time authenticator (RFC 8439 2.5) as a constant-time numba kernel.

Arithmetic uses five 26-bit limbs in uint64 (poly1305-donna-32 style, every product
fits in 64 bits).  Long inputs are processed ``LANES`` blocks at a time with
independent accumulators multiplied by r**LANES (the last chunk by r**(LANES-lane)),
in explicit vector IR (:func:`secretjit.kernels._poly_simd.poly_lanes`).

State layout (uint64 array of ``STATE_SIZE`` words, see ``_poly_init``):
``[0:5]`` r, ``[5:10]`` h, ``[10:14]`` s (the 128-bit pad as four 32-bit words).
The bulk path allocates (and wipes) its own uint32 lane scratch.
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._poly_simd import MUL_L, MUL_N, poly_lanes, pv_size
from ._util import IN, OUT, ZERO, api_entry, as_buf, as_buf_sized

__all__ = ["poly1305", "poly1305_mac", "poly1305_verify_kernel", "KEY_SIZE", "TAG_SIZE",
           "STATE_SIZE", "LANES"]

KEY_SIZE = 32
TAG_SIZE = 16
LANES = 16

_R = 0
_H = 5
_S = 10
STATE_SIZE = 14
BULK_MIN_BLOCKS = 2 * LANES      # below this the serial path is used
# bulk scratch (uint32): lane accumulators, then two 5-row multiplier tables (_poly_simd)
_MUL_N = MUL_N * LANES
_MUL_L = MUL_L * LANES
_PV_SIZE = pv_size(LANES)

_M26 = np.uint64(0x3FFFFFF)
_M32 = np.uint64(0xFFFFFFFF)
_U26 = np.uint64(26)
_FIVE = np.uint64(5)
_HIBIT = np.uint64(1 << 24)


@njit
def _ld32(a, off):
    return (np.uint64(a[off]) | (np.uint64(a[off + 1]) << np.uint64(8))
            | (np.uint64(a[off + 2]) << np.uint64(16)) | (np.uint64(a[off + 3]) << np.uint64(24)))


@njit
def _poly_init(ps, key):
    """Initialise state ps (uint64[STATE_SIZE]) from a 32-byte one-time key (clamps r)."""
    for i in range(STATE_SIZE):
        ps[i] = np.uint64(0)
    ps[_R + 0] = _ld32(key, 0) & np.uint64(0x3FFFFFF)
    ps[_R + 1] = (_ld32(key, 3) >> np.uint64(2)) & np.uint64(0x3FFFF03)
    ps[_R + 2] = (_ld32(key, 6) >> np.uint64(4)) & np.uint64(0x3FFC0FF)
    ps[_R + 3] = (_ld32(key, 9) >> np.uint64(6)) & np.uint64(0x3F03FFF)
    ps[_R + 4] = (_ld32(key, 12) >> np.uint64(8)) & np.uint64(0x00FFFFF)
    for i in range(4):
        ps[_S + i] = _ld32(key, 16 + 4 * i)


@njit(inline="always")
def _mulmod(h0, h1, h2, h3, h4, r0, r1, r2, r3, r4):
    """(h * r) mod 2^130-5, partially reduced (limbs < 2^26 except limb1 < 2^26 + 2^12)."""
    s1 = r1 * _FIVE
    s2 = r2 * _FIVE
    s3 = r3 * _FIVE
    s4 = r4 * _FIVE
    d0 = h0 * r0 + h1 * s4 + h2 * s3 + h3 * s2 + h4 * s1
    d1 = h0 * r1 + h1 * r0 + h2 * s4 + h3 * s3 + h4 * s2
    d2 = h0 * r2 + h1 * r1 + h2 * r0 + h3 * s4 + h4 * s3
    d3 = h0 * r3 + h1 * r2 + h2 * r1 + h3 * r0 + h4 * s4
    d4 = h0 * r4 + h1 * r3 + h2 * r2 + h3 * r1 + h4 * r0
    c = d0 >> _U26
    h0 = d0 & _M26
    d1 += c
    c = d1 >> _U26
    h1 = d1 & _M26
    d2 += c
    c = d2 >> _U26
    h2 = d2 & _M26
    d3 += c
    c = d3 >> _U26
    h3 = d3 & _M26
    d4 += c
    c = d4 >> _U26
    h4 = d4 & _M26
    h0 += c * _FIVE
    c = h0 >> _U26
    h0 &= _M26
    h1 += c
    return h0, h1, h2, h3, h4


@njit
def _blocks_serial(ps, data, off, nblocks, hibit):
    """Absorb nblocks full 16-byte blocks of data[off:] into h (hibit: 2^24 or 0)."""
    r0 = ps[_R]; r1 = ps[_R + 1]; r2 = ps[_R + 2]; r3 = ps[_R + 3]; r4 = ps[_R + 4]
    h0 = ps[_H]; h1 = ps[_H + 1]; h2 = ps[_H + 2]; h3 = ps[_H + 3]; h4 = ps[_H + 4]
    for b in range(nblocks):
        p = off + 16 * b
        t0 = _ld32(data, p)
        t1 = _ld32(data, p + 4)
        t2 = _ld32(data, p + 8)
        t3 = _ld32(data, p + 12)
        h0 += t0 & _M26
        h1 += ((t0 >> np.uint64(26)) | (t1 << np.uint64(6))) & _M26
        h2 += ((t1 >> np.uint64(20)) | (t2 << np.uint64(12))) & _M26
        h3 += ((t2 >> np.uint64(14)) | (t3 << np.uint64(18))) & _M26
        h4 += (t3 >> np.uint64(8)) | hibit
        h0, h1, h2, h3, h4 = _mulmod(h0, h1, h2, h3, h4, r0, r1, r2, r3, r4)
    ps[_H] = h0; ps[_H + 1] = h1; ps[_H + 2] = h2; ps[_H + 3] = h3; ps[_H + 4] = h4


@njit
def _set_mul(pv, mul, l, p0, p1, p2, p3, p4):
    pv[mul + 0 * LANES + l] = np.uint32(p0)
    pv[mul + 1 * LANES + l] = np.uint32(p1)
    pv[mul + 2 * LANES + l] = np.uint32(p2)
    pv[mul + 3 * LANES + l] = np.uint32(p3)
    pv[mul + 4 * LANES + l] = np.uint32(p4)


@njit
def _poly_blocks(ps, data, off, nblocks):
    """Absorb nblocks full 16-byte blocks (hibit set) of data[off:] into the state."""
    if nblocks < BULK_MIN_BLOCKS:
        _blocks_serial(ps, data, off, nblocks, _HIBIT)
        return
    nchunks = nblocks // LANES
    pv = np.zeros(_PV_SIZE, np.uint32)
    # multipliers: r^LANES in every lane (_MUL_N) and r^(LANES - l) in lane l (_MUL_L)
    r0 = ps[_R]; r1 = ps[_R + 1]; r2 = ps[_R + 2]; r3 = ps[_R + 3]; r4 = ps[_R + 4]
    p0 = r0; p1 = r1; p2 = r2; p3 = r3; p4 = r4
    for k in range(1, LANES + 1):
        _set_mul(pv, _MUL_L, LANES - k, p0, p1, p2, p3, p4)
        if k < LANES:
            p0, p1, p2, p3, p4 = _mulmod(p0, p1, p2, p3, p4, r0, r1, r2, r3, r4)
    for l in range(LANES):
        _set_mul(pv, _MUL_N, l, p0, p1, p2, p3, p4)
    for i in range(5):
        pv[i * LANES] = np.uint32(ps[_H + i])            # h joins the first block of lane 0
    poly_lanes(pv, data[off:off + 16 * LANES * nchunks], LANES)
    # h = sum of the lanes (each limb < 2^27, so the sums fit easily), then one carry pass
    h0 = np.uint64(0); h1 = np.uint64(0); h2 = np.uint64(0); h3 = np.uint64(0); h4 = np.uint64(0)
    for l in range(LANES):
        h0 += np.uint64(pv[0 * LANES + l])
        h1 += np.uint64(pv[1 * LANES + l])
        h2 += np.uint64(pv[2 * LANES + l])
        h3 += np.uint64(pv[3 * LANES + l])
        h4 += np.uint64(pv[4 * LANES + l])
    wipe(pv)
    c = h0 >> _U26
    h0 &= _M26
    h1 += c
    c = h1 >> _U26
    h1 &= _M26
    h2 += c
    c = h2 >> _U26
    h2 &= _M26
    h3 += c
    c = h3 >> _U26
    h3 &= _M26
    h4 += c
    c = h4 >> _U26
    h4 &= _M26
    h0 += c * _FIVE
    c = h0 >> _U26
    h0 &= _M26
    h1 += c
    ps[_H] = h0; ps[_H + 1] = h1; ps[_H + 2] = h2; ps[_H + 3] = h3; ps[_H + 4] = h4
    done = nchunks * LANES
    _blocks_serial(ps, data, off + 16 * done, nblocks - done, _HIBIT)


@njit
def _poly_tail(ps, data, off, n, buf, pad_full):
    """Absorb a final partial block data[off:off+n] (0 < n < 16).

    pad_full=False: RFC 8439 message tail (append 0x01, no 2^128 bit).
    pad_full=True: AEAD zero padding to a full 16-byte block (2^128 bit set).
    buf: uint8[16] scratch (zeroed on return).
    """
    for i in range(16):
        buf[i] = 0
    for i in range(n):
        buf[i] = data[off + i]
    if pad_full:
        _blocks_serial(ps, buf, 0, 1, _HIBIT)
    else:
        buf[n] = 1
        _blocks_serial(ps, buf, 0, 1, np.uint64(0))
    for i in range(16):
        buf[i] = 0


@njit
def _poly_update_padded(ps, data, off, n, buf):
    """Absorb data[off:off+n] zero-padded to a multiple of 16 bytes (the AEAD construction)."""
    nb = n // 16
    _poly_blocks(ps, data, off, nb)
    rem = n - 16 * nb
    if rem > 0:
        _poly_tail(ps, data, off + 16 * nb, rem, buf, True)


@njit
def _poly_message(ps, data, off, n, buf):
    """Absorb a whole message data[off:off+n] (RFC 8439 padding of the last block)."""
    nb = n // 16
    _poly_blocks(ps, data, off, nb)
    rem = n - 16 * nb
    if rem > 0:
        _poly_tail(ps, data, off + 16 * nb, rem, buf, False)


@njit
def _poly_finish(ps, out, ooff):
    """out[ooff:ooff+16] = (h mod 2^130-5 + s) mod 2^128."""
    h0 = ps[_H]; h1 = ps[_H + 1]; h2 = ps[_H + 2]; h3 = ps[_H + 3]; h4 = ps[_H + 4]
    c = h1 >> _U26
    h1 &= _M26
    h2 += c
    c = h2 >> _U26
    h2 &= _M26
    h3 += c
    c = h3 >> _U26
    h3 &= _M26
    h4 += c
    c = h4 >> _U26
    h4 &= _M26
    h0 += c * _FIVE
    c = h0 >> _U26
    h0 &= _M26
    h1 += c
    # g = h + 5 - 2^130; select g if it did not borrow (constant time)
    g0 = h0 + _FIVE
    c = g0 >> _U26
    g0 &= _M26
    g1 = h1 + c
    c = g1 >> _U26
    g1 &= _M26
    g2 = h2 + c
    c = g2 >> _U26
    g2 &= _M26
    g3 = h3 + c
    c = g3 >> _U26
    g3 &= _M26
    g4 = (h4 + c - np.uint64(1 << 26)) & _M32
    mask = ((g4 >> np.uint64(31)) - np.uint64(1)) & _M32   # all ones iff no borrow
    nmask = (~mask) & _M32
    h0 = (h0 & nmask) | (g0 & mask)
    h1 = (h1 & nmask) | (g1 & mask)
    h2 = (h2 & nmask) | (g2 & mask)
    h3 = (h3 & nmask) | (g3 & mask)
    h4 = (h4 & nmask) | (g4 & mask)
    # h mod 2^128 as four 32-bit words
    w0 = (h0 | (h1 << np.uint64(26))) & _M32
    w1 = ((h1 >> np.uint64(6)) | (h2 << np.uint64(20))) & _M32
    w2 = ((h2 >> np.uint64(12)) | (h3 << np.uint64(14))) & _M32
    w3 = ((h3 >> np.uint64(18)) | (h4 << np.uint64(8))) & _M32
    f = w0 + ps[_S]
    w0 = f & _M32
    f = w1 + ps[_S + 1] + (f >> np.uint64(32))
    w1 = f & _M32
    f = w2 + ps[_S + 2] + (f >> np.uint64(32))
    w2 = f & _M32
    f = w3 + ps[_S + 3] + (f >> np.uint64(32))
    w3 = f & _M32
    for i in range(4):
        out[ooff + i] = np.uint8((w0 >> np.uint64(8 * i)) & np.uint64(0xFF))
        out[ooff + 4 + i] = np.uint8((w1 >> np.uint64(8 * i)) & np.uint64(0xFF))
        out[ooff + 8 + i] = np.uint8((w2 >> np.uint64(8 * i)) & np.uint64(0xFF))
        out[ooff + 12 + i] = np.uint8((w3 >> np.uint64(8 * i)) & np.uint64(0xFF))


@njit
def _ct_equal16(a, aoff, b, boff):
    """1 if a[aoff:aoff+16] == b[boff:boff+16] else 0, without data-dependent branches."""
    acc = np.uint32(0)
    for i in range(16):
        acc |= np.uint32(a[aoff + i] ^ b[boff + i])
    # acc in [0, 255]: (acc - 1) >> 31 is 1 iff acc == 0
    return np.int64((np.uint32(acc - np.uint32(1)) >> np.uint32(31)) & np.uint32(1))


@secret_jit(cache=True, nogil=True, secret=('key', 'msg'))
def poly1305_mac(key, msg, out):
    """out[0:16] = Poly1305(key[32], msg) (RFC 8439 2.5)."""
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if out.size != 16:
        raise ValueError("out must be 16 bytes")
    ps = np.empty(STATE_SIZE, np.uint64)
    buf = np.empty(16, np.uint8)
    _poly_init(ps, key)
    _poly_message(ps, msg, 0, msg.size, buf)
    _poly_finish(ps, out, 0)
    wipe(ps)
    wipe(buf)


@secret_jit(cache=True, nogil=True, secret=('key', 'msg'))
def poly1305_verify_kernel(key, msg, tag):
    """Return 1 if Poly1305(key, msg) == tag[0:16] (constant-time compare), else 0."""
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if tag.size != 16:
        raise ValueError("tag must be 16 bytes")
    ps = np.empty(STATE_SIZE, np.uint64)
    buf = np.empty(16, np.uint8)
    mac = np.empty(16, np.uint8)
    _poly_init(ps, key)
    _poly_message(ps, msg, 0, msg.size, buf)
    _poly_finish(ps, mac, 0)
    ok = _ct_equal16(mac, 0, tag, 0)
    wipe(ps)
    wipe(buf)
    wipe(mac)
    return ok


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_POLY1305 = api_entry(poly1305_mac, "_poly1305_api", IN, IN, OUT)
_poly1305_api = _POLY1305.kernel


def poly1305(key, msg):
    """Poly1305 tag (16 bytes) of ``msg`` under a 32-byte one-time ``key``."""
    if type(key) is bytes and type(msg) is bytes and len(key) == KEY_SIZE:
        call = _POLY1305.fast
    else:
        key = as_buf_sized(key, "key", KEY_SIZE)
        msg = as_buf(msg, "msg")
        call = _POLY1305.call
    out = ZERO * TAG_SIZE
    call(key, msg, out)
    return out
