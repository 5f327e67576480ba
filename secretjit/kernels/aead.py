"""ChaCha20-Poly1305 (RFC 8439 2.8) and XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha) AEAD kernels.

``seal`` returns ciphertext || 16-byte tag; ``open`` verifies the tag in constant time
before decrypting and raises :class:`secretjit.kernels.InvalidTag` on any mismatch
(no plaintext is released).
"""
import numpy as np
from numba import njit

from . import InvalidTag
from ..decorators import secret_jit
from ..intrinsics import declassify, wipe
from ._util import IN, OUT, ZERO, SMALL, api_entry, as_buf, as_buf_sized, uninit_bytes
from .chacha20 import _CHUNK, _hchacha, _keystream_block, _setup, _xor_stream
from .poly1305 import STATE_SIZE, _HIBIT, _blocks_serial, _ct_equal16, _poly_finish, \
    _poly_init, _poly_update_padded

__all__ = ["seal", "open", "xseal", "xopen", "aead_seal_kernel", "aead_open_kernel",
           "xaead_seal_kernel", "xaead_open_kernel", "KEY_SIZE", "NONCE_SIZE", "XNONCE_SIZE",
           "TAG_SIZE", "MAX_PLAINTEXT"]

KEY_SIZE = 32
NONCE_SIZE = 12
XNONCE_SIZE = 24
TAG_SIZE = 16
MAX_PLAINTEXT = (2 ** 32 - 1) * 64     # 32-bit block counter starting at 1


@njit
def _store_le64(buf, off, v):
    for i in range(8):
        buf[off + i] = np.uint8((np.uint64(v) >> np.uint64(8 * i)) & np.uint64(0xFF))


@njit
def _tag(ps, aad, ct, ct_off, n, buf, out, out_off):
    """Poly1305 over aad || pad || ct[ct_off:ct_off+n] || pad || le64(len aad) || le64(n)."""
    _poly_update_padded(ps, aad, 0, aad.size, buf)
    _poly_update_padded(ps, ct, ct_off, n, buf)
    _store_le64(buf, 0, aad.size)
    _store_le64(buf, 8, n)
    _blocks_serial(ps, buf, 0, 1, _HIBIT)
    for i in range(16):
        buf[i] = 0
    _poly_finish(ps, out, out_off)


@njit
def _poly_key(st, x, ks, ps):
    """Initialise Poly1305 state ps from keystream block 0 (RFC 8439 2.6)."""
    _keystream_block(st, np.uint32(0), x, ks.view(np.uint32))
    _poly_init(ps, ks)                   # uses ks[0:32]
    for i in range(ks.size):
        ks[i] = 0


@njit
def _seal(key, nonce12, pt, aad, out):
    n = pt.size
    st = np.empty(16, np.uint32)
    x = np.empty(16, np.uint32)
    ks = np.empty(_CHUNK, np.uint8)
    ps = np.empty(STATE_SIZE, np.uint64)
    buf = np.zeros(16, np.uint8)
    _setup(st, key, nonce12, 0)
    _poly_key(st, x, ks, ps)
    _xor_stream(st, x, ks, 1, pt, 0, out, 0, n)
    _tag(ps, aad, out, 0, n, buf, out, n)
    wipe(st)
    wipe(x)
    wipe(ks)
    wipe(ps)
    wipe(buf)


@njit
def _open(key, nonce12, ct, aad, out):
    n = ct.size - 16
    st = np.empty(16, np.uint32)
    x = np.empty(16, np.uint32)
    ks = np.empty(_CHUNK, np.uint8)
    ps = np.empty(STATE_SIZE, np.uint64)
    buf = np.zeros(16, np.uint8)
    mac = np.empty(16, np.uint8)
    _setup(st, key, nonce12, 0)
    _poly_key(st, x, ks, ps)
    _tag(ps, aad, ct, 0, n, buf, mac, 0)
    ok = _ct_equal16(mac, 0, ct, n)
    # The verdict is public (the caller learns it anyway): declassify it to
    # decrypt only authentic data.
    if declassify(ok) == 1:
        _xor_stream(st, x, ks, 1, ct, 0, out, 0, n)
    else:
        for i in range(n):
            out[i] = 0
    wipe(st)
    wipe(x)
    wipe(ks)
    wipe(ps)
    wipe(buf)
    wipe(mac)
    return ok


