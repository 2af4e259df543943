/* Fused bias gradient + SGD update: the bias gradient is the sum of dL/dacc over the positions. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"

void tt_bias_update(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, int32_t *bias,
                    const tt_update_ctx *u)
{
    const int32_t hw = gm->oh * gm->ow, c = gm->cout;
    const int32_t *coef_mult = l->bcoef_mult, *coef_shift = l->bcoef_shift;
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
