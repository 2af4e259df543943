/* int8 training kernels: the C twin of host/tinytrain/kernels_ref.py.
 *
 * Every function here computes exactly (bit for bit) what its NumPy reference
 * computes; docs/numerics.md is the specification. Activations are HWC int8,
 * batch 1. Gradients are int16 mantissas with one int32 exponent per tensor
 * (returned by the function that produces them). Masks hold one bit per
 * element, LSB first, in HWC order (1 = the output clamp was not active).
 *
 * Weights of a layer may be split in two parts: the trained part in SRAM
 * ("lo") and the frozen rest in flash ("hi"):
 *   pointwise / dense: lo = [cout][k_lo], hi = [cout][cin - k_lo] (input channels k_lo..cin-1);
 *   depthwise:         lo = [c_lo][kk][kk], hi = [c - c_lo][kk][kk] (channels c_lo..c-1).
 * hi may be NULL when k_lo == cin (c_lo == c); lo may be NULL when k_lo == 0.
 *
 * No function allocates. Scratch that grows with a tensor is the caller's (the ring of the in-place
 * depthwise kernels, planned in the arena); the Cortex-M7 DSP paths also keep fixed-size scratch on
 * the stack (requantization tables, expanded or staged rows, transposed weights; the most, about
 * 1.5 KB, the staged depthwise path's ring and channel constants), which the stack's high-water mark,
 * part of the measured peak SRAM, includes. The portable paths keep small locals only (the largest: the
 * in-place depthwise input gradient's 64 row pointers).
 *
 * One file per kernel and direction in firmware/engine/ (docs/firmware.md), its portable C and its
 * DSP path side by side; the headers in firmware/engine/internal/ are not part of this interface.
 */
#ifndef TT_KERNELS_H
#define TT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum tt_rounding { TT_ROUND_STOCHASTIC = 0, TT_ROUND_NEAREST = 1, TT_ROUND_TRUNCATE = 2 };

/* ------------------------------------------------------------ fixed point */

int32_t tt_mbqm(int32_t x, int32_t multiplier, int32_t shift);  /* TFLite MultiplyByQuantizedMultiplier */
uint32_t tt_mix32(uint32_t x);                                  /* lowbias32 */
/* round(p * 2^e) by mode; r = the element's 32 random bits (stochastic only) */
int64_t tt_round_shift(int64_t p, int32_t e, int32_t mode, uint32_t r);

/* ------------------------------------------------------------ forward
 * mask may be NULL. wsum (per output channel sum of the int8 weights over one
 * output's taps) may be NULL: the kernel then computes it; the code generator
 * passes a flash table for frozen layers. acc = sat32(bias + sum w (x - zx)). */

void tt_conv_pointwise(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, const int32_t *wsum,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask);

/* Depthwise and generic convs run on a band of rows too (a patch stage's strips): output (oy, ox)
 * reads input rows oy*stride - pad_top + ky and columns ox*stride - pad_left + kx; rows outside
 * [0, h) and columns outside [0, w) are padding (they contribute 0 to sum w (x - zx)). A whole
 * tensor is pad_top = pad_left = kernel/2 (or 0); oh and ow need not reach the bottom or right edge. */
void tt_conv_depthwise(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                       int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask);

/* The stride-1 depthwise conv in place: xy, the [h][w][c] input, is overwritten by the output (kernel odd,
 * pad = kernel / 2), exactly what tt_conv_depthwise writes into a separate buffer. ring: (pad + 1) * w * c
 * bytes of scratch; mask (may be NULL) needs w * c to be a multiple of 8. */
void tt_conv_depthwise_inplace(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                               const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                               int32_t zx, int32_t zy, uint8_t *mask, int8_t *ring);

/* Any conv2d (full kxk, grouped, strided 1x1): weights [cout][kernel][kernel][cin/groups] in one piece. */
void tt_conv_generic(const int8_t *x, int32_t h, int32_t w, int32_t cin, int8_t *y, int32_t oh, int32_t ow,
                     int32_t cout, int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, int32_t groups,
                     const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                     int32_t zx, int32_t zy, uint8_t *mask);

typedef struct {
    int32_t left_shift;
    int32_t z1, m1, s1;  /* input 1: zero point, multiplier, shift */
    int32_t z2, m2, s2;
    int32_t zo, mo, so;  /* output */
} tt_add_params;

void tt_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const tt_add_params *p, uint8_t *mask);

void tt_avgpool(const int8_t *x, int32_t hw, int32_t c, int8_t *y, int32_t mult, int32_t shift,
                int32_t zx, int32_t zy, uint8_t *mask);

/* xs[p][0..k-1] = x[p][0..k-1] for each of hw positions (dense: hw = 1, c = k = flat prefix). */
void tt_save_channels(const int8_t *x, int32_t hw, int32_t c, int32_t k, int8_t *xs);

/* ------------------------------------------------------------ loss
 * g = dL/dlogits * lr_scale/65536, normalized to `bits`; returns the exponent.
 * table: 256 uint32 entries round(2^20 exp(-s d)). */
int32_t tt_loss_grad(const int8_t *logits, int32_t n, int32_t label, const uint32_t *table,
                     uint32_t lr_scale, int32_t s_mult, int32_t s_shift, int32_t bits, int16_t *g);

/* ------------------------------------------------------------ backward */

