"""Sealed box: Go's runtime/secret example made useful.

Inside ONE secret kernel the sender generates an ephemeral X25519 key pair,
agrees with the recipient's public key, derives the session key with HKDF and
seals the message with ChaCha20-Poly1305.  Only the ephemeral public key and
the ciphertext leave the kernel (the shape of libsodium's sealed box)::

    box = epk (32) || ChaCha20-Poly1305(key, nonce=0, message, aad=epk) || tag (16)
    key = HKDF-SHA256(ikm=X25519(esk, recipient_pk), salt=epk || recipient_pk,
                      info="secretjit sealed box v1", 32 bytes)

The ephemeral private key, the shared secret and the session key are born
and die inside the call: registers, stack and heap are erased when it
returns.  A zero nonce is safe because every box has a fresh key.

Run: python examples/sealed_box.py
"""

import numpy as np

from secretjit import random_bytes, secret_jit, wipe
from secretjit.kernels import InvalidTag
from secretjit.kernels._util import as_u8, as_u8_sized
from secretjit.kernels.aead import aead_open_kernel, aead_seal_kernel
from secretjit.kernels.hmac import hkdf_sha256_into
from secretjit.kernels.x25519 import x25519_kernel

INFO = np.frombuffer(b'secretjit sealed box v1', np.uint8)
OVERHEAD = 32 + 16


@secret_jit(cache=True, nogil=True)
def derive_session_key(secret_scalar, their_pk, epk, recipient_pk, key):
    """key = HKDF(X25519(secret_scalar, their_pk), epk || recipient_pk, INFO)."""
    shared = np.empty(32, np.uint8)
    x25519_kernel(shared, secret_scalar, their_pk)
    acc = np.uint8(0)
    for i in range(32):
        acc |= shared[i]
    if acc == 0:            # depends on the public point only
        wipe(shared)
        raise ValueError("public key is a low-order point")
    salt = np.empty(64, np.uint8)
    salt[:32] = epk
    salt[32:] = recipient_pk
    hkdf_sha256_into(shared, salt, INFO, key)
    wipe(shared)


@secret_jit(cache=True, nogil=True)
def seal_with_ephemeral(esk, recipient_pk, message, out):
    """Seal ``message`` to ``recipient_pk`` with the ephemeral secret ``esk``.

    Deterministic given ``esk``: for known-answer tests.  ``out`` must be
    ``message.size + 48`` bytes.
    """
    if out.size != message.size + 48:
        raise ValueError("out must be len(message) + 48 bytes")
    base = np.zeros(32, np.uint8)
    base[0] = 9
    epk = out[:32]
    x25519_kernel(epk, esk, base)
    key = np.empty(32, np.uint8)
    derive_session_key(esk, recipient_pk, epk, recipient_pk, key)
    nonce = np.zeros(12, np.uint8)
    aead_seal_kernel(key, nonce, message, epk, out[32:])
    wipe(key)


@secret_jit(cache=True, nogil=True)
def seal_kernel(recipient_pk, message, out):
    """Seal with an ephemeral key generated inside the kernel."""
    esk = np.empty(32, np.uint8)
    random_bytes(esk)
    seal_with_ephemeral(esk, recipient_pk, message, out)
    wipe(esk)


@secret_jit(cache=True, nogil=True)
def open_kernel(recipient_sk, box, out):
    """Returns 1 and fills ``out`` (len(box) - 48 bytes) if authentic, else 0."""
    base = np.zeros(32, np.uint8)
    base[0] = 9
    recipient_pk = np.empty(32, np.uint8)
    x25519_kernel(recipient_pk, recipient_sk, base)
    epk = box[:32]
    key = np.empty(32, np.uint8)
    derive_session_key(recipient_sk, epk, epk, recipient_pk, key)
    nonce = np.zeros(12, np.uint8)
    ok = aead_open_kernel(key, nonce, box[32:], epk, out)
    wipe(key)
    return ok


@secret_jit(cache=True, nogil=True)
def keypair_kernel(sk, pk):
    random_bytes(sk)
    base = np.zeros(32, np.uint8)
    base[0] = 9
    x25519_kernel(pk, sk, base)


def keypair():
    """A fresh recipient key pair: ``(public_key, private_key)`` as bytes."""
    sk, pk = np.empty(32, np.uint8), np.empty(32, np.uint8)
    keypair_kernel(sk, pk)
    out = pk.tobytes(), sk.tobytes()
    wipe(sk)
    return out


def seal(recipient_public_key, message):
    """Encrypt ``message`` so that only the holder of the private key can read it."""
    pk = as_u8_sized(recipient_public_key, 'recipient_public_key', 32)
    m = as_u8(message, 'message')
    out = np.empty(m.size + OVERHEAD, np.uint8)
    seal_kernel(pk, m, out)
    return out.tobytes()


def open(recipient_private_key, box):  # noqa: A001 - libsodium's name
    """Decrypt a sealed box; raises ``InvalidTag`` if it was tampered with."""
    sk = as_u8_sized(recipient_private_key, 'recipient_private_key', 32)
    b = as_u8(box, 'box')
    if b.size < OVERHEAD:
        raise InvalidTag('box must be at least %d bytes, got %d' % (OVERHEAD, b.size))
    out = np.empty(b.size - OVERHEAD, np.uint8)
    if open_kernel(sk, b, out) != 1:
        wipe(out)
        raise InvalidTag('sealed box failed authentication')
    return out.tobytes()


def main():
    pk, sk = keypair()
    message = b'the session key must not outlive this call'
    box = seal(pk, message)
    print('recipient public key: %s' % pk.hex())
    print('sealed box (%d bytes): %s...' % (len(box), box[:48].hex()))
    print('opened: %r' % open(sk, box))
    tampered = bytearray(box)
    tampered[40] ^= 1
    try:
        open(sk, bytes(tampered))
    except InvalidTag as exc:
        print('tampered box rejected: %s' % exc)
    b = seal_kernel.stack_bound(seal_kernel.signatures[0])
    print('seal_kernel scrubs %d bytes of stack on return' % b.depth)


if __name__ == '__main__':
    main()
