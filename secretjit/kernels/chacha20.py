"""ChaCha20 stream cipher and HChaCha20 (RFC 8439, draft-irtf-cfrg-xchacha) as constant-time numba kernels.

The bulk path computes ``LANES`` (16) blocks at once, the state held as 16
vectors of ``LANES`` words in registers (one zmm each with AVX-512), in explicit
LLVM vector IR (:func:`secretjit.kernels._simd.chacha_lanes`); tails of up to
two blocks use the one-block scalar path.
The block counter is 32 bits (RFC 8439): it wraps modulo 2**32 in the
low-level kernel; the Python API refuses a counter range that would wrap.
"""
import numpy as np
from numba import njit, types

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._simd import chacha_lanes
from ._util import (IN, OUT, ZERO, SMALL, api_entry, as_buf, as_buf_sized, as_int,
                    uninit_bytes)

__all__ = ["chacha20", "hchacha20", "chacha20_xor", "chacha20_block", "hchacha20_kernel",
           "LANES", "KEY_SIZE", "NONCE_SIZE"]

KEY_SIZE = 32
NONCE_SIZE = 12
LANES = 16                     # blocks per vectorized chunk
_CHUNK = 64 * LANES            # bytes per chunk
_SCALAR_TAIL = 128             # tails up to this many bytes use the one-block path

_C0 = np.uint32(0x61707865)
_C1 = np.uint32(0x3320646E)
_C2 = np.uint32(0x79622D32)
_C3 = np.uint32(0x6B206574)


@njit(inline="always")
def _rotl(v, n):
    return np.uint32((v << np.uint32(n)) | (v >> np.uint32(32 - n)))


@njit(inline="always")
def _qr(a, b, c, d):
    a = np.uint32(a + b)
    d = _rotl(np.uint32(d ^ a), 16)
    c = np.uint32(c + d)
    b = _rotl(np.uint32(b ^ c), 12)
    a = np.uint32(a + b)
    d = _rotl(np.uint32(d ^ a), 8)
    c = np.uint32(c + d)
    b = _rotl(np.uint32(b ^ c), 7)
    return a, b, c, d


@njit
def _load32(a, off):
    return np.uint32(np.uint32(a[off]) | (np.uint32(a[off + 1]) << np.uint32(8))
                     | (np.uint32(a[off + 2]) << np.uint32(16)) | (np.uint32(a[off + 3]) << np.uint32(24)))


@njit
def _store32(a, off, v):
    a[off] = np.uint8(v & np.uint32(0xFF))
    a[off + 1] = np.uint8((v >> np.uint32(8)) & np.uint32(0xFF))
    a[off + 2] = np.uint8((v >> np.uint32(16)) & np.uint32(0xFF))
    a[off + 3] = np.uint8((v >> np.uint32(24)) & np.uint32(0xFF))


@njit
def _setup(st, key, nonce, counter):
    """Fill the 16-word input state (key: 32 bytes, nonce: 12 bytes)."""
    st[0] = _C0
    st[1] = _C1
    st[2] = _C2
    st[3] = _C3
    for i in range(8):
        st[4 + i] = _load32(key, 4 * i)
    st[12] = np.uint32(counter)
    for i in range(3):
        st[13 + i] = _load32(nonce, 4 * i)


@njit
def _rounds_scalar(x):
    """Apply the 20 ChaCha rounds in place to a 16-word state."""
    x0 = x[0]; x1 = x[1]; x2 = x[2]; x3 = x[3]
    x4 = x[4]; x5 = x[5]; x6 = x[6]; x7 = x[7]
    x8 = x[8]; x9 = x[9]; x10 = x[10]; x11 = x[11]
    x12 = x[12]; x13 = x[13]; x14 = x[14]; x15 = x[15]
    for _ in range(10):
        x0, x4, x8, x12 = _qr(x0, x4, x8, x12)
        x1, x5, x9, x13 = _qr(x1, x5, x9, x13)
        x2, x6, x10, x14 = _qr(x2, x6, x10, x14)
        x3, x7, x11, x15 = _qr(x3, x7, x11, x15)
        x0, x5, x10, x15 = _qr(x0, x5, x10, x15)
        x1, x6, x11, x12 = _qr(x1, x6, x11, x12)
        x2, x7, x8, x13 = _qr(x2, x7, x8, x13)
        x3, x4, x9, x14 = _qr(x3, x4, x9, x14)
    x[0] = x0; x[1] = x1; x[2] = x2; x[3] = x3
    x[4] = x4; x[5] = x5; x[6] = x6; x[7] = x7
    x[8] = x8; x[9] = x9; x[10] = x10; x[11] = x11
    x[12] = x12; x[13] = x13; x[14] = x14; x[15] = x15


