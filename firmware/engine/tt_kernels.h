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
 * No function allocates. Scratch is the caller's, planned in the arena: the rings of the in-place depthwise
 * kernels, and the DSP paths' working memory, whose size a function per kernel gives
 * (tt_<kernel>_scratch_bytes, below). The kernels keep small locals only (the largest: the in-place
 * depthwise input gradient's 64 row pointers, the pointwise path's staged outputs).
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

/* ------------------------------------------------------------ per-layer constants
 * The code generator emits, once per layer, a geometry and a layer struct with designated
 * initializers (static const, flash), and every kernel call of the layer (forward, input
 * gradient, weight and bias update) takes pointers to them:
 *
 *   static const tt_geom conv3_g = {.h = 49, .w = 10, .cin = 1, .oh = 25, .ow = 5, .cout = 64, .kh = 10,
 *                                   .kw = 4, .sh = 2, .sw = 2, .pad_top = 4, .pad_left = 1, .groups = 1};
 *   static const tt_layer conv3_l = {.w_hi = conv3_w, .bias = conv3_b, .mult = conv3_mult, ...};
 *   tt_conv_generic(&conv3_g, &conv3_l, x, y, mask);
 *
 * Output (oy, ox) reads input rows oy*sh - pad_top + ky and columns ox*sw - pad_left + kx; rows
 * outside [0, h) and columns outside [0, w) are padding (zero-point padding: they contribute 0 to
 * sum w (x - zx)). The padding below and right is what oh and ow imply (TFLite's asymmetric SAME). */
typedef struct {
    int32_t h, w, cin;          /* input */
    int32_t oh, ow, cout;       /* output */
    int32_t kh, kw;             /* window */
    int32_t sh, sw;             /* strides */
    int32_t pad_top, pad_left;  /* padding above and left of the input */
    int32_t groups;             /* 1, or cin = cout (depthwise) */
} tt_geom;

/* A weighted layer's constants. Weights may be split in two parts: the trained part in SRAM (w_lo) and the
 * frozen rest in flash (w_hi):
 *   pointwise / dense: w_lo = [cout][k_lo], w_hi = [cout][cin - k_lo] (input channels k_lo..cin-1);
 *   depthwise:         w_lo = [k_lo][kh][kw], w_hi = [c - k_lo][kh][kw] (channels k_lo..c-1);
 *   generic, groups 1: the whole [cout][kh][kw][cin] in w_lo (trained: input channels 0..k_lo-1 are updated)
 *                      or in w_hi (frozen, k_lo = 0);
 *   generic, depthwise (any window): as depthwise.
 * w_hi may be NULL when nothing is frozen, w_lo when nothing is trained. wsum (per output channel sum of
 * the int8 weights over one output's taps) may be NULL: the kernels then compute it (the generator gives
 * a flash table for frozen pointwise / dense layers). The SGD coefficients (per output channel
 * quantize_multiplier(lr / s_w^2) with QAS, or of lr) are NULL for what is not trained. The update kernels
 * take the SRAM arrays they write (w_lo, bias) as separate, non-const arguments. */
typedef struct {
    const int8_t *w_lo;
    const int8_t *w_hi;
    int32_t k_lo;
    const int32_t *wsum;
    const int32_t *bias;
    const int32_t *mult, *shift;          /* per output channel requantization */
    int32_t zx, zy;                       /* input and output zero points */
    const int32_t *wcoef_mult, *wcoef_shift;
    const int32_t *bcoef_mult, *bcoef_shift;
} tt_layer;

/* ------------------------------------------------------------ scratch
 * The Cortex-M7 DSP paths work in caller-supplied scratch (requantization tables, expanded or staged
 * rows, transposed weights, channel planes), CMSIS-NN's get_buffer_size style: the kernels that take a
 * `scratch` argument need at least tt_<kernel>_scratch_bytes(g) bytes there, 8-byte aligned, which the
 * compiler plans in the arena as a buffer of the step (live during that step only; the Python twin of
 * each function is in the op's rule). The sizes are those of the DSP path whatever the build (one plan
 * for every build); the portable path reads and writes none of it, and scratch may be NULL when the
 * size is 0. The band forms (_rows) need what the whole layer's geometry needs. */
int32_t tt_conv_pointwise_scratch_bytes(const tt_geom *g);
int32_t tt_conv_depthwise_scratch_bytes(const tt_geom *g);
int32_t tt_conv_depthwise_inplace_scratch_bytes(const tt_geom *g);
int32_t tt_conv_generic_scratch_bytes(const tt_geom *g);
int32_t tt_input_grad_pointwise_scratch_bytes(const tt_geom *g);
int32_t tt_input_grad_depthwise_scratch_bytes(const tt_geom *g);
int32_t tt_weight_update_pointwise_scratch_bytes(const tt_geom *g);

