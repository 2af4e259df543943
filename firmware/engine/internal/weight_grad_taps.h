/* The weight gradient of one tap of a kh x kw kernel, shared by weight_update_depthwise.c and
 * weight_update_generic.c (portable forms). Internal to the engine.
 */
#ifndef TT_WEIGHT_GRAD_TAPS_H
#define TT_WEIGHT_GRAD_TAPS_H

#include <stdint.h>

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

/* sum over the valid outputs of g[oy][ox][gc] (x[oy sh + i - pad_top][ox sw + j - pad_left][xc] - zx) */
static inline int32_t tap_grad(const int16_t *g, int32_t ow, int32_t gstride, int32_t gc, const int8_t *xs, int32_t w,
                               int32_t xs_c, int32_t xc, int32_t zx, int32_t sh, int32_t sw, int32_t pad_top,
                               int32_t pad_left, int32_t i, int32_t j, int32_t oy0, int32_t oy1, int32_t ox0, int32_t ox1)
{
    int32_t s = 0;
    for (int32_t oy = oy0; oy < oy1; oy++) {
        const int32_t iy = oy * sh + i - pad_top;
        const int16_t *gp = g + (oy * ow + ox0) * gstride + gc;
        const int8_t *xp = xs + (iy * w + ox0 * sw + j - pad_left) * xs_c + xc;
        for (int32_t ox = ox0; ox < ox1; ox++, gp += gstride, xp += sw * xs_c)
            s += *gp * (*xp - zx);
    }
    return s;
}

#endif
