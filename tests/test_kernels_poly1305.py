"""Poly1305 kernel: RFC 8439 vectors (incl. the A.3 carry edge cases) and differential tests."""

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.poly1305 import Poly1305
from hypothesis import given, settings, strategies as st

from secretjit.kernels import poly1305 as P
from secretjit.kernels._util import as_u8
from _vectors import h, load, params

V = load("poly1305")
BULK = 16 * P.LANES          # bytes per vectorized chunk
LENGTHS = (list(range(0, 301))
           + [n + d for n in (BULK * 2, BULK * 3, BULK * 4, 1000, 4096, 65536) for d in (-17, -16, -1, 0, 1, 15, 16)])


def ref(key, msg):
    return Poly1305.generate_tag(key, msg)


@pytest.mark.parametrize("key,msg,tag", params(V["mac"], "key", "msg", "tag"))
def test_rfc_vectors(key, msg, tag):
    assert P.poly1305(h(key), h(msg)) == h(tag)
    assert P.poly1305_verify_kernel(as_u8(h(key), "key"), as_u8(h(msg), "msg"), as_u8(h(tag), "tag")) == 1


@pytest.mark.parametrize("key,nonce,otk", params(V["keygen"], "key", "nonce", "otk"))
def test_one_time_key_generation_vector(key, nonce, otk):
    from secretjit.kernels.chacha20 import chacha20
    assert chacha20(h(key), h(nonce), bytes(32), 0) == h(otk)


def test_all_lengths_against_cryptography():
    key = os.urandom(32)
    data = os.urandom(max(LENGTHS))
    for n in LENGTHS:
        assert P.poly1305(key, data[:n]) == ref(key, data[:n]), n


def test_every_tail_after_the_vector_chunks():
    """Every tail of 0..16 * LANES + 1 bytes after the vector chunks, from the bulk
    threshold (BULK_MIN_BLOCKS blocks) and from three chunks on."""
    key = os.urandom(32)
    data = os.urandom(4 * BULK + 2)
    for base in (16 * P.BULK_MIN_BLOCKS, 3 * BULK):
        for t in range(BULK + 2):
            assert P.poly1305(key, data[:base + t]) == ref(key, data[:base + t]), base + t


@pytest.mark.parametrize("fill", [0x00, 0xFF])
@pytest.mark.parametrize("n", [15, 16, 17, BULK * 2, BULK * 2 + 16, BULK * 5 + 3, 10000])
def test_extreme_limbs(fill, n):
    """All-ones keys/messages maximize every limb (carry propagation, final reduction)."""
    for key in (b"\xff" * 32, bytes(16) + b"\xff" * 16, b"\xff" * 16 + bytes(16)):
        msg = bytes([fill]) * n
        assert P.poly1305(key, msg) == ref(key, msg)


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), msg=st.binary(max_size=3000))
def test_hypothesis_against_cryptography(key, msg):
    assert P.poly1305(key, msg) == ref(key, msg)


def test_verify_kernel_rejects_any_bit_flip():
    key, msg = os.urandom(32), os.urandom(100)
    tag = bytearray(ref(key, msg))
    k, m = as_u8(key, "key"), as_u8(msg, "msg")
    assert P.poly1305_verify_kernel(k, m, as_u8(tag, "tag")) == 1
    for i in range(16):
        for bit in (0x01, 0x80):
            bad = bytearray(tag)
            bad[i] ^= bit
            assert P.poly1305_verify_kernel(k, m, as_u8(bad, "tag")) == 0


def test_low_level_writable_arrays():
    key = np.frombuffer(os.urandom(32), np.uint8).copy()
    msg = np.frombuffer(os.urandom(5000), np.uint8).copy()
    out = np.empty(16, np.uint8)
    P.poly1305_mac(key, msg, out)
    assert out.tobytes() == ref(key.tobytes(), msg.tobytes())


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"key must be 32 bytes, got 16"):
        P.poly1305(bytes(16), b"")
    with pytest.raises(TypeError, match="msg"):
        P.poly1305(bytes(32), [1, 2, 3])
    with pytest.raises(ValueError, match="out"):
        P.poly1305_mac(np.zeros(32, np.uint8), np.zeros(1, np.uint8), np.zeros(15, np.uint8))


def test_matches_chacha20_poly1305_construction():
    """The AEAD one-time key path: first 32 keystream bytes of block 0 (RFC 8439 2.6)."""
    key, nonce = os.urandom(32), os.urandom(12)
    otk = Cipher(algorithms.ChaCha20(key, bytes(4) + nonce), None).encryptor().update(bytes(32))
    msg = os.urandom(333)
    assert P.poly1305(otk, msg) == ref(otk, msg)