/* out = normalize(rshift_round(g * mask * mult[ch], shmax - shift[ch]), e + shmax - 31, bits).
 * nmult = c (per channel) or 1 (per tensor). out may alias g. Returns the new exponent. */
int32_t tt_requant_grad(const int16_t *g, int32_t e, const uint8_t *mask, int32_t hw, int32_t c,
                        const int32_t *mult, const int32_t *shift, int32_t nmult, int32_t bits, int16_t *out);

/* out[p][ch] = src[ch] for p = 0..hw-1; out may alias src (src = out's first row). */
void tt_broadcast_rows(const int16_t *src, int32_t hw, int32_t c, int16_t *out);

/* Input gradients (int32, same exponent as g). */
void tt_input_grad_pointwise(const int16_t *g, int32_t hw, int32_t cout,
                             const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, int32_t cin, int32_t *gx);
void tt_input_grad_depthwise(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                             int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi,
                             int32_t c_lo, int32_t *gx);
void tt_input_grad_generic(const int16_t *g, int32_t oh, int32_t ow, int32_t cout, int32_t kernel, int32_t stride,
                           int32_t pad, int32_t groups, const int8_t *weights, int32_t h, int32_t w, int32_t cin,
                           int32_t *gx);

/* The same input gradients written directly as int16 mantissas normalized to `bits` (2..16):
 * normalize(v, e, bits) of the int32 v above, with no int32 buffer (two passes: the max |v|, then
 * rshift_round(v, s)). Returns the exponent e + s. gx must not overlap g. */
int32_t tt_input_grad_pointwise16(const int16_t *g, int32_t e, int32_t hw, int32_t cout, const int8_t *w_lo,
                                  const int8_t *w_hi, int32_t k_lo, int32_t cin, int32_t bits, int16_t *gx);
int32_t tt_input_grad_depthwise16(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                  int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                  const int8_t *w_hi, int32_t c_lo, int32_t bits, int16_t *gx);
int32_t tt_input_grad_generic16(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t cout, int32_t kernel,
                                int32_t stride, int32_t pad, int32_t groups, const int8_t *weights, int32_t h,
                                int32_t w, int32_t cin, int32_t bits, int16_t *gx);

/* The stride-1 depthwise input gradient in place: g is dL/dacc [h][w][c] (output and input have the same
 * h x w: kernel odd, pad = kernel / 2) and is overwritten by the input gradient gx [h][w][c], exactly
 * what tt_input_grad_depthwise16(g, e, h, w, c, kernel, 1, pad, h, w, w_lo, w_hi, c_lo, bits, gx) writes
 * into a separate buffer; returns the same exponent. ring: scratch for (pad + 1) rows of g, i.e.
 * (pad + 1) * w * c int16 (not aliasing g); pass 1 (the max) only reads g, pass 2 keeps the original
 * values of a row of g there before the row is overwritten, for the rows below that still read it (DSP
 * builds hold their channel planes there instead). kernel <= 63. */
int32_t tt_input_grad_depthwise16_inplace(int16_t *g, int32_t e, int32_t h, int32_t w, int32_t c, int32_t kernel,
                                          int32_t pad, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                                          int32_t bits, int16_t *ring);

/* Sum of n gradient parts (each int32 or int16, see is32) into int16 with `bits`; returns the exponent.
 * out may alias parts[0]. */
int32_t tt_grad_sum(const void *const *parts, const uint8_t *is32, const int32_t *exps, int32_t nparts,
                    int32_t n, int32_t bits, int16_t *out);

/* ------------------------------------------------------------ fused gradient + SGD update
 * coef_mult/coef_shift: per output channel quantize_multiplier(lr / s_w^2) (QAS) or (lr).
 * The random bits of element i are tt_mix32(tt_mix32(seed ^ step) + elem_offset + i), i running
 * row-major over the SRAM part. */

typedef struct {
    int32_t mode;          /* enum tt_rounding */
    uint32_t seed;
    uint32_t step;
    uint32_t elem_offset;
} tt_update_ctx;

/* w_lo [cout][k] updated; xs holds hw positions of xs_c channels (the first k are used). Dense: hw = 1. */
void tt_weight_update_pointwise(const int16_t *g, int32_t e, int32_t hw, int32_t cout,
                                const int8_t *xs, int32_t xs_c, int32_t k, int32_t zx, int8_t *w_lo,
                                const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u);
/* w_lo [k][kernel][kernel]: channels 0..k-1; g is [oh][ow][c]; xs is [h][w][xs_c]. */
void tt_weight_update_depthwise(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t c,
                                const int8_t *xs, int32_t h, int32_t w, int32_t xs_c, int32_t k,
                                int32_t kernel, int32_t stride, int32_t pad, int32_t zx, int8_t *w_lo,
                                const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u);
/* weights [cout][kernel][kernel][cin] (groups = 1) all in SRAM; input channels 0..k-1 updated;
 * random index = elem_offset + the element's flat index in the whole tensor. */
void tt_weight_update_generic(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t cout,
                              const int8_t *xs, int32_t h, int32_t w, int32_t xs_c, int32_t k,
                              int32_t kernel, int32_t stride, int32_t pad, int32_t zx, int8_t *weights, int32_t cin,
                              const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u);

void tt_bias_update(const int16_t *g, int32_t e, int32_t hw, int32_t c, int32_t *bias,
                    const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u);

#ifdef __cplusplus
}
#endif

#endif
