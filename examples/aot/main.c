/* Uses libsecretjit_kernels.so from C: X25519 key agreement, HKDF, an AEAD
 * seal/open round trip and BLAKE2b.  Build and run (see README.md here):
 *
 *   python -m secretjit aot examples/aot/secretjit_kernels.py -o build/aot
 *   cc -O2 -Ibuild/aot examples/aot/main.c -Lbuild/aot -lsecretjit_kernels -Wl,-rpath,'$ORIGIN' -o build/aot/main
 *   ./build/aot/main
 */
#include <stdio.h>
#include <string.h>

#include "secretjit_kernels.h"

static void hex(const char *label, const uint8_t *b, size_t n)
{
    printf("%-18s", label);
    for (size_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    printf("\n");
}

#define CHECK(call)                                                        \
    do {                                                                   \
        int32_t st_ = (call);                                              \
        if (st_ != SECRETJIT_OK) {                                         \
            fprintf(stderr, "%s failed with status %d\n", #call, st_);     \
            return 1;                                                      \
        }                                                                  \
    } while (0)

int main(void)
{
    /* RFC 7748 6.1: Alice's and Bob's private keys. */
    uint8_t alice[32], bob[32], base[32] = {9};
    for (int i = 0; i < 32; i++) {
        static const char *a = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
        static const char *b = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
        sscanf(a + 2 * i, "%2hhx", &alice[i]);
        sscanf(b + 2 * i, "%2hhx", &bob[i]);
    }
    uint8_t alice_pub[32], bob_pub[32], shared_a[32], shared_b[32];
    CHECK(secretjit_x25519(alice_pub, 32, alice, 32, base, 32));
    CHECK(secretjit_x25519(bob_pub, 32, bob, 32, base, 32));
    CHECK(secretjit_x25519(shared_a, 32, alice, 32, bob_pub, 32));
    CHECK(secretjit_x25519(shared_b, 32, bob, 32, alice_pub, 32));
    hex("alice public", alice_pub, 32);
    hex("shared secret", shared_a, 32);
    printf("%-18s%s\n", "shared agrees", memcmp(shared_a, shared_b, 32) ? "NO" : "yes");

    /* HKDF-SHA256(shared, salt = "", info) -> a 32-byte session key. */
    static const uint8_t info[] = "secretjit aot example";
    uint8_t key[32];
    CHECK(secretjit_hkdf_sha256(shared_a, 32, NULL, 0, (uint8_t *)info,
                                sizeof info - 1, key, 32));
    hex("session key", key, 32);

    /* ChaCha20-Poly1305 seal and open. */
    uint8_t nonce[12] = {0};
    static const uint8_t msg[] = "attack at dawn";
    size_t n = sizeof msg - 1;
    uint8_t sealed[sizeof msg - 1 + 16], opened[sizeof msg - 1];
    CHECK(secretjit_aead_seal(key, 32, nonce, 12, (uint8_t *)msg, n, NULL, 0,
                              sealed, n + 16));
    hex("ciphertext||tag", sealed, n + 16);
    int64_t ok = 0;
    CHECK(secretjit_aead_open(key, 32, nonce, 12, sealed, n + 16, NULL, 0,
                              opened, n, &ok));
    printf("%-18s%s \"%.*s\"\n", "opened", ok == 1 ? "authentic" : "FORGED",
           (int)n, opened);
    sealed[0] ^= 1;
    CHECK(secretjit_aead_open(key, 32, nonce, 12, sealed, n + 16, NULL, 0,
                              opened, n, &ok));
    printf("%-18s%s\n", "tampered", ok == 1 ? "accepted (BUG)" : "rejected");

    /* BLAKE2b-256 of the message; a wrong key size makes the kernel raise. */
    uint8_t digest[32];
    CHECK(secretjit_blake2b((uint8_t *)msg, n, NULL, 0, digest, 32));
    hex("blake2b-256", digest, 32);
    uint8_t short_key[16] = {0};
    printf("%-18s%d (SECRETJIT_ERAISED)\n", "bad key status",
           secretjit_aead_seal(short_key, 16, nonce, 12, (uint8_t *)msg, n,
                               NULL, 0, sealed, n + 16));
    return (ok == 1 || memcmp(shared_a, shared_b, 32)) ? 1 : 0;
}
