"""ChaCha20-Poly1305 / XChaCha20-Poly1305: vectors, differential tests, tampering and bad input."""

import os

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import given, settings, strategies as st

from secretjit.kernels import InvalidTag, aead
from secretjit.kernels._util import as_u8
from secretjit.kernels.chacha20 import hchacha20
from _vectors import h, load, params

V = load("aead")
FIELDS = ("key", "nonce", "aad", "plaintext", "ciphertext", "tag")
PT_LENGTHS = list(range(0, 301)) + [511, 512, 513, 1000, 4096 + 17, 65537]


def ref_seal(key, nonce, pt, aad):
    return ChaCha20Poly1305(key).encrypt(nonce, pt, aad)


def ref_xseal(key, nonce, pt, aad):
    """XChaCha20-Poly1305 oracle: our HChaCha20 (checked against the draft vector) + cryptography."""
    return ChaCha20Poly1305(hchacha20(key, nonce[:16])).encrypt(bytes(4) + nonce[16:], pt, aad)


@pytest.mark.parametrize(",".join(FIELDS), params(V["chacha20poly1305"], *FIELDS))
def test_rfc8439_vector(key, nonce, aad, plaintext, ciphertext, tag):
    sealed = aead.seal(h(key), h(nonce), h(plaintext), h(aad))
    assert sealed == h(ciphertext) + h(tag)
    assert aead.open(h(key), h(nonce), sealed, h(aad)) == h(plaintext)


@pytest.mark.parametrize(",".join(FIELDS), params(V["xchacha20poly1305"], *FIELDS))
def test_xchacha_draft_vector(key, nonce, aad, plaintext, ciphertext, tag):
    sealed = aead.xseal(h(key), h(nonce), h(plaintext), h(aad))
    assert sealed == h(ciphertext) + h(tag)
    assert aead.xopen(h(key), h(nonce), sealed, h(aad)) == h(plaintext)


def test_all_plaintext_lengths_against_cryptography():
    key, nonce = os.urandom(32), os.urandom(12)
    data = os.urandom(max(PT_LENGTHS))
    for i, n in enumerate(PT_LENGTHS):
        aad = data[: (i * 7) % 40]
        sealed = aead.seal(key, nonce, data[:n], aad)
        assert sealed == ref_seal(key, nonce, data[:n], aad), n
        assert aead.open(key, nonce, sealed, aad) == data[:n]


def test_all_aad_lengths_against_cryptography():
    key, nonce = os.urandom(32), os.urandom(12)
    data = os.urandom(1200)
    for n in list(range(0, 130)) + [255, 256, 257, 1000]:
        sealed = aead.seal(key, nonce, data[:33], data[:n])
        assert sealed == ref_seal(key, nonce, data[:33], data[:n]), n
        assert aead.open(key, nonce, sealed, data[:n]) == data[:33]


def test_xchacha_lengths_against_oracle():
    key, nonce = os.urandom(32), os.urandom(24)
    data = os.urandom(4200)
    for n in [0, 1, 15, 16, 17, 63, 64, 65, 511, 512, 513, 4200]:
        aad = data[: n % 50]
        sealed = aead.xseal(key, nonce, data[:n], aad)
        assert sealed == ref_xseal(key, nonce, data[:n], aad), n
        assert aead.xopen(key, nonce, sealed, aad) == data[:n]


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=12, max_size=12),
       pt=st.binary(max_size=2000), aad=st.binary(max_size=100))
def test_hypothesis_seal_open(key, nonce, pt, aad):
    sealed = aead.seal(key, nonce, pt, aad)
    assert sealed == ref_seal(key, nonce, pt, aad)
    assert aead.open(key, nonce, sealed, aad) == pt


@settings(max_examples=25, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), nonce=st.binary(min_size=24, max_size=24),
       pt=st.binary(max_size=1000), aad=st.binary(max_size=50))
def test_hypothesis_xseal_xopen(key, nonce, pt, aad):
    sealed = aead.xseal(key, nonce, pt, aad)
    assert sealed == ref_xseal(key, nonce, pt, aad)
    assert aead.xopen(key, nonce, sealed, aad) == pt


@pytest.mark.parametrize("x", [False, True], ids=["chacha", "xchacha"])
def test_tampering_is_rejected(x):
    seal, open_ = (aead.xseal, aead.xopen) if x else (aead.seal, aead.open)
    key, nonce = os.urandom(32), os.urandom(24 if x else 12)
    pt, aad = os.urandom(300), os.urandom(20)
    sealed = seal(key, nonce, pt, aad)
    for pos in [0, 1, 100, 299, 300, 315]:          # ciphertext and tag bytes
        for bit in (0x01, 0x80):
            bad = bytearray(sealed)
            bad[pos] ^= bit
            with pytest.raises(InvalidTag):
                open_(key, nonce, bytes(bad), aad)
    bad_aad = bytearray(aad)
    bad_aad[5] ^= 4
    for k, n, c, a in [(key, nonce, sealed, bytes(bad_aad)),
                       (key, nonce, sealed, b""),
                       (key, nonce, sealed, aad + b"\x00"),
                       (key, bytes([nonce[0] ^ 1]) + nonce[1:], sealed, aad),
                       (key, nonce[:-1] + bytes([nonce[-1] ^ 0x80]), sealed, aad),
                       (bytes([key[0] ^ 1]) + key[1:], nonce, sealed, aad),
                       (key, nonce, sealed[:-1], aad),
                       (key, nonce, sealed + b"\x00", aad),
                       (key, nonce, sealed[1:], aad),
                       (key, nonce, b"", aad),
                       (key, nonce, sealed[:15], aad)]:
        with pytest.raises(InvalidTag):
            open_(k, n, c, a)


