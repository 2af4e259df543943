/* Inline integer arithmetic shared by the kernels: the C twin of host/tinytrain/fixed_point.py.
 * Internal to the engine; fixed_point.c exports the public tt_ wrappers of tt_kernels.h.
 *
 * Assumes two's complement and arithmetic right shifts of negative values (GCC
 * and Clang on every target we build for); the asserts below make sure.
 */
#ifndef TT_FIXED_POINT_H
#define TT_FIXED_POINT_H

#include <stdint.h>

#include "dsp_intrinsics.h"
#include "mask_bits.h"

_Static_assert((-1 >> 1) == -1 && (INT64_C(-1) >> 1) == INT64_C(-1), "arithmetic right shift required");

/* uint32 -> int32 modulo 2^32 (what the hardware does), without implementation-defined conversion. */
static inline int32_t tt_wrap32(uint32_t u)
{
    return u < 0x80000000u ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN;
}

/* gemmlowp SaturatingRoundingDoublingHighMul. Its nudge-then-truncate equals
 * floor((a b + 2^30) / 2^31) for every sign of a b, i.e. 2 hi + (lo >> 31) of the
 * 64-bit a b + 2^30; doubling hi with QADD saturates the one overflow (a = b =
 * INT32_MIN, where hi = 2^30 and the low bit is 0) to INT32_MAX, branch-free. */
static inline int32_t tt_srdhm(int32_t a, int32_t b)
{
    const int64_t v = (int64_t)a * b + (INT64_C(1) << 30);
    const int32_t hi = (int32_t)(v >> 32);
    const uint32_t lo = (uint32_t)(uint64_t)v;
    return tt_qadd(hi, hi) | (int32_t)(lo >> 31);
}

/* gemmlowp RoundingDivideByPOT (round half away from zero), 0 <= e <= 31, mask = 2^e - 1:
 * (x >> e) + (rem > threshold), the comparison as the sign of threshold - rem (no overflow). */
static inline int32_t tt_rdbpot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << e) - 1u);
    const int32_t threshold = (mask >> 1) + (int32_t)((uint32_t)x >> 31);
    return (x >> e) - ((threshold - (x & mask)) >> 31);
}

/* TFLite MultiplyByQuantizedMultiplier, shift in [-31, 31]. */
static inline int32_t tt_mbqm_inline(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return tt_rdbpot(tt_srdhm(tt_wrap32((uint32_t)x << left), multiplier), right);
}

/* y = clamp(q + zy) to int8; returns the mask bit (1 = the clamp was not active).
 * q is first clamped to [-512, 511] (one SSAT) so that adding any int8 zero
 * point cannot overflow and the clamp/mask decision is unchanged. */
static inline uint32_t tt_store_int8(int32_t q, int32_t zy, int8_t *y)
{
    const int32_t pre = tt_ssat10(q) + zy;
    const int32_t c = tt_ssat8(pre);
    *y = (int8_t)c;
    return c == pre;
}

/* The conv/dense epilogue: y = clamp(MBQM(sat32(bias + sum)) + zy), returns the mask bit. */
static inline uint32_t tt_requant_store(int32_t sum, int32_t bias, int32_t multiplier, int32_t shift, int32_t zy,
                                        int8_t *y)
{
    return tt_store_int8(tt_mbqm_inline(tt_qadd(bias, sum), multiplier, shift), zy, y);
}

/* tt_requant_store over n outputs of one position: acc[j] the sum of channel j (its constants at
 * bias[j], mult[j], shift[j]), outputs y[0..n-1], mask bits from index bit (when mask). The
 * requantizations in one loop, the clamps and stores in another: loops that compilers vectorize (the
 * portable kernels' channel blocks). acc is overwritten. */
static inline void tt_requant_store_run(int32_t *acc, int32_t n, const int32_t *bias, const int32_t *mult,
                                        const int32_t *shift, int32_t zy, int8_t *y, uint8_t *mask, uint32_t bit)
{
    for (int32_t j = 0; j < n; j++)
        acc[j] = tt_ssat10(tt_mbqm_inline(tt_qadd(bias[j], acc[j]), mult[j], shift[j])) + zy;
    for (int32_t j = 0; j < n; j++) {
        const int32_t c = tt_ssat8(acc[j]);
        y[j] = (int8_t)c;
        if (mask)
            tt_mask_put(mask, bit + (uint32_t)j, c == acc[j]);
    }
}

