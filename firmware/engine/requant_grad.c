/* Requantization backward (conv, dense, add inputs, pool): the gradient through the output clamp
 * and the fixed-point multiplier, renormalized to `bits`. The renormalization needs the tensor's max
 * before its first output: two passes that recompute the (cheap) values instead of storing them.
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

/* Lane masks of 2 mask bits: bit 0 -> the low int16 lane, bit 1 -> the high one. */
static const uint32_t lane_mask[4] = {0u, 0xFFFFu, 0xFFFF0000u, 0xFFFFFFFFu};

/* The two mask bits of elements i, i + 1 (i even: they never straddle a byte) as a lane mask. */
static inline uint32_t mask_lanes(const uint8_t *mask, uint32_t i)
{
    return lane_mask[(mask[i >> 3] >> (i & 7u)) & 3u];
}

/* Pass 2 of one channel: out = rshift_round(rshift_round(v m, n), s) = floor((v m + K) / 2^N) with
 * N = n + s, K = 2^(n-1) [n > 0] + 2^(N-1) [s > 0] (floors compose); 0 when n >= 47 or N >= 48.
 * When K is a multiple of 2^16 and N >= 16 that is SMLAW (v m >> 16, exact floor) plus K >> 16,
 * shifted right by N - 16: two instructions. */
typedef struct {
    int32_t m, k16, sh; /* the SMLAW form */
    int fast;
    int32_t n, nn;
    int64_t k;
    int32_t d, sh2;     /* N >= 16: high word of (K << d) + (v << d) m, shifted by sh2 */
    int64_t kd;
    int mid;
    int32_t a, b;       /* N < 16: (K << 16) + (v << 16) m, low word >> a | high word << b */
    int64_t k16x;
} rg_chan;

static rg_chan rg_prepare(int32_t m, int32_t n, int32_t s)
{
    TT_ASSUME(s >= 0); /* a tt_normalize_shift (GCC knew it when requant_grad and grad_sum shared a file) */
    rg_chan q = {0, 0, 0, 1, 47, 0, 0, 0, 0, 0, 1, 16, 16, 0};
    const int32_t nn = n + s;
    /* Every value rounds to 0 (m = 0 gives that) when n >= 47 (|v m| < 2^46) or N >= 48 (then
     * s >= 2 and 0 < v m + K < 2^N). */
    if (n >= 47 || nn >= 48)
        return q;
    q.n = n;
    const int64_t k = (n > 0 ? INT64_C(1) << (n - 1) : 0) + (s > 0 ? INT64_C(1) << (nn - 1) : 0);
    q.m = m;
    q.nn = nn;
    q.k = k;
    q.fast = nn >= 16 && (k & 0xFFFF) == 0;
    q.k16 = (int32_t)(k >> 16);
    q.sh = nn - 16;
    /* N in [16, 48): v << d fits int32 (d <= 16) and the result is the high word shifted by sh2 */
    q.mid = nn >= 16;
    q.d = nn < 32 ? 32 - nn : 0;
    q.sh2 = nn > 32 ? nn - 32 : 0;
    q.kd = k * (INT64_C(1) << q.d);
    /* N < 16: N + 16 in [16, 32), v << 16 fits int32 and the result is the middle word */
    q.a = nn + 16;
    q.b = 16 - nn;
    q.k16x = k * (INT64_C(1) << 16);
    return q;
}

static inline int16_t rg_value(int32_t v, const rg_chan *q)
{
    if (q->n >= 47)
        return 0;
    return (int16_t)(((int64_t)v * q->m + q->k) >> q->nn);
}

/* One pair of channels (ch, ch + 1) over all positions, both lanes at once: v = the masked int16
 * pair, then each lane through `lane` (LANE_SMLAW; LANE_MID: N >= 16; LANE_ANY: either form). Mask bits of element i
 * (even) and i + 1 sit in one byte; with c a multiple of 8 their offset in it is the channel's. */
enum { LANE_SMLAW = 0, LANE_MID = 1, LANE_ANY = 2 };

TT_ALWAYS_INLINE int32_t rg_lane(int32_t v, const rg_chan *q, int lane)
{
    if (lane == LANE_SMLAW) /* v in the low lane of a word */
        return tt_smlawb(q->m, (uint32_t)v, q->k16) >> q->sh;
    if (lane == LANE_MID || (lane == LANE_ANY && q->mid))
        return (int32_t)((q->kd + (int64_t)(v * (1 << q->d)) * q->m) >> 32) >> q->sh2;
    const uint64_t x = (uint64_t)(q->k16x + (int64_t)(v * 65536) * q->m);
    return (int32_t)(((uint32_t)x >> q->a) | ((uint32_t)(x >> 32) << q->b));
}

