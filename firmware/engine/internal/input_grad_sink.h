/* What the input-gradient kernels share (input_grad_*.c). Internal to the engine.
 *
 * They are written in gather form (each gx element sums everything that reaches it), so gx
 * needs no clearing and is written exactly once. Each kernel body hands its values to a sink
 * (ig_put) whose mode is a compile-time constant of the instantiation: store int32; only track
 * the range (pass 1 of the normalized int16 form); store rshift_round(v, s) as int16 (pass 2).
 */
#ifndef TT_INPUT_GRAD_SINK_H
#define TT_INPUT_GRAD_SINK_H

#include <stdint.h>

#include "dsp_intrinsics.h"
#include "fixed_point.h"

enum { IG_STORE32 = 0, IG_RANGE = 1, IG_STORE16 = 2, IG_ACC32 = 3 };

typedef struct {
    int32_t *gx32;
    int16_t *gx16;
    int32_t lsh, rsh; /* IG_STORE16: rshift_round(v, s) = ceil(t / 2), t = (v << lsh) >> rsh (see ig_start16) */
    int32_t lo, hi;   /* IG_RANGE */
} ig_sink;

TT_ALWAYS_INLINE void ig_put(ig_sink *k, int mode, int32_t i, int32_t v)
{
    if (mode == IG_STORE32) {
        k->gx32[i] = v;
    } else if (mode == IG_ACC32) {
        k->gx32[i] += v;
    } else if (mode == IG_RANGE) {
        k->lo = v < k->lo ? v : k->lo;
        k->hi = v > k->hi ? v : k->hi;
    } else {
        const int32_t t = tt_wrap32((uint32_t)v << k->lsh) >> k->rsh;
        k->gx16[i] = (int16_t)(t - (t >> 1));
    }
}

/* Pass 2 constants from the range of pass 1; returns s. rshift_round(v, s) = floor((v + 2^(s-1)) / 2^s)
 * = ceil(floor(v / 2^(s-1)) / 2) for s >= 1 (floors compose); s = 0 runs the same formula on 2v,
 * which cannot overflow because then |v| < 2^15. Out of line (inlined, it would change the register
 * allocation of the large kernels that call it); static, so every input_grad_*.c calls it. */
TT_NOINLINE static int32_t ig_start16(ig_sink *k, int32_t bits)
{
    const uint64_t a = tt_abs64(k->lo), b = (uint64_t)k->hi;
    const int32_t s = tt_normalize_shift(a > b ? a : b, bits);
    k->lsh = s == 0;
    k->rsh = s == 0 ? 0 : s - 1;
    return s;
}

/* Taps of a kernel axis that reach input coordinate `in` (gather form): i = first, first + stride, ... < end,
 * output coordinate (in + pad - i) / stride. Returns the number of taps. */
static inline int32_t tap_range(int32_t in, int32_t pad, int32_t stride, int32_t kernel, int32_t out_size,
                                int32_t *first)
{
    const int32_t t = in + pad; /* i <= t and t - i <= stride (out_size - 1), t - i = 0 mod stride */
    int32_t lo = t - stride * (out_size - 1);
    if (lo < 0)
        lo = 0;
    lo += (t - lo) % stride;
    const int32_t hi = t < kernel - 1 ? t : kernel - 1;
    *first = lo;
    return lo > hi ? 0 : (hi - lo) / stride + 1;
}

#endif
