/* Sum of the gradients of one tensor (a residual branch), aligned to a common exponent and
 * renormalized to `bits` in two passes (the max, then the values) without an intermediate tensor. */
#include <string.h>

#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"

/* Part j's element i at the common exponent. Parts are read with memcpy (a
 * character-type access) because out may alias parts[0] with another element
 * type: the int16 out[i] overlaps only int32 element i/2 <= i, already read. */
static inline int64_t aligned_part(const void *part, int32_t is32, int32_t i, int32_t ev, int32_t e)
{
    int64_t v;
    if (is32) {
        int32_t t;
        memcpy(&t, (const unsigned char *)part + (size_t)i * 4u, 4);
        v = t;
    } else {
        int16_t t;
        memcpy(&t, (const unsigned char *)part + (size_t)i * 2u, 2);
        v = t;
    }
    return ev >= e ? v * (INT64_C(1) << (ev - e)) : tt_rshift_round(v, e - ev);
}

/* One int32 part: normalize(v, e, bits) with rshift_round(v, s) = ceil(floor(v / 2^(s-1)) / 2) in
 * int32 (s >= 1; s = 0 is a plain narrowing). In place, out[i] overwrites the low half of int32
 * element i/2, which pass 2 has already read (two elements per step: out[i], out[i+1] lie in elements
 * i/2 and (i+1)/2 <= i). Pass 1 takes the max of v ^ (v >> 31) (|v|, or |v| - 1 for v < 0), which
 * gives max |v| up to one: only when the shift of x and x + 1 differ does an exact pass settle it. */
static inline int32_t rn_load(const unsigned char *src, int32_t i)
{
    int32_t v;
    memcpy(&v, src + (size_t)i * 4u, 4);
    return v;
}

static int32_t renormalize32(const unsigned char *src, int32_t n, int32_t bits, int16_t *out)
{
    uint32_t mx = 0;
    int32_t i = 0;
    for (; i + 1 < n; i += 2) {
        const int32_t v0 = rn_load(src, i), v1 = rn_load(src, i + 1);
        const uint32_t x0 = (uint32_t)(v0 ^ (v0 >> 31)), x1 = (uint32_t)(v1 ^ (v1 >> 31));
        mx = x0 > mx ? x0 : mx;
        mx = x1 > mx ? x1 : mx;
    }
    if (i < n) {
        const int32_t v = rn_load(src, i);
        const uint32_t x = (uint32_t)(v ^ (v >> 31));
        mx = x > mx ? x : mx;
    }
    int32_t s = tt_normalize_shift(mx, bits);
    if (s != tt_normalize_shift((uint64_t)mx + 1u, bits)) {
        uint32_t max_abs = 0; /* |v| <= 2^31 fits */
        for (int32_t j = 0; j < n; j++) {
            const int32_t v = rn_load(src, j);
            const uint32_t a = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
            max_abs = a > max_abs ? a : max_abs;
        }
        s = tt_normalize_shift(max_abs, bits);
    }
    if (s == 0) {
        for (int32_t j = 0; j < n; j++) {
            const int16_t m = (int16_t)rn_load(src, j);
            memcpy((unsigned char *)out + (size_t)j * 2u, &m, 2);
        }
    } else {
        const int32_t r = s - 1;
        i = 0;
        for (; i + 1 < n; i += 2) {
            const int32_t t0 = rn_load(src, i) >> r, t1 = rn_load(src, i + 1) >> r;
            const uint32_t pair = tt_pkhbt(t0 - (t0 >> 1), t1 - (t1 >> 1));
            memcpy((unsigned char *)out + (size_t)i * 2u, &pair, 4);
        }
        if (i < n) {
            const int32_t t = rn_load(src, i) >> r;
            const int16_t m = (int16_t)(t - (t >> 1));
            memcpy((unsigned char *)out + (size_t)i * 2u, &m, 2);
        }
    }
    return s;
}

/* A part's element at the common exponent with the shift hoisted: left by l (<= 24) or rounded right
 * by r (>= 1; 0 once r >= 63). */
typedef struct {
    const unsigned char *p;
    int32_t l, r;
} sum_part;

TT_ALWAYS_INLINE int64_t sum_part_value(const sum_part *q, int32_t i, int is32)
{
    int64_t v;
    if (is32) {
        int32_t t;
        memcpy(&t, q->p + (size_t)i * 4u, 4);
        v = t;
    } else {
        int16_t t;
        memcpy(&t, q->p + (size_t)i * 2u, 2);
        v = t;
    }
    if (q->r == 0)
        return v * (INT64_C(1) << q->l);
    return q->r >= 63 ? 0 : (v + (INT64_C(1) << (q->r - 1))) >> q->r;
}

/* Two parts, their types constants of the instantiation: the same two passes without the per-part
 * loop and type dispatch of the general form. */
TT_ALWAYS_INLINE int32_t sum_part_raw(const sum_part *q, int32_t i, int is32)
{
    if (is32) {
        int32_t t;
        memcpy(&t, q->p + (size_t)i * 4u, 4);
        return t;
    }
    int16_t t;
    memcpy(&t, q->p + (size_t)i * 2u, 2);
    return t;
}

/* Both parts only shifted left (the usual case: exponents within 24 of each other): the aligned sum is
 * a ka + b kb with ka, kb <= 2^24 (SMULL + SMLAL); pass 1 tracks max(t ^ (t >> 63)), max |t| up to one
 * (an exact pass settles a tie at a threshold of the shift); pass 2 takes bits s.. of t + 2^(s-1). */
