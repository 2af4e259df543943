/* A fused activation that cuts into the int8 range: y = clamp(x, lo, hi), with its mask (1 = x inside).
 * Element by element, so y may be x. */
#include "tt_kernels.h"

#include "internal/mask_bits.h"

void tt_clamp(const int8_t *x, int32_t n, int32_t lo, int32_t hi, int8_t *y, uint8_t *mask)
{
    for (int32_t i = 0; i < n; i++) {
        const int32_t v = x[i];
        y[i] = (int8_t)(v < lo ? lo : v > hi ? hi : v);
        if (mask)
            tt_mask_put(mask, (uint32_t)i, v >= lo && v <= hi);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)n);
}
