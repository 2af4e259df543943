/* In-place stride-1 depthwise convolution (depthwise_inplace.c). */
#ifndef TT_DEPTHWISE_INPLACE_H
#define TT_DEPTHWISE_INPLACE_H

#include <stdint.h>

/* xy: the [h][w][c] input, overwritten by the output; ring: (pad + 1) * w * c bytes of scratch;
 * mask (may be NULL) needs w * c to be a multiple of 8. */
void tt_conv_depthwise_inplace(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                               const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                               int32_t zx, int32_t zy, uint8_t *mask, int8_t *ring);

/* The DSP path's direct form (conv_forward.c): the same result computed in place without the ring,
 * when the kernel supports it; returns 0 (nothing written) otherwise. */
int tt_conv_depthwise_inplace_fast(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                                   const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask);

#endif
