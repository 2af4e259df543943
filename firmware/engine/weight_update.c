/* Fused weight/bias gradient + SGD update (QAS coefficient, rounding by mode, saturation).
 *
 * The gradient of an element exists only in a register: it is summed, scaled
 * by the per-output-channel coefficient coef_mult 2^(e + coef_shift - 31),
 * rounded (stochastic / nearest / truncate) and applied at once. The random
 * bits of element index k are tt_mix32(tt_mix32(seed ^ step) + elem_offset + k).
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"

/* The rounding mode and the PRNG stream of one tensor, copied out of the context
 * (so that stores to the int8 weights, which may alias anything, do not force
 * reloads): r(index) = mix32(first + index), first = mix32(seed ^ step) + elem_offset. */
typedef struct {
    int32_t mode;
    uint32_t first;
} update_stream;

static inline update_stream update_start(const tt_update_ctx *u)
{
    update_stream s;
    s.mode = u->mode;
    s.first = tt_mix32_inline(u->seed ^ u->step) + u->elem_offset;
    return s;
}

static inline int64_t update_delta(int64_t grad, int32_t coef_mult, int32_t e_total, update_stream s, uint32_t index)
{
    const uint32_t r = s.mode == TT_ROUND_STOCHASTIC ? tt_mix32_inline(s.first + index) : 0u;
    return tt_sgd_delta(grad, coef_mult, e_total, s.mode, r);
}

static inline void update_weight(int8_t *w, int64_t grad, int32_t coef_mult, int32_t e_total, update_stream s,
                                 uint32_t index)
{
    *w = tt_apply_weight_delta(*w, update_delta(grad, coef_mult, e_total, s, index));
}

#if TT_DSP
static inline int8_t add_clamp_weight(int8_t w, int32_t d)
{
    const int32_t v = w + d;
    return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
}

/* update_weight over n consecutive elements of one output channel, with the
 * channel's shift and the rounding mode resolved once. In the common case, a
 * right shift n > 32 of P = -grad coef (|P| < 2^62), every step fits 32 bits and
 * round_shift's stochastic (P + (r << (n - 32))) >> n, capped at n = 62 after
 * a pre-shift, is exactly the high word of (P >> (n - 32)) + r (floors of
 * floors compose, and adding the integer r cannot cross a multiple of 2^32
 * differently); nearest is the same with r = 2^31. Anything else takes the
 * element-wise path. */
static void update_run(int8_t *w, const int32_t *grad, int32_t n, int32_t coef, int32_t e_total, update_stream s,
                       uint32_t index)
{
    const int32_t sh = e_total < -1000 ? 1000 : -e_total;
    if (sh <= 32 || (uint32_t)s.mode > (uint32_t)TT_ROUND_TRUNCATE) {
        for (int32_t j = 0; j < n; j++)
            update_weight(w + j, grad[j], coef, e_total, s, index + (uint32_t)j);
        return;
    }
    const int32_t m = sh - 32 > 63 ? 63 : sh - 32;
    if (s.mode == TT_ROUND_STOCHASTIC) {
        for (int32_t j = 0; j < n; j++) {
            const int64_t t = (-(int64_t)grad[j] * coef) >> m;
            const uint32_t r = tt_mix32_inline(s.first + index + (uint32_t)j);
            w[j] = add_clamp_weight(w[j], (int32_t)((t + (int64_t)r) >> 32));
        }
    } else if (s.mode == TT_ROUND_NEAREST) {
        for (int32_t j = 0; j < n; j++) {
            const int64_t t = (-(int64_t)grad[j] * coef) >> m;
            w[j] = add_clamp_weight(w[j], (int32_t)((t + (INT64_C(1) << 31)) >> 32));
        }
    } else { /* toward zero; |P| < 2^62 makes shifts of 63 and more give 0 */
        const int32_t sh63 = sh > 63 ? 63 : sh;
        for (int32_t j = 0; j < n; j++) {
            const int64_t p = -(int64_t)grad[j] * coef;
            w[j] = add_clamp_weight(w[j], (int32_t)(p >= 0 ? p >> sh63 : -((-p) >> sh63)));
        }
    }
}
#endif

