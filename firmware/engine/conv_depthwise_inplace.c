/* Forward stride-1 depthwise convolution in place: the output overwrites the input buffer.
 *
 * Portable: output row r reads input rows r-pad..r+pad, so it is computed into a ring of
 * pad+1 rows and copied over input row r-pad once no later output row needs it.
 * Peak memory is the tensor plus (pad+1) rows instead of two tensors. Each row is
 * one call of the strip form of tt_conv_depthwise, so results are bit-identical.
 * DSP: the staged 4-channel path (conv_depthwise.c) and the expanded-rows path below read
 * every input row they need before they write the row it overlaps, so they need no ring.
 */
#include <string.h>

#include "tt_kernels.h"

#include "internal/conv_depthwise.h"
#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

/* ------------------------------------------------------------------ Cortex-M7 DSP: expanded rows
 *
 * Depthwise through expanded rows (kernels 3, 5, 7; stride 1; one column tile, so that it can run in
 * place), one channel at a time: for rows wider than the staged 4-channel path's one tile, or
 * channel counts that are not a multiple of 4. The channel's input rows are expanded once each into
 * a ring of k rows of int16 in the caller's scratch, padding included (zx, whose products the zero-point fold
 * cancels), so that every output is branch-free: per kernel row (k+1)/2 SMLAD of a word (X[u],
 * X[u+1]) of the row with a pair of weights (w[2t], w[2t+1]), the odd last tap paired with a 0
 * weight (its partner X is any defined value); 3x3 wastes no lane (dw3_row: the pairs (w0, w1),
 * (w1, w2)). Four horizontally adjacent outputs share every weight load. Groups of 4 channels go
 * through four planes (dwexp4_tile; 3x3: dw3_tile, its slots interleaved so that one pointer
 * reaches the three rows). An output row is written only after every input row it covers is in the ring, so
 * the output may overwrite the input (input row r + k/2 of the channel is expanded before its
 * output row r is stored).
 *
 * Requantization of a channel whose constants allow it (multiplier >= 0, right shift e in 1..23,
 * |bias| < 2^29 - 2^21, so that 2 acc cannot overflow) in 4 instructions: with weights doubled and
 * the accumulator started at A = 2 (bias - zx sum w), SMMLAR(A, m, K) = SRDHM(acc, m) + K (the
 * rounded high word of 2 acc m is floor((acc m + 2^30) / 2^31)), and with K = 2^(e-1) + zy 2^e,
 * (SMMLAR + (A >> 31)) >> e = RDBPOT(SRDHM, e) + zy (the floors compose as in fixed_point.h). Dead
 * channels become the constants they are first (fixed_point.h, tt_rq_dead); other channels (biases
 * near +-2^31 that the products still move, large shifts) take the general saturating form. */

#define DWEXP_RING_HALFS 320 /* 640 bytes of scratch: k expanded rows of w + k halfwords (w <= dwexp_cols) */

/* The widest output row (one column tile) whose k expanded rows of w + k halfwords fit the ring. */
static int32_t dwexp_cols(int32_t kernel)
{
    const int32_t pitch = (DWEXP_RING_HALFS / kernel) & ~1;
    return pitch - kernel;
}

/* Whether the expanded-rows path runs the in-place conv of rows of w outputs. */
static int dwexp_supported(int32_t kernel, int32_t w)
{
    /* narrow outputs (per-channel costs over few outputs): the staged 4-channel path does better
     * (measured: tools/kernel_bench.py dwk) */
    return (kernel == 3 || kernel == 5 || kernel == 7) && w >= (kernel == 3 ? 4 : 8) && w <= dwexp_cols(kernel);
}

#if TT_DSP

typedef struct {
    uint32_t w[DW_MAX_KERNEL][4]; /* kernel row i, pair t: (w[i][2t], w[i][2t+1]) (doubled: fast) */
    int32_t init;                 /* fast: 2 (bias - zx sum w); general: -zx sum w */
    int32_t m, k, e;              /* fast: multiplier, 2^(e-1) + zy 2^e, right shift */
    int32_t bias, shift, zy;
} dwexp_chan;
_Static_assert(4 * sizeof(dwexp_chan) == DWP_CHAN_BYTES, "DWP_CHAN_BYTES");

/* The 3x3 weights wc (times f) as dw3_row's pairs of each kernel row i, ab[i] = {(w0, w1), (w1, w2)};
 * returns the sum of the weights. */
TT_ALWAYS_INLINE int32_t dw3_pairs(const int8_t *wc, int32_t f, uint32_t ab[3][2])
{
    int32_t sum = 0;
    TT_UNROLL(3) for (int i = 0; i < 3; i++)
    {
        const int32_t a = wc[3 * i], b = wc[3 * i + 1], d = wc[3 * i + 2];
        sum += a + b + d;
        ab[i][0] = tt_pack16(f * a, f * b);
        ab[i][1] = tt_pack16(f * b, f * d);
    }
    return sum;
}

/* The accumulator's start: fast, 2 (bias - zx sum w) (the weights doubled); else -zx sum w. */
static inline int32_t dwexp_init(int32_t sum, int32_t bias, int32_t zx, int fast)
{
    return fast ? 2 * (bias - zx * sum) : -zx * sum;
}

/* allow_fast 0: the general form even where the channel allows the fast one (a group of 4 channels
 * shares one form). */
static int dwexp_prepare(const int8_t *wc, int32_t kernel, int32_t bias, int32_t mult, int32_t shift, int32_t zx,
                         int32_t zy, dwexp_chan *q, int allow_fast)
{
    const int32_t e = -shift;
    const int fast = allow_fast && dw_fast_form(bias, mult, shift);
    const int32_t f = fast ? 2 : 1;
    int32_t sum = 0;
    if (kernel == 3) { /* dw3_row's pairs: (w0, w1), (w1, w2) */
        uint32_t ab[3][2];
        sum = dw3_pairs(wc, f, ab);
        for (int32_t i = 0; i < 3; i++) {
            q->w[i][0] = ab[i][0];
            q->w[i][1] = ab[i][1];
        }
    } else
        for (int32_t i = 0; i < kernel; i++)
            for (int32_t t = 0; 2 * t < kernel; t++) {
                const int32_t a = wc[i * kernel + 2 * t], b = 2 * t + 1 < kernel ? wc[i * kernel + 2 * t + 1] : 0;
                sum += a + b;
                q->w[i][t] = tt_pack16(f * a, f * b);
            }
    q->init = dwexp_init(sum, bias, zx, fast);
    q->m = mult;
    q->e = e;
    q->k = fast ? tt_rq_dbl_k(e, zy) : 0;
    q->bias = bias;
    q->shift = shift;
    q->zy = zy;
    return fast;
}

/* The requantization constants of a channel in locals (stores to int8 outputs may alias the
 * struct, locals cannot change). */
typedef struct {
    int32_t m, k, e, bias, zy;
} dwexp_rq;

