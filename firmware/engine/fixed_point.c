/* Public fixed-point primitives of tt_kernels.h (the kernels use the inline forms in fixed_point.h). */
#include "internal/fixed_point.h"

#include "tt_kernels.h"

int32_t tt_mbqm(int32_t x, int32_t multiplier, int32_t shift) { return tt_mbqm_inline(x, multiplier, shift); }

uint32_t tt_mix32(uint32_t x) { return tt_mix32_inline(x); }

int64_t tt_round_shift(int64_t p, int32_t e, int32_t mode, uint32_t r) { return tt_round_shift_inline(p, e, mode, r); }