@njit
def _xnonce(key, nonce24):
    """XChaCha20: subkey || nonce12 (uint8[44], for the caller to wipe), where
    subkey = HChaCha20(key, nonce24[:16]) and nonce12 = 0^4 || nonce24[16:24]."""
    sub = np.zeros(44, np.uint8)
    x = np.empty(16, np.uint32)
    _hchacha(key, nonce24[0:16], sub[0:32], x)
    wipe(x)
    for i in range(8):
        sub[36 + i] = nonce24[16 + i]
    return sub


@njit
def _check_seal(key, nonce, nonce_size, pt, out):
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if nonce.size != nonce_size:
        raise ValueError("nonce has the wrong size")
    if pt.size > MAX_PLAINTEXT:
        raise ValueError("plaintext too long")
    if out.size != pt.size + 16:
        raise ValueError("out must be len(plaintext) + 16 bytes")


@njit
def _check_open(key, nonce, nonce_size, ct, out):
    if key.size != 32:
        raise ValueError("key must be 32 bytes")
    if nonce.size != nonce_size:
        raise ValueError("nonce has the wrong size")
    if ct.size < 16:
        raise ValueError("ciphertext_and_tag must be at least 16 bytes")
    if ct.size - 16 > MAX_PLAINTEXT:
        raise ValueError("ciphertext too long")
    if out.size != ct.size - 16:
        raise ValueError("out must be len(ciphertext_and_tag) - 16 bytes")


@secret_jit(cache=True, nogil=True, secret=('key', 'plaintext'))
def aead_seal_kernel(key, nonce, plaintext, aad, out):
    """out = ChaCha20-Poly1305 ciphertext || tag; out.size must be plaintext.size + 16."""
    _check_seal(key, nonce, 12, plaintext, out)
    _seal(key, nonce, plaintext, aad, out)


@secret_jit(cache=True, nogil=True, secret=('key',))
def aead_open_kernel(key, nonce, ciphertext_and_tag, aad, out):
    """Verify and decrypt; returns 1 and fills out (size len-16) if authentic, else 0 and zeroes out."""
    _check_open(key, nonce, 12, ciphertext_and_tag, out)
    return _open(key, nonce, ciphertext_and_tag, aad, out)


@secret_jit(cache=True, nogil=True, secret=('key', 'plaintext'))
def xaead_seal_kernel(key, nonce, plaintext, aad, out):
    """XChaCha20-Poly1305 seal with a 24-byte nonce; out.size must be plaintext.size + 16."""
    _check_seal(key, nonce, 24, plaintext, out)
    sub = _xnonce(key, nonce)
    _seal(sub[0:32], sub[32:44], plaintext, aad, out)
    wipe(sub)


@secret_jit(cache=True, nogil=True, secret=('key',))
def xaead_open_kernel(key, nonce, ciphertext_and_tag, aad, out):
    """XChaCha20-Poly1305 open with a 24-byte nonce; returns 1 if authentic (out filled), else 0."""
    _check_open(key, nonce, 24, ciphertext_and_tag, out)
    sub = _xnonce(key, nonce)
    ok = _open(sub[0:32], sub[32:44], ciphertext_and_tag, aad, out)
    wipe(sub)
    return ok


# -- Python API: buffer-typed API kernels generated from the entry kernels ------
# (see secretjit/kernels/_util.py, api_entry), called through their entry points.

_SEAL = api_entry(aead_seal_kernel, "_seal_api", IN, IN, IN, IN, OUT)
_OPEN = api_entry(aead_open_kernel, "_open_api", IN, IN, IN, IN, OUT)
_XSEAL = api_entry(xaead_seal_kernel, "_xseal_api", IN, IN, IN, IN, OUT)
_XOPEN = api_entry(xaead_open_kernel, "_xopen_api", IN, IN, IN, IN, OUT)
_seal_api, _open_api = _SEAL.kernel, _OPEN.kernel
_xseal_api, _xopen_api = _XSEAL.kernel, _XOPEN.kernel