TT_ALWAYS_INLINE dwexp_rq dwexp_rq_of(const dwexp_chan *q, int fast)
{
    dwexp_rq r;
    r.m = q->m;
    r.k = fast ? q->k : q->shift;
    r.e = q->e;
    r.bias = fast ? 0 : q->bias;
    r.zy = fast ? 0 : q->zy;
    return r;
}

/* MBQM(sat32(bias + acc)) + zy before the int8 clamp (a: the accumulator, doubled when fast). */
TT_ALWAYS_INLINE int32_t dwexp_pre(int32_t a, dwexp_rq r, int fast)
{
    if (fast)
        return (tt_smmlar(a, r.m, r.k) + (a >> 31)) >> r.e;
    return tt_ssat10(tt_mbqm_inline(tt_qadd(r.bias, a), r.m, r.k)) + r.zy;
}

/* One output y = clamp(MBQM(sat32(bias + acc)) + zy) (a: the accumulator, doubled when fast) and
 * its mask bit. */
TT_ALWAYS_INLINE void dwexp_out(int32_t a, dwexp_rq r, int fast, int masked, int8_t *y, uint8_t *mask, uint32_t bit)
{
    const int32_t pre = dwexp_pre(a, r, fast);
    const int32_t c = tt_ssat8(pre);
    *y = (int8_t)c;
    if (masked == 1 || (masked == 2 && mask)) /* 2: if there is a mask */
        tt_mask_put(mask, bit, (uint32_t)(c == pre));
}

/* The multiplies of one kernel row for the four outputs a0..a3 of dw3_row (S: the stride): weights
 * wa = (w0, w1), wb = (w1, w2), the row's first words e0, e1 loaded; the further words are loaded
 * where the sequence needs them, LOAD_E2 (an expression) at stride 1, LOAD_E23 (a statement setting
 * e2, e3) and LOAD_E4 at stride 2. */
#define DW3_MACS(S, wa, wb, e0, e1, LOAD_E2, LOAD_E23, LOAD_E4)                                          \
    do {                                                                                                \
        if (S == 1) {                                                                                   \
            a0 = tt_smlad(e0, wa, a0);                                                                  \
            a1 = tt_smlatb(e0, wa, a1);                                                                 \
            const uint32_t e2 = LOAD_E2;                                                                \
            a0 = tt_smlabt(e1, wb, a0);                                                                 \
            a1 = tt_smlad(e1, wb, a1);                                                                  \
            a2 = tt_smlad(e1, wa, a2);                                                                  \
            a3 = tt_smlatb(e1, wa, a3);                                                                 \
            a2 = tt_smlabt(e2, wb, a2);                                                                 \
            a3 = tt_smlad(e2, wb, a3);                                                                  \
        } else {                                                                                        \
            uint32_t e2, e3;                                                                            \
            a0 = tt_smlad(e0, wa, a0);                                                                  \
            a0 = tt_smlabt(e1, wb, a0);                                                                 \
            a1 = tt_smlad(e1, wa, a1);                                                                  \
            LOAD_E23;                                                                                   \
            a1 = tt_smlabt(e2, wb, a1);                                                                 \
            a2 = tt_smlad(e2, wa, a2);                                                                  \
            a2 = tt_smlabt(e3, wb, a2);                                                                 \
            const uint32_t e4 = LOAD_E4;                                                                \
            a3 = tt_smlad(e3, wa, a3);                                                                  \
            a3 = tt_smlabt(e4, wb, a3);                                                                 \
        }                                                                                               \
    } while (0)

/* dwexp_row / dwexp_row2 of a 3x3 kernel (S: the stride): no lane wasted on a zero weight, and only
 * aligned words read. Per kernel row the weights are the words A = (w0, w1) and B = (w1, w2) (one
 * LDRD), the row the aligned words E_k = (X[2k], X[2k+1]); output u of the row block is
 *   u even (or any u at stride 2): SMLAD(E, A) + SMLABT(E', B)   (X[u] w0 + X[u+1] w1, X[u+2] w2)
 *   u odd (stride 1):              SMLATB(E, A) + SMLAD(E', B)   (X[u] w0, X[u+1] w1 + X[u+2] w2)
 * with E the word holding X[u] and E' the next one: 6 multiply instructions for 9 MACs. Four outputs
 * at a time: per kernel row one LDRD of the weights and, at stride 1, an LDRD and an LDR of the 6
 * halfwords they read (at stride 2 two LDRD and an LDR of 10), the row pointers post-incremented;
 * the accumulators start from init in their first multiply. */
TT_ALWAYS_INLINE void dw3_row(const int16_t *r0, const int16_t *r1, const int16_t *r2, int32_t tow,
                              const dwexp_chan *q, int8_t *y, int32_t c, uint8_t *mask, uint32_t bit, int S, int fast,
                              int masked)
{
    const int16_t *p0 = r0, *p1 = r1, *p2 = r2;
    /* The channel's constants are read from q where they are used (reloaded after the int8 stores,
     * which may alias them): in registers they would push the row pointers onto the stack. */
    for (int32_t n = tow >> 2; n > 0; n--) {
        const int32_t init = q->init;
        int32_t a0 = init, a1 = init, a2 = init, a3 = init;
#define DW3_ROW(P, I)                                                                                   \
    do {                                                                                                \
        uint32_t wa, wb, e0, e1;                                                                        \
        tt_ldrd_pair(q->w, 4 * (I), wa, wb);                                                            \
        tt_ldrd_pair_post(P, e0, e1);                                                                   \
        DW3_MACS(S, wa, wb, e0, e1, tt_read_s16x2(P), tt_ldrd_pair_post(P, e2, e3), tt_read_s16x2(P));   \
    } while (0)
        DW3_ROW(p0, 0);
        DW3_ROW(p1, 1);
        DW3_ROW(p2, 2);
#undef DW3_ROW
        const dwexp_rq rq = dwexp_rq_of(q, fast);
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
        dwexp_out(a1, rq, fast, masked, y + c, mask, bit + (uint32_t)c);
        y += 2 * c;
        dwexp_out(a2, rq, fast, masked, y, mask, bit + 2 * (uint32_t)c);
        dwexp_out(a3, rq, fast, masked, y + c, mask, bit + 3 * (uint32_t)c);
        y += 2 * c;
        bit += 4 * (uint32_t)c;
    }
    for (int32_t ox = tow & ~3; ox < tow; ox++, y += c, bit += (uint32_t)c) {
        int32_t a0 = q->init;
        const int16_t *const rr[3] = {r0, r1, r2};
        TT_UNROLL(3) for (int i = 0; i < 3; i++)
        {
            const int16_t *xr = rr[i] + S * ox;
            const uint32_t wa = q->w[i][0], wb = q->w[i][1];
            a0 = tt_smlad(tt_read_s16x2(xr), wa, a0);      /* X[u] w0 + X[u+1] w1 */
            a0 = tt_smlabt(tt_read_s16x2(xr + 2), wb, a0); /* X[u+2] w2 */
        }
        dwexp_out(a0, dwexp_rq_of(q, fast), fast, masked, y, mask, bit);
    }
}

