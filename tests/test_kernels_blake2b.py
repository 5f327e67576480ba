"""BLAKE2b kernel: RFC 7693 / reference KAT vectors and differential tests against hashlib."""

import hashlib
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from secretjit.kernels import blake2b as B
from _vectors import h, load, params

V = load("blake2b")


def ref(data, digest_size=64, key=b""):
    return hashlib.blake2b(data, digest_size=digest_size, key=key).digest()


@pytest.mark.parametrize("msg,key,digest_size,digest", params(V, "msg", "key", "digest_size", "digest"))
def test_vectors(msg, key, digest_size, digest):
    assert B.blake2b(h(msg), digest_size, h(key)) == h(digest)


def test_all_lengths_against_hashlib():
    data = os.urandom(70000)
    for n in list(range(0, 301)) + [383, 384, 385, 1000, 4096 + 17, 65537]:
        assert B.blake2b(data[:n]) == ref(data[:n]), n
        assert B.blake2b(data[:n], 32, b"k" * 32) == ref(data[:n], 32, b"k" * 32), n


def test_all_key_and_digest_sizes():
    data = os.urandom(300)
    for klen in range(0, 65):
        key = bytes(range(klen))
        for n in (0, 1, 127, 128, 129):
            assert B.blake2b(data[:n], 64, key) == ref(data[:n], 64, key), (klen, n)
    for ds in range(1, 65):
        assert B.blake2b(data, ds) == ref(data, ds), ds
        assert B.blake2b(data[:128], ds, b"key") == ref(data[:128], ds, b"key"), ds


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=2000), ds=st.integers(1, 64), key=st.binary(max_size=64))
def test_hypothesis_against_hashlib(data, ds, key):
    assert B.blake2b(data, ds, key) == ref(data, ds, key)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_input_kinds(kind):
    conv = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "numpy": lambda b: np.frombuffer(b, np.uint8).copy()}[kind]
    data, key = os.urandom(200), os.urandom(20)
    assert B.blake2b(conv(data), 40, conv(key)) == ref(data, 40, key)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"digest_size must be between 1 and 64, got 0"):
        B.blake2b(b"", 0)
    with pytest.raises(ValueError, match=r"digest_size must be between 1 and 64, got 65"):
        B.blake2b(b"", 65)
    with pytest.raises(TypeError, match="digest_size"):
        B.blake2b(b"", "64")
    with pytest.raises(ValueError, match=r"key must be at most 64 bytes, got 65"):
        B.blake2b(b"", 64, bytes(65))
    with pytest.raises(TypeError, match="key"):
        B.blake2b(b"", 64, "key")
    with pytest.raises(TypeError, match="data"):
        B.blake2b(12)
    with pytest.raises(ValueError, match="out"):
        B.blake2b_into(np.zeros(1, np.uint8), np.zeros(0, np.uint8), np.zeros(65, np.uint8))
    with pytest.raises(ValueError, match="key"):
        B.blake2b_into(np.zeros(1, np.uint8), np.zeros(65, np.uint8), np.zeros(64, np.uint8))
