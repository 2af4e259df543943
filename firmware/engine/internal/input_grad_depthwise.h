/* Internal interface between input_grad_depthwise.c and input_grad_depthwise_inplace.c (not part of tt_kernels.h). */
#ifndef TT_INPUT_GRAD_DEPTHWISE_H
#define TT_INPUT_GRAD_DEPTHWISE_H

#include <stdint.h>

#include "dsp_intrinsics.h"

/* Pass 1 of tt_input_grad_depthwise16 alone: the renormalization shift s of its values (reads g only).
 * ks: the kernel's scratch (tt_input_grad_depthwise_scratch_bytes), here and below. */
int32_t tt_input_grad_depthwise16_shift(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                        int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                        const int8_t *w_hi, int32_t c_lo, int32_t bits, void *ks);

#if TT_DSP
/* tt_input_grad_depthwise16 through channel planes (the DSP fast path), with the planes in scratch
 * (scratch_elems int16) or, when they do not fit there, in ks; gx may be g (each channel is copied
 * into a plane before its outputs are written). Returns 0 when the form does not apply (kernel or plane
 * too large), else 1 with the shift in *s. */
int tt_input_grad_depthwise16_planes(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                     int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t c_lo, int32_t bits, int16_t *gx, int16_t *scratch,
                                     int32_t scratch_elems, int32_t *s, void *ks);
#endif

#endif