/* One output row of tow outputs of the channel from its K expanded input rows rp[0..K-1]: y is the
 * row's first output, c the step between outputs, bit its mask index. Four outputs at a time share
 * every weight load; per pair of taps the even outputs read an aligned word, the odd ones the
 * unaligned word after it, and the next pair reuses both. */
TT_ALWAYS_INLINE void dwexp_row(const int16_t *const *rp, int32_t tow, const dwexp_chan *q, int8_t *y, int32_t c,
                                uint8_t *mask, uint32_t bit, int K, int fast, int masked)
{
    if (K == 3) {
        dw3_row(rp[0], rp[1], rp[2], tow, q, y, c, mask, bit, 1, fast, masked);
        return;
    }
    const int P = (K + 1) / 2; /* pairs per kernel row */
    const int32_t init = q->init;
    const dwexp_rq rq = dwexp_rq_of(q, fast);
    int32_t ox = 0;
    for (; ox + 3 < tow; ox += 4, y += 4 * c, bit += 4 * (uint32_t)c) {
        int32_t a0 = init, a1 = init, a2 = init, a3 = init;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            const int16_t *xr = rp[i] + ox; /* word aligned: ox even, rows of even length */
            const uint32_t *wq = q->w[i];
            /* loads in the order they are consumed (few live registers, no spills) */
            /* output ox + j, pair t: the word at halfword ox + j + 2t (j odd: unaligned) */
            uint32_t e0 = tt_read_s16x2(xr), o0 = tt_read_s16x2(xr + 1);
            TT_UNROLL(4) for (int t = 0; t < P; t++)
            {
                const uint32_t wv = wq[t];
                const uint32_t e1 = tt_read_s16x2(xr + 2 * t + 2), o1 = tt_read_s16x2(xr + 2 * t + 3);
                a0 = tt_smlad(e0, wv, a0);
                a1 = tt_smlad(o0, wv, a1);
                a2 = tt_smlad(e1, wv, a2);
                a3 = tt_smlad(o1, wv, a3);
                e0 = e1;
                o0 = o1;
            }
        }
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
        dwexp_out(a1, rq, fast, masked, y + c, mask, bit + (uint32_t)c);
        dwexp_out(a2, rq, fast, masked, y + 2 * c, mask, bit + 2 * (uint32_t)c);
        dwexp_out(a3, rq, fast, masked, y + 3 * c, mask, bit + 3 * (uint32_t)c);
    }
    for (; ox < tow; ox++, y += c, bit += (uint32_t)c) {
        int32_t a0 = init;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            const int16_t *xr = rp[i] + ox;
            TT_UNROLL(4) for (int t = 0; t < P; t++) a0 = tt_smlad(tt_read_s16x2(xr + 2 * t), q->w[i][t], a0);
        }
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
    }
}

/* dwexp_row at stride 2: output ox + j, pair t reads the aligned word of halfwords 2 (ox + j + t) and
 * 2 (ox + j + t) + 1, so four outputs share every word and every weight load. */
TT_ALWAYS_INLINE void dwexp_row2(const int16_t *const *rp, int32_t tow, const dwexp_chan *q, int8_t *y, int32_t c,
                                 uint8_t *mask, uint32_t bit, int K, int fast, int masked)
{
    const int P = (K + 1) / 2;
    const int32_t init = q->init;
    const dwexp_rq rq = dwexp_rq_of(q, fast);
    int32_t ox = 0;
    for (; ox + 3 < tow; ox += 4, y += 4 * c, bit += 4 * (uint32_t)c) {
        int32_t a0 = init, a1 = init, a2 = init, a3 = init;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            const int16_t *xr = rp[i] + 2 * ox; /* word aligned */
            const uint32_t *wq = q->w[i];
            uint32_t v0 = tt_read_s16x2(xr), v1 = tt_read_s16x2(xr + 2), v2 = tt_read_s16x2(xr + 4);
            TT_UNROLL(4) for (int t = 0; t < P; t++)
            {
                const uint32_t wv = wq[t];
                const uint32_t v3 = tt_read_s16x2(xr + 2 * t + 6);
                a0 = tt_smlad(v0, wv, a0);
                a1 = tt_smlad(v1, wv, a1);
                a2 = tt_smlad(v2, wv, a2);
                a3 = tt_smlad(v3, wv, a3);
                v0 = v1;
                v1 = v2;
                v2 = v3;
            }
        }
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
        dwexp_out(a1, rq, fast, masked, y + c, mask, bit + (uint32_t)c);
        dwexp_out(a2, rq, fast, masked, y + 2 * c, mask, bit + 2 * (uint32_t)c);
        dwexp_out(a3, rq, fast, masked, y + 3 * c, mask, bit + 3 * (uint32_t)c);
    }
    for (; ox < tow; ox++, y += c, bit += (uint32_t)c) {
        int32_t a0 = init;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            const int16_t *xr = rp[i] + 2 * ox;
            TT_UNROLL(4) for (int t = 0; t < P; t++) a0 = tt_smlad(tt_read_s16x2(xr + 2 * t), q->w[i][t], a0);
        }
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
    }
}

/* Halfwords X[0..n) of input row iy (any: rows outside [0, h) are all padding) of channel ch, from
 * input column ix0 on, into d (word aligned). */
TT_NOINLINE_NOSCHED static void dwexp_expand_row(const dw_args *g, int32_t ch, int32_t iy, int32_t ix0, int32_t n,
                                                 int16_t *d)
{
    const int32_t c = g->c, w = g->w;
    const int16_t zx = (int16_t)g->zx;
    int32_t u = 0;
    if (iy >= 0 && iy < g->h) {
        const int32_t lo = -ix0 > n ? n : -ix0;             /* u < lo: column < 0 */
        const int32_t hi = w - ix0 > n ? n : w - ix0;       /* u < hi: column < w */
        for (; u < lo; u++)
            d[u] = zx;
        const int8_t *xp = g->x + (iy * w + ix0 + u) * c + ch;
        if (u & 1 && u < hi) {
            d[u++] = *xp;
            xp += c;
        }
        if (u < hi) {
            int16_t *dp = d + u;
            const int16_t *const d4 = d + u + ((hi - u) & ~3), *const d2 = d + u + ((hi - u) & ~1);
            const int32_t c2 = 2 * c, c3 = 3 * c, c4 = 4 * c;
            for (; dp != d4; dp += 4, xp += c4) { /* word aligned */
                const uint32_t v0 = tt_pkhbt((uint32_t)(int32_t)xp[0], (uint32_t)(int32_t)xp[c]);
                const uint32_t v1 = tt_pkhbt((uint32_t)(int32_t)xp[c2], (uint32_t)(int32_t)xp[c3]);
                const uint64_t v = v0 | (uint64_t)v1 << 32;
                TT_MEMCPY(dp, &v, 8);
            }
            if (dp != d2) {
                const uint32_t v0 = tt_pkhbt((uint32_t)(int32_t)xp[0], (uint32_t)(int32_t)xp[c]);
                TT_MEMCPY(dp, &v0, 4);
                dp += 2;
                xp += c2;
            }
            u = (int32_t)(dp - d);
            if (u < hi)
                d[u++] = *xp;
        }
    }
    for (; u < n; u++)
        d[u] = zx;
}

