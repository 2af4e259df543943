/* Element-wise forward ops: residual add (TFLite int8 ADD), global average pool, channel prefix save. */
#include <string.h>

#include "tt_kernels.h"

#include "fixed_point.h"
#include "mask_bits.h"

/* Element-wise, so y may alias a or b. */
void tt_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const tt_add_params *p, uint8_t *mask)
{
    const int32_t ls = p->left_shift;
    for (int32_t i = 0; i < n; i++) {
        /* (x - z) << left_shift stays exact (|x - z| <= 255, left_shift 20); the sum
         * wraps exactly as the reference's wrap before its second MBQM. */
        const int32_t sa = tt_mbqm_inline(tt_wrap32((uint32_t)(a[i] - p->z1) << ls), p->m1, p->s1);
        const int32_t sb = tt_mbqm_inline(tt_wrap32((uint32_t)(b[i] - p->z2) << ls), p->m2, p->s2);
        const int32_t raw = tt_wrap32((uint32_t)sa + (uint32_t)sb);
        const uint32_t f = tt_store_int8(tt_mbqm_inline(raw, p->mo, p->so), p->zo, y + i);
        if (mask)
            tt_mask_put(mask, (uint32_t)i, f);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)n);
}

void tt_avgpool(const int8_t *x, int32_t hw, int32_t c, int8_t *y, int32_t mult, int32_t shift,
                int32_t zx, int32_t zy, uint8_t *mask)
{
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t acc = 0;
        const int8_t *xp = x + ch;
        for (int32_t p = 0; p < hw; p++, xp += c)
            acc += *xp;
        acc -= zx * hw;
        const uint32_t f = tt_store_int8(tt_mbqm_inline(acc, mult, shift), zy, y + ch);
        if (mask)
            tt_mask_put(mask, (uint32_t)ch, f);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)c);
}

/* In place (xs == x) is safe: row p moves down to p*k <= p*c and never overtakes a row not yet read. */
void tt_save_channels(const int8_t *x, int32_t hw, int32_t c, int32_t k, int8_t *xs)
{
    for (int32_t p = 0; p < hw; p++)
        memmove(xs + p * k, x + p * c, (size_t)k);
}
