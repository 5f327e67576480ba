"""Vetted constant-time crypto kernels for secretjit: ChaCha20-Poly1305, SHA-256, HMAC/HKDF, BLAKE2b, X25519.

Submodules (imported on first use, so ``import secretjit.kernels`` stays cheap):

- :mod:`~secretjit.kernels.aead`: ``seal``/``open`` (ChaCha20-Poly1305, RFC 8439) and
  ``xseal``/``xopen`` (XChaCha20-Poly1305).
- :mod:`~secretjit.kernels.chacha20`, :mod:`~secretjit.kernels.poly1305`: the primitives.
- :mod:`~secretjit.kernels.sha256`, :mod:`~secretjit.kernels.hmac` (HMAC-SHA256, HKDF-SHA256),
  :mod:`~secretjit.kernels.blake2b`, :mod:`~secretjit.kernels.x25519`.
- :mod:`~secretjit.kernels._random`: ``random_bytes(out)`` from the OS CSPRNG, callable in kernels.

Python functions take bytes-like arguments (bytes, bytearray, memoryview, 1-D C-contiguous
uint8 arrays) and return ``bytes``; the low-level entry kernels listed in each module's
``__all__`` work on uint8 arrays.
"""

import importlib

__all__ = ["InvalidTag", "aead", "chacha20", "poly1305", "sha256", "hmac", "blake2b", "x25519"]

_SUBMODULES = frozenset(["aead", "chacha20", "poly1305", "sha256", "hmac", "blake2b", "x25519",
                         "_random"])


class InvalidTag(Exception):
    """Raised when an AEAD ciphertext, tag, nonce or associated data fails authentication."""


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
