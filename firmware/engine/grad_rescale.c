/* Block-floating-point gradient ops: requantization backward, broadcast, sum of parts.
 * Each renormalization needs the tensor's max before its first output: two
 * passes that recompute the (cheap) values instead of storing them. */
#include <string.h>

#include "tt_kernels.h"

#include "fixed_point.h"
#include "mask_bits.h"

int32_t tt_requant_grad(const int16_t *g, int32_t e, const uint8_t *mask, int32_t hw, int32_t c,
                        const int32_t *mult, const int32_t *shift, int32_t nmult, int32_t bits, int16_t *out)
{
    int32_t shmax = shift[0];
    for (int32_t j = 1; j < nmult; j++)
        if (shift[j] > shmax)
            shmax = shift[j];
    const int per_channel = nmult > 1;

    /* Pass 1, per channel: t = rshift_round(v m, n) is monotone in v, so the
     * largest |t| of a channel is reached at its smallest or largest masked g. */
    uint64_t max_abs = 0;
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t lo = 0, hi = 0; /* masked-out elements are 0, which never raises the maximum */
        for (int32_t p = 0, i = ch; p < hw; p++, i += c) {
            const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        const int32_t j = per_channel ? ch : 0;
        const uint64_t a = tt_abs64(tt_rshift_round((int64_t)lo * mult[j], shmax - shift[j]));
        const uint64_t b = tt_abs64(tt_rshift_round((int64_t)hi * mult[j], shmax - shift[j]));
        max_abs = a > max_abs ? a : max_abs;
        max_abs = b > max_abs ? b : max_abs;
    }
    const int32_t s = tt_normalize_shift(max_abs, bits);

    /* Pass 2, per channel with its constants hoisted (and the common n = 0 without
     * the first rounding); out may alias g: each element is read, then written. */
    const int64_t half_s = s > 0 ? INT64_C(1) << (s - 1) : 0;
    for (int32_t ch = 0; ch < c; ch++) {
        const int32_t j = per_channel ? ch : 0;
        const int32_t m = mult[j], n = shmax - shift[j];
        if (n == 0) {
            for (int32_t p = 0, i = ch; p < hw; p++, i += c) {
                const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
                out[i] = (int16_t)(((int64_t)v * m + half_s) >> s);
            }
        } else if (n < 63) {
            const int64_t half_n = INT64_C(1) << (n - 1);
            for (int32_t p = 0, i = ch; p < hw; p++, i += c) {
                const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
                out[i] = (int16_t)(((((int64_t)v * m + half_n) >> n) + half_s) >> s);
            }
        } else { /* |v m| < 2^47: rounds to 0 */
            for (int32_t p = 0, i = ch; p < hw; p++, i += c)
                out[i] = 0;
        }
    }
    return e + shmax - 31 + s;
}

void tt_broadcast_rows(const int16_t *src, int32_t hw, int32_t c, int16_t *out)
{
    if (hw <= 0)
        return;
    if (out != src)
        memmove(out, src, (size_t)c * sizeof *out);
    for (int32_t p = 1; p < hw; p++)
        memcpy(out + p * c, out, (size_t)c * sizeof *out);
}

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
 * element i/2, which pass 2 has already read. */
static int32_t renormalize32(const unsigned char *src, int32_t n, int32_t bits, int16_t *out)
{
    uint32_t max_abs = 0; /* |v| <= 2^31 fits */
    for (int32_t i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, src + (size_t)i * 4u, 4);
        const uint32_t a = v < 0 ? 0u - (uint32_t)v : (uint32_t)v;
        max_abs = a > max_abs ? a : max_abs;
    }
    const int32_t s = tt_normalize_shift(max_abs, bits);
    if (s == 0) {
        for (int32_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + (size_t)i * 4u, 4);
            const int16_t m = (int16_t)v;
            memcpy((unsigned char *)out + (size_t)i * 2u, &m, 2);
        }
    } else {
        const int32_t r = s - 1;
        for (int32_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, src + (size_t)i * 4u, 4);
            const int32_t t = v >> r;
            const int16_t m = (int16_t)(t - (t >> 1));
            memcpy((unsigned char *)out + (size_t)i * 2u, &m, 2);
        }
    }
    return s;
}

int32_t tt_grad_sum(const void *const *parts, const uint8_t *is32, const int32_t *exps, int32_t nparts,
                    int32_t n, int32_t bits, int16_t *out)
{
    if (nparts == 1 && is32[0])
        return exps[0] + renormalize32((const unsigned char *)parts[0], n, bits, out);
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
