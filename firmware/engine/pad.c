/* PAD of H and W with the zero point: x [h][w][c] into the middle of y [oh][ow][c]. */
#include <string.h>

#include "tt_kernels.h"

void tt_pad(const tt_geom *g, const int8_t *x, int32_t zx, int8_t *y)
{
    const int32_t c = g->cin, row = g->w * c, orow = g->ow * c;
    memset(y, zx, (size_t)(g->oh * orow));
    for (int32_t iy = 0; iy < g->h; iy++)
        memcpy(y + (iy + g->pad_top) * orow + g->pad_left * c, x + iy * row, (size_t)row);
}
