/* The first k channels of an activation, saved at forward time for a weight update. */
#include <string.h>

#include "tt_kernels.h"

/* In place (xs == x) is safe: row p moves down to p*k <= p*c and never overtakes a row not yet read. */
void tt_save_channels(const int8_t *x, int32_t hw, int32_t c, int32_t k, int8_t *xs)
{
    for (int32_t p = 0; p < hw; p++)
        memmove(xs + p * k, x + p * c, (size_t)k);
}