TT_ALWAYS_INLINE int32_t sum2_left(const sum_part *a, const sum_part *b, int32_t n, int32_t bits, int16_t *out,
                                   int32_t e, int a32, int b32)
{
    const int32_t ka = (int32_t)(UINT32_C(1) << a->l), kb = (int32_t)(UINT32_C(1) << b->l);
    uint64_t mx = 0;
    for (int32_t i = 0; i < n; i++) {
        const int64_t t = (int64_t)sum_part_raw(a, i, a32) * ka + (int64_t)sum_part_raw(b, i, b32) * kb;
        const uint64_t x = (uint64_t)(t ^ (t >> 63));
        mx = x > mx ? x : mx;
    }
    int32_t s = tt_normalize_shift(mx, bits);
    if (s != tt_normalize_shift(mx + 1u, bits)) {
        uint64_t max_abs = 0;
        for (int32_t i = 0; i < n; i++) {
            const uint64_t m =
                tt_abs64((int64_t)sum_part_raw(a, i, a32) * ka + (int64_t)sum_part_raw(b, i, b32) * kb);
            max_abs = m > max_abs ? m : max_abs;
        }
        s = tt_normalize_shift(max_abs, bits);
    }
    if (s >= 1 && s <= 31) {
        const int64_t k = INT64_C(1) << (s - 1);
        for (int32_t i = 0; i < n; i++) {
            const uint64_t u =
                (uint64_t)((int64_t)sum_part_raw(a, i, a32) * ka + (int64_t)sum_part_raw(b, i, b32) * kb + k);
            const int16_t v = (int16_t)(((uint32_t)u >> s) | ((uint32_t)(u >> 32) << (32 - s)));
            memcpy((unsigned char *)out + (size_t)i * 2u, &v, 2);
        }
    } else {
        for (int32_t i = 0; i < n; i++) {
            const int64_t t = (int64_t)sum_part_raw(a, i, a32) * ka + (int64_t)sum_part_raw(b, i, b32) * kb;
            const int16_t v = (int16_t)tt_rshift_round(t, s);
            memcpy((unsigned char *)out + (size_t)i * 2u, &v, 2);
        }
    }
    return e + s;
}

TT_ALWAYS_INLINE int32_t sum2(const sum_part *a, const sum_part *b, int32_t n, int32_t bits, int16_t *out, int32_t e,
                              int a32, int b32)
{
    if (a->r == 0 && b->r == 0)
        return sum2_left(a, b, n, bits, out, e, a32, b32);
    uint64_t max_abs = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint64_t m = tt_abs64(sum_part_value(a, i, a32) + sum_part_value(b, i, b32));
        max_abs = m > max_abs ? m : max_abs;
    }
    const int32_t s = tt_normalize_shift(max_abs, bits);
    for (int32_t i = 0; i < n; i++) {
        const int16_t v = (int16_t)tt_rshift_round(sum_part_value(a, i, a32) + sum_part_value(b, i, b32), s);
        memcpy((unsigned char *)out + (size_t)i * 2u, &v, 2);
    }
    return e + s;
}

#define SUM2_INST(NAME, A32, B32)                                                                               \
    static int32_t NAME(const sum_part *a, const sum_part *b, int32_t n, int32_t bits, int16_t *out, int32_t e) \
    {                                                                                                           \
        return sum2(a, b, n, bits, out, e, A32, B32);                                                           \
    }
SUM2_INST(sum2_16_16, 0, 0)
SUM2_INST(sum2_16_32, 0, 1)
SUM2_INST(sum2_32_16, 1, 0)
SUM2_INST(sum2_32_32, 1, 1)

int32_t tt_grad_sum(const void *const *parts, const uint8_t *is32, const int32_t *exps, int32_t nparts,
                    int32_t n, int32_t bits, int16_t *out)
{
    if (nparts == 1 && is32[0])
        return exps[0] + renormalize32((const unsigned char *)parts[0], n, bits, out);
    if (nparts == 2) {
        const int32_t lo = exps[0] < exps[1] ? exps[0] : exps[1], hi = exps[0] < exps[1] ? exps[1] : exps[0];
        const int32_t e = lo > hi - 24 ? lo : hi - 24;
        sum_part q[2];
        for (int32_t j = 0; j < 2; j++) {
            q[j].p = (const unsigned char *)parts[j];
            q[j].l = exps[j] >= e ? exps[j] - e : 0;
            q[j].r = exps[j] >= e ? 0 : (e - exps[j] > 63 ? 63 : e - exps[j]);
        }
        if (is32[0])
            return (is32[1] ? sum2_32_32 : sum2_32_16)(&q[0], &q[1], n, bits, out, e);
        return (is32[1] ? sum2_16_32 : sum2_16_16)(&q[0], &q[1], n, bits, out, e);
    }
    int32_t emin = exps[0], emax = exps[0];
    for (int32_t j = 1; j < nparts; j++) {
        emin = exps[j] < emin ? exps[j] : emin;
        emax = exps[j] > emax ? exps[j] : emax;
    }
    const int32_t e = emin > emax - 24 ? emin : emax - 24;
    uint64_t max_abs = 0;
    for (int32_t i = 0; i < n; i++) {
        int64_t t = 0;
        for (int32_t j = 0; j < nparts; j++)
            t += aligned_part(parts[j], is32[j], i, exps[j], e);
        const uint64_t a = tt_abs64(t);
        if (a > max_abs)
            max_abs = a;
    }
    const int32_t s = tt_normalize_shift(max_abs, bits);
    for (int32_t i = 0; i < n; i++) {
        int64_t t = 0;
        for (int32_t j = 0; j < nparts; j++)
            t += aligned_part(parts[j], is32[j], i, exps[j], e);
        const int16_t v = (int16_t)tt_rshift_round(t, s);
        memcpy((unsigned char *)out + (size_t)i * 2u, &v, 2);
    }
    return e + s;
}
