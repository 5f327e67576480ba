"""The sealed-box example: correct, interoperable, and it forgets.

The erasure test searches the whole writable memory of a process that just
sealed a box for what only the sender's kernel ever held: the shared secret
and the session key (derived independently, with `cryptography`, from the
recipient's key and the box).  Its control is the same source under plain
numba without ``wipe``, which must leave copies behind.

Registers are covered by the canary test of tests/test_register_erasure.py:
for the sealed box itself, even the plain build leaves no copy of these
secrets in registers at return (checked while writing this test), so a
register probe here would have no control that leaks.
"""

import os
import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey, X25519PublicKey)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from secretjit.kernels import InvalidTag


sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                'examples'))
import sealed_box  # noqa: E402

INFO = b'secretjit sealed box v1'
MESSAGE = b'forward secrecy needs the session key gone' * 3


def _recipient():
    sk = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    return sk, sk.public_key().public_bytes_raw()


def _session_secrets(sk, box):
    """Shared secret and session key of ``box``, computed with cryptography."""
    epk = box[:32]
    pk = sk.public_key().public_bytes_raw()
    shared = sk.exchange(X25519PublicKey.from_public_bytes(epk))
    key = HKDF(hashes.SHA256(), 32, epk + pk, INFO).derive(shared)
    return shared, key


def _words(*secrets):
    """8-byte words of the secrets at every byte offset (unaligned copies too)."""
    out = set()
    for s in secrets:
        for i in range(len(s) - 7):
            out.add(int.from_bytes(s[i:i + 8], 'little'))
    return out


def test_roundtrip_and_interop_with_cryptography():
    sk, pk = _recipient()
    box = sealed_box.seal(pk, MESSAGE)
    assert len(box) == len(MESSAGE) + 48
    shared, key = _session_secrets(sk, box)
    # the recipient side, written with OpenSSL only, opens it
    plain = ChaCha20Poly1305(key).decrypt(bytes(12), box[32:], box[:32])
    assert plain == MESSAGE
    assert sealed_box.open(sk.private_bytes_raw(), box) == MESSAGE
    # fresh ephemeral key every time
    assert sealed_box.seal(pk, MESSAGE)[:32] != box[:32]


def test_tampering_and_bad_input_rejected():
    sk, pk = _recipient()
    box = bytearray(sealed_box.seal(pk, MESSAGE))
    for i in (0, 31, 32, len(box) - 1):
        t = bytearray(box)
        t[i] ^= 0x40
        with pytest.raises((InvalidTag, ValueError)):
            sealed_box.open(sk.private_bytes_raw(), bytes(t))
    with pytest.raises(InvalidTag, match='at least 48'):
        sealed_box.open(sk.private_bytes_raw(), b'short')
    with pytest.raises(ValueError, match='recipient_public_key must be 32 bytes'):
        sealed_box.seal(b'\x01' * 31, MESSAGE)
    with pytest.raises(ValueError, match='low-order'):
        sealed_box.seal(bytes(32), MESSAGE)           # all-zero point


def test_deterministic_variant_matches_a_known_computation():
    sk, pk = _recipient()
    esk = np.arange(32, dtype=np.uint8) * np.uint8(7)
    m = np.frombuffer(MESSAGE, np.uint8)
    out = np.empty(m.size + 48, np.uint8)
    sealed_box.seal_with_ephemeral(esk, np.frombuffer(pk, np.uint8), m, out)
    eph = X25519PrivateKey.from_private_bytes(esk.tobytes())
    assert out[:32].tobytes() == eph.public_key().public_bytes_raw()
    shared, key = _session_secrets(sk, out.tobytes())
    assert ChaCha20Poly1305(key).encrypt(bytes(12), MESSAGE, out[:32].tobytes()) \
        == out[32:].tobytes()


@pytest.mark.parametrize('mode', ['control', 'secret'])
def test_no_copy_of_the_session_secrets_left_anywhere_in_memory(mode):
    """After seal returns, scan the whole writable memory of the process.

    The control is the same source under plain numba with ``wipe`` turned
    into a no-op: what the code leaves without secretjit.  The secret run
    must leave no copy of the shared secret or session key in the heap,
    anonymous mappings or stacks.
    """
    import random
    import subprocess
    sk, pk = _recipient()
    child = subprocess.Popen(
        [sys.executable, os.path.join(os.path.dirname(__file__), '_memscan_child.py'),
         mode, pk.hex()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    box = bytes.fromhex(child.stdout.readline().strip())
    shared, key = _session_secrets(sk, box)
    mask = random.getrandbits(64)
    masked = ' '.join(str(w ^ mask) for w in _words(shared, key))
    out, err = child.communicate('%d\n%s\n' % (mask, masked), timeout=300)
    assert child.returncode == 0, err
    hits = int(out.strip())
    if mode == 'control':
        assert hits > 0, "control failed: the scan cannot see leftover secrets"
    else:
        assert hits == 0
