"""Encrypt a file of any size in chunks, with the per-file key living only in kernels.

A STREAM-style construction on XChaCha20-Poly1305:

    file    = salt (16) || chunk_0 || chunk_1 || ... || chunk_last
    subkey  = HKDF-SHA256(ikm=key, salt=salt, info="secretjit stream v1")
    chunk_i = XChaCha20-Poly1305(subkey, nonce = salt || i (7 bytes LE) || last (1),
                                 plaintext slice of 64 KiB) || tag

Each chunk is sealed by one secret kernel that derives the subkey, uses it and
wipes it, so the subkey never reaches Python.  The counter in the nonce stops
reordering, the last-chunk flag stops truncation.

Run: python examples/stream_encrypt.py [FILE]   (default: a generated 1 MiB file)
"""

import os
import sys
import tempfile

import numpy as np

from secretjit import random_bytes, secret_jit, wipe
from secretjit.kernels import InvalidTag
from secretjit.kernels.aead import xaead_open_kernel, xaead_seal_kernel
from secretjit.kernels.hmac import hkdf_sha256_into

CHUNK = 64 * 1024
TAG = 16
SALT = 16
INFO = np.frombuffer(b'secretjit stream v1', np.uint8)


@secret_jit(cache=True, nogil=True)
def _chunk_keys(key, salt, index, last):
    """The chunk's subkey (HKDF of the file key) and its nonce."""
    subkey = np.empty(32, np.uint8)
    hkdf_sha256_into(key, salt, INFO, subkey)
    nonce = np.empty(24, np.uint8)
    nonce[:16] = salt
    for i in range(7):
        nonce[16 + i] = (index >> (8 * i)) & 0xFF
    nonce[23] = last
    return subkey, nonce


@secret_jit(cache=True, nogil=True)
def seal_chunk(key, salt, index, last, chunk, out):
    subkey, nonce = _chunk_keys(key, salt, index, last)
    xaead_seal_kernel(subkey, nonce, chunk, nonce[:0], out)
    wipe(subkey)


@secret_jit(cache=True, nogil=True)
def open_chunk(key, salt, index, last, sealed, out):
    subkey, nonce = _chunk_keys(key, salt, index, last)
    ok = xaead_open_kernel(subkey, nonce, sealed, nonce[:0], out)
    wipe(subkey)
    return ok


def _key(key):
    k = np.frombuffer(bytes(key), np.uint8)
    if k.size != 32:
        raise ValueError('key must be 32 bytes, got %d' % k.size)
    return k


def encrypt_file(key, src_path, dst_path):
    k = _key(key)
    salt = np.empty(SALT, np.uint8)
    random_bytes(salt)
    with open(src_path, 'rb') as src, open(dst_path, 'wb') as dst:
        dst.write(salt.tobytes())
        index = 0
        chunk = src.read(CHUNK)
        while True:
            nxt = src.read(CHUNK)
            last = 0 if nxt else 1
            plain = np.frombuffer(chunk, np.uint8)
            out = np.empty(plain.size + TAG, np.uint8)
            seal_chunk(k, salt, index, last, plain, out)
            dst.write(out.tobytes())
            if last:
                return index + 1
            chunk, index = nxt, index + 1


def decrypt_file(key, src_path, dst_path):
    """Raises InvalidTag on tampering, reordering or truncation."""
    k = _key(key)
    with open(src_path, 'rb') as src, open(dst_path, 'wb') as dst:
        salt = np.frombuffer(src.read(SALT), np.uint8)
        if salt.size != SALT:
            raise InvalidTag('file too short for a stream header')
        index = 0
        sealed = src.read(CHUNK + TAG)
        while True:
            nxt = src.read(CHUNK + TAG)
            last = 0 if nxt else 1
            c = np.frombuffer(sealed, np.uint8)
            if c.size < TAG:
                raise InvalidTag('chunk %d is truncated' % index)
            out = np.empty(c.size - TAG, np.uint8)
            if open_chunk(k, salt, index, last, c, out) != 1:
                raise InvalidTag('chunk %d failed authentication (tampered, '
                                 'reordered or truncated stream)' % index)
            dst.write(out.tobytes())
            wipe(out)
            if last:
                return index + 1
            sealed, index = nxt, index + 1


def main(argv):
    key = os.urandom(32)
    with tempfile.TemporaryDirectory() as tmp:
        src = argv[1] if len(argv) > 1 else os.path.join(tmp, 'plain.bin')
        if len(argv) <= 1:
            with open(src, 'wb') as f:
                f.write(os.urandom(1 << 20) + b'tail')
        enc, dec = os.path.join(tmp, 'enc.bin'), os.path.join(tmp, 'dec.bin')
        n = encrypt_file(key, src, enc)
        decrypt_file(key, enc, dec)
        same = open(src, 'rb').read() == open(dec, 'rb').read()
        print('%d chunks, %d -> %d bytes, round trip %s'
              % (n, os.path.getsize(src), os.path.getsize(enc),
                 'ok' if same else 'FAILED'))
        data = open(enc, 'rb').read()
        with open(enc, 'wb') as f:                 # drop the last chunk
            f.write(data[:SALT + (CHUNK + TAG) * (n - 1)])
        try:
            decrypt_file(key, enc, dec)
        except InvalidTag as exc:
            print('truncated stream rejected: %s' % exc)
        return 0 if same else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv))