/* Every output row of channel q's column tile [ox0, ox0 + tow): before each output row the input
 * rows it adds are expanded into their ring slots (row iy in slot (iy + pad_top) mod K). */
TT_ALWAYS_INLINE void dwexp_tile(const dw_args *g, int32_t ch, const dwexp_chan *q, int16_t *ring, int32_t ox0,
                                 int32_t tow, int32_t n, int32_t pitch, int K, int fast, int masked)
{
    const int32_t c = g->c, ow = g->ow, oh = g->oh, pt = g->pad_top;
    const int32_t ix0 = ox0 - g->pad_left;
    int32_t next = -pt, first = 0; /* next input row to expand; slot of the output row's first input row */
    int8_t *y = g->y + ox0 * c + ch;
    uint32_t bit = (uint32_t)(ox0 * c + ch);
    for (int32_t oy = 0; oy < oh; oy++, y += ow * c, bit += (uint32_t)(ow * c)) {
        const int32_t iy0 = oy - pt, end = iy0 + K;
        if (next < iy0)
            next = iy0;
        for (int32_t slot = next - iy0 + first; next < end; next++, slot++)
            dwexp_expand_row(g, ch, next, ix0, n, ring + (slot >= K ? slot - K : slot) * pitch);
        const int16_t *rp[DW_MAX_KERNEL];
        int32_t slot = first;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            rp[i] = ring + slot * pitch;
            slot = slot + 1 == K ? 0 : slot + 1;
        }
        dwexp_row(rp, tow, q, y, c, g->mask, bit, K, fast, masked);
        first++;
        if (first >= K)
            first -= K;
    }
}

typedef void (*dwexp_tile_fn)(const dw_args *g, int32_t ch, const dwexp_chan *q, int16_t *ring, int32_t ox0,
                              int32_t tow, int32_t n, int32_t pitch);
#define DWEXP_INST(K, FAST, MASKED)                                                                                   \
    TT_NOINLINE_NOSCHED static void dwexp_tile_##K##_##FAST##MASKED(const dw_args *g, int32_t ch,                     \
                                                                    const dwexp_chan *q, int16_t *ring, int32_t ox0,  \
                                                                    int32_t tow, int32_t n, int32_t pitch)            \
    {                                                                                                                 \
        dwexp_tile(g, ch, q, ring, ox0, tow, n, pitch, K, FAST, MASKED);                                              \
    }
#define DWEXP_INST_K(K) DWEXP_INST(K, 1, 0) DWEXP_INST(K, 1, 1) DWEXP_INST(K, 0, 2)
DWEXP_INST_K(3)
DWEXP_INST_K(5)
DWEXP_INST_K(7)

/* [kernel / 2 - 1][fast, fast masked, general (masked or not)] */
static const dwexp_tile_fn dwexp_fns[3][3] = {
    {dwexp_tile_3_10, dwexp_tile_3_11, dwexp_tile_3_02},
    {dwexp_tile_5_10, dwexp_tile_5_11, dwexp_tile_5_02},
    {dwexp_tile_7_10, dwexp_tile_7_11, dwexp_tile_7_02},
};

/* Every output of channel ch, as one column tile (the input may be the output). */
static void dwexp_channel(const dw_args *g, int32_t ch, int32_t kernel, const int8_t *wc, int16_t *ring)
{
    const int32_t ow = g->ow;
    const int masked = g->mask != 0;
    dwexp_chan q;
    tt_rq_chan r = {g->bias[ch], g->mult[ch], g->shift[ch], g->zy};
    if (!dw_fast_form(r.bias, r.mult, r.shift)) /* a dead channel as the constant it is (fixed_point.h) */
        (void)tt_rq_dead(&r, tt_rq_sum_bound(kernel * kernel));
    const int fast = dwexp_prepare(wc, kernel, r.bias, r.mult, r.shift, g->zx, r.zy, &q, 1);
    const dwexp_tile_fn fn = dwexp_fns[kernel / 2 - 1][fast ? masked : 2];
    const int32_t n = ow + kernel; /* halfwords read per row */
    fn(g, ch, &q, ring, 0, ow, n, (n + 1) & ~1);
}

/* Four channels at a time: the group's input rows are expanded once each into four int16 planes (one
 * per channel, the channel rows of dwexp_expand_row) from word loads of the 4 channels' bytes: per
 * pair of pixels two LDR, four SXTB16 and four PKHBT / PKHTB give one word (two pixels) of each plane,
 * instead of a byte load per pixel and channel. The outputs of each channel are then dwexp_row's.
 * Plane j of ring slot s starts at ring + (j K + s) pitch. */
TT_NOINLINE static void dwexp4_fill(int16_t *d, int32_t plane, int32_t u, int32_t n, int16_t zx)
{
    for (; u < n; u++)
        d[u] = d[u + plane] = d[u + 2 * plane] = d[u + 3 * plane] = zx;
}

/* One pixel (its 4 channels' bytes v) into the 4 planes (d: its halfword in plane 0). */
static inline void planes_put1(int16_t *d, int32_t plane, uint32_t v)
{
    const uint32_t e = tt_sxtb16(v), o = tt_sxtb16_ror8(v);
    d[0] = (int16_t)tt_lane_lo(e);
    d[plane] = (int16_t)tt_lane_lo(o);
    d[2 * plane] = (int16_t)tt_lane_hi(e);
    d[3 * plane] = (int16_t)tt_lane_hi(o);
}

/* Two pixels a, b in one word of each plane (d: that word in plane 0) into the 4 planes: PKHBT gives
 * the bytes (a0, a1, b0, b1), PKHTB (a2, a3, b2, b3), and SXTB16 / SXTB16 ROR 8 of these the words. */
static inline void planes_put2(int16_t *d, int32_t plane, uint32_t va, uint32_t vb)
{
    const uint32_t lab = tt_pkhbt(va, vb), hab = tt_pkhtb_hi(va, vb);
    tt_write_s16x2(d, tt_sxtb16(lab));
    tt_write_s16x2(d + plane, tt_sxtb16_ror8(lab));
    tt_write_s16x2(d + 2 * plane, tt_sxtb16(hab));
    tt_write_s16x2(d + 3 * plane, tt_sxtb16_ror8(hab));
}

/* Columns [lo, hi) (all inside the input row: lo >= 0, ix0 + hi <= w) of input row iy in [0, h); the
 * tile's padding columns of every slot are filled once (dwexp4_tile). */
