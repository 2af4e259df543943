/* Fused weight gradient + SGD update of a pointwise conv / dense layer: the trained part w_lo [cout][k]. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"

/* ------------------------------------------------------------------ portable (and the DSP path's tails) */

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

/* ------------------------------------------------------------------ Cortex-M7 DSP */

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

void tt_weight_update_pointwise(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, const int8_t *xs,
                                int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u)
{
    const int32_t hw = gm->oh * gm->ow, cout = gm->cout, k = l->k_lo, zx = l->zx;
    const int32_t *coef_mult = l->wcoef_mult, *coef_shift = l->wcoef_shift;
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