/* ------------------------------------------------------------------ pointwise / dense */

/* sum_p g[p][o] (x[p][i] - zx), one element */
static int32_t pw_grad_element(const int16_t *g, int32_t hw, int32_t cout, const int8_t *xs, int32_t xs_c, int32_t zx,
                               int32_t o, int32_t i)
{
    int32_t s = 0;
    const int16_t *gp = g + o;
    const int8_t *xp = xs + i;
    for (int32_t p = 0; p < hw; p++, gp += cout, xp += xs_c)
        s += *gp * (*xp - zx);
    return s;
}

#if TT_DSP
/* 2 output channels x 4 input channels over all positions: per position one
 * int16x2 load of (g[o], g[o+1]) and one int8x4 load of x, 2 unpacks and 8
 * SMLAxy. The zero point is folded afterwards through sum_p g. */
static void pw_grad_block_2x4(const int16_t *g, int32_t hw, int32_t cout, const int8_t *xs, int32_t xs_c, int32_t o,
                              int32_t i0, int32_t *a)
{
    const int16_t *gp = g + o;
    const int8_t *xp = xs + i0;
    int32_t a00 = 0, a01 = 0, a02 = 0, a03 = 0, a10 = 0, a11 = 0, a12 = 0, a13 = 0;
    for (int32_t p = hw; p > 0; --p) {
        const uint32_t gg = tt_read_s16x2(gp), xv = tt_read_s8x4(xp);
        gp += cout;
        xp += xs_c;
        const uint32_t xe = tt_sxtb16(xv), xo = tt_sxtb16_ror8(xv);
        a00 = tt_smlabb(gg, xe, a00);
        a02 = tt_smlabt(gg, xe, a02);
        a10 = tt_smlatb(gg, xe, a10);
        a12 = tt_smlatt(gg, xe, a12);
        a01 = tt_smlabb(gg, xo, a01);
        a03 = tt_smlabt(gg, xo, a03);
        a11 = tt_smlatb(gg, xo, a11);
        a13 = tt_smlatt(gg, xo, a13);
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a02;
    a[3] = a03;
    a[4] = a10;
    a[5] = a11;
    a[6] = a12;
    a[7] = a13;
}
#endif

void tt_weight_update_pointwise(const int16_t *g, int32_t e, int32_t hw, int32_t cout,
                                const int8_t *xs, int32_t xs_c, int32_t k, int32_t zx, int8_t *w_lo,
                                const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u)
{
    const update_stream st = update_start(u);
    int32_t o = 0;
#if TT_DSP
    for (; o + 1 < cout; o += 2) {
        int32_t gs0 = 0, gs1 = 0;
        const int16_t *gp = g + o;
        for (int32_t p = 0; p < hw; p++, gp += cout) {
            gs0 += gp[0];
            gs1 += gp[1];
        }
        const int32_t zg0 = zx * gs0, zg1 = zx * gs1;
        const int32_t m0 = coef_mult[o], m1 = coef_mult[o + 1];
        const int32_t e0 = e + coef_shift[o] - 31, e1 = e + coef_shift[o + 1] - 31;
        int8_t *w0 = w_lo + o * k, *w1 = w0 + k;
        const uint32_t idx0 = (uint32_t)(o * k), idx1 = idx0 + (uint32_t)k;
        int32_t i = 0;
        for (; i + 3 < k; i += 4) {
            int32_t a[8];
            pw_grad_block_2x4(g, hw, cout, xs, xs_c, o, i, a);
            for (int32_t j = 0; j < 4; j++) {
                a[j] -= zg0;
                a[4 + j] -= zg1;
            }
            update_run(w0 + i, a, 4, m0, e0, st, idx0 + (uint32_t)i);
            update_run(w1 + i, a + 4, 4, m1, e1, st, idx1 + (uint32_t)i);
        }
        for (; i < k; i++) {
            update_weight(w0 + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o, i), m0, e0, st,
                          idx0 + (uint32_t)i);
            update_weight(w1 + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o + 1, i), m1, e1, st,
                          idx1 + (uint32_t)i);
        }
    }