TT_NOINLINE_NOSCHED static void dwexp4_expand_row(const dw_args *g, int32_t c0, int32_t iy, int32_t ix0, int32_t lo,
                                                  int32_t hi, int16_t *d, int32_t plane)
{
    const int32_t c = g->c, w = g->w;
    int16_t *d0 = d, *d1 = d + plane, *d2 = d + 2 * plane, *d3 = d + 3 * plane;
    int32_t u = lo;
    const int8_t *xp = g->x + (iy * w + ix0 + u) * c + c0;
    if (u & 1 && u < hi) {
        planes_put1(d0 + u++, plane, tt_read_s8x4(xp));
        xp += c;
    }
    const int32_t c2 = 2 * c;
    /* u even: word aligned in every plane (planes_put2's words, four pixels a step) */
    if (u + 3 < hi) {
        int16_t *p0 = d0 + u, *p1 = d1 + u, *p2 = d2 + u, *p3 = d3 + u;
        const int16_t *const p0_end = p0 + ((hi - u) & ~3);
        const int8_t *xq = xp + c; /* the odd pixels */
        do {
            const uint32_t va = tt_read_s8x4(xp), vb = tt_read_s8x4(xq);
            const uint32_t lab = tt_pkhbt(va, vb), hab = tt_pkhtb_hi(va, vb);
            const uint32_t vc = tt_read_s8x4(xp + c2), vd = tt_read_s8x4(xq + c2);
            const uint32_t lcd = tt_pkhbt(vc, vd), hcd = tt_pkhtb_hi(vc, vd);
            xp += 2 * c2;
            xq += 2 * c2;
            tt_strd_post(p0, tt_sxtb16(lab), tt_sxtb16(lcd));
            tt_strd_post(p1, tt_sxtb16_ror8(lab), tt_sxtb16_ror8(lcd));
            tt_strd_post(p2, tt_sxtb16(hab), tt_sxtb16(hcd));
            tt_strd_post(p3, tt_sxtb16_ror8(hab), tt_sxtb16_ror8(hcd));
        } while (p0 != p0_end);
        u = (int32_t)(p0 - d0);
    }
    if (u + 1 < hi) {
        planes_put2(d0 + u, plane, tt_read_s8x4(xp), tt_read_s8x4(xp + c));
        u += 2;
        xp += c2;
    }
    if (u < hi)
        planes_put1(d0 + u, plane, tt_read_s8x4(xp));
}

/* Every output row of the group of channels c0..c0+3 in the column tile [ox0, ox0 + tow) (with one
 * tile at stride 1 the input may be the output: every input row is expanded before the output row
 * that overwrites it is written). */
TT_ALWAYS_INLINE void dwexp4_tile(const dw_args *g, int32_t c0, const dwexp_chan *q, int16_t *ring, int32_t ox0,
                                  int32_t tow, int32_t n, int32_t pitch, int K, int S, int fast, int masked)
{
    const int32_t c = g->c, ow = g->ow, oh = g->oh, pt = g->pad_top;
    const int32_t ix0 = ox0 * S - g->pad_left, plane = K * pitch, h = g->h;
    const int16_t zx = (int16_t)g->zx;
    int32_t lo = -ix0, hi = g->w - ix0; /* columns u < lo and u >= hi: padding */
    lo = lo < 0 ? 0 : lo > n ? n : lo;
    hi = hi < lo ? lo : hi > n ? n : hi;
    TT_UNROLL(1) for (int s = 0; s < K; s++)
    {
        dwexp4_fill(ring + s * pitch, plane, 0, lo, zx);
        dwexp4_fill(ring + s * pitch, plane, hi, n, zx);
    }
    int32_t next = -pt, first = 0; /* next input row to expand; slot of the output row's first input row */
    int8_t *y = g->y + ox0 * c + c0;
    uint32_t bit = (uint32_t)(ox0 * c + c0);
    for (int32_t oy = 0; oy < oh; oy++, y += ow * c, bit += (uint32_t)(ow * c)) {
        const int32_t iy0 = oy * S - pt, end = iy0 + K;
        if (next < iy0)
            next = iy0;
        for (int32_t slot = next - iy0 + first; next < end; next++, slot++) {
            int16_t *d = ring + (slot >= K ? slot - K : slot) * pitch;
            if (next >= 0 && next < h)
                dwexp4_expand_row(g, c0, next, ix0, lo, hi, d, plane);
            else
                dwexp4_fill(d, plane, 0, n, zx);
        }
        for (int32_t j = 0; j < 4; j++) {
            const int16_t *rp[DW_MAX_KERNEL];
            int32_t slot = first;
            TT_UNROLL(7) for (int i = 0; i < K; i++)
            {
                rp[i] = ring + j * plane + slot * pitch;
                slot = slot + 1 == K ? 0 : slot + 1;
            }
            if (S == 1)
                dwexp_row(rp, tow, q + j, y + j, c, g->mask, bit + (uint32_t)j, K, fast, masked);
            else
                dwexp_row2(rp, tow, q + j, y + j, c, g->mask, bit + (uint32_t)j, K, fast, masked);
        }
        first += S;
        if (first >= K)
            first -= K;
    }
}

typedef void (*dwexp4_tile_fn)(const dw_args *g, int32_t c0, const dwexp_chan *q, int16_t *ring, int32_t ox0,
                               int32_t tow, int32_t n, int32_t pitch);
#define DWEXP4_INST(K, S, FAST, MASKED)                                                                              \
    TT_NOINLINE_NOSCHED static void dwexp4_tile_##K##_##S##_##FAST##MASKED(                                          \
        const dw_args *g, int32_t c0, const dwexp_chan *q, int16_t *ring, int32_t ox0, int32_t tow, int32_t n,       \
        int32_t pitch)                                                                                               \
    {                                                                                                                \
        dwexp4_tile(g, c0, q, ring, ox0, tow, n, pitch, K, S, FAST, MASKED);                                         \
    }
#define DWEXP4_INST_KS(K, S) DWEXP4_INST(K, S, 1, 0) DWEXP4_INST(K, S, 1, 1) DWEXP4_INST(K, S, 0, 2)
DWEXP4_INST_KS(5, 1)
DWEXP4_INST_KS(5, 2)
DWEXP4_INST_KS(7, 1)
DWEXP4_INST_KS(7, 2)

/* [kernel / 2 - 1][stride - 1][fast, fast masked, general (masked or not)] (3x3: dw3_fns) */
static const dwexp4_tile_fn dwexp4_fns[3][2][3] = {
    {{0, 0, 0}, {0, 0, 0}},
    {{dwexp4_tile_5_1_10, dwexp4_tile_5_1_11, dwexp4_tile_5_1_02},
     {dwexp4_tile_5_2_10, dwexp4_tile_5_2_11, dwexp4_tile_5_2_02}},
    {{dwexp4_tile_7_1_10, dwexp4_tile_7_1_11, dwexp4_tile_7_1_02},
     {dwexp4_tile_7_2_10, dwexp4_tile_7_2_11, dwexp4_tile_7_2_02}},
};

