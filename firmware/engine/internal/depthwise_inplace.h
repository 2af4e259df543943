/* Internal interface between conv_forward.c and depthwise_inplace.c (not part of tt_kernels.h). */
#ifndef TT_DEPTHWISE_INPLACE_H
#define TT_DEPTHWISE_INPLACE_H

#include <stdint.h>

/* tt_conv_depthwise_inplace's DSP form (conv_forward.c): the same result computed in place without the
 * ring, when the kernel supports it; returns 0 (nothing written) otherwise. */
int tt_conv_depthwise_inplace_fast(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                                   const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask);

#endif
