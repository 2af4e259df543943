/* Average pool 2D, forward (TFLite AVERAGE_POOL_2D, int8): a window's in-bounds elements summed and
 * divided by their count n, rounded half away from zero. Input and output share scale and zero point. */
#include "tt_kernels.h"

void tt_avgpool2d(const tt_geom *g, const int8_t *x, int8_t *y)
{
    const int32_t h = g->h, w = g->w, c = g->cin;
    for (int32_t oy = 0; oy < g->oh; oy++) {
        const int32_t iy0 = oy * g->sh - g->pad_top;
        const int32_t i_lo = iy0 < 0 ? -iy0 : 0, i_hi = iy0 + g->kh > h ? h - iy0 : g->kh;
        for (int32_t ox = 0; ox < g->ow; ox++) {
            const int32_t ix0 = ox * g->sw - g->pad_left;
            const int32_t j_lo = ix0 < 0 ? -ix0 : 0, j_hi = ix0 + g->kw > w ? w - ix0 : g->kw;
            const int32_t n = (i_hi - i_lo) * (j_hi - j_lo);
            int8_t *yp = y + (oy * g->ow + ox) * c;
            for (int32_t ch = 0; ch < c; ch++) {
                int32_t acc = 0;
                for (int32_t i = i_lo; i < i_hi; i++)
                    for (int32_t j = j_lo; j < j_hi; j++)
                        acc += x[((iy0 + i) * w + ix0 + j) * c + ch];
                yp[ch] = (int8_t)(acc > 0 ? (acc + n / 2) / n : -((-acc + n / 2) / n));
            }
        }
    }
}