/* The requantization of one output channel in one multiply-accumulate, for the
 * usual constants (left shift 0, right shift e in [2, 31], multiplier >= 0):
 * MBQM(a) = RDBPOT(SRDHM(a, m), e) with SRDHM(a, m) = floor((a m + 2^30) / 2^31)
 * and RDBPOT(P, e) = floor((P + 2^(e-1) - [P < 0]) / 2^e) (round half away from
 * zero). Floors compose, so MBQM(a) = floor(N / 2^(31+e)) with the 64-bit
 * N = a m + 2^30 + 2^(30+e) - 2^31 [a < 0] ([P < 0] = [a < 0] once m >= 0 and
 * e >= 1: a < 0 with a m + 2^30 >= 0 gives P = 0 either way), i.e. the high word
 * of N shifted right by e - 1. The constant part of N is (khi + s, 2^30 ^ (s << 31))
 * with s = a >> 31; zy times 2^(e-1) is folded into khi when that cannot overflow
 * (e <= 23), so that the high word shifted gives MBQM(a) + zy directly. */
typedef struct {
    int32_t bias, mult, khi, rsh;
} tt_rq;

/* 1 with q filled if the channel has the fast form, else 0. */
static inline int tt_rq_prepare(tt_rq *q, int32_t bias, int32_t mult, int32_t shift)
{
    const int32_t e = -shift;
    if (mult < 0 || e < 2 || e > 31)
        return 0;
    q->bias = bias;
    q->mult = mult;
    q->rsh = e - 1;
    q->khi = (int32_t)(UINT32_C(1) << (e - 2));
    return 1;
}

/* Whether zy can be folded into a prepared channel (e <= 23: the high word cannot overflow). */
static inline int tt_rq_foldable(const tt_rq *q) { return q->rsh <= 22; }

static inline void tt_rq_fold(tt_rq *q, int32_t zy) { q->khi += zy * (int32_t)(UINT32_C(1) << q->rsh); }

/* MBQM(sat32(bias + sum)) (+ zy if folded) */
TT_ALWAYS_INLINE int32_t tt_rq_apply(int32_t sum, int32_t bias, int32_t mult, int32_t khi, int32_t rsh)
{
    const int32_t a = tt_qadd(sum, bias);
    const int32_t s = a >> 31;
    const uint64_t init = ((uint64_t)(uint32_t)(khi + s) << 32) | (0x40000000u ^ ((uint32_t)s << 31));
    const int64_t n = (int64_t)init + (int64_t)a * mult;
    return (int32_t)(n >> 32) >> rsh;
}

/* The doubled one-multiply form of the DSP kernels (pointwise_block.h's RQ_DBL, the depthwise paths'
 * fast form): on the doubled accumulator A, (SMMLAR(A, m, K) + (A >> 31)) >> e with
 * K = 2^(e-1) + zy 2^e is MBQM + zy (right shift e in 1..23). */
static inline int32_t tt_rq_dbl_k(int32_t e, int32_t zy)
{
    return (int32_t)(UINT32_C(1) << (e - 1)) + zy * (int32_t)(UINT32_C(1) << e);
}

/* A channel's requantization constants (bias, multiplier, shift, output zero point). */
typedef struct {
    int32_t bias, mult, shift, zy;
} tt_rq_chan;

/* The largest |sum w (x - zx)| of `taps` products of int8 weights and inputs. */
static inline int32_t tt_rq_sum_bound(int32_t taps) { return taps < 65000 ? 32640 * taps : INT32_MAX; }

/* Whether a channel is dead: pre = ssat10(MBQM(sat32(bias + sum))) + zy is one value P for every
 * |sum| <= bound (a bias far beyond what the products can move, or a shift that leaves nothing, as BN
 * folding leaves on channels that never fire). Then *c becomes {bias 0, multiplier 0, shift -2, zy P}:
 * every requantization form gives P for it, so the same output and mask bit, and the one-multiply
 * forms take it (a dead channel no longer keeps its block or group of channels on the general form;
 * the kernels ask only about channels those forms do not already take). pre is monotone in sum
 * (multiplier >= 0, no left shift), so the two ends decide. */
