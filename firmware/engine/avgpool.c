/* Global average pool, forward: acc = sum (x - zx) over the positions, y = clamp(MBQM(acc) + zy). */
#include "tt_kernels.h"

#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

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
