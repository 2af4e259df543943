/* SHA-256 (FIPS 180-4), incremental, no allocation: the board checks a restored learned state
 * against the hash the host sends with it (docs/protocol.md, PARAMS_SET). */
#ifndef TT_SHA256_H
#define TT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;      /* message length so far */
    uint8_t block[64];
    uint32_t fill;       /* bytes waiting in block */
} sha256_t;

void sha256_init(sha256_t *s);
void sha256_update(sha256_t *s, const void *data, size_t len);
void sha256_final(sha256_t *s, uint8_t digest[32]);

#endif
