/* An image from its source made into the model's input (ops/image_resize.py, numerics/kernels.py
 * image_resize): RGB to gray (luma) when the model takes one channel, a bilinear resize in Q8 with
 * pixel centres aligned, gray repeated to RGB when the model takes three, then the model's pixel
 * table. Portable C; the work is a few operations per output byte. */
#include <stddef.h>

#include "tt_kernels.h"

/* Source positions of output indices o = 0, 1, ... of size_out from size_in (resize_coords): the Q8
 * position ((2 o + 1) size_in 256) / (2 size_out) - 128 kept as quotient and remainder and stepped by
 * adding, so no division runs per pixel. */
typedef struct {
    int32_t q, r, dq, dr, den, hi;
} coord_walk;

static coord_walk coord_start(int32_t o, int32_t size_in, int32_t size_out)
{
    const int64_t den = 2 * (int64_t)size_out, num = (int64_t)(2 * o + 1) * size_in * 256, step = (int64_t)size_in * 512;
    return (coord_walk){(int32_t)(num / den), (int32_t)(num % den), (int32_t)(step / den), (int32_t)(step % den),
                        (int32_t)den, (size_in - 1) * 256};
}

static inline void coord_next(coord_walk *c)
{
    c->q += c->dq;
    c->r += c->dr;
    if (c->r >= c->den) {
        c->q++;
        c->r -= c->den;
    }
}

/* First source index, second (clamped to the edge) and the Q8 weight of the second. */
static inline void coord(const coord_walk *c, int32_t size_in, int32_t *i0, int32_t *i1, int32_t *wt)
{
    int32_t f = c->q - 128;
    if (f < 0)
        f = 0;
    if (f > c->hi)
        f = c->hi;
    *i0 = f >> 8;
    *i1 = *i0 + 1 < size_in ? *i0 + 1 : size_in - 1;
    *wt = f & 255;
}

static inline int32_t pixel(const uint8_t *row, int32_t x, int32_t c, int32_t ch, int32_t gray)
{
    const uint8_t *p = row + x * c;
    if (gray && c == 3)
        return (int32_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 32768u) >> 16);
    return p[c == 1 ? 0 : ch];
}

void tt_image_resize(const tt_geom *g, const uint8_t *src, int32_t src_row0, int8_t *dst, int32_t row0, int32_t rows,
                     const int8_t *lut)
{
    const int32_t gray = g->cout == 1, planes = g->cout == 3 && g->cin == 3 ? 3 : 1;
    coord_walk cy = coord_start(row0, g->h, g->oh);
    for (int32_t r = 0; r < rows; r++, coord_next(&cy)) {
        int32_t y0, y1, wy;
        coord(&cy, g->h, &y0, &y1, &wy);
        const uint8_t *top = src + (size_t)(y0 - src_row0) * (size_t)(g->w * g->cin);
        const uint8_t *bot = src + (size_t)(y1 - src_row0) * (size_t)(g->w * g->cin);
        int8_t *out = dst + (size_t)r * (size_t)(g->ow * g->cout);
        coord_walk cx = coord_start(0, g->w, g->ow);
        for (int32_t x = 0; x < g->ow; x++, coord_next(&cx)) {
            int32_t x0, x1, wx;
            coord(&cx, g->w, &x0, &x1, &wx);
            for (int32_t ch = 0; ch < planes; ch++) {
                int32_t t = pixel(top, x0, g->cin, ch, gray) * (256 - wx) + pixel(top, x1, g->cin, ch, gray) * wx;
                int32_t b = pixel(bot, x0, g->cin, ch, gray) * (256 - wx) + pixel(bot, x1, g->cin, ch, gray) * wx;
                int8_t v = lut[(t * (256 - wy) + b * wy + 32768) >> 16];
                if (planes == 1)
                    for (int32_t k = 0; k < g->cout; k++)
                        out[x * g->cout + k] = v;
                else
                    out[x * 3 + ch] = v;
            }
        }
    }
}
