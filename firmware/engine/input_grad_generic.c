/* Input gradient of a generic conv (any window, strides and padding; groups 1 or depthwise): the
 * transposed convolution of dL/dacc with the int8 weights. int32, or normalized int16 in two passes
 * (internal/input_grad_sink.h). Portable C only.
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/generic_weights.h"
#include "internal/input_grad_sink.h"

TT_ALWAYS_INLINE void generic_body(const tt_geom *gm, const tt_layer *l, const int16_t *g, ig_sink *k, int mode)
{
    const int32_t h = gm->h, w = gm->w, cin = gm->cin, ow = gm->ow, cout = gm->cout;
    const int32_t kw = gm->kw, sh = gm->sh, sw = gm->sw, pt = gm->pad_top, pl = gm->pad_left;
    const int32_t ig = cin / gm->groups, og = cout / gm->groups;
    const int32_t wrow = gm->kh * kw * ig;
    for (int32_t iy = 0; iy < h; iy++) {
        int32_t i0;
        const int32_t ni = tap_range(iy, pt, sh, gm->kh, gm->oh, &i0);
        for (int32_t ix = 0; ix < w; ix++) {
            int32_t j0;
            const int32_t nj = tap_range(ix, pl, sw, kw, ow, &j0);
            for (int32_t ci = 0; ci < cin; ci++) {
                const int32_t grp = ci / ig, cl = ci - grp * ig;
                /* groups 1: one tensor, rows o contiguous; depthwise: og = 1 */
                const int8_t *wg = tt_generic_weights(gm, l, grp * og);
                int32_t s = 0;
                for (int32_t a = 0; a < ni; a++) {
                    const int32_t i = i0 + a * sh, oy = (iy + pt - i) / sh;
                    for (int32_t b = 0; b < nj; b++) {
                        const int32_t j = j0 + b * sw, ox = (ix + pl - j) / sw;
                        const int16_t *gp = g + (oy * ow + ox) * cout + grp * og;
                        const int8_t *wp = wg + (i * kw + j) * ig + cl;
                        for (int32_t o = 0; o < og; o++, wp += wrow)
                            s += gp[o] * *wp;
                    }
                }
                ig_put(k, mode, (iy * w + ix) * cin + ci, s);
            }
        }
    }
}

void tt_input_grad_generic(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t *gx)
{
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    generic_body(g, l, gy, &k, IG_STORE32);
}

int32_t tt_input_grad_generic16(const tt_geom *g, const tt_layer *l, const int16_t *gy, int32_t e, int32_t bits,
                                int16_t *gx)
{
    ig_sink k = {0, gx, 0, 0, 0, 0};
    generic_body(g, l, gy, &k, IG_RANGE);
    const int32_t s = ig_start16(&k, bits);
    generic_body(g, l, gy, &k, IG_STORE16);
    return e + s;
}
