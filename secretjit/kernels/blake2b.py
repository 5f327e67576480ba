"""BLAKE2b (RFC 7693) with digest size 1..64 and optional key of 0..64 bytes as a numba kernel.

The message is read in place (no copy); only the final block goes through a 128-byte
scratch buffer.  The 128-bit byte counter is kept as two uint64 words.  The
compression function is explicit vector IR
(:func:`secretjit.kernels._blake2b_simd.blake2b_compress`).
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._blake2b_simd import IV, blake2b_compress
from ._util import IN, OUT, api_entry, as_buf, as_int

__all__ = ["blake2b", "blake2b_into", "MAX_DIGEST_SIZE", "MAX_KEY_SIZE", "BLOCK_SIZE"]

MAX_DIGEST_SIZE = 64
MAX_KEY_SIZE = 64
BLOCK_SIZE = 128

_IV = np.array(IV, dtype=np.uint64)
_ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@njit(inline="always")
def _compress(h, data, off, t0, t1, last):
    """Compress the 128-byte block data[off:off+128] into h (uint64[8]).

    t0/t1: 128-bit byte counter after this block; last: final-block flag.
    """
    blake2b_compress(h, data[off:off + 128], t0, t1, _ALL_ONES if last else np.uint64(0))


@njit
def _blake2b(data, key, out, h, buf):
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
        _compress(h, buf, 0, t0, t1, n == 0)
    # all full blocks except the last block of the message (which must carry the final flag)
    nfull = (n - 1) // 128 if n > 0 else 0
    for b in range(nfull):
        t0 += B
        if t0 < B:
            t1 += np.uint64(1)
        _compress(h, data, 128 * b, t0, t1, False)
    if n > 0 or klen == 0:
        rem = n - 128 * nfull
        for i in range(128):
            buf[i] = 0
        for i in range(rem):
            buf[i] = data[128 * nfull + i]
        t0 += np.uint64(rem)
        if t0 < np.uint64(rem):
            t1 += np.uint64(1)
        _compress(h, buf, 0, t0, t1, True)
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
    buf = np.empty(128, np.uint8)
    _blake2b(data, key, out, h, buf)
    wipe(h)
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
