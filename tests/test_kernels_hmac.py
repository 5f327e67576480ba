"""HMAC-SHA256 and HKDF-SHA256 kernels: RFC 4231 / RFC 5869 vectors and differential tests."""

import hashlib
import hmac as std_hmac
import os

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given, settings, strategies as st

from secretjit.kernels import hmac as M
from _vectors import h, load, params

V = load("hmac")


def ref_hmac(key, msg):
    return std_hmac.new(key, msg, hashlib.sha256).digest()


def ref_hkdf(ikm, salt, info, length):
    if length == 0:
        return b""
    return HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)


@pytest.mark.parametrize("key,msg,mac", params(V["hmac_sha256"], "key", "msg", "mac"))
def test_rfc4231(key, msg, mac):
    # case 5 stores the 128-bit truncation: compare that prefix
    assert M.hmac_sha256(h(key), h(msg))[:len(h(mac))] == h(mac)


@pytest.mark.parametrize("ikm,salt,info,length,prk,okm",
                         params(V["hkdf_sha256"], "ikm", "salt", "info", "length", "prk", "okm"))
def test_rfc5869(ikm, salt, info, length, prk, okm):
    assert M.hkdf_sha256(h(ikm), h(salt), h(info), length) == h(okm)
    # PRK = HMAC(salt or 32 zero bytes, IKM)
    assert M.hmac_sha256(h(salt) or bytes(32), h(ikm)) == h(prk)
    assert M.hmac_sha256(h(salt), h(ikm)) == h(prk)


def test_key_and_message_lengths_against_stdlib():
    data = os.urandom(5000)
    for klen in [0, 1, 31, 32, 63, 64, 65, 127, 128, 129, 300]:
        for mlen in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4113]:
            key, msg = data[-klen:] if klen else b"", data[:mlen]
            assert M.hmac_sha256(key, msg) == ref_hmac(key, msg), (klen, mlen)


def test_hkdf_lengths_against_cryptography():
    ikm = os.urandom(40)
    for salt in [b"", os.urandom(16), os.urandom(100)]:
        for info in [b"", os.urandom(10), os.urandom(70)]:
            for length in [0, 1, 31, 32, 33, 64, 65, 100, 255 * 32]:
                assert M.hkdf_sha256(ikm, salt, info, length) == ref_hkdf(ikm, salt, info, length)


def test_hkdf_salt_none_means_empty():
    assert M.hkdf_sha256(b"ikm", None, b"info", 50) == ref_hkdf(b"ikm", b"", b"info", 50)


@settings(max_examples=40, deadline=None)
@given(key=st.binary(max_size=200), msg=st.binary(max_size=1000))
def test_hypothesis_hmac(key, msg):
    assert M.hmac_sha256(key, msg) == ref_hmac(key, msg)


@settings(max_examples=30, deadline=None)
@given(ikm=st.binary(max_size=100), salt=st.binary(max_size=100), info=st.binary(max_size=100),
       length=st.integers(0, 600))
def test_hypothesis_hkdf(ikm, salt, info, length):
    assert M.hkdf_sha256(ikm, salt, info, length) == ref_hkdf(ikm, salt, info, length)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"length must be between 0 and 8160, got 8161"):
        M.hkdf_sha256(b"k", b"", b"", 255 * 32 + 1)
    with pytest.raises(ValueError, match="length"):
        M.hkdf_sha256(b"k", b"", b"", -1)
    with pytest.raises(TypeError, match="length"):
        M.hkdf_sha256(b"k", b"", b"", 32.0)
    with pytest.raises(TypeError, match="info"):
        M.hkdf_sha256(b"k", b"", "info", 32)
    with pytest.raises(TypeError, match="ikm"):
        M.hkdf_sha256(None, b"", b"", 32)
    with pytest.raises(TypeError, match="key"):
        M.hmac_sha256("key", b"")
    with pytest.raises(TypeError, match="msg"):
        M.hmac_sha256(b"key", 5)
    with pytest.raises(ValueError, match="out"):
        M.hmac_sha256_into(np.zeros(3, np.uint8), np.zeros(3, np.uint8), np.zeros(16, np.uint8))
    with pytest.raises(ValueError, match="out"):
        M.hkdf_sha256_into(np.zeros(3, np.uint8), np.zeros(3, np.uint8), np.zeros(3, np.uint8),
                           np.zeros(8161, np.uint8))
