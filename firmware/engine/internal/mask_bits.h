/* Clamp masks: one bit per element, LSB first, element order HWC. Internal to the engine.
 *
 * Kernels write every bit of their n elements (the buffer need not be cleared)
 * and zero the unused high bits of the last byte, so a mask buffer equals
 * NumPy's packbits(..., bitorder="little") byte for byte.
 */
#ifndef TT_MASK_BITS_H
#define TT_MASK_BITS_H

#include <stdint.h>

static inline void tt_mask_put(uint8_t *mask, uint32_t i, uint32_t on)
{
    uint8_t *b = mask + (i >> 3);
    const uint32_t s = i & 7u;
    *b = (uint8_t)((*b & ~(1u << s)) | (on << s));
}

/* Bits i .. i+n-1 (n <= 8) from the low bits of v; may straddle two bytes. */
static inline void tt_mask_put_bits(uint8_t *mask, uint32_t i, uint32_t v, uint32_t n)
{
    uint8_t *b = mask + (i >> 3);
    const uint32_t s = i & 7u;
    const uint32_t field = ((1u << n) - 1u) << s;
    const uint32_t bits = (v << s) & field;
    b[0] = (uint8_t)((b[0] & ~field) | bits);
    if (s + n > 8)
        b[1] = (uint8_t)((b[1] & ~(field >> 8)) | (bits >> 8));
}

/* Bits i .. i+n-1 that lie in one byte ((i & 7) + n <= 8). */
static inline void tt_mask_put_bits_in_byte(uint8_t *mask, uint32_t i, uint32_t v, uint32_t n)
{
    uint8_t *b = mask + (i >> 3);
    const uint32_t s = i & 7u;
    *b = (uint8_t)((*b & ~(((1u << n) - 1u) << s)) | (v << s));
}

/* A mask written in element order from element 0, a whole byte at a time (no read-modify-write):
 * tt_mask_seq_put for i = 0, 1, ..., n-1 with *acc starting at 0, then tt_mask_seq_end. */
static inline void tt_mask_seq_put(uint8_t *mask, uint32_t *acc, uint32_t i, uint32_t on)
{
    *acc |= on << (i & 7u);
    if ((i & 7u) == 7u) {
        mask[i >> 3] = (uint8_t)*acc;
        *acc = 0;
    }
}

static inline void tt_mask_seq_end(uint8_t *mask, uint32_t acc, uint32_t n)
{
    if (n & 7u)
        mask[n >> 3] = (uint8_t)acc;
}

static inline uint32_t tt_mask_get(const uint8_t *mask, uint32_t i) { return (mask[i >> 3] >> (i & 7u)) & 1u; }

static inline void tt_mask_finish(uint8_t *mask, uint32_t n)
{
    if (n & 7u)
        mask[n >> 3] &= (uint8_t)((1u << (n & 7u)) - 1u);
}

#endif
