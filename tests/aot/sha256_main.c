/* sha256_main HEX: prints "status=S digest=HEX" of secretjit_sha256 (the
 * examples/aot/secretjit_kernels.py export), for tests/test_aot_cpu.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secretjit_kernels.h"

int main(int argc, char **argv)
{
    const char *hex = argc > 1 ? argv[1] : "";
    int64_t n = (int64_t)strlen(hex) / 2;
    uint8_t *msg = malloc(n ? n : 1), out[32] = {0};
    for (int64_t i = 0; i < n; i++)
        sscanf(hex + 2 * i, "%2hhx", &msg[i]);
    int32_t st = secretjit_sha256(msg, n, out, 32);
    printf("status=%d digest=", st);
    for (int i = 0; i < 32; i++)
        printf("%02x", out[i]);
    printf("\n");
    return 0;
}
