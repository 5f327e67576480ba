"""HMAC-SHA256 (RFC 2104 / RFC 4231) and HKDF-SHA256 (RFC 5869) numba kernels.

Keys longer than the 64-byte block are first hashed (RFC 2104).  The padded-key
inner/outer SHA-256 states are computed once per key and reused (HKDF-Expand).
"""
import numpy as np
from numba import njit

from ..decorators import secret_jit
from ..intrinsics import wipe
from ._util import IN, OUT, ZERO, api_entry, as_buf, as_int
from .sha256 import _sha256, _sha_blocks, _sha_final, _sha_init

__all__ = ["hmac_sha256", "hkdf_sha256", "hmac_sha256_into", "hkdf_sha256_into",
           "DIGEST_SIZE", "HKDF_MAX_LENGTH"]

DIGEST_SIZE = 32
HKDF_MAX_LENGTH = 255 * 32

# scratch layout (uint8 array of _SCRATCH bytes): K0 block, inner digest, padding buffer
_KB = 0
_IB = 64
_PB = 96
_SCRATCH = 96 + 128


@njit
def _hmac_keys(key, koff, klen, istate, ostate, H, W, s):
    """Derive the inner/outer chaining states (uint32[8] each) for an HMAC key."""
    for i in range(64):
        s[_KB + i] = 0
    if klen > 64:
        _sha256(key, koff, klen, s, _KB, H, W, s[_PB:_PB + 128])
    else:
        for i in range(klen):
            s[_KB + i] = key[koff + i]
    for i in range(64):
        s[_KB + i] ^= np.uint8(0x36)
    _sha_init(istate)
    _sha_blocks(istate, W, s, _KB, 1)
    for i in range(64):
        s[_KB + i] ^= np.uint8(0x36 ^ 0x5C)
    _sha_init(ostate)
    _sha_blocks(ostate, W, s, _KB, 1)
    for i in range(64):
        s[_KB + i] = 0


@njit
def _hmac_states(istate, ostate, msg, off, n, out, ooff, H, W, s):
    """out[ooff:ooff+32] = HMAC(msg[off:off+n]) from precomputed key states."""
    for i in range(8):
        H[i] = istate[i]
    nb = n // 64
    _sha_blocks(H, W, msg, off, nb)
    _sha_final(H, W, msg, off + 64 * nb, n - 64 * nb, 64 + n, s[_PB:_PB + 128], s, _IB)
    for i in range(8):
        H[i] = ostate[i]
    _sha_final(H, W, s, _IB, 32, 96, s[_PB:_PB + 128], out, ooff)
    for i in range(32):
        s[_IB + i] = 0


@secret_jit(cache=True, nogil=True, secret=('key', 'msg'))
def hmac_sha256_into(key, msg, out):
    """out[0:32] = HMAC-SHA256(key, msg)."""
    if out.size != 32:
        raise ValueError("out must be 32 bytes")
    st = np.empty(16, np.uint32)                 # inner state, outer state
    H = np.empty(8, np.uint32)
    W = np.empty(64, np.uint32)
    s = np.empty(_SCRATCH, np.uint8)
    _hmac_keys(key, 0, key.size, st[0:8], st[8:16], H, W, s)
    _hmac_states(st[0:8], st[8:16], msg, 0, msg.size, out, 0, H, W, s)
    wipe(st)
    wipe(H)
    wipe(W)
    wipe(s)


@secret_jit(cache=True, nogil=True, secret=('ikm',))
def hkdf_sha256_into(ikm, salt, info, out):
    """out[:] = HKDF-SHA256(ikm, salt, info, length=out.size) (RFC 5869); out.size <= 8160.

    An empty salt is equivalent to 32 zero bytes (RFC 5869 2.2).
    """
    L = out.size
    if L > 255 * 32:
        raise ValueError("out must be at most 8160 bytes")
    st = np.empty(16, np.uint32)
    H = np.empty(8, np.uint32)
    W = np.empty(64, np.uint32)
    s = np.empty(_SCRATCH, np.uint8)
    prk = np.empty(32, np.uint8)
    m = np.empty(32 + info.size + 1, np.uint8)   # T(i-1) || info || i
    t = np.empty(32, np.uint8)
    # Extract
    _hmac_keys(salt, 0, salt.size, st[0:8], st[8:16], H, W, s)
    _hmac_states(st[0:8], st[8:16], ikm, 0, ikm.size, prk, 0, H, W, s)
    # Expand
    _hmac_keys(prk, 0, 32, st[0:8], st[8:16], H, W, s)
    for j in range(info.size):
        m[32 + j] = info[j]
    pos = 0
    i = 1
    while pos < L:
        m[32 + info.size] = np.uint8(i)
        if i == 1:
            _hmac_states(st[0:8], st[8:16], m, 32, info.size + 1, t, 0, H, W, s)
        else:
            _hmac_states(st[0:8], st[8:16], m, 0, m.size, t, 0, H, W, s)
        take = min(32, L - pos)
        for j in range(take):
            out[pos + j] = t[j]
        for j in range(32):
            m[j] = t[j]
        pos += take
        i += 1
    wipe(st)
    wipe(H)
    wipe(W)
    wipe(s)
    wipe(prk)
    wipe(m)
    wipe(t)


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_HMAC = api_entry(hmac_sha256_into, "_hmac_api", IN, IN, OUT)
_HKDF = api_entry(hkdf_sha256_into, "_hkdf_api", IN, IN, IN, OUT)
_hmac_api, _hkdf_api = _HMAC.kernel, _HKDF.kernel


def hmac_sha256(key, msg):
    """HMAC-SHA256 (32 bytes) of ``msg`` under ``key`` (any length)."""
    if type(key) is bytes and type(msg) is bytes:
        call = _HMAC.fast
    else:
        key = as_buf(key, "key")
        msg = as_buf(msg, "msg")
        call = _HMAC.call
    out = ZERO * DIGEST_SIZE
    call(key, msg, out)
    return out


def hkdf_sha256(ikm, salt, info, length):
    """HKDF-SHA256 (RFC 5869): ``length`` (0..8160) bytes of output keying material.

    ``salt`` may be empty (or None), meaning 32 zero bytes; ``info`` may be empty.
    """
    if salt is None:
        salt = b""
    if type(ikm) is bytes and type(salt) is bytes and type(info) is bytes:
        call = _HKDF.fast
    else:
        ikm = as_buf(ikm, "ikm")
        salt = as_buf(salt, "salt")
        info = as_buf(info, "info")
        call = _HKDF.call
    if type(length) is not int or not 0 <= length <= HKDF_MAX_LENGTH:
        length = as_int(length, "length", 0, HKDF_MAX_LENGTH)
    out = bytes(length)                         # a new object for length >= 1
    call(ikm, salt, info, out)
    return out