static inline int tt_rq_dead(tt_rq_chan *c, int32_t bound)
{
    if (c->mult < 0 || c->shift > 0)
        return 0;
    const int32_t lo = tt_ssat10(tt_mbqm_inline(tt_qadd(c->bias, -bound), c->mult, c->shift));
    const int32_t hi = tt_ssat10(tt_mbqm_inline(tt_qadd(c->bias, bound), c->mult, c->shift));
    if (lo != hi)
        return 0;
    const tt_rq_chan dead = {0, 0, -2, lo + c->zy};
    *c = dead;
    return 1;
}

/* floor(v / 2^n + 1/2) for n >= 0. For n >= 63 the result is 0 for every |v| < 2^62
 * (NumPy's shift semantics make the reference return -1/0 instead for n >= 64). */
static inline int64_t tt_rshift_round(int64_t v, int32_t n)
{
    if (n <= 0)
        return v;
    if (n >= 63)
        return 0;
    return (v + (INT64_C(1) << (n - 1))) >> n;
}

static inline int32_t tt_bitlen64(uint64_t v)
{
#if defined(__GNUC__)
    return v ? 64 - __builtin_clzll(v) : 0;
#else
    int32_t n = 0;
    while (v) {
        v >>= 1;
        n++;
    }
    return n;
#endif
}

/* Right shift that brings values with this max |v| into `bits`-bit signed range (1 <= bits <= 63). */
static inline int32_t tt_normalize_shift(uint64_t max_abs, int32_t bits)
{
    if (max_abs == 0)
        return 0;
    const uint64_t limit = (UINT64_C(1) << (bits - 1)) - 1u;
    int32_t s = tt_bitlen64(max_abs) - (bits - 1);
    if (s < 0)
        s = 0;
    if (s > 0 && ((max_abs + (UINT64_C(1) << (s - 1))) >> s) > limit)
        s++;
    return s;
}

static inline uint64_t tt_abs64(int64_t v) { return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; }

static inline uint32_t tt_mix32_inline(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/* round(p * 2^e) by mode (docs/numerics.md, "The update"); |p| < 2^62. */
static inline int64_t tt_round_shift_inline(int64_t p, int32_t e, int32_t mode, uint32_t r)
{
    if (e >= 0) {
        /* A left shift this large would only saturate anyway. */
        const int32_t s = e < 40 ? e : 40;
        const int64_t lim = INT64_C(1) << 21;
        const int64_t b = p > lim ? lim : p < -lim ? -lim : p;
        return b * (INT64_C(1) << s);
    }
    int32_t n = e < -1000 ? 1000 : -e;
    if (n > 62) {
        const int32_t d = n - 62;
        p = d >= 63 ? (p < 0 ? -1 : 0) : p >> d;
        n = 62;
    }
    if (mode == 0) { /* TT_ROUND_STOCHASTIC: floor(p / 2^n + u), u from the top bits of r */
        const int64_t u = n <= 32 ? (int64_t)(r >> (32 - n)) : (int64_t)r << (n - 32);
        return (p + u) >> n;
    }
    if (mode == 1) /* TT_ROUND_NEAREST: half up */
        return (p + (INT64_C(1) << (n - 1))) >> n;
    /* TT_ROUND_TRUNCATE (and anything else): toward zero */
    return p >= 0 ? p >> n : -((-p) >> n);
}

/* The SGD step of one element: -grad * coef * 2^(e + coef_shift - 31), rounded. */
static inline int64_t tt_sgd_delta(int64_t grad, int32_t coef_mult, int32_t e_total, int32_t mode, uint32_t r)
{
    return tt_round_shift_inline(-grad * (int64_t)coef_mult, e_total, mode, r);
}

static inline int8_t tt_apply_weight_delta(int8_t w, int64_t delta)
{
    const int64_t v = (int64_t)w + delta;
    return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
}

#endif
