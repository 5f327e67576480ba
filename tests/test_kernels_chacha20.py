"""ChaCha20 / HChaCha20 kernels: RFC 8439 vectors and differential tests against cryptography."""

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings, strategies as st

from secretjit.kernels import chacha20 as C
from secretjit.kernels._util import as_u8
from _vectors import h, load, params

V = load("chacha20")
LENGTHS = list(range(0, 301)) + [511, 512, 513, 1000, 1023, 1024, 1025, 4096 + 17, 65537]


def ref(key, nonce, counter, data):
    """cryptography's ChaCha20 takes a 16-byte nonce = LE32(counter) || 12-byte nonce."""
    cipher = Cipher(algorithms.ChaCha20(key, counter.to_bytes(4, "little") + nonce), None)
    return cipher.encryptor().update(data)


@pytest.mark.parametrize("key,nonce,counter,block", params(V["block"], "key", "nonce", "counter", "block"))
def test_block_function_vectors(key, nonce, counter, block):
    out = np.empty(64, np.uint8)
    C.chacha20_block(as_u8(h(key), "key"), as_u8(h(nonce), "nonce"), counter, out)
    assert out.tobytes() == h(block)
    # the stream over zeros is the same block
    assert C.chacha20(h(key), h(nonce), bytes(64), counter) == h(block)


@pytest.mark.parametrize("key,nonce,counter,pt,ct",
                         params(V["encrypt"], "key", "nonce", "counter", "plaintext", "ciphertext"))
def test_encryption_vectors(key, nonce, counter, pt, ct):
    assert C.chacha20(h(key), h(nonce), h(pt), counter) == h(ct)
    assert C.chacha20(h(key), h(nonce), h(ct), counter) == h(pt)


@pytest.mark.parametrize("key,nonce,subkey", params(V["hchacha20"], "key", "nonce", "subkey"))
def test_hchacha20_vector(key, nonce, subkey):
    assert C.hchacha20(h(key), h(nonce)) == h(subkey)


def test_all_lengths_against_cryptography():
    key, nonce = os.urandom(32), os.urandom(12)
    data = os.urandom(max(LENGTHS))
    for n in LENGTHS:
        assert C.chacha20(key, nonce, data[:n], 7) == ref(key, nonce, 7, data[:n]), n


def test_block_boundaries_with_counter_offsets():
    key, nonce = os.urandom(32), os.urandom(12)
    data = os.urandom(64 * 3 * C.LANES + 5)
    for counter in (0, 1, 2 ** 31, 2 ** 32 - 3 * C.LANES - 1):
        assert C.chacha20(key, nonce, data, counter) == ref(key, nonce, counter, data)


def test_counter_up_to_the_last_block():
    key, nonce = os.urandom(32), os.urandom(12)
    assert C.chacha20(key, nonce, bytes(64), 2 ** 32 - 1) == ref(key, nonce, 2 ** 32 - 1, bytes(64))
    with pytest.raises(ValueError, match="counter"):
        C.chacha20(key, nonce, bytes(65), 2 ** 32 - 1)


def test_low_level_kernel_wraps_counter_mod_2_32():
    key = np.frombuffer(os.urandom(32), np.uint8)
    nonce = np.frombuffer(os.urandom(12), np.uint8)
    src = np.zeros(128, np.uint8)
    dst = np.empty_like(src)
    C.chacha20_xor(key, nonce, 2 ** 32 - 1, src, dst)
    assert dst[:64].tobytes() == ref(key.tobytes(), nonce.tobytes(), 2 ** 32 - 1, bytes(64))
    assert dst[64:].tobytes() == ref(key.tobytes(), nonce.tobytes(), 0, bytes(64))


def test_low_level_in_place_and_writable_arrays():
    key = np.frombuffer(os.urandom(32), np.uint8).copy()
    nonce = np.frombuffer(os.urandom(12), np.uint8).copy()
    data = os.urandom(1000)
    buf = np.frombuffer(data, np.uint8).copy()
    C.chacha20_xor(key, nonce, 3, buf, buf)
    assert buf.tobytes() == ref(key.tobytes(), nonce.tobytes(), 3, data)


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12),
       counter=st.integers(0, 2 ** 32 - 2000), data=st.binary(max_size=2000))
def test_hypothesis_against_cryptography(key, nonce, counter, data):
    assert C.chacha20(key, nonce, data, counter) == ref(key, nonce, counter, data)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_input_kinds(kind):
    key, nonce, data = os.urandom(32), os.urandom(12), os.urandom(77)
    conv = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "numpy": lambda b: np.frombuffer(b, np.uint8).copy()}[kind]
    assert C.chacha20(conv(key), conv(nonce), conv(data)) == ref(key, nonce, 0, data)


def test_bad_inputs():
    key, nonce = bytes(32), bytes(12)
    with pytest.raises(ValueError, match=r"key must be 32 bytes, got 31"):
        C.chacha20(bytes(31), nonce, b"")
    with pytest.raises(ValueError, match=r"nonce must be 12 bytes, got 16"):
        C.chacha20(key, bytes(16), b"")
    with pytest.raises(TypeError, match="data"):
        C.chacha20(key, nonce, "text")
    with pytest.raises(TypeError, match="counter"):
        C.chacha20(key, nonce, b"", 1.0)
    with pytest.raises(ValueError, match="counter"):
        C.chacha20(key, nonce, b"", -1)
    with pytest.raises(ValueError, match="counter"):
        C.chacha20(key, nonce, b"", 2 ** 32)
    with pytest.raises(ValueError, match=r"nonce must be 16 bytes, got 12"):
        C.hchacha20(key, nonce)
    # low-level kernels check sizes too instead of reading out of bounds
    k, n = np.zeros(32, np.uint8), np.zeros(12, np.uint8)
    with pytest.raises(ValueError, match="dst"):
        C.chacha20_xor(k, n, 0, np.zeros(10, np.uint8), np.zeros(9, np.uint8))
    with pytest.raises(ValueError, match="key"):
        C.chacha20_xor(k[:31], n, 0, np.zeros(10, np.uint8), np.zeros(10, np.uint8))
