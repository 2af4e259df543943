/* Fused weight gradient + SGD update of a depthwise conv (any window, strides and padding): the trained
 * channels 0..k_lo-1. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"
#include "internal/weight_grad_taps.h"

void tt_weight_update_depthwise(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, const int8_t *xs,
                                int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u)
{
    const int32_t oh = gm->oh, ow = gm->ow, c = gm->cout, h = gm->h, w = gm->w, k = l->k_lo, zx = l->zx;
    const int32_t kh = gm->kh, kw = gm->kw, sh = gm->sh, sw = gm->sw, pt = gm->pad_top, pl = gm->pad_left;
    const int32_t *coef_mult = l->wcoef_mult, *coef_shift = l->wcoef_shift;
    const update_stream st = update_start(u);
    const int32_t kk = kh * kw;
    int32_t c0 = 0;
#if TT_DSP
    /* 4 channels per tap: x - zx in the int16 lanes (SSUB16; the valid region
     * differs per tap, so no per-channel sum can fold the zero point). */
    const uint32_t zz = tt_pack16(zx, zx);
    for (; c0 + 3 < k; c0 += 4) {
        for (int32_t i = 0; i < kh; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pt, sh, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kw; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pl, sw, w, ow, &ox0, &ox1);
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                for (int32_t oy = oy0; ox0 < ox1 && oy < oy1; oy++) {
                    const int32_t iy = oy * sh + i - pt;
                    const int16_t *gp = g + (oy * ow + ox0) * c + c0;
                    const int8_t *xp = xs + (iy * w + ox0 * sw + j - pl) * xs_c + c0;
                    for (int32_t n = ox1 - ox0; n > 0; --n, gp += c, xp += sw * xs_c) {
                        const uint32_t g01 = tt_read_s16x2(gp), g23 = tt_read_s16x2(gp + 2);
                        const uint32_t xv = tt_read_s8x4(xp);
                        const uint32_t xe = tt_ssub16(tt_sxtb16(xv), zz), xo = tt_ssub16(tt_sxtb16_ror8(xv), zz);
                        a0 = tt_smlabb(xe, g01, a0);
                        a1 = tt_smlabt(xo, g01, a1);
                        a2 = tt_smlatb(xe, g23, a2);
                        a3 = tt_smlatt(xo, g23, a3);
                    }
                }
                const int32_t t = i * kw + j;
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
        for (int32_t i = 0; i < kh; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pt, sh, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kw; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pl, sw, w, ow, &ox0, &ox1);
                const int32_t s = ox0 < ox1 ? tap_grad(g, ow, c, ch, xs, w, xs_c, ch, zx, sh, sw, pt, pl, i, j, oy0,
                                                       oy1, ox0, ox1)
                                            : 0;
                const int32_t t = i * kw + j;
                update_weight(w_lo + ch * kk + t, s, coef_mult[ch], ec, st, (uint32_t)(ch * kk + t));
            }
        }
    }
}