/* Both lanes of a masked pair: SMLAWB / SMLAWT take their int16 lane in place. */
TT_ALWAYS_INLINE uint32_t rg_lanes(uint32_t v, const rg_chan *a, const rg_chan *b, int lane)
{
    if (lane == LANE_SMLAW)
        return tt_pack16(tt_smlawb(a->m, v, a->k16) >> a->sh, tt_smlawt(b->m, v, b->k16) >> b->sh);
    return tt_pack16(rg_lane(tt_lane_lo(v), a, lane), rg_lane(tt_lane_hi(v), b, lane));
}

TT_ALWAYS_INLINE void rg_pair(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                              const rg_chan *q0, const rg_chan *q1, int16_t *out, int lane)
{
    const rg_chan a = *q0, b = *q1;
    const int16_t *gp = g + ch;
    int16_t *op = out + ch;
    const int16_t *end = gp + hw * c;
    if (mask && (c & 7) == 0) {
        const uint8_t *mp = mask + (ch >> 3);
        const uint32_t o = (uint32_t)ch & 7u, ms = (uint32_t)c >> 3;
        for (; gp != end; gp += c, op += c, mp += ms) {
            const uint32_t v = tt_read_s16x2(gp) & lane_mask[(*mp >> o) & 3u];
            const uint32_t r = rg_lanes(v, &a, &b, lane);
            TT_MEMCPY(op, &r, 4);
        }
    } else {
        uint32_t bit = (uint32_t)ch;
        for (; gp != end; gp += c, op += c, bit += (uint32_t)c) {
            uint32_t v = tt_read_s16x2(gp);
            if (mask)
                v &= mask_lanes(mask, bit);
            const uint32_t r = rg_lanes(v, &a, &b, lane);
            TT_MEMCPY(op, &r, 4);
        }
    }
}

TT_NOINLINE static void rg_pair_smlaw(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                                      const rg_chan *q0, const rg_chan *q1, int16_t *out)
{
    rg_pair(g, mask, hw, c, ch, q0, q1, out, LANE_SMLAW);
}
TT_NOINLINE static void rg_pair_mid(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                                    const rg_chan *q0, const rg_chan *q1, int16_t *out)
{
    rg_pair(g, mask, hw, c, ch, q0, q1, out, LANE_MID);
}
TT_NOINLINE static void rg_pair_any(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                                    const rg_chan *q0, const rg_chan *q1, int16_t *out)
{
    rg_pair(g, mask, hw, c, ch, q0, q1, out, LANE_ANY);
}

/* The common case of pass 2 in four instructions per lane: out = floor((v m + K) / 2^N) for
 * 16 <= N <= 46, m >= 0 split as m = mh 2^16 + ml (ml the sign-extended low half, mh <= 2^15 - 1) and
 * K = Kh 2^16 + Kl (0 <= Kl < 2^16): v m + K = (v mh + Kh) 2^16 + v ml + Kl, so
 * floor((v m + K) / 2^16) = v mh + Kh + floor((v ml + Kl) / 2^16) (exact in int32: |v mh| < 2^30,
 * Kh < 2^30, |v ml + Kl| < 2^31), then an arithmetic shift by N - 16 (floors compose). Per lane:
 * SMLABB (v ml + Kl), SMLABT (v mh + Kh), ADD with ASR #16, ASR. mm packs (mh, ml). */
typedef struct {
    uint32_t mm;
    int32_t kl, kh, sh;
    int small; /* N < 16 (tiny or zero values): (v mh << (16 - N)) + ((v ml + K) >> N), kh = 16 - N */
} rg_fast;

