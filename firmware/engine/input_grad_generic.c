/* Input gradient of a generic conv (any groups): the transposed convolution of dL/dacc with the int8
 * weights. int32, or normalized int16 in two passes (internal/input_grad_sink.h). Portable C only.
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/input_grad_sink.h"

TT_ALWAYS_INLINE void generic_body(const int16_t *g, int32_t oh, int32_t ow, int32_t cout, int32_t kernel,
                                   int32_t stride, int32_t pad, int32_t groups, const int8_t *weights, int32_t h,
                                   int32_t w, int32_t cin, ig_sink *k, int mode)
{
    const int32_t ig = cin / groups, og = cout / groups;
    const int32_t wrow = kernel * kernel * ig;
    for (int32_t iy = 0; iy < h; iy++) {
        int32_t i0;
        const int32_t ni = tap_range(iy, pad, stride, kernel, oh, &i0);
        for (int32_t ix = 0; ix < w; ix++) {
            int32_t j0;
            const int32_t nj = tap_range(ix, pad, stride, kernel, ow, &j0);
            for (int32_t ci = 0; ci < cin; ci++) {
                const int32_t grp = ci / ig, cl = ci - grp * ig;
                int32_t s = 0;
                for (int32_t a = 0; a < ni; a++) {
                    const int32_t i = i0 + a * stride, oy = (iy + pad - i) / stride;
                    for (int32_t b = 0; b < nj; b++) {
                        const int32_t j = j0 + b * stride, ox = (ix + pad - j) / stride;
                        const int16_t *gp = g + (oy * ow + ox) * cout + grp * og;
                        const int8_t *wp = weights + grp * og * wrow + (i * kernel + j) * ig + cl;
                        for (int32_t o = 0; o < og; o++, wp += wrow)
                            s += gp[o] * *wp;
                    }
                }
                ig_put(k, mode, (iy * w + ix) * cin + ci, s);
            }
        }
    }
}

void tt_input_grad_generic(const int16_t *g, int32_t oh, int32_t ow, int32_t cout, int32_t kernel, int32_t stride,
                           int32_t pad, int32_t groups, const int8_t *weights, int32_t h, int32_t w, int32_t cin,
                           int32_t *gx)
{
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_STORE32);
}

int32_t tt_input_grad_generic16(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t cout, int32_t kernel,
                                int32_t stride, int32_t pad, int32_t groups, const int8_t *weights, int32_t h,
                                int32_t w, int32_t cin, int32_t bits, int16_t *gx)
{
    ig_sink k = {0, gx, 0, 0, 0, 0};
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_RANGE);
    const int32_t s = ig_start16(&k, bits);
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_STORE16);
    return e + s;
}
