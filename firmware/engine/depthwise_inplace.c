/* In-place stride-1 depthwise convolution: the output overwrites the input buffer.
 *
 * Output row r reads input rows r-pad..r+pad, so it is computed into a ring of
 * pad+1 rows and copied over input row r-pad once no later output row needs it.
 * Peak memory is the tensor plus (pad+1) rows instead of two tensors. Each row is
 * one call of the strip form of tt_conv_depthwise, so results are bit-identical. */
#include <string.h>

#include "internal/depthwise_inplace.h"
#include "tt_kernels.h"

void tt_conv_depthwise_inplace(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                               const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                               int32_t zx, int32_t zy, uint8_t *mask, int8_t *ring)
{
    if (tt_conv_depthwise_inplace_fast(xy, h, w, c, kernel, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, mask))
        return;
    const int32_t row = w * c;
    const int32_t slots = pad + 1;
    for (int32_t r = 0; r < h; ++r) {
        const int32_t first = r - pad;
        const int32_t start = first < 0 ? 0 : first;
        uint8_t *row_mask = mask ? mask + (r * row) / 8 : NULL; /* rows are byte-aligned (row % 8 == 0) */
        tt_conv_depthwise(xy + start * row, h - start, w, c, ring + (r % slots) * row, 1, w, kernel, 1,
                          start - first, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, row_mask);
        if (r >= pad) {
            memcpy(xy + (r - pad) * row, ring + ((r - pad) % slots) * row, (size_t)row);
        }
    }
    for (int32_t r = h - pad < 0 ? 0 : h - pad; r < h; ++r) {
        memcpy(xy + r * row, ring + (r % slots) * row, (size_t)row);
    }
}