/* ------------------------------------------------------------------ 3x3 on four planes, slots interleaved
 *
 * The group's four planes as dwexp4_tile's, with the K = 3 ring slots interleaved by doublewords:
 * halfword u of slot s at (u / 4) 12 + 4 s + u % 4 of its plane (dw3_ring_bytes), so that the three
 * input rows of an output row are at constant offsets (0, 8, 16 bytes) from one pointer, which one
 * post-increment advances. The slots rotate (input row iy in slot (iy + pad_top) mod 3); instead of
 * the pointers the weights follow: record f of a channel (dw3_chan) holds the weights of slot s
 * = (f + i) mod 3 for the output rows whose first input row is in slot f, then the requantization
 * constants, so a row of a channel reads one data and one constants pointer. The multiplies are
 * dw3_row's (A = (w0, w1), B = (w1, w2) per kernel row, 6 per output). */

typedef struct {
    uint32_t rec[3][10]; /* [f]: slot s's (A, B) at 2 s, 2 s + 1; init, m, k (fast) or shift, e */
    int32_t bias, zy;
    int32_t unused[3];   /* the size of a dwexp_chan, in whose place it is */
} dw3_chan;
_Static_assert(sizeof(dw3_chan) == sizeof(dwexp_chan), "dw3_chan in a dwexp_chan's place");

/* The channel's records (weights wc, 3 x 3) in the form fast selects (dwexp_prepare's constants,
 * computed here: a dwexp_chan and its copy cost about 200 instructions more per group, measured). */
static void dw3_prepare(const int8_t *wc, int32_t bias, int32_t mult, int32_t shift, int32_t zx, int32_t zy,
                        dw3_chan *r, int fast)
{
    const int32_t e = -shift;
    uint32_t ab[3][2];
    const int32_t sum = dw3_pairs(wc, fast ? 2 : 1, ab);
    const int32_t init = dwexp_init(sum, bias, zx, fast);
    const int32_t k = fast ? tt_rq_dbl_k(e, zy) : shift;
    TT_UNROLL(3) for (int fr = 0; fr < 3; fr++)
    {
        uint32_t *d = r->rec[fr];
        TT_UNROLL(3) for (int s = 0; s < 3; s++)
        {
            const int i = s - fr < 0 ? s - fr + 3 : s - fr; /* kernel row of slot s */
            d[2 * s] = ab[i][0];
            d[2 * s + 1] = ab[i][1];
        }
        d[6] = (uint32_t)init;
        d[7] = (uint32_t)mult;
        d[8] = (uint32_t)k;
        d[9] = (uint32_t)e;
    }
    r->bias = bias;
    r->zy = zy;
}

/* Halfword u of the slot whose plane-0 row starts at d (d = plane 0 + 4 s halfwords). */
static inline int32_t dw3_at(int32_t u) { return (u >> 2) * 12 + (u & 3); }

/* Columns [u, n) of one slot (d: its start in plane 0) of the 4 planes: zx. */
TT_NOINLINE static void dw3_fill(int16_t *d, int32_t plane, int32_t u, int32_t n, int16_t zx)
{
    for (; u < n; u++) {
        const int32_t a = dw3_at(u);
        d[a] = d[a + plane] = d[a + 2 * plane] = d[a + 3 * plane] = zx;
    }
}

/* All columns of one slot (d: its start in plane 0) of the 4 planes, g doubleword groups: zx (a padding
 * row: one STRD per group and plane). */
TT_NOINLINE static void dw3_fill_row(int16_t *d, int32_t plane, int32_t g, int16_t zx)
{
    const uint32_t z = (uint32_t)(uint16_t)zx * 0x10001u;
    TT_UNROLL(1) for (int32_t j = 0; j < 4; j++, d += plane)
    {
        int16_t *p = d;
        for (int32_t k = 0; k < g; k++)
            tt_strd_post24(p, z, z);
    }
}

/* Columns [lo, hi) (inside the row: lo >= 0, ix0 + hi <= w) of input row iy in [0, h) into one slot
 * (d: its start in plane 0); 4 pixels (a doubleword of each plane) per step from u % 4 == 0 on. */
TT_NOINLINE_NOSCHED static void dw3_expand_row(const dw_args *g, int32_t c0, int32_t iy, int32_t ix0, int32_t lo,
                                               int32_t hi, int16_t *d, int32_t plane)
{
    const int32_t c = g->c;
    const int8_t *xp = g->x + (iy * g->w + ix0 + lo) * c + c0;
    const int32_t c2 = 2 * c;
    int32_t u = lo;
    if (u & 1 && u < hi) {
        planes_put1(d + dw3_at(u++), plane, tt_read_s8x4(xp));
        xp += c;
    }
    if (u & 2 && u + 1 < hi) {
        planes_put2(d + dw3_at(u), plane, tt_read_s8x4(xp), tt_read_s8x4(xp + c));
        u += 2;
        xp += c2;
    }
    if (u + 3 < hi) {
        int16_t *p0 = d + dw3_at(u), *p1 = p0 + plane, *p2 = p0 + 2 * plane, *p3 = p0 + 3 * plane;
        const int32_t steps = (hi - u) >> 2;
        const int16_t *const p0_end = p0 + 12 * steps;
        const int8_t *xq = xp + c; /* the odd pixels */
        do {
            const uint32_t va = tt_read_s8x4(xp), vb = tt_read_s8x4(xq);
            const uint32_t lab = tt_pkhbt(va, vb), hab = tt_pkhtb_hi(va, vb);
            const uint32_t vc = tt_read_s8x4(xp + c2), vd = tt_read_s8x4(xq + c2);
            const uint32_t lcd = tt_pkhbt(vc, vd), hcd = tt_pkhtb_hi(vc, vd);
            xp += c2;
            xp += c2;
            xq += c2;
            xq += c2;
            tt_strd_post24(p0, tt_sxtb16(lab), tt_sxtb16(lcd));
            tt_strd_post24(p1, tt_sxtb16_ror8(lab), tt_sxtb16_ror8(lcd));
            tt_strd_post24(p2, tt_sxtb16(hab), tt_sxtb16(hcd));
            tt_strd_post24(p3, tt_sxtb16_ror8(hab), tt_sxtb16_ror8(hcd));
        } while (p0 != p0_end);
        u += 4 * steps;
    }
    if (u + 1 < hi) {
        planes_put2(d + dw3_at(u), plane, tt_read_s8x4(xp), tt_read_s8x4(xp + c));
        u += 2;
        xp += c2;
    }
    if (u < hi)
        planes_put1(d + dw3_at(u), plane, tt_read_s8x4(xp));
}

/* A record's requantization constants (as dwexp_rq_of's). */
TT_ALWAYS_INLINE dwexp_rq dw3_rq_of(const uint32_t *r, const dw3_chan *q, int fast)
{
    dwexp_rq rq;
    rq.m = (int32_t)r[7];
    rq.k = (int32_t)r[8];
    rq.e = (int32_t)r[9];
    rq.bias = fast ? 0 : q->bias;
    rq.zy = fast ? 0 : q->zy;
    return rq;
}

/* One output row of channel j (p: its plane, slot 0 of the row's first doubleword group; r: its record
 * for this rotation; q: its dw3_chan). */
