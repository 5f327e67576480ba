"""secretjit.kernels as a C library: ``python -m secretjit aot examples/aot/secretjit_kernels.py -o build/aot``.

Builds ``build/aot/libsecretjit_kernels.so`` and ``build/aot/secretjit_kernels.h`` (for AArch64 add
``--target aarch64-linux-gnu``).  Every function returns an ``int32_t`` status
(0 ok, 1 the kernel raised, e.g. a wrong size, 2 invalid argument); arrays are
``(uint8_t *x, int64_t x_len)``; see the generated header.
"""
from secretjit.aot import export
from secretjit.kernels import aead, blake2b, chacha20, hmac, poly1305, sha256, x25519

B = "uint8[::1]"


def _sig(ret, n):
    return "%s(%s)" % (ret, ", ".join([B] * n))


# (key[32], nonce[12], plaintext, aad, out[len(plaintext) + 16])
export("secretjit_aead_seal", _sig("void", 5))(aead.aead_seal_kernel)
# (key[32], nonce[12], ciphertext_and_tag, aad, out[len - 16]) -> 1 authentic, 0 not (out zeroed)
export("secretjit_aead_open", _sig("int64", 5))(aead.aead_open_kernel)
# XChaCha20-Poly1305: the same with a 24-byte nonce
export("secretjit_xaead_seal", _sig("void", 5))(aead.xaead_seal_kernel)
export("secretjit_xaead_open", _sig("int64", 5))(aead.xaead_open_kernel)
# (out[32], scalar[32], u[32])
export("secretjit_x25519", _sig("void", 3))(x25519.x25519_kernel)
# (ikm, salt, info, out[length <= 8160])
export("secretjit_hkdf_sha256", _sig("void", 4))(hmac.hkdf_sha256_into)
# (key, msg, out[32])
export("secretjit_hmac_sha256", _sig("void", 3))(hmac.hmac_sha256_into)
# (data, key[0..64], out[1..64]: the digest size)
export("secretjit_blake2b", _sig("void", 3))(blake2b.blake2b_into)
# (data, out[32])
export("secretjit_sha256", _sig("void", 2))(sha256.sha256_into)
# (key[32], nonce[12], counter, src, dst[len(src)])
export("secretjit_chacha20_xor", "void(uint8[::1], uint8[::1], uint32, uint8[::1], uint8[::1])")(
    chacha20.chacha20_xor)
# (key[32], msg, out[16])
export("secretjit_poly1305", _sig("void", 3))(poly1305.poly1305_mac)