static int rg_fast_prepare(rg_fast *f, int32_t m, int32_t n, int32_t s)
{
    TT_ASSUME(s >= 0); /* a tt_normalize_shift */
    const int32_t nn = n + s;
    if (m < 0 || n < 0 || nn > 46)
        return 0;
    const int64_t k = (n > 0 ? INT64_C(1) << (n - 1) : 0) + (s > 0 ? INT64_C(1) << (nn - 1) : 0);
    const int32_t ml = (int32_t)((uint32_t)m & 0xFFFFu) - (((uint32_t)m & 0x8000u) ? 0x10000 : 0);
    const int32_t mh = (int32_t)(((int64_t)m - ml) >> 16);
    if (mh > 32767)
        return 0;
    f->mm = ((uint32_t)mh << 16) | ((uint32_t)m & 0xFFFFu);
    f->small = nn < 16;
    if (f->small) {
        /* floor((v m + K) / 2^N) = v mh 2^(16-N) + floor((v ml + K) / 2^N) (K < 2^N <= 2^15), computed
         * modulo 2^32: the result fits 16 bits, so the wrap of v mh 2^(16-N) cannot show */
        f->kl = (int32_t)k;
        f->kh = 16 - nn;
        f->sh = nn;
    } else {
        f->kl = (int32_t)(k & 0xFFFF);
        f->kh = (int32_t)(k >> 16);
        f->sh = nn - 16;
    }
    return 1;
}

TT_ALWAYS_INLINE uint32_t rg_fast_pair(uint32_t v, const rg_fast *a, const rg_fast *b, int small)
{
    if (small) {
        const uint32_t lo = ((uint32_t)tt_smlabt(v, a->mm, 0) << a->kh) + (uint32_t)(tt_smlabb(v, a->mm, a->kl) >> a->sh);
        const uint32_t hi = ((uint32_t)tt_smlatt(v, b->mm, 0) << b->kh) + (uint32_t)(tt_smlatb(v, b->mm, b->kl) >> b->sh);
        return tt_pkhbt((int32_t)(lo & 0xFFFFu), (int32_t)(hi & 0xFFFFu));
    }
    const int32_t lo = (tt_smlabt(v, a->mm, a->kh) + (tt_smlabb(v, a->mm, a->kl) >> 16)) >> a->sh;
    const int32_t hi = (tt_smlatt(v, b->mm, b->kh) + (tt_smlatb(v, b->mm, b->kl) >> 16)) >> b->sh;
    return tt_pkhbt((uint32_t)lo, (uint32_t)hi); /* tt_pack16 in one PKHBT */
}

/* Pass 2 of a channel pair in the fast form, positions one after another. */
TT_ALWAYS_INLINE void rg_pair_fast_body(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                                        const rg_fast *q0, const rg_fast *q1, int16_t *out, int small)
{
    const rg_fast a = *q0, b = *q1;
    const int16_t *gp = g + ch;
    int16_t *op = out + ch;
    const int16_t *end = gp + hw * c;
    if (!mask) {
        for (; gp != end; gp += c, op += c)
            tt_write_s16x2(op, rg_fast_pair(tt_read_s16x2(gp), &a, &b, small));
    } else if ((c & 7) == 0) {
        const uint8_t *mp = mask + (ch >> 3);
        const uint32_t o = (uint32_t)ch & 7u, ms = (uint32_t)c >> 3;
        for (; gp != end; gp += c, op += c, mp += ms) {
            const uint32_t v = tt_read_s16x2(gp) & lane_mask[(*mp >> o) & 3u];
            tt_write_s16x2(op, rg_fast_pair(v, &a, &b, small));
        }
    } else {
        uint32_t bit = (uint32_t)ch;
        for (; gp != end; gp += c, op += c, bit += (uint32_t)c)
            tt_write_s16x2(op, rg_fast_pair(tt_read_s16x2(gp) & mask_lanes(mask, bit), &a, &b, small));
    }
}

/* Both lanes in the same form (small or not). */
TT_NOINLINE static void rg_pair_fast(const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                                     const rg_fast *q0, const rg_fast *q1, int16_t *out)
{
    if (q0->small)
        rg_pair_fast_body(g, mask, hw, c, ch, q0, q1, out, 1);
    else
        rg_pair_fast_body(g, mask, hw, c, ch, q0, q1, out, 0);
}

/* One multiplier for the whole tensor: all n elements in order, pairs (i, i + 1) with i even (their mask
 * bits share a byte), 4 pairs (a mask byte) per step. Pass 1 (range) or pass 2 (fast form). */
TT_ALWAYS_INLINE uint32_t rg_flat_masked(const int16_t *gp, const uint8_t *mp, int32_t t)
{
    return tt_read_s16x2(gp + 2 * t) & (mp ? lane_mask[(*mp >> (2 * t)) & 3u] : 0xFFFFFFFFu);
}

