/* Average pool 2D, backward: every in-bounds element of a window gets t = rshift_round(g m[n], rsh[n])
 * (1/n as a multiplier with a common shift), summed over the windows that cover it (int64, gather form:
 * each gx element is written once), normalized to `bits` in two passes. */
#include "tt_kernels.h"

#include "internal/fixed_point.h"

/* In-bounds taps of the window starting at `start` (kernel k over n). */
static inline int32_t inside(int32_t start, int32_t k, int32_t n)
{
    const int32_t lo = start < 0 ? 0 : start, hi = start + k > n ? n : start + k;
    return hi - lo;
}

static inline void covering(int32_t in, int32_t pad, int32_t stride, int32_t k, int32_t out, int32_t *lo,
                            int32_t *hi)
{
    const int32_t t = in + pad, a = t - k + 1;
    const int32_t l = a > 0 ? (a + stride - 1) / stride : 0, h = t / stride + 1;
    *lo = l;
    *hi = h < out ? h : out;
}

static int64_t gather(const tt_geom *g, const int16_t *gy, const int32_t *rm, const int32_t *rsh, int32_t iy,
                      int32_t ix, int32_t ch)
{
    int32_t oy0, oy1, ox0, ox1;
    covering(iy, g->pad_top, g->sh, g->kh, g->oh, &oy0, &oy1);
    covering(ix, g->pad_left, g->sw, g->kw, g->ow, &ox0, &ox1);
    int64_t s = 0;
    for (int32_t oy = oy0; oy < oy1; oy++) {
        const int32_t rows = inside(oy * g->sh - g->pad_top, g->kh, g->h);
        for (int32_t ox = ox0; ox < ox1; ox++) {
            const int32_t n = rows * inside(ox * g->sw - g->pad_left, g->kw, g->w);
            s += tt_rshift_round((int64_t)gy[(oy * g->ow + ox) * g->cout + ch] * rm[n], rsh[n]);
        }
    }
    return s;
}

int32_t tt_avgpool2d_grad(const tt_geom *g, const int16_t *gy, int32_t e, const int32_t *rm, const int32_t *rsh,
                          int32_t eoff, int32_t bits, int16_t *gx)
{
    const int32_t c = g->cin;
    uint64_t max_abs = 0;
    for (int32_t iy = 0; iy < g->h; iy++)
        for (int32_t ix = 0; ix < g->w; ix++)
            for (int32_t ch = 0; ch < c; ch++) {
                const uint64_t a = tt_abs64(gather(g, gy, rm, rsh, iy, ix, ch));
                max_abs = a > max_abs ? a : max_abs;
            }
    const int32_t s = tt_normalize_shift(max_abs, bits);
    for (int32_t iy = 0; iy < g->h; iy++)
        for (int32_t ix = 0; ix < g->w; ix++)
            for (int32_t ch = 0; ch < c; ch++)
                gx[(iy * g->w + ix) * c + ch] = (int16_t)tt_rshift_round(gather(g, gy, rm, rsh, iy, ix, ch), s);
    return e + eoff + s;
}
