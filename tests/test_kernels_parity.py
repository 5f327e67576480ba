"""Every entry kernel gives the same output under plain @njit and @secret_jit."""

import numpy as np
import pytest
from numba import njit

from secretjit import SecretDispatcher, random_bytes, secret_jit
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519

rng = np.random.default_rng(2026)


def u8(n):
    return rng.integers(0, 256, n, dtype=np.uint8)


def _cases():
    key, nonce, x24, data, aad = u8(32), u8(12), u8(24), u8(1000), u8(13)
    return [
        (chacha20.chacha20_xor, lambda: (key, nonce, 7, data, np.empty(1000, np.uint8)), 4),
        (chacha20.chacha20_block, lambda: (key, nonce, 1, np.empty(64, np.uint8)), 3),
        (chacha20.hchacha20_kernel, lambda: (key, u8(16), np.empty(32, np.uint8)), 2),
        (poly1305.poly1305_mac, lambda: (key, data, np.empty(16, np.uint8)), 2),
        (aead.aead_seal_kernel, lambda: (key, nonce, data, aad, np.empty(1016, np.uint8)), 4),
        (aead.xaead_seal_kernel, lambda: (key, x24, data, aad, np.empty(1016, np.uint8)), 4),
        (sha256.sha256_into, lambda: (data, np.empty(32, np.uint8)), 1),
        (hmac.hmac_sha256_into, lambda: (key, data, np.empty(32, np.uint8)), 2),
        (hmac.hkdf_sha256_into, lambda: (data, u8(16), u8(9), np.empty(77, np.uint8)), 3),
        (blake2b.blake2b_into, lambda: (data, u8(20), np.empty(48, np.uint8)), 2),
        (x25519.x25519_kernel, lambda: (np.empty(32, np.uint8), key, u8(32)), 0),
    ]


@pytest.mark.parametrize('kernel,make_args,out_index', _cases(),
                         ids=lambda v: getattr(v, '__name__', ''))
def test_same_output_under_njit_and_secret_jit(kernel, make_args, out_index):
    assert isinstance(kernel, SecretDispatcher)
    a = make_args()
    b = tuple(x.copy() if isinstance(x, np.ndarray) else x for x in a)
    ra = kernel(*a)
    rb = njit(kernel.py_func)(*b)
    assert ra == rb
    np.testing.assert_array_equal(a[out_index], b[out_index])


def test_random_bytes_inside_a_secret_kernel():
    @secret_jit
    def ephemeral_public(out):
        scalar = np.empty(32, np.uint8)
        random_bytes(scalar)
        base = np.zeros(32, np.uint8)
        base[0] = 9
        x25519.x25519_kernel(out, scalar, base)
        return scalar.sum() > 0

    a, b = np.empty(32, np.uint8), np.empty(32, np.uint8)
    assert ephemeral_public(a) and ephemeral_public(b)
    assert not np.array_equal(a, b)            # fresh key each call
    bound = ephemeral_public.stack_bound(ephemeral_public.signatures[0])
    assert 'secretjit_libc_getrandom' in bound.externals