def test_empty_plaintext_and_aad():
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = aead.seal(key, nonce, b"")
    assert sealed == ref_seal(key, nonce, b"", b"") and len(sealed) == 16
    assert aead.open(key, nonce, sealed) == b""
    with pytest.raises(InvalidTag):
        aead.open(key, nonce, sealed, b"x")


def test_open_kernel_zeroes_output_on_failure():
    key, nonce = os.urandom(32), os.urandom(12)
    sealed = bytearray(aead.seal(key, nonce, b"secret message!!", b""))
    sealed[-1] ^= 1
    out = np.full(len(sealed) - 16, 0xAA, np.uint8)
    ok = aead.aead_open_kernel(as_u8(key, "key"), as_u8(nonce, "nonce"), as_u8(sealed, "c"),
                               as_u8(b"", "aad"), out)
    assert ok == 0 and not out.any()


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_input_kinds(kind):
    conv = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "numpy": lambda b: np.frombuffer(b, np.uint8).copy()}[kind]
    key, nonce, pt, aad = os.urandom(32), os.urandom(12), os.urandom(50), os.urandom(9)
    sealed = aead.seal(conv(key), conv(nonce), conv(pt), conv(aad))
    assert isinstance(sealed, bytes) and sealed == ref_seal(key, nonce, pt, aad)
    assert aead.open(conv(key), conv(nonce), conv(sealed), conv(aad)) == pt


def test_bad_inputs():
    key, nonce = bytes(32), bytes(12)
    for bad_key in (bytes(31), bytes(33), b""):
        with pytest.raises(ValueError, match=rf"key must be 32 bytes, got {len(bad_key)}"):
            aead.seal(bad_key, nonce, b"")
        with pytest.raises(ValueError, match=rf"key must be 32 bytes, got {len(bad_key)}"):
            aead.open(bad_key, nonce, bytes(16))
    with pytest.raises(ValueError, match=r"nonce must be 12 bytes, got 24"):
        aead.seal(key, bytes(24), b"")
    with pytest.raises(ValueError, match=r"nonce must be 24 bytes, got 12"):
        aead.xseal(key, nonce, b"")
    with pytest.raises(ValueError, match=r"nonce must be 24 bytes, got 12"):
        aead.xopen(key, nonce, bytes(16))
    with pytest.raises(TypeError, match="plaintext"):
        aead.seal(key, nonce, "text")
    with pytest.raises(TypeError, match="aad"):
        aead.seal(key, nonce, b"", aad=None)
    with pytest.raises(TypeError, match="key"):
        aead.seal(list(key), nonce, b"")
    with pytest.raises(TypeError, match="ciphertext_and_tag"):
        aead.open(key, nonce, 12345)
    # numpy arrays: dtype, ndim and contiguity are checked
    with pytest.raises(TypeError, match="key must be a uint8 array"):
        aead.seal(np.zeros(32, np.int8), nonce, b"")
    with pytest.raises(TypeError, match="plaintext must be a uint8 array"):
        aead.seal(key, nonce, np.zeros(8, np.uint32))
    with pytest.raises(ValueError, match="key must be a 1-D"):
        aead.seal(np.zeros((4, 8), np.uint8), nonce, b"")
    with pytest.raises(ValueError, match="plaintext must be a C-contiguous"):
        aead.seal(key, nonce, np.zeros(64, np.uint8)[::2])
    with pytest.raises(ValueError, match="aad must be a C-contiguous"):
        aead.seal(key, nonce, b"", memoryview(bytes(64))[::2])


def test_low_level_kernels_check_sizes():
    k, n = as_u8(bytes(32), "k"), as_u8(bytes(12), "n")
    pt, aad = as_u8(bytes(10), "p"), as_u8(b"", "a")
    with pytest.raises(ValueError, match="out"):
        aead.aead_seal_kernel(k, n, pt, aad, np.empty(10, np.uint8))
    with pytest.raises(ValueError, match="nonce"):
        aead.aead_seal_kernel(k, as_u8(bytes(11), "n"), pt, aad, np.empty(26, np.uint8))
    with pytest.raises(ValueError, match="ciphertext_and_tag"):
        aead.aead_open_kernel(k, n, as_u8(bytes(15), "c"), aad, np.empty(0, np.uint8))
