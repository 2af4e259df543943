/* Fused weight gradient + SGD update of a generic conv (groups 1, all in SRAM): input channels 0..k-1.
 * Portable C only. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"
#include "internal/weight_grad_taps.h"

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