@njit
def _keystream_chunk(st, ctr, ks32):
    """Write LANES keystream blocks (counters ctr, ctr+1, ... mod 2**32) into ks32 (16*LANES words)."""
    chacha_lanes(st, np.uint32(ctr), ks32, LANES)


@njit
def _keystream_block(st, ctr, x, ks32):
    """Write one keystream block (counter ctr) into ks32[0:16]; x: scratch (>= 16 words)."""
    for i in range(16):
        x[i] = st[i]
    x[12] = ctr
    _rounds_scalar(x)
    for i in range(16):
        ks32[i] = np.uint32(x[i] + st[i])
    ks32[12] = np.uint32(x[12] + ctr)


@njit
def _xor_into(d, s, ks):
    """d[j] = s[j] ^ ks[j] for j < d.size: slices of their own, so that the indices are
    known to be non-negative (no wraparound selects) and the loop vectorizes."""
    for j in range(d.size):
        d[j] = s[j] ^ ks[j]


@njit
def _xor_stream(st, x, ks, counter, src, soff, dst, doff, n):
    """dst[doff:doff+n] = src[soff:soff+n] ^ keystream(counter...). ks: uint8[64*LANES] scratch,
    x: uint32[16] scratch (the one-block path of short tails).

    Returns nothing; the caller wipes st, x and ks.
    """
    ks32 = ks.view(np.uint32)
    ctr = np.uint32(counter)
    pos = 0
    while n - pos >= _CHUNK:
        _keystream_chunk(st, ctr, ks32)
        _xor_into(dst[doff + pos:doff + pos + _CHUNK], src[soff + pos:soff + pos + _CHUNK], ks)
        pos += _CHUNK
        ctr = np.uint32(ctr + np.uint32(LANES))
    if n - pos > _SCALAR_TAIL:
        _keystream_chunk(st, ctr, ks32)
        _xor_into(dst[doff + pos:doff + n], src[soff + pos:soff + n], ks)
    else:                                # short tail: only the blocks needed, one at a time
        while pos < n:
            _keystream_block(st, ctr, x, ks32)
            take = min(64, n - pos)
            _xor_into(dst[doff + pos:doff + pos + take], src[soff + pos:soff + pos + take], ks)
            pos += take
            ctr = np.uint32(ctr + np.uint32(1))


@njit
def _hchacha(key, nonce16, out, x):
    """HChaCha20: out[0:32] = subkey from a 32-byte key and 16-byte nonce. x: uint32[16] scratch."""
    x[0] = _C0
    x[1] = _C1
    x[2] = _C2
    x[3] = _C3
    for i in range(8):
        x[4 + i] = _load32(key, 4 * i)
    for i in range(4):
        x[12 + i] = _load32(nonce16, 4 * i)
    _rounds_scalar(x)
    for i in range(4):
        _store32(out, 4 * i, x[i])
        _store32(out, 16 + 4 * i, x[12 + i])


@secret_jit(cache=True, nogil=True, secret=('key', 'src'))
def chacha20_xor(key, nonce, counter, src, dst):
    """dst = src XOR ChaCha20(key, nonce) keystream starting at block ``counter`` (RFC 8439).

    key: uint8[32], nonce: uint8[12], counter: int (taken mod 2**32), src/dst: uint8 arrays of
    equal size (dst may be src for in-place operation).
    """
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if nonce.size != 12:
        raise ValueError("nonce must be 12 bytes")
    if dst.size != src.size:
        raise ValueError("dst must have the same size as src")
    st = np.empty(16, np.uint32)
    x = np.empty(16, np.uint32)
    ks = np.empty(_CHUNK, np.uint8)
    _setup(st, key, nonce, counter)
    _xor_stream(st, x, ks, counter, src, 0, dst, 0, src.size)
    wipe(st)
    wipe(x)
    wipe(ks)