def _seal_args(key, nonce, nonce_size, plaintext, aad):
    """The slow path of seal's argument checks: any bytes-like type, or an error."""
    key = as_buf_sized(key, "key", KEY_SIZE)
    nonce = as_buf_sized(nonce, "nonce", nonce_size)
    plaintext = as_buf(plaintext, "plaintext")
    aad = as_buf(aad, "aad")
    if len(plaintext) > MAX_PLAINTEXT:
        raise ValueError(f"plaintext must be at most {MAX_PLAINTEXT} bytes, got {len(plaintext)}")
    return key, nonce, plaintext, aad


def _open_args(key, nonce, nonce_size, ciphertext_and_tag, aad):
    key = as_buf_sized(key, "key", KEY_SIZE)
    nonce = as_buf_sized(nonce, "nonce", nonce_size)
    c = as_buf(ciphertext_and_tag, "ciphertext_and_tag")
    aad = as_buf(aad, "aad")
    if len(c) < TAG_SIZE:
        raise InvalidTag(f"ciphertext_and_tag must be at least {TAG_SIZE} bytes, got {len(c)}")
    if len(c) - TAG_SIZE > MAX_PLAINTEXT:
        raise ValueError(f"ciphertext_and_tag must be at most {MAX_PLAINTEXT + TAG_SIZE} bytes, "
                         f"got {len(c)}")
    return key, nonce, c, aad


# The fast path (every argument bytes): one type test per argument, then the kernel,
# which checks the sizes; on its ValueError the slow path raises the message that
# names the parameter and its size.

_MAX_SEALED = MAX_PLAINTEXT + TAG_SIZE


def _make_seal(entry, nonce_size):
    def seal(key, nonce, plaintext, aad=b""):
        if (type(key) is bytes and type(nonce) is bytes and type(plaintext) is bytes
                and type(aad) is bytes):
            call = entry.fast
        else:
            key, nonce, plaintext, aad = _seal_args(key, nonce, nonce_size, plaintext, aad)
            call = entry.call
        n = len(plaintext) + TAG_SIZE
        if n > _MAX_SEALED:
            _seal_args(key, nonce, nonce_size, plaintext, aad)
        out = ZERO * n if n < SMALL else uninit_bytes(None, n)      # n >= 16: a new object
        try:
            call(key, nonce, plaintext, aad, out)           # the kernel checks the sizes
        except ValueError:
            _seal_args(key, nonce, nonce_size, plaintext, aad)   # the message naming the size
            raise
        return out
    return seal


def _make_open(entry, nonce_size):
    def open(key, nonce, ciphertext_and_tag, aad=b""):  # noqa: A001
        c = ciphertext_and_tag
        if (type(key) is bytes and type(nonce) is bytes and type(c) is bytes
                and type(aad) is bytes):
            call = entry.fast
        else:
            key, nonce, c, aad = _open_args(key, nonce, nonce_size, c, aad)
            call = entry.call
        n = len(c) - TAG_SIZE
        if not 0 <= n <= MAX_PLAINTEXT:
            _open_args(key, nonce, nonce_size, c, aad)
        if n < SMALL:
            out = ZERO * n if n > 1 else bytes(n)   # ZERO * 1 would be ZERO itself
        else:
            out = uninit_bytes(None, n)
        try:
            ok = call(key, nonce, c, aad, out)              # the kernel checks the sizes
        except ValueError:
            _open_args(key, nonce, nonce_size, c, aad)
            raise
        if ok != 1:
            raise InvalidTag("authentication failed")
        return out
    return open


def _api(fn, name, doc):
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.__module__ = __name__
    return fn


seal = _api(_make_seal(_SEAL, NONCE_SIZE), "seal",
            "ChaCha20-Poly1305 encrypt: 32-byte key, 12-byte nonce -> ciphertext || 16-byte tag.")
open = _api(_make_open(_OPEN, NONCE_SIZE), "open",   # noqa: A001 - the requested API name
            "ChaCha20-Poly1305 decrypt; raises InvalidTag if authentication fails.")
xseal = _api(_make_seal(_XSEAL, XNONCE_SIZE), "xseal",
             "XChaCha20-Poly1305 encrypt: 32-byte key, 24-byte nonce -> ciphertext || 16-byte tag.")
xopen = _api(_make_open(_XOPEN, XNONCE_SIZE), "xopen",
             "XChaCha20-Poly1305 decrypt; raises InvalidTag if authentication fails.")
