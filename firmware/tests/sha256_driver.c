/* Host test driver for protocol/sha256.c (host/tests/test_sha256_c.py): reads all of stdin and
 * prints its SHA-256 in hex, fed to sha256_update in pieces of argv[1] bytes (default 1). */
#include <stdio.h>
#include <stdlib.h>

#include "protocol/sha256.h"

int main(int argc, char **argv)
{
    size_t piece = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 1u;
    static unsigned char buf[1u << 16];
    sha256_t s;
    sha256_init(&s);
    size_t n;
    while ((n = fread(buf, 1, piece ? (piece < sizeof buf ? piece : sizeof buf) : 1u, stdin)) > 0u) {
        sha256_update(&s, buf, n);
    }
    unsigned char d[32];
    sha256_final(&s, d);
    for (unsigned i = 0; i < 32u; ++i) {
        printf("%02x", d[i]);
    }
    printf("\n");
    return 0;
}
