/* In-place stride-1 depthwise input gradient as int16 mantissas (tt_kernels.h).
 *
 * g [h][w][c] (dL/dacc) is overwritten by gx [h][w][c], exactly what tt_input_grad_depthwise16 writes.
 * Pass 1 (the max) only reads g. Pass 2:
 *  - DSP builds: channel by channel through zero-bordered planes (input_grad_depthwise.c), the planes in the
 *    ring's memory: a channel's g is in its plane before its outputs overwrite it;
 *  - otherwise row by row: before row iy of g is overwritten its original values go to the ring
 *    (slot iy mod (pad + 1)), where rows iy + 1 .. iy + pad, which still read it, find them.
 */
#include <string.h>

#include "tt_kernels.h"

#include "internal/input_grad_depthwise.h"

/* Row iy of gx = rshift_round(v, s) = (v + k0) >> s into g's row iy, the rows it reads through src. */
static void row_put(int16_t *out, const int16_t *const *src, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                    const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t k0, int32_t s)
{
    const int32_t kk = kernel * kernel;
    for (int32_t ix = 0; ix < w; ix++)
        for (int32_t ch = 0; ch < c; ch++) {
            const int8_t *wc = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
            int32_t v = k0;
            for (int32_t i = 0; i < kernel; i++) {
                if (!src[i])
                    continue;
                for (int32_t j = 0; j < kernel; j++) {
                    const int32_t ox = ix + pad - j;
                    if (ox >= 0 && ox < w)
                        v += src[i][ox * c + ch] * wc[i * kernel + j];
                }
            }
            out[ix * c + ch] = (int16_t)(v >> s);
        }
}

int32_t tt_input_grad_depthwise16_inplace(const tt_geom *gm, const tt_layer *l, int16_t *g, int32_t e, int32_t bits,
                                          int16_t *ring, void *scratch)
{
    const int32_t h = gm->h, w = gm->w, c = gm->cin, kernel = gm->kh, pad = gm->pad_top, c_lo = l->k_lo;
    const int8_t *w_lo = l->w_lo, *w_hi = l->w_hi;
    const int32_t rows = pad + 1, rowlen = w * c;
    int32_t s;
#if TT_DSP
    if (tt_input_grad_depthwise16_planes(g, h, w, c, kernel, 1, pad, h, w, w_lo, w_hi, c_lo, bits, g, ring,
                                         rows * rowlen, &s, scratch))
        return e + s;
#endif
    s = tt_input_grad_depthwise16_shift(g, h, w, c, kernel, 1, pad, h, w, w_lo, w_hi, c_lo, bits, scratch);
    const int32_t k0 = s > 0 ? (int32_t)(UINT32_C(1) << (s - 1)) : 0;
    const int16_t *src[64];
    for (int32_t iy = 0; iy < h; iy++) {
        int16_t *row = g + iy * rowlen;
        memcpy(ring + (iy % rows) * rowlen, row, (size_t)rowlen * sizeof *row);
        for (int32_t i = 0; i < kernel; i++) {
            const int32_t oy = iy + pad - i; /* oy >= iy - pad: in the ring if oy <= iy */
            src[i] = oy < 0 || oy >= h ? 0 : oy <= iy ? ring + (oy % rows) * rowlen : g + oy * rowlen;
        }
        row_put(row, src, w, c, kernel, pad, w_lo, w_hi, c_lo, k0, s);
    }
    return e + s;
}