static void rg_flat_range(int16_t *wb, const int16_t *g, const uint8_t *mask, int32_t n, int32_t *lo, int32_t *hi)
{
    uint32_t l2 = 0, h2 = 0;
    int32_t i = 0;
    for (; i + 7 < n; i += 8) {
        const uint8_t *mp = mask ? mask + (i >> 3) : 0;
        TT_UNROLL(4)
        for (int32_t t = 0; t < 4; t++) {
            const uint32_t v = rg_flat_masked(g + i, mp, t);
            if (wb)
                tt_write_s16x2(wb + i + 2 * t, v);
            l2 = tt_min16x2(l2, v);
            h2 = tt_max16x2(h2, v);
        }
    }
    int32_t l = tt_lane_lo(l2) < tt_lane_hi(l2) ? tt_lane_lo(l2) : tt_lane_hi(l2);
    int32_t h = tt_lane_lo(h2) > tt_lane_hi(h2) ? tt_lane_lo(h2) : tt_lane_hi(h2);
    for (; i < n; i++) {
        const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
    }
    *lo = l;
    *hi = h;
}

TT_ALWAYS_INLINE int32_t rg_flat_fast_body(const int16_t *g, const uint8_t *mask, int32_t n, const rg_fast *q,
                                           int16_t *out, int small)
{
    const rg_fast a = *q;
    int32_t i = 0;
    for (; i + 7 < n; i += 8) {
        const uint8_t *mp = mask ? mask + (i >> 3) : 0;
        TT_UNROLL(4)
        for (int32_t t = 0; t < 4; t++)
            tt_write_s16x2(out + i + 2 * t, rg_fast_pair(rg_flat_masked(g + i, mp, t), &a, &a, small));
    }
    return i;
}

TT_NOINLINE static int32_t rg_flat_fast(const int16_t *g, const uint8_t *mask, int32_t n, const rg_fast *q,
                                        int16_t *out)
{
    return q->small ? rg_flat_fast_body(g, mask, n, q, out, 1) : rg_flat_fast_body(g, mask, n, q, out, 0);
}

/* Pass 1 of a channel pair: lane-wise min and max of the masked pairs (SSUB16 + SEL). With wb (out is g,
 * which pass 2 overwrites anyway) the masked pairs are written back, so that pass 2 needs no mask. */
static void rg_range(int16_t *wb, const int16_t *g, const uint8_t *mask, int32_t hw, int32_t c, int32_t ch,
                     int32_t *lo, int32_t *hi)
{
    uint32_t l2 = 0, h2 = 0;
    const int16_t *gp = g + ch, *end = gp + hw * c;
    int16_t *wp = wb ? wb + ch : 0;
    if (mask && (c & 7) == 0) {
        const uint8_t *mp = mask + (ch >> 3);
        const uint32_t o = (uint32_t)ch & 7u, ms = (uint32_t)c >> 3;
        for (; gp != end; gp += c, mp += ms) {
            const uint32_t v = tt_read_s16x2(gp) & lane_mask[(*mp >> o) & 3u];
            if (wp) {
                tt_write_s16x2(wp, v);
                wp += c;
            }
            l2 = tt_min16x2(l2, v);
            h2 = tt_max16x2(h2, v);
        }
    } else {
        uint32_t bit = (uint32_t)ch;
        for (; gp != end; gp += c, bit += (uint32_t)c) {
            uint32_t v = tt_read_s16x2(gp);
            if (mask)
                v &= mask_lanes(mask, bit);
            if (wp) {
                tt_write_s16x2(wp, v);
                wp += c;
            }
            l2 = tt_min16x2(l2, v);
            h2 = tt_max16x2(h2, v);
        }
    }
    lo[0] = tt_lane_lo(l2);
    lo[1] = tt_lane_hi(l2);
    hi[0] = tt_lane_lo(h2);
    hi[1] = tt_lane_hi(h2);
}

