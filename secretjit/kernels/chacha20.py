"""ChaCha20 stream cipher and HChaCha20 (RFC 8439, draft-irtf-cfrg-xchacha) as constant-time numba kernels.

The bulk path computes ``LANES`` blocks at once in a lane-major state
(``x[word * LANES + lane]``) so LLVM vectorizes the rounds across blocks.
The block counter is 32 bits (RFC 8439): it wraps modulo 2**32 in the
low-level kernel; the Python API refuses a counter range that would wrap.
"""
import numpy as np
from numba import njit, types

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._util import (IN, OUT, ZERO, SMALL, Entry, as_buf, as_buf_sized, as_int, body_of,
                    uninit_bytes)

__all__ = ["chacha20", "hchacha20", "chacha20_xor", "chacha20_block", "hchacha20_kernel",
           "LANES", "KEY_SIZE", "NONCE_SIZE"]

KEY_SIZE = 32
NONCE_SIZE = 12
LANES = 8                      # blocks per vectorized chunk
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
def _double_round_lanes(x):
    """One double round on LANES independent blocks stored lane-major."""
    for l in range(LANES):
        x0 = x[0 * LANES + l]; x1 = x[1 * LANES + l]; x2 = x[2 * LANES + l]; x3 = x[3 * LANES + l]
        x4 = x[4 * LANES + l]; x5 = x[5 * LANES + l]; x6 = x[6 * LANES + l]; x7 = x[7 * LANES + l]
        x8 = x[8 * LANES + l]; x9 = x[9 * LANES + l]; x10 = x[10 * LANES + l]; x11 = x[11 * LANES + l]
        x12 = x[12 * LANES + l]; x13 = x[13 * LANES + l]; x14 = x[14 * LANES + l]; x15 = x[15 * LANES + l]
        x0, x4, x8, x12 = _qr(x0, x4, x8, x12)
        x1, x5, x9, x13 = _qr(x1, x5, x9, x13)
        x2, x6, x10, x14 = _qr(x2, x6, x10, x14)
        x3, x7, x11, x15 = _qr(x3, x7, x11, x15)
        x0, x5, x10, x15 = _qr(x0, x5, x10, x15)
        x1, x6, x11, x12 = _qr(x1, x6, x11, x12)
        x2, x7, x8, x13 = _qr(x2, x7, x8, x13)
        x3, x4, x9, x14 = _qr(x3, x4, x9, x14)
        x[0 * LANES + l] = x0; x[1 * LANES + l] = x1; x[2 * LANES + l] = x2; x[3 * LANES + l] = x3
        x[4 * LANES + l] = x4; x[5 * LANES + l] = x5; x[6 * LANES + l] = x6; x[7 * LANES + l] = x7
        x[8 * LANES + l] = x8; x[9 * LANES + l] = x9; x[10 * LANES + l] = x10; x[11 * LANES + l] = x11
        x[12 * LANES + l] = x12; x[13 * LANES + l] = x13; x[14 * LANES + l] = x14; x[15 * LANES + l] = x15


@njit
def _keystream_chunk(st, ctr, x, ks32):
    """Write LANES keystream blocks (counters ctr, ctr+1, ... mod 2**32) into ks32 (16*LANES words)."""
    for i in range(16):
        v = st[i]
        for l in range(LANES):
            x[i * LANES + l] = v
    for l in range(LANES):
        x[12 * LANES + l] = np.uint32(ctr + np.uint32(l))
    for _ in range(10):
        _double_round_lanes(x)
    for l in range(LANES):
        for i in range(16):
            ks32[l * 16 + i] = np.uint32(x[i * LANES + l] + st[i])
        ks32[l * 16 + 12] = np.uint32(x[12 * LANES + l] + np.uint32(ctr + np.uint32(l)))


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
def _xor_stream(st, x, ks, counter, src, soff, dst, doff, n):
    """dst[doff:doff+n] = src[soff:soff+n] ^ keystream(counter...). ks: uint8[64*LANES] scratch.

    Returns nothing; the caller wipes st, x and ks.
    """
    ks32 = ks.view(np.uint32)
    ctr = np.uint32(counter)
    pos = 0
    while n - pos >= _CHUNK:
        _keystream_chunk(st, ctr, x, ks32)
        s = soff + pos
        d = doff + pos
        for j in range(_CHUNK):
            dst[d + j] = src[s + j] ^ ks[j]
        pos += _CHUNK
        ctr = np.uint32(ctr + np.uint32(LANES))
    if n - pos > _SCALAR_TAIL:
        _keystream_chunk(st, ctr, x, ks32)
        s = soff + pos
        d = doff + pos
        for j in range(n - pos):
            dst[d + j] = src[s + j] ^ ks[j]
    else:                                # short tail: only the blocks needed, one at a time
        while pos < n:
            _keystream_block(st, ctr, x, ks32)
            take = min(64, n - pos)
            s = soff + pos
            d = doff + pos
            for j in range(take):
                dst[d + j] = src[s + j] ^ ks[j]
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
    x = np.empty(16 * LANES, np.uint32)
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


# -- Python API: buffer-typed API kernels called through their entry points ------
# (see secretjit/kernels/_util.py): each views its buffers as the uint8 arrays the
# entry kernel takes and runs the entry kernel's own body.

_xor_body = body_of(chacha20_xor)
_hchacha_body = body_of(hchacha20_kernel)


@secret_jit(cache=True, nogil=True, secret=('key', 'src'))
def _chacha20_api(key, nonce, counter, src, dst):
    _xor_body(np.frombuffer(key, np.uint8), np.frombuffer(nonce, np.uint8), counter,
              np.frombuffer(src, np.uint8), np.frombuffer(dst, np.uint8))


@secret_jit(cache=True, nogil=True, secret=('key',))
def _hchacha20_api(key, nonce16, out):
    _hchacha_body(np.frombuffer(key, np.uint8), np.frombuffer(nonce16, np.uint8),
                  np.frombuffer(out, np.uint8))


_CHACHA20 = Entry(_chacha20_api, IN, IN, types.int64, IN, OUT)
_HCHACHA20 = Entry(_hchacha20_api, IN, IN, OUT)


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
