/* Gradient of a pad: the middle of gy [oh][ow][c] as gx [h][w][c], same exponent. In place (gx = gy) the
 * rows move towards the start, each to a place at or before where it was, so a forward memmove is safe. */
#include <string.h>

#include "tt_kernels.h"

void tt_pad_grad(const tt_geom *g, const int16_t *gy, int16_t *gx)
{
    const int32_t c = g->cin, row = g->w * c, orow = g->ow * c;
    for (int32_t iy = 0; iy < g->h; iy++)
        memmove(gx + iy * row, gy + (iy + g->pad_top) * orow + g->pad_left * c, (size_t)row * sizeof *gx);
}