#endif
    for (; o < cout; o++) {
        const int32_t eo = e + coef_shift[o] - 31;
        for (int32_t i = 0; i < k; i++)
            update_weight(w_lo + o * k + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o, i), coef_mult[o], eo, st,
                          (uint32_t)(o * k + i));
    }
}

/* ------------------------------------------------------------------ depthwise / generic */

/* Output positions q in [lo, hi) whose tap at offset t (kernel index) lands inside [0, size):
 * 0 <= q stride + t - pad < size. */
static inline void valid_outputs(int32_t t, int32_t pad, int32_t stride, int32_t size, int32_t out_size, int32_t *lo,
                                 int32_t *hi)
{
    const int32_t a = pad - t;                 /* need q stride >= a */
    const int32_t b = size - 1 + pad - t;      /* need q stride <= b */
    int32_t l = a > 0 ? (a + stride - 1) / stride : 0;
    int32_t h = b < 0 ? 0 : b / stride + 1;
    if (h > out_size)
        h = out_size;
    if (l > h)
        l = h;
    *lo = l;
    *hi = h;
}

/* sum over the valid outputs of g[oy][ox][gc] (x[oy s + i - pad][ox s + j - pad][xc] - zx) */
static int32_t tap_grad(const int16_t *g, int32_t ow, int32_t gstride, int32_t gc, const int8_t *xs, int32_t w,
                        int32_t xs_c, int32_t xc, int32_t zx, int32_t stride, int32_t pad, int32_t i, int32_t j,
                        int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1)
{
    int32_t s = 0;
    for (int32_t oy = oy0; oy < oy1; oy++) {
        const int32_t iy = oy * stride + i - pad;
        const int16_t *gp = g + (oy * ow + ox0) * gstride + gc;
        const int8_t *xp = xs + (iy * w + ox0 * stride + j - pad) * xs_c + xc;
        for (int32_t ox = ox0; ox < ox1; ox++, gp += gstride, xp += stride * xs_c)
            s += *gp * (*xp - zx);
    }
    return s;
}

void tt_weight_update_depthwise(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t c,
                                const int8_t *xs, int32_t h, int32_t w, int32_t xs_c, int32_t k,
                                int32_t kernel, int32_t stride, int32_t pad, int32_t zx, int8_t *w_lo,
                                const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u)
{
    const update_stream st = update_start(u);
    const int32_t kk = kernel * kernel;
    int32_t c0 = 0;
#if TT_DSP
    /* 4 channels per tap: x - zx in the int16 lanes (SSUB16; the valid region
     * differs per tap, so no per-channel sum can fold the zero point). */
    const uint32_t zz = tt_pack16(zx, zx);
    for (; c0 + 3 < k; c0 += 4) {
        for (int32_t i = 0; i < kernel; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pad, stride, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kernel; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pad, stride, w, ow, &ox0, &ox1);
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                for (int32_t oy = oy0; ox0 < ox1 && oy < oy1; oy++) {
                    const int32_t iy = oy * stride + i - pad;
                    const int16_t *gp = g + (oy * ow + ox0) * c + c0;
                    const int8_t *xp = xs + (iy * w + ox0 * stride + j - pad) * xs_c + c0;
                    for (int32_t n = ox1 - ox0; n > 0; --n, gp += c, xp += stride * xs_c) {
                        const uint32_t g01 = tt_read_s16x2(gp), g23 = tt_read_s16x2(gp + 2);
                        const uint32_t xv = tt_read_s8x4(xp);
                        const uint32_t xe = tt_ssub16(tt_sxtb16(xv), zz), xo = tt_ssub16(tt_sxtb16_ror8(xv), zz);
                        a0 = tt_smlabb(xe, g01, a0);
                        a1 = tt_smlabt(xo, g01, a1);
                        a2 = tt_smlatb(xe, g23, a2);
                        a3 = tt_smlatt(xo, g23, a3);
                    }
                }
                const int32_t t = i * kernel + j;
                const int32_t a[4] = {a0, a1, a2, a3};
                for (int32_t q = 0; q < 4; q++) {
                    const int32_t ch = c0 + q;
                    update_weight(w_lo + ch * kk + t, a[q], coef_mult[ch], e + coef_shift[ch] - 31, st,
                                  (uint32_t)(ch * kk + t));
                }
            }
        }
    }