/* ------------------------------------------------------------ forward
 * mask may be NULL. acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy). */

/* 1x1 conv (dense: h = w = oh = ow = 1, cin = the flattened input) over h * w positions. */
void tt_conv_pointwise(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch);
/* Depthwise conv (groups = c), square window and one stride (kh = kw, sh = sw, any pads). */
void tt_conv_depthwise(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch);
/* Any conv2d: any window, strides, pads; groups 1 or depthwise. */
void tt_conv_generic(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch);

/* Bands of rows (a patch stage's strips, no mask): the geometry of the whole layer with three fields
 * overridden by the call, so that no per-strip struct sits in flash. x holds `h` input rows, the first
 * one being the input row (first output row) * sh - pad_top (pad_top: the rows of padding above x,
 * nonzero only in a strip at the top edge); `oh` output rows are written. Pointwise: `rows` rows of
 * g->w positions. */
void tt_conv_pointwise_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t rows,
                            void *scratch);
void tt_conv_depthwise_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t h, int32_t oh,
                            int32_t pad_top, void *scratch);
void tt_conv_generic_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t h, int32_t oh,
                          int32_t pad_top, void *scratch);

/* The stride-1 depthwise conv in place: xy, the [h][w][c] input, is overwritten by the output (kh = kw odd,
 * pads = kh / 2, oh = h, ow = w), exactly what tt_conv_depthwise writes into a separate buffer.
 * ring: (pad + 1) * w * c bytes of scratch; mask (may be NULL) needs w * c to be a multiple of 8. */
void tt_conv_depthwise_inplace(const tt_geom *g, const tt_layer *l, int8_t *xy, uint8_t *mask, int8_t *ring,
                               void *scratch);

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

/* IMAGE_RESIZE (ops/image_resize.py): uint8 source pixels [h][w][cin] (the geometry's input) to the model's
 * int8 input [oh][ow][cout]: RGB to gray (luma) when cout = 1, bilinear resize in Q8 with pixel centres
 * aligned, gray repeated when cin = 1 and cout = 3, then the 256-entry table lut. Writes output rows
 * row0 .. row0 + rows - 1 to dst (dst points at row row0); src holds source rows from src_row0 on (every
 * row those output rows read). */
void tt_image_resize(const tt_geom *g, const uint8_t *src, int32_t src_row0, int8_t *dst, int32_t row0, int32_t rows,
                     const int8_t *lut);

/* Pooling and padding take the node's tt_geom (cin = cout = c, groups 1). Input and output share scale
 * and zero point: nothing is requantized, nothing is clamped, no mask. */

/* MAX_POOL_2D: the max of a window's in-bounds elements (padding never wins). */
void tt_maxpool(const tt_geom *g, const int8_t *x, int8_t *y);
/* Its gradient: each window's gy goes to its first maximal element (taps row-major), overlapping windows
 * add up; the sums normalized to `bits`. x is the pool's input. Returns the exponent. gx must not
 * overlap gy or x. */
int32_t tt_maxpool_grad(const tt_geom *g, const int16_t *gy, int32_t e, const int8_t *x, int32_t bits, int16_t *gx);

/* AVERAGE_POOL_2D: a window's in-bounds sum divided by their count, rounded half away from zero. */
void tt_avgpool2d(const tt_geom *g, const int8_t *x, int8_t *y);
/* Its gradient: every in-bounds element of a window gets rshift_round(gy m[n], rsh[n]) (n its element
 * count; rm, rsh: pool_reciprocals of the window), summed over windows, normalized to `bits` from the
 * exponent e + eoff. gx must not overlap gy. */
int32_t tt_avgpool2d_grad(const tt_geom *g, const int16_t *gy, int32_t e, const int32_t *rm, const int32_t *rsh,
                          int32_t eoff, int32_t bits, int16_t *gx);

/* PAD of H and W: x [h][w][c] into the middle of y [oh][ow][c] at (pad_top, pad_left), the border = zx. */
void tt_pad(const tt_geom *g, const int8_t *x, int32_t zx, int8_t *y);
/* Its gradient: the middle of gy [oh][ow][c] as gx [h][w][c] (same exponent); gx may be gy (in place). */
void tt_pad_grad(const tt_geom *g, const int16_t *gy, int16_t *gx);

/* Concatenation along channels: x [hw][c] into channels at..at+c-1 of y [hw][ctot]; its gradient, the
 * slice of g [hw][ctot] back (same exponent). */
