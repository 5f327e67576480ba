"""BLAKE2b (RFC 7693) with digest size 1..64 and optional key of 0..64 bytes as a numba kernel.

The message is read in place (no copy); only the final block goes through a 128-byte
scratch buffer.  The 128-bit byte counter is kept as two uint64 words.
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._util import IN, OUT, api_entry, as_buf, as_int

__all__ = ["blake2b", "blake2b_into", "MAX_DIGEST_SIZE", "MAX_KEY_SIZE", "BLOCK_SIZE"]

MAX_DIGEST_SIZE = 64
MAX_KEY_SIZE = 64
BLOCK_SIZE = 128

_IV = np.array([0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
                0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179],
               dtype=np.uint64)

_SIGMA = np.array([
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
], dtype=np.intp)


@njit(inline="always")
def _rotr(v, n):
    return (v >> np.uint64(n)) | (v << np.uint64(64 - n))


@njit(inline="always")
def _g(a, b, c, d, x, y):
    a = a + b + x
    d = _rotr(d ^ a, 32)
    c = c + d
    b = _rotr(b ^ c, 24)
    a = a + b + y
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 63)
    return a, b, c, d


@njit
def _compress(h, m, data, off, t0, t1, last):
    """Compress the 128-byte block data[off:off+128] into h (uint64[8]).

    t0/t1: 128-bit byte counter after this block; last: final-block flag.
    m: uint64[16] scratch.
    """
    for i in range(16):
        q = off + 8 * i
        w = np.uint64(0)
        for j in range(8):
            w |= np.uint64(data[q + j]) << np.uint64(8 * j)
        m[i] = w
    v0 = h[0]; v1 = h[1]; v2 = h[2]; v3 = h[3]; v4 = h[4]; v5 = h[5]; v6 = h[6]; v7 = h[7]
    v8 = _IV[0]; v9 = _IV[1]; v10 = _IV[2]; v11 = _IV[3]
    v12 = _IV[4] ^ t0
    v13 = _IV[5] ^ t1
    v14 = _IV[6] ^ (np.uint64(0xFFFFFFFFFFFFFFFF) if last else np.uint64(0))
    v15 = _IV[7]
    for r in range(12):
        s = _SIGMA[r]
        v0, v4, v8, v12 = _g(v0, v4, v8, v12, m[s[0]], m[s[1]])
        v1, v5, v9, v13 = _g(v1, v5, v9, v13, m[s[2]], m[s[3]])
        v2, v6, v10, v14 = _g(v2, v6, v10, v14, m[s[4]], m[s[5]])
        v3, v7, v11, v15 = _g(v3, v7, v11, v15, m[s[6]], m[s[7]])
        v0, v5, v10, v15 = _g(v0, v5, v10, v15, m[s[8]], m[s[9]])
        v1, v6, v11, v12 = _g(v1, v6, v11, v12, m[s[10]], m[s[11]])
        v2, v7, v8, v13 = _g(v2, v7, v8, v13, m[s[12]], m[s[13]])
        v3, v4, v9, v14 = _g(v3, v4, v9, v14, m[s[14]], m[s[15]])
    h[0] ^= v0 ^ v8
    h[1] ^= v1 ^ v9
    h[2] ^= v2 ^ v10
    h[3] ^= v3 ^ v11
    h[4] ^= v4 ^ v12
    h[5] ^= v5 ^ v13
    h[6] ^= v6 ^ v14
    h[7] ^= v7 ^ v15


@njit
def _blake2b(data, key, out, h, m, buf):
    outlen = out.size
    klen = key.size
    for i in range(8):
        h[i] = _IV[i]
    h[0] ^= np.uint64(0x01010000) ^ (np.uint64(klen) << np.uint64(8)) ^ np.uint64(outlen)
    n = data.size
    t0 = np.uint64(0)
    t1 = np.uint64(0)
    B = np.uint64(128)
    if klen > 0:
        for i in range(128):
            buf[i] = 0
        for i in range(klen):
            buf[i] = key[i]
        t0 = B
        _compress(h, m, buf, 0, t0, t1, n == 0)
    # all full blocks except the last block of the message (which must carry the final flag)
    nfull = (n - 1) // 128 if n > 0 else 0
    for b in range(nfull):
        t0 += B
        if t0 < B:
            t1 += np.uint64(1)
        _compress(h, m, data, 128 * b, t0, t1, False)
    if n > 0 or klen == 0:
        rem = n - 128 * nfull
        for i in range(128):
            buf[i] = 0
        for i in range(rem):
            buf[i] = data[128 * nfull + i]
        t0 += np.uint64(rem)
        if t0 < np.uint64(rem):
            t1 += np.uint64(1)
        _compress(h, m, buf, 0, t0, t1, True)
    for i in range(outlen):
        out[i] = np.uint8((h[i // 8] >> np.uint64(8 * (i % 8))) & np.uint64(0xFF))


@secret_jit(cache=True, nogil=True, secret=('data', 'key'))
def blake2b_into(data, key, out):
    """out[:] = BLAKE2b(data, key) with digest size out.size (1..64); key 0..64 bytes."""
    if out.size < 1 or out.size > 64:
        raise ValueError("out must be 1..64 bytes (the digest size)")
    if key.size > 64:
        raise ValueError("key must be at most 64 bytes")
    h = np.empty(8, np.uint64)
    m = np.empty(16, np.uint64)
    buf = np.empty(128, np.uint8)
    _blake2b(data, key, out, h, m, buf)
    wipe(h)
    wipe(m)
    wipe(buf)


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_BLAKE2B = api_entry(blake2b_into, "_blake2b_api", IN, IN, OUT)
_blake2b_api = _BLAKE2B.kernel


def blake2b(data, digest_size=64, key=b""):
    """BLAKE2b digest of ``data`` (``digest_size`` 1..64 bytes, optional ``key`` of 0..64 bytes)."""
    if (type(data) is bytes and type(key) is bytes and type(digest_size) is int
            and 1 <= digest_size <= MAX_DIGEST_SIZE):
        call = _BLAKE2B.fast
    else:
        data = as_buf(data, "data")
        digest_size = as_int(digest_size, "digest_size", 1, MAX_DIGEST_SIZE)
        key = as_buf(key, "key")
        call = _BLAKE2B.call
    if len(key) > MAX_KEY_SIZE:
        raise ValueError(f"key must be at most {MAX_KEY_SIZE} bytes, got {len(key)}")
    out = bytes(digest_size)                    # digest_size >= 1: a new object
    call(data, key, out)
    return out
