/* What the fused gradient + SGD update kernels share (weight_update_*.c, bias_update.c). Internal
 * to the engine. The update: QAS coefficient, rounding by mode, saturation.
 *
 * The gradient of an element exists only in a register: it is summed, scaled
 * by the per-output-channel coefficient coef_mult 2^(e + coef_shift - 31),
 * rounded (stochastic / nearest / truncate) and applied at once. The random
 * bits of element index k are tt_mix32(tt_mix32(seed ^ step) + elem_offset + k).
 */
#ifndef TT_SGD_UPDATE_H
#define TT_SGD_UPDATE_H

#include <stdint.h>

#include "../tt_kernels.h"
#include "fixed_point.h"

/* The rounding mode and the PRNG stream of one tensor, copied out of the context
 * (so that stores to the int8 weights, which may alias anything, do not force
 * reloads): r(index) = mix32(first + index), first = mix32(seed ^ step) + elem_offset. */
typedef struct {
    int32_t mode;
    uint32_t first;
} update_stream;

static inline update_stream update_start(const tt_update_ctx *u)
{
    update_stream s;
    s.mode = u->mode;
    s.first = tt_mix32_inline(u->seed ^ u->step) + u->elem_offset;
    return s;
}

static inline int64_t update_delta(int64_t grad, int32_t coef_mult, int32_t e_total, update_stream s, uint32_t index)
{
    const uint32_t r = s.mode == TT_ROUND_STOCHASTIC ? tt_mix32_inline(s.first + index) : 0u;
    return tt_sgd_delta(grad, coef_mult, e_total, s.mode, r);
}

static inline void update_weight(int8_t *w, int64_t grad, int32_t coef_mult, int32_t e_total, update_stream s,
                                 uint32_t index)
{
    *w = tt_apply_weight_delta(*w, update_delta(grad, coef_mult, e_total, s, index));
}

#endif