TT_ALWAYS_INLINE void dw3i_row(const int16_t *p, int32_t tow, const uint32_t *r, const dw3_chan *q, int8_t *y,
                               int32_t c, uint8_t *mask, uint32_t bit, int S, int fast, int masked)
{
    const int16_t *const p00 = p;
    for (int32_t nb = tow >> 2; nb > 0; nb--) {
        const int32_t init = (int32_t)r[6];
        int32_t a0 = init, a1 = init, a2 = init, a3 = init;
#define DW3I_ROW(SL)                                                                                    \
    do {                                                                                                \
        uint32_t wa, wb, e0, e1;                                                                        \
        tt_ldrd_pair(r, 2 * (SL), wa, wb);                                                              \
        tt_ldrd_pair(p, 2 * (SL), e0, e1);                                                              \
        DW3_MACS(S, wa, wb, e0, e1, tt_read_s16x2(p + 12 + 4 * (SL)), tt_ldrd_pair(p, 6 + 2 * (SL), e2, e3), \
                 tt_read_s16x2(p + 24 + 4 * (SL)));                                                     \
    } while (0)
        DW3I_ROW(0);
        DW3I_ROW(1);
        DW3I_ROW(2);
#undef DW3I_ROW
        p += 12 * S;
        const dwexp_rq rq = dw3_rq_of(r, q, fast);
        if (masked == 1 && (c & 7) == 0) { /* every output's mask bit at the same place of its byte */
            uint8_t *mb = mask + (bit >> 3);
            const uint32_t sh = bit & 7u, keep = ~(1u << sh);
            const int32_t cb = c >> 3, acc[4] = {a0, a1, a2, a3};
            TT_UNROLL(4) for (int k = 0; k < 4; k++)
            {
                const int32_t pre = dwexp_pre(acc[k], rq, fast), v = tt_ssat8(pre);
                y[k * c] = (int8_t)v;
                mb[k * cb] = (uint8_t)((mb[k * cb] & keep) | (uint32_t)(v == pre) << sh);
            }
            y += 4 * c;
        } else {
            dwexp_out(a0, rq, fast, masked, y, mask, bit);
            dwexp_out(a1, rq, fast, masked, y + c, mask, bit + (uint32_t)c);
            y += 2 * c;
            dwexp_out(a2, rq, fast, masked, y, mask, bit + 2 * (uint32_t)c);
            dwexp_out(a3, rq, fast, masked, y + c, mask, bit + 3 * (uint32_t)c);
            y += 2 * c;
        }
        bit += 4 * (uint32_t)c;
    }
    for (int32_t ox = tow & ~3; ox < tow; ox++, y += c, bit += (uint32_t)c) {
        int32_t a0 = (int32_t)r[6];
        TT_UNROLL(3) for (int sl = 0; sl < 3; sl++)
        {
            const int16_t *ps = p00 + 4 * sl;
            const int32_t u = S * ox;
            const uint32_t x01 = tt_pack16(ps[dw3_at(u)], ps[dw3_at(u + 1)]);
            const uint32_t x2 = tt_pack16(ps[dw3_at(u + 2)], 0);
            a0 = tt_smlad(x01, r[2 * sl], a0);
            a0 = tt_smlabt(x2, r[2 * sl + 1], a0);
        }
        const dwexp_rq rq = dw3_rq_of(r, q, fast);
        dwexp_out(a0, rq, fast, masked, y, mask, bit);
    }
}

/* dwexp4_tile for 3x3 on the interleaved ring (n halfwords per row). */
TT_ALWAYS_INLINE void dw3_tile(const dw_args *g, int32_t c0, const dw3_chan *q, int16_t *ring, int32_t ox0,
                               int32_t tow, int32_t n, int S, int fast, int masked)
{
    const int32_t c = g->c, ow = g->ow, oh = g->oh, pt = g->pad_top, h = g->h;
    const int32_t ix0 = ox0 * S - g->pad_left, plane = 12 * ((n + 3) >> 2);
    const int16_t zx = (int16_t)g->zx;
    int32_t lo = -ix0, hi = g->w - ix0; /* columns u < lo and u >= hi: padding */
    lo = lo < 0 ? 0 : lo > n ? n : lo;
    hi = hi < lo ? lo : hi > n ? n : hi;
    TT_UNROLL(1) for (int s = 0; s < 3; s++)
    {
        dw3_fill(ring + 4 * s, plane, 0, lo, zx);
        dw3_fill(ring + 4 * s, plane, hi, n, zx);
    }
    int32_t next = -pt, first = 0; /* next input row to expand; slot of the output row's first input row */
    int8_t *y = g->y + ox0 * c + c0;
    uint32_t bit = (uint32_t)(ox0 * c + c0);
    for (int32_t oy = 0; oy < oh; oy++, y += ow * c, bit += (uint32_t)(ow * c)) {
        const int32_t iy0 = oy * S - pt, end = iy0 + 3;
        if (next < iy0)
            next = iy0;
        for (int32_t slot = next - iy0 + first; next < end; next++, slot++) {
            int16_t *d = ring + 4 * (slot >= 3 ? slot - 3 : slot);
            if (next >= 0 && next < h)
                dw3_expand_row(g, c0, next, ix0, lo, hi, d, plane);
            else
                dw3_fill_row(d, plane, plane / 12, zx);
        }
        const int16_t *p = ring;
        const dw3_chan *qj = q;
        for (int32_t j = 0; j < 4; j++, p += plane, qj++)
            dw3i_row(p, tow, qj->rec[first], qj, y + j, c, g->mask, bit + (uint32_t)j, S, fast, masked);
        first += S;
        if (first >= 3)
            first -= 3;
    }
}

typedef void (*dw3_tile_fn)(const dw_args *g, int32_t c0, const dw3_chan *q, int16_t *ring, int32_t ox0,
                            int32_t tow, int32_t n);
#define DW3_INST(S, FAST, MASKED)                                                                                    \
    TT_NOINLINE_NOSCHED static void dw3_tile_##S##_##FAST##MASKED(const dw_args *g, int32_t c0, const dw3_chan *q,   \
                                                                  int16_t *ring, int32_t ox0, int32_t tow, int32_t n) \
    {                                                                                                                \
        dw3_tile(g, c0, q, ring, ox0, tow, n, S, FAST, MASKED);                                                      \
    }
DW3_INST(1, 1, 0)
DW3_INST(1, 1, 1)
DW3_INST(1, 0, 2)
DW3_INST(2, 1, 0)
DW3_INST(2, 1, 1)
DW3_INST(2, 0, 2)

/* [stride - 1][fast, fast masked, general (masked or not)] */
static const dw3_tile_fn dw3_fns[2][3] = {
    {dw3_tile_1_10, dw3_tile_1_11, dw3_tile_1_02},
    {dw3_tile_2_10, dw3_tile_2_11, dw3_tile_2_02},
};

/* Channels 0 .. c - c % 4 - 1 in groups of 4 (one form per group: the fast one when all 4 allow it),
 * in column tiles of tile outputs. */
