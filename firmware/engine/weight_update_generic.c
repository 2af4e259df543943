/* Fused weight gradient + SGD update of a generic conv (any window, strides and padding). Groups 1, all in
 * SRAM: input channels 0..k_lo-1; depthwise: the depthwise kernel's update. Portable C only. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"
#include "internal/weight_grad_taps.h"

void tt_weight_update_generic(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, const int8_t *xs,
                              int32_t xs_c, int8_t *weights, const tt_update_ctx *u)
{
    if (gm->groups > 1) {
        tt_weight_update_depthwise(gm, l, g, e, xs, xs_c, weights, u);
        return;
    }
    const int32_t oh = gm->oh, ow = gm->ow, cout = gm->cout, cin = gm->cin, h = gm->h, w = gm->w;
    const int32_t kh = gm->kh, kw = gm->kw, sh = gm->sh, sw = gm->sw, pt = gm->pad_top, pl = gm->pad_left;
    const int32_t k = l->k_lo, zx = l->zx;
    const update_stream st = update_start(u);
    for (int32_t o = 0; o < cout; o++) {
        const int32_t eo = e + l->wcoef_shift[o] - 31;
        for (int32_t i = 0; i < kh; i++) {
            int32_t oy0, oy1;
            valid_outputs(i, pt, sh, h, oh, &oy0, &oy1);
            for (int32_t j = 0; j < kw; j++) {
                int32_t ox0, ox1;
                valid_outputs(j, pl, sw, w, ow, &ox0, &ox1);
                const int32_t flat = ((o * kh + i) * kw + j) * cin;
                for (int32_t ci = 0; ci < k; ci++) {
                    const int32_t s = ox0 < ox1 ? tap_grad(g, ow, cout, o, xs, w, xs_c, ci, zx, sh, sw, pt, pl, i, j,
                                                           oy0, oy1, ox0, ox1)
                                                : 0;
                    update_weight(weights + flat + ci, s, l->wcoef_mult[o], eo, st, (uint32_t)(flat + ci));
                }
            }
        }
    }
}