void tt_copy_channels(const int8_t *x, int32_t hw, int32_t c, int8_t *y, int32_t ctot, int32_t at);
void tt_slice_channels16(const int16_t *g, int32_t hw, int32_t ctot, int32_t at, int32_t c, int16_t *out);

/* int8 -> int8 requantization: y = clamp(MBQM(x - zx, mult, shift) + zy); y may be x (in place). */
void tt_requantize(const int8_t *x, int32_t n, int32_t zx, int32_t mult, int32_t shift, int32_t zy, int8_t *y,
                   uint8_t *mask);
/* y = clamp(x, lo, hi) (a fused activation cutting into the int8 range); y may be x. The gradients of both
 * are tt_requant_grad with one per-tensor multiplier. */
void tt_clamp(const int8_t *x, int32_t n, int32_t lo, int32_t hi, int8_t *y, uint8_t *mask);

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

/* Input gradients of a layer: gy = dL/dacc [oh][ow][cout]; gx [h][w][cin].
 * int32 form: the values, same exponent as gy. int16 form: normalize(v, e, bits) of those values
 * (2 <= bits <= 16), with no int32 buffer (two passes: the max |v|, then rshift_round(v, s)); returns
 * the exponent e + s; gx must not overlap gy. */
void tt_input_grad_pointwise(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t *gx, void *scratch);
void tt_input_grad_depthwise(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t *gx, void *scratch);
void tt_input_grad_generic(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t *gx);
int32_t tt_input_grad_pointwise16(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, int32_t bits,
                                  int16_t *gx, void *scratch);
int32_t tt_input_grad_depthwise16(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, int32_t bits,
                                  int16_t *gx, void *scratch);
int32_t tt_input_grad_generic16(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, int32_t bits,
                                int16_t *gx);

/* The stride-1 depthwise input gradient in place: gy is dL/dacc [h][w][c] (kh = kw odd, pads kh / 2) and
 * is overwritten by the input gradient [h][w][c], exactly what tt_input_grad_depthwise16 writes into a
 * separate buffer; returns the same exponent. ring: scratch for (pad + 1) rows of gy, i.e.
 * (pad + 1) * w * c int16 (not aliasing gy); pass 1 (the max) only reads gy, pass 2 keeps the original
 * values of a row of gy there before the row is overwritten, for the rows below that still read it (DSP
 * builds hold their channel planes there instead). kh <= 63. */
int32_t tt_input_grad_depthwise16_inplace(const tt_geom *g, const tt_layer *l, int16_t *gy, int32_t e, int32_t bits,
                                          int16_t *ring, void *scratch); /* scratch: tt_input_grad_depthwise_scratch_bytes */

/* Sum of n gradient parts (each int32 or int16, see is32) into int16 with `bits`; returns the exponent.
 * out may alias parts[0]. */
int32_t tt_grad_sum(const void *const *parts, const uint8_t *is32, const int32_t *exps, int32_t nparts,
                    int32_t n, int32_t bits, int16_t *out);

/* ------------------------------------------------------------ fused gradient + SGD update
 * The coefficients are the layer's (wcoef_*, bcoef_*). The random bits of element i are
 * tt_mix32(tt_mix32(seed ^ step) + elem_offset + i), i running row-major over the SRAM part. */

typedef struct {
    int32_t mode;          /* enum tt_rounding */
    uint32_t seed;
    uint32_t step;
    uint32_t elem_offset;
} tt_update_ctx;

/* w_lo [cout][k_lo] updated; xs holds oh * ow positions of xs_c channels (the first k_lo are used).
 * Dense: oh = ow = 1, xs the flat saved input. scratch: tt_weight_update_pointwise_scratch_bytes (may be
 * NULL when that is 0). */
void tt_weight_update_pointwise(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, const int8_t *xs,
                                int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u, void *scratch);
/* w_lo [k_lo][kh][kw] (kh = kw, sh = sw): channels 0..k_lo-1; gy is [oh][ow][c]; xs is [h][w][xs_c]. */
void tt_weight_update_depthwise(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, const int8_t *xs,
                                int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u);
/* Any geometry. groups 1: weights [cout][kh][kw][cin] all in SRAM, input channels 0..k_lo-1 updated, random
 * index = elem_offset + the element's flat index in the whole tensor. Depthwise: as
 * tt_weight_update_depthwise. */
void tt_weight_update_generic(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, const int8_t *xs,
                              int32_t xs_c, int8_t *weights, const tt_update_ctx *u);

/* bias [cout] += update of sum over the oh * ow positions of gy. */
void tt_bias_update(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, int32_t *bias,
                    const tt_update_ctx *u);

#ifdef __cplusplus
}
#endif

#endif
