"""X25519 kernel: RFC 7748 vectors, edge cases (low order, non-canonical, top bit, limb
boundaries), differential tests against OpenSSL, erasure of its scratch."""

import os
import subprocess
import sys

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import given, settings, strategies as st

from secretjit.kernels import x25519 as X
from secretjit.testing import assert_erased
from _vectors import h, load, params

V = load("x25519")
P = 2 ** 255 - 19


def enc(n):
    return n.to_bytes(32, "little")


def ref(scalar, u):
    return X25519PrivateKey.from_private_bytes(scalar).exchange(X25519PublicKey.from_public_bytes(u))


@pytest.mark.parametrize("scalar,u,out", params(V["scalarmult"], "scalar", "u", "out"))
def test_rfc7748_vectors(scalar, u, out):
    assert X.x25519(h(scalar), h(u)) == h(out)


def test_rfc7748_public_keys():
    for v in V["scalarmult"]:
        if h(v["u"]) == X.BASEPOINT:
            assert X.public_key(h(v["scalar"])) == h(v["out"])


def test_rfc7748_iterated_1_and_1000():
    it = V["iterated"]
    k = u = h(it["start"])
    for i in range(1, 1001):
        k, u = X.x25519(k, u), k
        if str(i) in it["after"]:
            assert k == h(it["after"][str(i)]), i


@pytest.mark.parametrize("u", V["low_order_u"])
def test_low_order_points_give_all_zero(u):
    for _ in range(3):
        scalar = os.urandom(32)
        assert X.x25519(scalar, h(u)) == bytes(32)
        with pytest.raises(ValueError):          # OpenSSL refuses exactly the all-zero results
            ref(scalar, h(u))


def test_non_canonical_u_is_reduced_mod_p():
    scalar = os.urandom(32)
    for k in range(2, 19):                        # u = p + k, canonical value k (2 .. 18)
        got = X.x25519(scalar, enc(P + k))
        assert got == X.x25519(scalar, enc(k)) == ref(scalar, enc(P + k)), k


def test_top_bit_of_u_is_masked():
    for _ in range(5):
        scalar, u = os.urandom(32), bytearray(os.urandom(32))
        u[31] &= 0x7F
        hi = bytearray(u)
        hi[31] |= 0x80
        assert X.x25519(scalar, bytes(hi)) == X.x25519(scalar, bytes(u)) == ref(scalar, bytes(hi))


def test_scalar_is_clamped():
    scalar, u = bytearray(os.urandom(32)), os.urandom(32)
    a = X.x25519(bytes(scalar), u)
    scalar[0] ^= 0x07                             # low 3 bits are cleared by clamping
    scalar[31] ^= 0xC0                            # bit 255 cleared, bit 254 set
    assert X.x25519(bytes(scalar), u) == a


@settings(max_examples=40, deadline=None)
@given(scalar=st.binary(min_size=32, max_size=32), u=st.binary(min_size=32, max_size=32))
def test_hypothesis_against_cryptography(scalar, u):
    got = X.x25519(scalar, u)
    try:
        want = ref(scalar, u)
    except ValueError:                            # low-order u: OpenSSL refuses, we return zeros
        want = bytes(32)
    assert got == want


def test_diffie_hellman_against_cryptography():
    for _ in range(10):
        a = X25519PrivateKey.generate()
        a_raw = a.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
        b_raw = os.urandom(32)
        b_pub = X.public_key(b_raw)
        assert a.public_key().public_bytes(ser.Encoding.Raw, ser.PublicFormat.Raw) == X.public_key(a_raw)
        assert X.x25519(a_raw, b_pub) == a.exchange(X25519PublicKey.from_public_bytes(b_pub))
        assert X.x25519(b_raw, X.public_key(a_raw)) == X.x25519(a_raw, b_pub)


def test_low_level_kernel():
    scalar, u = os.urandom(32), os.urandom(32)
    out = np.empty(32, np.uint8)
    X.x25519_kernel(out, np.frombuffer(scalar, np.uint8), np.frombuffer(u, np.uint8))
    assert out.tobytes() == X.x25519(scalar, u)


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "numpy"])
def test_input_kinds(kind):
    conv = {"bytes": bytes, "bytearray": bytearray, "memoryview": memoryview,
            "numpy": lambda b: np.frombuffer(b, np.uint8).copy()}[kind]
    scalar, u = os.urandom(32), os.urandom(32)
    assert X.x25519(conv(scalar), conv(u)) == X.x25519(scalar, u)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"scalar must be 32 bytes, got 31"):
        X.x25519(bytes(31), bytes(32))
    with pytest.raises(ValueError, match=r"u must be 32 bytes, got 33"):
        X.x25519(bytes(32), bytes(33))
    with pytest.raises(ValueError, match=r"scalar must be 32 bytes, got 0"):
        X.public_key(b"")
    with pytest.raises(TypeError, match="scalar"):
        X.public_key(12345)
    with pytest.raises(TypeError, match="u must be a uint8 array"):
        X.x25519(bytes(32), np.zeros(8, np.uint32))
    with pytest.raises(ValueError, match="out"):
        X.x25519_kernel(np.zeros(31, np.uint8), np.zeros(32, np.uint8), np.zeros(32, np.uint8))


def _edge_u():
    """u values at the field's and the limbs' boundaries (as the Wycheproof twist/edge cases)."""
    vals = [0, 1, 2, P - 1, P, P + 1, 2 ** 255 - 1, 2 ** 255 - 20, 2 ** 254, 2 ** 254 - 1]
    vals += [(2 ** 51 - 1) << (51 * i) for i in range(5)]          # one full radix-2^51 limb
    vals += [2 ** (51 * i) for i in range(1, 5)] + [2 ** (51 * i) - 1 for i in range(1, 5)]
    vals += [int.from_bytes(bytes([b]) * 32, "little") for b in (0x55, 0xAA, 0xFF)]
    return [enc(v % 2 ** 256) for v in vals]


def test_edge_case_inputs_against_openssl():
    scalars = [bytes(32), bytes([0xFF]) * 32, bytes([0x55]) * 32, os.urandom(32)]
    for u in _edge_u():
        for scalar in scalars:
            try:
                want = ref(scalar, u)
            except ValueError:                    # low-order u: OpenSSL refuses, we return zeros
                want = bytes(32)
            assert X.x25519(scalar, u) == want, (scalar.hex(), u.hex())


def test_scratch_and_registers_erased():
    """assert_erased: the njit control leaves the ladder's words on the stack, in registers
    and in the freed scratch array; the secret kernel leaves none."""
    rng = np.random.default_rng(25519)
    scalar, u = (rng.integers(0, 256, 32, dtype=np.uint8) for _ in range(2))
    report = assert_erased(X.x25519_kernel, np.zeros(32, np.uint8), scalar, u)
    assert report.control["heap"].count > 0 and report.control["stack"].count > 0
    assert all(report.secret[m].count == 0 for m in report.mechanisms)


def test_python_path_without_the_jit():
    """NUMBA_DISABLE_JIT=1: the field operations run as Python ints (the same arithmetic)."""
    v = V["scalarmult"][0]
    code = ("from secretjit.kernels import x25519 as X; "
            "print(X.x25519(bytes.fromhex(%r), bytes.fromhex(%r)).hex())" % (v["scalar"], v["u"]))
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, NUMBA_DISABLE_JIT="1"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == v["out"]
