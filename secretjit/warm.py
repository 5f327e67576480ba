"""Fill numba's on-disk cache with the vetted kernels: ``python -m secretjit warm``.

A fresh install compiles a kernel's whole call tree on its first call in a
process (the first ``aead.seal``: ~10 s of CPU).  Run once after installing
(and after upgrading numba, secretjit or the CPU), this calls every public
function of :mod:`secretjit.kernels` twice, with ``bytes`` and with
``bytearray`` arguments, which compiles (or loads) the two overloads each
function dispatches to and stores them in numba's cache (``cache=True``).
Later processes load them instead (the first ``aead.seal`` then takes
~0.1 s after the import).

Where the cache goes is numba's choice: next to the installed sources when
that folder is writable, else the user's cache folder (``~/.cache/numba``),
or ``NUMBA_CACHE_DIR``.  What it trusts is numba's too: an entry is used only
for the same source file (modification time and size), the same CPU name and
features, and the same secretjit passes (their source digest and the secret
stack size are part of the key, ``SecretCodegen.magic_tuple``); anything
else misses and compiles.
"""

import sys
import time

_KEY, _NONCE, _XNONCE = bytes(range(32)), bytes(12), bytes(24)
_MSG = b'secretjit warm: sample message'


def _sealed(seal, nonce):
    return lambda: (_KEY, nonce, seal(_KEY, nonce, _MSG, b'ad'), b'ad')


def _calls():
    """``{label: (function, () -> bytes arguments)}`` of the public kernel functions."""
    from .kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519
    return {
        'aead.seal': (aead.seal, lambda: (_KEY, _NONCE, _MSG, b'ad')),
        'aead.open': (aead.open, _sealed(aead.seal, _NONCE)),
        'aead.xseal': (aead.xseal, lambda: (_KEY, _XNONCE, _MSG, b'ad')),
        'aead.xopen': (aead.xopen, _sealed(aead.xseal, _XNONCE)),
        'chacha20.chacha20': (chacha20.chacha20, lambda: (_KEY, _NONCE, _MSG)),
        'chacha20.hchacha20': (chacha20.hchacha20, lambda: (_KEY, bytes(16))),
        'poly1305.poly1305': (poly1305.poly1305, lambda: (_KEY, _MSG)),
        'sha256.sha256': (sha256.sha256, lambda: (_MSG,)),
        'hmac.hmac_sha256': (hmac.hmac_sha256, lambda: (_KEY, _MSG)),
        'hmac.hkdf_sha256': (hmac.hkdf_sha256, lambda: (_KEY, b'salt', b'info', 42)),
        'blake2b.blake2b': (blake2b.blake2b, lambda: (_MSG,)),
        'x25519.x25519': (x25519.x25519, lambda: (_KEY, x25519.BASEPOINT)),
        'x25519.public_key': (x25519.public_key, lambda: (_KEY,)),
    }


def _as_bytearrays(args):
    return tuple(bytearray(a) if isinstance(a, bytes) else a for a in args)


def run(names=None, out=sys.stdout):
    """Compile or load the overloads ``names`` (default: all) use; 0 on success."""
    from numba.core.config import CACHE_DIR
    calls = _calls()
    unknown = [n for n in names or () if n not in calls]
    if unknown:
        raise ValueError("secretjit warm: unknown function %r; the functions "
                         "are: %s" % (unknown[0], ', '.join(calls)))
    start = time.process_time()
    for label in names or calls:
        func, make_args = calls[label]
        t = time.process_time()
        args = make_args()
        if func(*args) != func(*_as_bytearrays(args)):
            print('secretjit warm: %s gave different results for bytes and '
                  'bytearray arguments' % label, file=out)
            return 1
        print('  %-20s %6.2f s' % (label, time.process_time() - t), file=out)
    print('secretjit warm: %d functions ready in %.1f s of CPU (numba cache: %s)'
          % (len(names or calls), time.process_time() - start,
             CACHE_DIR or 'next to the sources, or ~/.cache/numba if read-only'),
          file=out)
    return 0