int32_t tt_requant_grad(const int16_t *g, int32_t e, const uint8_t *mask, int32_t hw, int32_t c,
                        const int32_t *mult, const int32_t *shift, int32_t nmult, int32_t bits, int16_t *out)
{
    int32_t shmax = shift[0];
    for (int32_t j = 1; j < nmult; j++)
        if (shift[j] > shmax)
            shmax = shift[j];
    const int per_channel = nmult > 1;
    const int pairs = (c & 1) == 0; /* channel pairs are int16 pairs at every position */

    /* Pass 1, per channel: t = rshift_round(v m, n) is monotone in v, so the largest |t| of a
     * channel is reached at its smallest or largest masked g (masked-out elements are 0, which
     * never raises the maximum). */
    uint64_t max_abs = 0;
    /* out is g: pass 1 leaves the masked g there (the full 8-element steps of the flat form, all pairs of
     * the per-channel one), pass 2 reads it without the mask */
    int16_t *wb = mask && out == g ? out : 0;
    if (!per_channel) { /* one multiplier: the range of the whole tensor */
        int32_t lo = 0, hi = 0;
        rg_flat_range(wb, g, mask, hw * c, &lo, &hi);
        const uint64_t a = tt_abs64(tt_rshift_round((int64_t)lo * mult[0], shmax - shift[0]));
        const uint64_t b = tt_abs64(tt_rshift_round((int64_t)hi * mult[0], shmax - shift[0]));
        max_abs = a > b ? a : b;
    }
    for (int32_t ch = 0; per_channel && ch < c; ch += pairs ? 2 : 1) {
        int32_t lo[2] = {0, 0}, hi[2] = {0, 0};
        if (pairs) {
            rg_range(wb, g, mask, hw, c, ch, lo, hi);
        } else {
            for (int32_t p = 0, i = ch; p < hw; p++, i += c) {
                const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
                lo[0] = v < lo[0] ? v : lo[0];
                hi[0] = v > hi[0] ? v : hi[0];
            }
        }
        /* |t| = |rshift_round(v m, n)| grows with |v| on either side, |t(-a)| <= t(a), and for m >= 1
         * |t(-a)| = ceil((a m - K) / 2^n) >= floor(((a - 1) m + K) / 2^n) = t(a - 1) (K = 2^(n-1)): only
         * the extreme of larger magnitude counts. */
        for (int32_t k = 0; k < (pairs ? 2 : 1); k++) {
            if (lo[k] == 0 && hi[k] == 0)
                continue;
            const int32_t j = per_channel ? ch + k : 0, m = mult[j], n = shmax - shift[j];
            const uint64_t a = tt_abs64(tt_rshift_round((int64_t)(-lo[k] > hi[k] ? lo[k] : hi[k]) * m, n));
            max_abs = a > max_abs ? a : max_abs;
            if (m < 1) {
                const uint64_t b = tt_abs64(tt_rshift_round((int64_t)lo[k] * m, n));
                max_abs = b > max_abs ? b : max_abs;
            }
        }
    }
    const int32_t s = tt_normalize_shift(max_abs, bits);

    /* Pass 2, per channel (pair) with its constants hoisted; out may alias g: each element (pair)
     * is read, then written. */
    rg_fast f0, f1;
    if (!per_channel && rg_fast_prepare(&f0, mult[0], shmax - shift[0], s)) {
        const int32_t n = hw * c;
        int32_t i = rg_flat_fast(g, wb ? 0 : mask, n, &f0, out);
        const rg_chan q = rg_prepare(mult[0], shmax - shift[0], s);
        for (; i < n; i++)
            out[i] = rg_value(mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i], &q);
        return e + shmax - 31 + s;
    }
    for (int32_t ch = 0; ch < c; ch += pairs ? 2 : 1) {
        const int32_t j0 = per_channel ? ch : 0, j1 = per_channel && pairs ? ch + 1 : j0;
        if (pairs && rg_fast_prepare(&f0, mult[j0], shmax - shift[j0], s) &&
            rg_fast_prepare(&f1, mult[j1], shmax - shift[j1], s) && f0.small == f1.small) {
            rg_pair_fast(g, wb ? 0 : mask, hw, c, ch, &f0, &f1, out);
            continue;
        }
        const rg_chan q0 = rg_prepare(mult[j0], shmax - shift[j0], s);
        const rg_chan q1 = rg_prepare(mult[j1], shmax - shift[j1], s);
        if (pairs && q0.fast && q1.fast) {
            rg_pair_smlaw(g, mask, hw, c, ch, &q0, &q1, out);
        } else if (pairs && q0.mid && q1.mid) {
            rg_pair_mid(g, mask, hw, c, ch, &q0, &q1, out);
        } else if (pairs) {
            rg_pair_any(g, mask, hw, c, ch, &q0, &q1, out);
        } else {
            for (int32_t p = 0, i = ch; p < hw; p++, i += c) {
                const int32_t v = mask && !tt_mask_get(mask, (uint32_t)i) ? 0 : g[i];
                out[i] = rg_value(v, &q0);
            }
        }
    }
    return e + shmax - 31 + s;
}
