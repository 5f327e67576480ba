"""What the benchmarks time: each kernel, its inputs, and the OpenSSL reference.

A case is the Python source of one entry kernel of :mod:`secretjit.kernels`
(its ``py_func``, compiled by the harness with both decorators), a factory of
its arguments for a given input size, and the same work done by
``cryptography`` (OpenSSL) or ``hashlib``.
"""

import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

SIZES = (64, 1024, 16384, 1 << 20)
QUICK_SIZES = (64, 16384)
# --quick keeps these kernels only, so that it finishes in under a minute.
QUICK_KERNELS = ('trivial x+1', 'chacha20', 'chacha20-poly1305 seal', 'sha256',
                 'x25519')


@dataclass
class Case:
    kernel: str                       # name shown in tables
    size: str                         # '64 B', '1 MiB' or 'per call'
    nbytes: int                       # bytes processed per call (0: per call)
    py_func: Callable
    args: tuple
    reference: Optional[Callable]     # no-argument callable doing the same work
    reference_name: str = ''
    compile_args: Optional[tuple] = None


def size_label(n):
    if n < 1024:
        return '%d B' % n
    if n < 1 << 20:
        return '%d KiB' % (n >> 10)
    return '%d MiB' % (n >> 20)


def trivial(x):
    return x + 1


def _rng(n):
    return np.random.default_rng(n).integers(0, 256, n, dtype=np.uint8)


def _sized_cases(n, key, nonce, xnonce):
    """The cases of one input size ``n``: every kernel against its reference."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    from cryptography.hazmat.primitives.poly1305 import Poly1305

    from secretjit.kernels import aead, chacha20, poly1305

    kb, nb = key.tobytes(), nonce.tobytes()
    out = []
    data = _rng(n)
    db = data.tobytes()
    label = size_label(n)
    dst = np.empty_like(data)
    stream_nonce = (1).to_bytes(4, 'little') + nb
    out.append(Case(
        'chacha20', label, n, chacha20.chacha20_xor.py_func,
        (key, nonce, 1, data, dst),
        lambda db=db: Cipher(algorithms.ChaCha20(kb, stream_nonce),
                             None).encryptor().update(db),
        'OpenSSL ChaCha20'))
    tag = np.empty(16, np.uint8)
    out.append(Case(
        'poly1305', label, n, poly1305.poly1305_mac.py_func,
        (key, data, tag), lambda db=db: Poly1305.generate_tag(kb, db),
        'OpenSSL Poly1305'))
    sealed = np.empty(n + 16, np.uint8)
    aad = _rng(16)
    ab = aad.tobytes()
    cipher = ChaCha20Poly1305(kb)
    out.append(Case(
        'chacha20-poly1305 seal', label, n, aead.aead_seal_kernel.py_func,
        (key, nonce, data, aad, sealed),
        lambda db=db: cipher.encrypt(nb, db, ab), 'OpenSSL'))
    out.append(Case(
        'xchacha20-poly1305 seal', label, n, aead.xaead_seal_kernel.py_func,
        (key, xnonce, data, aad, sealed), None))
    return out + _hash_cases(key, data, label)


def _hash_cases(key, data, label):
    """SHA-256, HMAC, HKDF and BLAKE2b of ``data`` against their references."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from secretjit.kernels import blake2b, hmac as khmac, sha256

    n, kb, db = data.size, key.tobytes(), data.tobytes()
    out = []
    digest = np.empty(32, np.uint8)
    out.append(Case(
        'sha256', label, n, sha256.sha256_into.py_func, (data, digest),
        lambda db=db: hashlib.sha256(db).digest(), 'hashlib (OpenSSL)'))
    out.append(Case(
        'hmac-sha256', label, n, khmac.hmac_sha256_into.py_func,
        (key, data, digest),
        lambda db=db: hmac.new(kb, db, 'sha256').digest(), 'hmac (OpenSSL)'))
    okm = np.empty(32, np.uint8)
    salt, info = _rng(32), _rng(16)
    out.append(Case(
        'hkdf-sha256 (ikm size)', label, n, khmac.hkdf_sha256_into.py_func,
        (data, salt, info, okm),
        lambda db=db: HKDF(hashes.SHA256(), 32, salt.tobytes(),
                           info.tobytes()).derive(db), 'OpenSSL HKDF'))
    b2 = np.empty(64, np.uint8)
    nokey = np.empty(0, np.uint8)
    out.append(Case(
        'blake2b-512', label, n, blake2b.blake2b_into.py_func,
        (data, nokey, b2), lambda db=db: hashlib.blake2b(db).digest(),
        'hashlib'))
    return out


def _x25519_case():
    """X25519 against OpenSSL's, per call."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import (
        X25519PrivateKey, X25519PublicKey)

    from secretjit.kernels import x25519

    scalar = _rng(32)
    peer_private = X25519PrivateKey.from_private_bytes(_rng(33)[1:].tobytes())
    u = np.frombuffer(peer_private.public_key().public_bytes_raw(),
                      np.uint8).copy()
    shared = np.empty(32, np.uint8)
    priv = X25519PrivateKey.from_private_bytes(scalar.tobytes())
    peer = X25519PublicKey.from_public_bytes(u.tobytes())
    return Case('x25519', 'per call', 0, x25519.x25519_kernel.py_func,
                (shared, scalar, u), lambda: priv.exchange(peer), 'OpenSSL')


def cases(quick=False):
    """All benchmark cases, in table order."""
    out = [Case('trivial x+1', 'per call', 0, trivial, (7,), None)]
    key, nonce, xnonce = _rng(32), _rng(12), _rng(24)
    for n in (QUICK_SIZES if quick else SIZES):
        out += _sized_cases(n, key, nonce, xnonce)
    out.append(_x25519_case())
    if quick:
        out = [c for c in out if c.kernel in QUICK_KERNELS]
    return out