@secret_jit(cache=True, nogil=True, secret=('key',))
def chacha20_block(key, nonce, counter, out):
    """out[0:64] = the ChaCha20 block function output for (key, nonce, counter) (RFC 8439 2.3)."""
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if nonce.size != 12:
        raise ValueError("nonce must be 12 bytes")
    if out.size != 64:
        raise ValueError("out must be 64 bytes")
    st = np.empty(16, np.uint32)
    x = np.empty(16, np.uint32)
    _setup(st, key, nonce, counter)
    for i in range(16):
        x[i] = st[i]
    _rounds_scalar(x)
    for i in range(16):
        _store32(out, 4 * i, np.uint32(x[i] + st[i]))
    wipe(st)
    wipe(x)


@secret_jit(cache=True, nogil=True, secret=('key',))
def hchacha20_kernel(key, nonce16, out):
    """out[0:32] = HChaCha20(key[32], nonce16[16]) (draft-irtf-cfrg-xchacha 2.2)."""
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if nonce16.size != 16:
        raise ValueError("nonce must be 16 bytes")
    if out.size != 32:
        raise ValueError("out must be 32 bytes")
    x = np.empty(16, np.uint32)
    _hchacha(key, nonce16, out, x)
    wipe(x)


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_CHACHA20 = api_entry(chacha20_xor, "_chacha20_api", IN, IN, types.int64, IN, OUT)
_HCHACHA20 = api_entry(hchacha20_kernel, "_hchacha20_api", IN, IN, OUT)
_chacha20_api, _hchacha20_api = _CHACHA20.kernel, _HCHACHA20.kernel


def chacha20(key, nonce, data, counter=0):
    """Encrypt/decrypt ``data`` with the raw ChaCha20 stream (RFC 8439), returning bytes.

    ``counter`` is the initial 32-bit block counter; a counter range that would wrap past
    2**32 - 1 raises ValueError.
    """
    if type(key) is bytes and type(nonce) is bytes and type(data) is bytes:
        call = _CHACHA20.fast
    else:
        key, nonce, data = _chacha20_args(key, nonce, data)
        call = _CHACHA20.call
    n = len(data)
    if type(counter) is not int or not 0 <= counter <= 0xFFFFFFFF:
        counter = as_int(counter, "counter", 0, 0xFFFFFFFF)
    if counter + ((n + 63) >> 6) > 1 << 32:
        raise ValueError(f"data too long for counter {counter}: the 32-bit block counter would wrap")
    if n < SMALL:
        out = ZERO * n if n > 1 else bytes(n)   # ZERO * 1 would be ZERO itself
    else:
        out = uninit_bytes(None, n)
    try:
        call(key, nonce, counter, data, out)            # the kernel checks the sizes
    except ValueError:
        _chacha20_args(key, nonce, data)                # the message naming the size
        raise
    return out


def _chacha20_args(key, nonce, data):
    return (as_buf_sized(key, "key", KEY_SIZE), as_buf_sized(nonce, "nonce", NONCE_SIZE),
            as_buf(data, "data"))


def hchacha20(key, nonce):
    """HChaCha20 subkey derivation: 32-byte key, 16-byte nonce -> 32-byte subkey."""
    if (type(key) is bytes and type(nonce) is bytes and len(key) == KEY_SIZE
            and len(nonce) == 16):
        call = _HCHACHA20.fast
    else:
        key = as_buf_sized(key, "key", KEY_SIZE)
        nonce = as_buf_sized(nonce, "nonce", 16)
        call = _HCHACHA20.call
    out = ZERO * 32
    call(key, nonce, out)
    return out
