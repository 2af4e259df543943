/* Gradient of a concatenation: one input's slice of the output gradient's channels (same exponent). */
#include <string.h>

#include "tt_kernels.h"

void tt_slice_channels16(const int16_t *g, int32_t hw, int32_t ctot, int32_t at, int32_t c, int16_t *out)
{
    for (int32_t p = 0; p < hw; p++)
        memmove(out + p * c, g + p * ctot + at, (size_t)c * sizeof *out);
}
