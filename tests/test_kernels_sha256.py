"""SHA-256 kernel: FIPS 180-4 / NIST examples and differential tests against hashlib."""

import hashlib
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from secretjit.kernels import sha256 as S
from _vectors import h, load, params

V = load("sha256")


@pytest.mark.parametrize("msg,repeat,digest", params(V, "msg", "repeat", "digest"))
def test_nist_examples(msg, repeat, digest):
    assert S.sha256(h(msg) * repeat) == h(digest)


def test_all_lengths_against_hashlib():
    data = os.urandom(70000)
    for n in list(range(0, 301)) + [447, 448, 1000, 4096 + 17, 65537]:
        assert S.sha256(data[:n]) == hashlib.sha256(data[:n]).digest(), n


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=3000))
def test_hypothesis_against_hashlib(data):
    assert S.sha256(data) == hashlib.sha256(data).digest()


@pytest.mark.skipif(not S.USES_SHA_NI, reason="host CPU without SHA extensions")
def test_sha_ni_and_portable_compressions_agree():
    data = np.frombuffer(os.urandom(64 * 37), np.uint8)
    W = np.empty(64, np.uint32)
    for nblocks in (0, 1, 2, 37):
        H1 = np.frombuffer(os.urandom(32), np.uint32).copy()
        H2 = H1.copy()
        S._sha_blocks_ni(H1, W, data, 0, nblocks)
        S._sha_blocks_scalar(H2, W, data, 0, nblocks)
        assert (H1 == H2).all(), nblocks
    H1 = S._IV.copy()
    H2 = S._IV.copy()
    S._sha_blocks_ni(H1, W, data, 64 * 5 + 3, 2)     # unaligned offset
    S._sha_blocks_scalar(H2, W, data, 64 * 5 + 3, 2)
    assert (H1 == H2).all()


def test_portable_compression_matches_hashlib():
    """The portable path is what hosts without SHA-NI run: check it end to end."""
    data = np.frombuffer(os.urandom(64 * 3), np.uint8)
    H, W = S._IV.copy(), np.empty(64, np.uint32)
    S._sha_blocks_scalar(H, W, data, 0, 3)
    pad = bytes([0x80]) + bytes(55) + (64 * 3 * 8).to_bytes(8, "big")
    S._sha_blocks_scalar(H, W, np.frombuffer(pad, np.uint8), 0, 1)
    assert H.astype(">u4").tobytes() == hashlib.sha256(data.tobytes()).digest()


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_input_kinds(kind):
    data = os.urandom(100)
    conv = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "numpy": lambda b: np.frombuffer(b, np.uint8).copy()}[kind]
    assert S.sha256(conv(data)) == hashlib.sha256(data).digest()


def test_non_byte_memoryview_is_hashed_as_raw_bytes():
    arr = np.arange(10, dtype=np.uint32)
    assert S.sha256(memoryview(arr)) == hashlib.sha256(arr.tobytes()).digest()


def test_bad_inputs():
    with pytest.raises(TypeError, match="data"):
        S.sha256("abc")
    with pytest.raises(TypeError, match="data"):
        S.sha256(None)
    with pytest.raises(ValueError, match="data must be a C-contiguous"):
        S.sha256(np.zeros(10, np.uint8)[::3])
    with pytest.raises(ValueError, match="out"):
        S.sha256_into(np.zeros(3, np.uint8), np.zeros(31, np.uint8))
