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
 * weight (its partner X is any defined value). Four horizontally adjacent outputs share every
 * weight load. An output row is written only after every input row it covers is in the ring, so
 * the output may overwrite the input (input row r + k/2 of the channel is expanded before its
 * output row r is stored).
 *
 * Requantization of a channel whose constants allow it (multiplier >= 0, right shift e in 1..23,
 * |bias| < 2^29 - 2^21, so that 2 acc cannot overflow) in 4 instructions: with weights doubled and
 * the accumulator started at A = 2 (bias - zx sum w), SMMLAR(A, m, K) = SRDHM(acc, m) + K (the
 * rounded high word of 2 acc m is floor((acc m + 2^30) / 2^31)), and with K = 2^(e-1) + zy 2^e,
 * (SMMLAR + (A >> 31)) >> e = RDBPOT(SRDHM, e) + zy (the floors compose as in fixed_point.h). Other
 * channels (dead ones, biases near -2^31) take the general saturating form. */

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
     * (measured: tools/kernel_bench.py) */
    return (kernel == 3 || kernel == 5 || kernel == 7) && w >= 8 && w <= dwexp_cols(kernel);
}

#if TT_DSP

typedef struct {
    uint32_t w[DW_MAX_KERNEL][4]; /* kernel row i, pair t: (w[i][2t], w[i][2t+1]) (doubled: fast) */
    int32_t init;                 /* fast: 2 (bias - zx sum w); general: -zx sum w */
    int32_t m, k, e;              /* fast: multiplier, 2^(e-1) + zy 2^e, right shift */
    int32_t bias, shift, zy;
} dwexp_chan;

/* The channel's constants; returns whether it has the one-SMMLAR requantization. */
static int dwexp_prepare(const int8_t *wc, int32_t kernel, int32_t bias, int32_t mult, int32_t shift, int32_t zx,
                         int32_t zy, dwexp_chan *q)
{
    const int32_t e = -shift;
    const int fast = mult >= 0 && e >= 1 && e <= 23 && bias > -(1 << 29) + (1 << 21) && bias < (1 << 29) - (1 << 21);
    const int32_t f = fast ? 2 : 1;
    int32_t sum = 0;
    for (int32_t i = 0; i < kernel; i++)
        for (int32_t t = 0; 2 * t < kernel; t++) {
            const int32_t a = wc[i * kernel + 2 * t], b = 2 * t + 1 < kernel ? wc[i * kernel + 2 * t + 1] : 0;
            sum += a + b;
            q->w[i][t] = tt_pack16(f * a, f * b);
        }
    q->init = fast ? 2 * (bias - zx * sum) : -zx * sum;
    q->m = mult;
    q->e = e;
    q->k = fast ? (int32_t)(UINT32_C(1) << (e - 1)) + zy * (int32_t)(UINT32_C(1) << e) : 0;
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

/* One output y = clamp(MBQM(sat32(bias + acc)) + zy) (a: the accumulator, doubled when fast) and
 * its mask bit. */
TT_ALWAYS_INLINE void dwexp_out(int32_t a, dwexp_rq r, int fast, int masked, int8_t *y, uint8_t *mask, uint32_t bit)
{
    int32_t pre;
    if (fast)
        pre = (tt_smmlar(a, r.m, r.k) + (a >> 31)) >> r.e;
    else
        pre = tt_ssat10(tt_mbqm_inline(tt_qadd(r.bias, a), r.m, r.k)) + r.zy;
    const int32_t c = tt_ssat8(pre);
    *y = (int8_t)c;
    if (masked == 1 || (masked == 2 && mask)) /* 2: if there is a mask */
        tt_mask_put(mask, bit, (uint32_t)(c == pre));
}

/* One output row of tow outputs of the channel from its K expanded input rows rp[0..K-1]: y is the
 * row's first output, c the step between outputs, bit its mask index. Four outputs at a time share
 * every weight load; per pair of taps the even outputs read an aligned word, the odd ones the
 * unaligned word after it, and the next pair reuses both. */
TT_ALWAYS_INLINE void dwexp_row(const int16_t *const *rp, int32_t tow, const dwexp_chan *q, int8_t *y, int32_t c,
                                uint8_t *mask, uint32_t bit, int K, int fast, int masked)
{
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
    const int fast = dwexp_prepare(wc, kernel, g->bias[ch], g->mult[ch], g->shift[ch], g->zx, g->zy, &q);
    const dwexp_tile_fn fn = dwexp_fns[kernel / 2 - 1][fast ? masked : 2];
    const int32_t n = ow + kernel; /* halfwords read per row */
    fn(g, ch, &q, ring, 0, ow, n, (n + 1) & ~1);
}

TT_NOINLINE_NOSCHED static void dwexp_conv(const dw_args *g, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                           int32_t c_lo, void *scratch)
{
    int16_t *ring = scratch; /* the caller's, word aligned */
    const int32_t kk = kernel * kernel;
    for (int32_t ch = 0; ch < g->c; ch++)
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
    if (dw4_supported(kernel, 1, c) && (c & 3) == 0 && w <= dw4_tile_cols(kernel, 1)) /* one column tile */
        tt_dw4_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
    else if (dwexp_supported(kernel, w))
        dwexp_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
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
    const int32_t expanded = dwexp_supported(g->kh, g->w) ? 2 * g->kh * ((g->w + g->kh + 1) & ~1) : 0;
    return staged > expanded ? staged : expanded;
}

void tt_conv_depthwise_inplace(const tt_geom *g, const tt_layer *l, int8_t *xy, uint8_t *mask, int8_t *ring,
                               void *scratch)
{
    depthwise_inplace_run(xy, g->h, g->w, g->cin, g->kh, g->pad_top, l->w_lo, l->w_hi, l->k_lo, l->bias, l->mult,
                          l->shift, l->zx, l->zy, mask, ring, scratch);
}