static void dwexp4_conv(const dw_args *g, int32_t kernel, int32_t stride, int32_t tile, const int8_t *w_lo,
                        const int8_t *w_hi, int32_t c_lo, void *scratch)
{
    int16_t *ring = scratch; /* the caller's, word aligned: 4 planes of kernel rows of pitch halfwords */
    const int32_t kk = kernel * kernel, ow = g->ow;
    const int masked = g->mask != 0;
    /* the 4 channels' constants after the widest tile's ring */
    dwexp_chan *q = (dwexp_chan *)(void *)((char *)scratch + dwexp4_ring_bytes(kernel, stride, ow < tile ? ow : tile));
    for (int32_t c0 = 0; c0 + 3 < g->c; c0 += 4) {
        int fast = 1;
        tt_rq_chan r[4]; /* dead channels as the constants they are (fixed_point.h) */
        for (int32_t j = 0; j < 4; j++) {
            const tt_rq_chan cj = {g->bias[c0 + j], g->mult[c0 + j], g->shift[c0 + j], g->zy};
            r[j] = cj;
            if (!dw_fast_form(cj.bias, cj.mult, cj.shift))
                fast &= tt_rq_dead(&r[j], tt_rq_sum_bound(kk));
        }
        for (int32_t j = 0; j < 4; j++) {
            const int32_t ch = c0 + j;
            const int8_t *wc = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
            if (kernel == 3) /* its records in the place of the constants */
                dw3_prepare(wc, r[j].bias, r[j].mult, r[j].shift, g->zx, r[j].zy, (dw3_chan *)(void *)&q[j], fast);
            else
                (void)dwexp_prepare(wc, kernel, r[j].bias, r[j].mult, r[j].shift, g->zx, r[j].zy, &q[j], fast);
        }
        for (int32_t ox0 = 0; ox0 < ow; ox0 += tile) {
            const int32_t tow = ow - ox0 < tile ? ow - ox0 : tile;
            const int32_t n = (tow - 1) * stride + kernel + 1; /* + the partner of the odd last tap */
            if (kernel == 3)
                dw3_fns[stride - 1][fast ? masked : 2](g, c0, (const dw3_chan *)(const void *)q, ring, ox0, tow, n);
            else
                dwexp4_fns[kernel / 2 - 1][stride - 1][fast ? masked : 2](g, c0, q, ring, ox0, tow, n, (n + 1) & ~1);
        }
    }
}

/* The planar path out of place (conv_depthwise.c): channels 0 .. c - c % 4 - 1. */
TT_NOINLINE_NOSCHED void tt_dwp_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                     int32_t c_lo, void *scratch)
{
    dwexp4_conv(a, kernel, a->stride, dwp_tile_cols(kernel, a->stride), w_lo, w_hi, c_lo, scratch);
}

TT_NOINLINE_NOSCHED static void dwexp_conv(const dw_args *g, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                           int32_t c_lo, void *scratch)
{
    int16_t *ring = scratch; /* the caller's, word aligned */
    const int32_t kk = kernel * kernel;
    dwexp4_conv(g, kernel, 1, g->ow, w_lo, w_hi, c_lo, scratch);
    for (int32_t ch = g->c & ~3; ch < g->c; ch++)
        dwexp_channel(g, ch, kernel, ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk, ring);
}

/* The in-place stride-1 form on the DSP path: the staged 4-channel path (one column tile) and the
 * expanded-rows path read every input row of a group or channel before they write the rows it
 * overwrites, so y may be x. 0 when neither applies (the caller then runs the ring form). Out of
 * line: its frame and the ring form's are never on the stack together. */
TT_NOINLINE static int depthwise_inplace_dsp(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                                             const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                                             const int32_t *bias, const int32_t *mult, const int32_t *shift,
                                             int32_t zx, int32_t zy, uint8_t *mask, void *scratch)
{
    if (pad != kernel / 2)
        return 0;
    const dw_args g = {xy, h, w, c, xy, h, w, 1, pad, pad, bias, mult, shift, zx, zy, mask};
    if (dwexp_supported(kernel, w)) /* measured: tools/kernel_bench.py */
        dwexp_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
    else if (dw4_supported(kernel, 1, c) && (c & 3) == 0 && w <= dw4_tile_cols(kernel, 1)) /* one column tile */
        tt_dw4_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
    else
        return 0;
    if (mask)
        tt_mask_finish(mask, (uint32_t)(h * w * c));
    return 1;
}

#endif

/* ------------------------------------------------------------------ portable (and the DSP fallback) */

static void depthwise_inplace_run(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                               const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                               const int32_t *bias, const int32_t *mult, const int32_t *shift,
                               int32_t zx, int32_t zy, uint8_t *mask, int8_t *ring, void *scratch)
{
#if TT_DSP
    if (depthwise_inplace_dsp(xy, h, w, c, kernel, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, mask, scratch))
        return;
#endif
    const int32_t row = w * c;
    const int32_t slots = pad + 1;
    for (int32_t r = 0; r < h; ++r) {
        const int32_t first = r - pad;
        const int32_t start = first < 0 ? 0 : first;
        uint8_t *row_mask = mask ? mask + (r * row) / 8 : NULL; /* rows are byte-aligned (row % 8 == 0) */
        tt_dw_conv_run(xy + start * row, h - start, w, c, ring + (r % slots) * row, 1, w, kernel, 1,
                          start - first, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, row_mask, scratch);
        if (r >= pad) {
            memcpy(xy + (r - pad) * row, ring + ((r - pad) % slots) * row, (size_t)row);
        }
    }
    for (int32_t r = h - pad < 0 ? 0 : h - pad; r < h; ++r) {
        memcpy(xy + r * row, ring + (r % slots) * row, (size_t)row);
    }
}

/* The staged path (in place, or row by row through the ring), or the expanded rows. */
int32_t tt_conv_depthwise_inplace_scratch_bytes(const tt_geom *g)
{
    const int32_t staged = dw4_supported(g->kh, 1, g->cin) ? dw4_scratch_bytes(g->kh, 1, g->w) : 0;
    const int32_t expanded = !dwexp_supported(g->kh, g->w) ? 0
                             : g->kh == 3             ? dw3_ring_bytes(1, g->w) + DWP_CHAN_BYTES
                                                      : 8 * g->kh * ((g->w + g->kh + 1) & ~1) + DWP_CHAN_BYTES;
    /* the ring form's rows run tt_dw_conv_run, which may take the planar path */
    const int32_t rows = dwp_supported(g->kh, 1, g->cin, g->w) ? dwp_scratch_bytes(g->kh, 1, g->w) : 0;
    const int32_t m = staged > expanded ? staged : expanded;
    return m > rows ? m : rows;
}

void tt_conv_depthwise_inplace(const tt_geom *g, const tt_layer *l, int8_t *xy, uint8_t *mask, int8_t *ring,
                               void *scratch)
{
    depthwise_inplace_run(xy, g->h, g->w, g->cin, g->kh, g->pad_top, l->w_lo, l->w_hi, l->k_lo, l->bias, l->mult,
                          l->shift, l->zx, l->zy, mask, ring, scratch);
}