#endif
    for (int32_t ch = c0; ch < k; ch++) {
        const int32_t ec = e + coef_shift[ch] - 31;
        for (int32_t i = 0; i < kernel; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pad, stride, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kernel; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pad, stride, w, ow, &ox0, &ox1);
                const int32_t s = ox0 < ox1 ? tap_grad(g, ow, c, ch, xs, w, xs_c, ch, zx, stride, pad, i, j, oy0, oy1,
                                                       ox0, ox1)
                                            : 0;
                const int32_t t = i * kernel + j;
                update_weight(w_lo + ch * kk + t, s, coef_mult[ch], ec, st, (uint32_t)(ch * kk + t));
            }
        }
    }
}

void tt_weight_update_generic(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t cout,
                              const int8_t *xs, int32_t h, int32_t w, int32_t xs_c, int32_t k,
                              int32_t kernel, int32_t stride, int32_t pad, int32_t zx, int8_t *weights, int32_t cin,
                              const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u)
{
    const update_stream st = update_start(u);
    for (int32_t o = 0; o < cout; o++) {
        const int32_t eo = e + coef_shift[o] - 31;
        for (int32_t i = 0; i < kernel; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pad, stride, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kernel; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pad, stride, w, ow, &ox0, &ox1);
                const int32_t flat = ((o * kernel + i) * kernel + j) * cin;
                for (int32_t ci = 0; ci < k; ci++) {
                    const int32_t s = ox0 < ox1 ? tap_grad(g, ow, cout, o, xs, w, xs_c, ci, zx, stride, pad, i, j, oy0,
                                                           oy1, ox0, ox1)
                                                : 0;
                    update_weight(weights + flat + ci, s, coef_mult[o], eo, st, (uint32_t)(flat + ci));
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ bias */

void tt_bias_update(const int16_t *g, int32_t e, int32_t hw, int32_t c, int32_t *bias,
                    const int32_t *coef_mult, const int32_t *coef_shift, const tt_update_ctx *u)
{
    const update_stream st = update_start(u);
    int32_t ch = 0;
#if TT_DSP
    /* Channel pairs: one int16x2 load per position, both lanes added sign-extended (SXTAH). */
    for (; ch + 1 < c; ch += 2) {
        int32_t s0 = 0, s1 = 0, t0 = 0, t1 = 0;
        const int16_t *gp = g + ch;
        const uint32_t one = 1u; /* SMLABB / SMLATB by 1: a lane added sign-extended, one instruction */
        int32_t p = 0;
        for (; p + 1 < hw; p += 2, gp += 2 * c) {
            const uint32_t v = tt_read_s16x2(gp), w = tt_read_s16x2(gp + c);
            s0 = tt_smlabb(v, one, s0);
            s1 = tt_smlatb(v, one, s1);
            t0 = tt_smlabb(w, one, t0);
            t1 = tt_smlatb(w, one, t1);
        }
        if (p < hw) {
            const uint32_t v = tt_read_s16x2(gp);
            s0 = tt_smlabb(v, one, s0);
            s1 = tt_smlatb(v, one, s1);
        }
        s0 += t0;
        s1 += t1;
        for (int32_t k = 0; k < 2; k++) {
            const int64_t d = update_delta(k ? s1 : s0, coef_mult[ch + k], e + coef_shift[ch + k] - 31, st,
                                           (uint32_t)(ch + k));
            const int64_t v = (int64_t)bias[ch + k] + d;
            bias[ch + k] = (int32_t)(v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v);
        }
    }
#endif
    for (; ch < c; ch++) {
        int64_t s = 0;
        const int16_t *gp = g + ch;
        for (int32_t p = 0; p < hw; p++, gp += c)
            s += *gp;
        const int64_t v = (int64_t)bias[ch] + update_delta(s, coef_mult[ch], e + coef_shift[ch] - 31, st, (uint32_t)ch);
        bias[ch] = (int32_t)(v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v);
    }
}
