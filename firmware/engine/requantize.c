/* int8 -> int8 requantization (TFLite QUANTIZE between int8 scales): y = clamp(MBQM(x - zx) + zy), with
 * its clamp mask. Element by element, so y may be x. */
#include "tt_kernels.h"

#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

void tt_requantize(const int8_t *x, int32_t n, int32_t zx, int32_t mult, int32_t shift, int32_t zy, int8_t *y,
                   uint8_t *mask)
{
    for (int32_t i = 0; i < n; i++) {
        const uint32_t f = tt_store_int8(tt_mbqm_inline(x[i] - zx, mult, shift), zy, y + i);
        if (mask)
            tt_mask_put(mask, (uint32_t)i, f);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)n);
}
