/* Where the generic kernels (conv_generic.c, input_grad_generic.c, weight_update_generic.c) find an
 * output channel's weights. Internal to the engine.
 */
#ifndef TT_GENERIC_WEIGHTS_H
#define TT_GENERIC_WEIGHTS_H

#include <stdint.h>

#include "../tt_kernels.h"

/* The [kh][kw][cin / groups] weights of output channel o: groups 1, the whole tensor is one part (w_lo when
 * trained, w_hi when frozen); depthwise, channels below k_lo are in w_lo, the others in w_hi. */
static inline const int8_t *tt_generic_weights(const tt_geom *g, const tt_layer *l, int32_t o)
{
    const int32_t wrow = g->kh * g->kw * (g->cin / g->groups);
    if (g->groups == 1)
        return (l->w_lo ? l->w_lo : l->w_hi) + o * wrow;
    return o < l->k_lo ? l->w_lo + o * wrow : l->w_hi + (o - l->k_lo) * wrow;
}

#endif
