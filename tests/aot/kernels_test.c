/* Runs secretjit_kernels exports on cases read from stdin, one per line:
 *   OP ARG...      (byte strings as hex, "-" for empty; numbers in decimal)
 * and prints one line per case: STATUS HEX (or STATUS ok/fail HEX for open).
 * tests/test_aot.py writes the cases (RFC vectors and random inputs) and
 * compares every line with the Python kernels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretjit_kernels.h"

static uint8_t *unhex(const char *s, int64_t *n)
{
    if (strcmp(s, "-") == 0) {
        *n = 0;
        return malloc(1);
    }
    size_t len = strlen(s) / 2;
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++)
        sscanf(s + 2 * i, "%2hhx", &b[i]);
    *n = (int64_t)len;
    return b;
}

static void put(int32_t st, const uint8_t *b, int64_t n)
{
    printf("%d ", st);
    for (int64_t i = 0; i < n; i++)
        printf("%02x", b[i]);
    if (n == 0)
        printf("-");
    printf("\n");
}

#define MAXARG 6

int main(void)
{
    static char line[1 << 20];
    while (fgets(line, sizeof line, stdin)) {
        char *tok[MAXARG + 1];
        int nt = 0;
        for (char *t = strtok(line, " \n"); t && nt <= MAXARG; t = strtok(NULL, " \n"))
            tok[nt++] = t;
        if (nt == 0)
            continue;
        const char *op = tok[0];
        uint8_t *a[MAXARG] = {0};
        int64_t n[MAXARG] = {0};
        for (int i = 1; i < nt; i++)
            a[i - 1] = unhex(tok[i], &n[i - 1]);
        int32_t st;
        if (!strcmp(op, "seal") || !strcmp(op, "xseal")) {
            int64_t on = n[2] + 16;
            uint8_t *out = malloc(on);
            st = (op[0] == 'x' ? secretjit_xaead_seal : secretjit_aead_seal)(
                a[0], n[0], a[1], n[1], a[2], n[2], a[3], n[3], out, on);
            put(st, out, on);
            free(out);
        } else if (!strcmp(op, "open") || !strcmp(op, "xopen")) {
            int64_t on = n[2] >= 16 ? n[2] - 16 : 0, ok = -1;
            uint8_t *out = malloc(on + 1);
            st = (op[0] == 'x' ? secretjit_xaead_open : secretjit_aead_open)(
                a[0], n[0], a[1], n[1], a[2], n[2], a[3], n[3], out, on, &ok);
            printf("%d %s ", st, ok == 1 ? "ok" : "fail");
            put(0, ok == 1 ? out : out, ok == 1 ? on : 0);
            free(out);
        } else if (!strcmp(op, "x25519")) {
            uint8_t out[32];
            st = secretjit_x25519(out, 32, a[0], n[0], a[1], n[1]);
            put(st, out, 32);
        } else if (!strcmp(op, "hkdf")) {
            int64_t len = atoll(tok[4]);
            uint8_t *out = malloc(len + 1);
            st = secretjit_hkdf_sha256(a[0], n[0], a[1], n[1], a[2], n[2], out, len);
            put(st, out, len);
            free(out);
        } else if (!strcmp(op, "hmac")) {
            uint8_t out[32];
            st = secretjit_hmac_sha256(a[0], n[0], a[1], n[1], out, 32);
            put(st, out, 32);
        } else if (!strcmp(op, "blake2b")) {
            int64_t len = atoll(tok[3]);
            uint8_t out[64];
            st = secretjit_blake2b(a[0], n[0], a[1], n[1], out, len);
            put(st, out, len);
        } else if (!strcmp(op, "sha256")) {
            uint8_t out[32];
            st = secretjit_sha256(a[0], n[0], out, 32);
            put(st, out, 32);
        } else if (!strcmp(op, "chacha20")) {
            uint32_t ctr = (uint32_t)strtoul(tok[3], NULL, 10);
            uint8_t *out = malloc(n[3] + 1);
            st = secretjit_chacha20_xor(a[0], n[0], a[1], n[1], ctr, a[3], n[3], out, n[3]);
            put(st, out, n[3]);
            free(out);
        } else if (!strcmp(op, "poly1305")) {
            uint8_t out[16];
            st = secretjit_poly1305(a[0], n[0], a[1], n[1], out, 16);
            put(st, out, 16);
        } else {
            printf("unknown-op %s\n", op);
        }
        for (int i = 0; i < MAXARG; i++)
            free(a[i]);
        fflush(stdout);
    }
    return 0;
}
