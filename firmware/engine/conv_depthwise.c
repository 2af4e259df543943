/* Forward depthwise convolution, channels split into a trained lo part (0..c_lo-1) and a frozen hi part.
 *
 * acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy); mask = clamp inactive.
 */
#include "tt_kernels.h"

#include "internal/conv_depthwise.h"
#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

/* ------------------------------------------------------------------ portable */

/* Channels [c_begin, c_end) one at a time, any kernel size. */
TT_NOINLINE static void depthwise_channels_any(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                                   int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                                   const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask,
                                   int32_t c_begin, int32_t c_end)
{
    const int32_t kk = kernel * kernel;
    for (int32_t oy = 0; oy < oh; oy++) {
        const int32_t iy0 = oy * stride - pad_top;
        const int32_t i_lo = iy0 < 0 ? -iy0 : 0, i_hi = iy0 + kernel > h ? h - iy0 : kernel;
        for (int32_t ox = 0; ox < ow; ox++) {
            const int32_t ix0 = ox * stride - pad_left;
            const int32_t j_lo = ix0 < 0 ? -ix0 : 0, j_hi = ix0 + kernel > w ? w - ix0 : kernel;
            const int32_t pos = oy * ow + ox;
            for (int32_t ch = c_begin; ch < c_end; ch++) {
                const int8_t *wc = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
                int32_t sum = 0;
                for (int32_t i = i_lo; i < i_hi; i++) {
                    const int8_t *xr = x + ((iy0 + i) * w + ix0) * c + ch;
                    for (int32_t j = j_lo; j < j_hi; j++)
                        sum += wc[i * kernel + j] * (xr[j * c] - zx);
                }
                const uint32_t f = tt_requant_store(sum, bias[ch], mult[ch], shift[ch], zy, y + pos * c + ch);
                if (mask)
                    tt_mask_put(mask, (uint32_t)(pos * c + ch), f);
            }
        }
    }
}

/* Channels [c_begin, c_end): the portable path, and the channel tail of the DSP path (at most 3
 * channels, one at a time: no stack beyond a few words on the board). Portable builds (the host's),
 * kernels up to DW_MAX_KERNEL: DWC_BLOCK channels at a time, their weights transposed to
 * [tap][channel] on the stack (1.7 KB), so that every loop runs along the channels (contiguous in x
 * and y: loops that compilers vectorize): per output position the sums, then the requantizations,
 * then the stores. */
#define DWC_BLOCK 32
static void depthwise_channels(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                               int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, const int8_t *w_lo,
                               const int8_t *w_hi, int32_t c_lo, const int32_t *bias, const int32_t *mult,
                               const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask, int32_t c_begin,
                               int32_t c_end)
{
    if (TT_DSP || kernel > DW_MAX_KERNEL) {
        depthwise_channels_any(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult,
                               shift, zx, zy, mask, c_begin, c_end);
        return;
    }
    const int32_t kk = kernel * kernel;
    int8_t wt[DW_MAX_KERNEL * DW_MAX_KERNEL * DWC_BLOCK];
    int32_t acc[DWC_BLOCK];
    for (int32_t c0 = c_begin; c0 < c_end; c0 += DWC_BLOCK) {
        const int32_t n = c_end - c0 < DWC_BLOCK ? c_end - c0 : DWC_BLOCK;
        for (int32_t q = 0; q < n; q++) {
            const int32_t ch = c0 + q;
            const int8_t *wc = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
            for (int32_t t = 0; t < kk; t++)
                wt[t * DWC_BLOCK + q] = wc[t];
        }
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * stride - pad_top;
            const int32_t i_lo = iy0 < 0 ? -iy0 : 0, i_hi = iy0 + kernel > h ? h - iy0 : kernel;
            for (int32_t ox = 0; ox < ow; ox++) {
                const int32_t ix0 = ox * stride - pad_left;
                const int32_t j_lo = ix0 < 0 ? -ix0 : 0, j_hi = ix0 + kernel > w ? w - ix0 : kernel;
                const int32_t pos = oy * ow + ox;
                for (int32_t q = 0; q < n; q++)
                    acc[q] = 0;
                for (int32_t i = i_lo; i < i_hi; i++)
                    for (int32_t j = j_lo; j < j_hi; j++) {
                        const int8_t *xr = x + ((iy0 + i) * w + ix0 + j) * c + c0;
                        const int8_t *wr = wt + (i * kernel + j) * DWC_BLOCK;
                        for (int32_t q = 0; q < n; q++)
                            acc[q] += wr[q] * (xr[q] - zx);
                    }
                tt_requant_store_run(acc, n, bias + c0, mult + c0, shift + c0, zy, y + pos * c + c0, mask,
                                     (uint32_t)(pos * c + c0));
            }
        }
    }
}

/* ------------------------------------------------------------------ Cortex-M7 DSP: 4 channels on staged rows
 *
 * Groups of 4 channels (the last c % 4 channels go to depthwise_channels): rows of fewer than 4
 * outputs (out of place) and in place rows too narrow for the planar / expanded-rows paths
 * (conv_depthwise_inplace.c: their per-channel costs do not pay there). The group's input rows are staged once
 * each into a ring of K rows in the caller's scratch, one word (its 4 channels' int8) per pixel, padding included
 * as zx bytes (whose products the zero-point fold cancels): every output is then branch-free with
 * constant offsets. Per tap: one word of the staged row, SXTB16 / SXTB16 ROR 8, one LDRD of the tap's
 * weights as int16 lanes ((c0, c0+2), (c0+1, c0+3)) and 4 SMLAxy; two horizontally adjacent outputs
 * share the weight loads (and at stride 1 all but one pixel). Requantization as in the expanded-rows
 * path (weights doubled, one SMMLAR) when every channel of the group allows it, else the general form.
 * An output row is written only after every row it reads is in the ring, and each row is staged once,
 * so with one column tile (and stride 1) the output may overwrite the input. */

#if TT_DSP

typedef struct {
    int32_t init[4];    /* lane mode 0: 2 (bias - zx sum w) (its weights doubled); else -zx sum w */
    int32_t q[4][4];    /* mode 0: multiplier, 2^(e-1) + zy 2^e, right shift e; mode 1: multiplier, khi, rsh,
                         * bias (fixed_point.h's one-multiply form); mode 2: multiplier, shift, bias */
    int32_t mode[4], zy;
    uint64_t t[];       /* K x K taps: (w[c0], w[c0+2]) | (w[c0+1], w[c0+3]) << 32 */
} dw4_group;

/* The group's constants; returns 1 when every channel has the one-SMMLAR requantization (mode 0:
 * dw_fast_form, dead channels counting as the constants they are, fixed_point.h's tt_rq_dead), else 0
 * (the lanes then pick their form: mode 1, tt_rq_apply, or mode 2, the general one: biases near -2^31). */
static int dw4_prepare(const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t kernel, int32_t c0,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy,
                       dw4_group *g)
{
    const int32_t kk = kernel * kernel;
    const int8_t *p[4];
    int32_t f[4];
    int all = 1;
    tt_rq_chan rc[4]; /* dead channels as the constants they are (fixed_point.h): mode 0 */
    for (int32_t j = 0; j < 4; j++) {
        const int32_t ch = c0 + j;
        const tt_rq_chan cj = {bias[ch], mult[ch], shift[ch], zy};
        rc[j] = cj;
        p[j] = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
        tt_rq r = {0, 0, 0, 0};
        if (dw_fast_form(cj.bias, cj.mult, cj.shift) || tt_rq_dead(&rc[j], tt_rq_sum_bound(kk)))
            g->mode[j] = 0;
        else if (tt_rq_prepare(&r, cj.bias, mult[ch], shift[ch]))
            g->mode[j] = 1;
        else
            g->mode[j] = 2;
        f[j] = g->mode[j] == 0 ? 2 : 1;
        all &= g->mode[j] == 0;
    }
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int32_t t = 0; t < kk; t++) {
        const int32_t v0 = p[0][t], v1 = p[1][t], v2 = p[2][t], v3 = p[3][t];
        s0 += v0;
        s1 += v1;
        s2 += v2;
        s3 += v3;
        g->t[t] = tt_pack16(f[0] * v0, f[2] * v2) | (uint64_t)tt_pack16(f[1] * v1, f[3] * v3) << 32;
    }
    const int32_t s[4] = {s0, s1, s2, s3};
    g->zy = zy;
    for (int32_t j = 0; j < 4; j++) {
        const int32_t ch = c0 + j, e = -rc[j].shift;
        g->q[j][0] = rc[j].mult;
        if (g->mode[j] == 0) {
            g->init[j] = 2 * (rc[j].bias - zx * s[j]);
            g->q[j][1] = tt_rq_dbl_k(e, rc[j].zy);
            g->q[j][2] = e;
        } else if (g->mode[j] == 1) {
            tt_rq r = {0, 0, 0, 0};
            (void)tt_rq_prepare(&r, bias[ch], mult[ch], shift[ch]);
            g->init[j] = -zx * s[j];
            g->q[j][1] = r.khi;
            g->q[j][2] = r.rsh;
            g->q[j][3] = bias[ch];
        } else {
            g->init[j] = -zx * s[j];
            g->q[j][1] = shift[ch];
            g->q[j][2] = bias[ch];
        }
    }
    return all;
}

/* Staged row: n words, pixel u = input column ix0 + u of row iy (a padding row or column: zx bytes). */
TT_NOINLINE_NOSCHED static void dw4_stage(const dw_args *a, int32_t c0, int32_t iy, int32_t ix0, int32_t n, uint32_t *d)
{
    const uint32_t zword = 0x01010101u * (uint8_t)a->zx;
    int32_t u = 0;
    if (iy >= 0 && iy < a->h) {
        const int32_t c = a->c;
        int32_t lo = -ix0, hi = a->w - ix0; /* u < lo: column < 0; u >= hi: column >= w */
        lo = lo < 0 ? 0 : lo > n ? n : lo;
        hi = hi < lo ? lo : hi > n ? n : hi;
        for (; u < lo; u++)
            d[u] = zword;
        const int8_t *s = a->x + (iy * a->w + ix0 + u) * c + c0;
        for (; u + 1 < hi; u += 2, s += 2 * c) {
            const uint32_t v0 = tt_read_s8x4(s), v1 = tt_read_s8x4(s + c);
            d[u] = v0;
            d[u + 1] = v1;
        }
        if (u < hi)
            d[u++] = tt_read_s8x4(s);
    }
    for (; u < n; u++)
        d[u] = zword;
}

/* The 4 outputs of one position (channels c0..c0+3) from their accumulators (fast: every lane in
 * mode 0; else each lane by its mode). */
TT_ALWAYS_INLINE void dw4_out4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const dw4_group *g, int8_t *y,
                               uint8_t *mask, uint32_t bit, int fast, int masked)
{
    const int32_t acc[4] = {a0, a1, a2, a3};
    int32_t pre[4], v[4];
    TT_UNROLL(4) for (int q = 0; q < 4; q++)
    {
        const int32_t a = acc[q];
        const int32_t *k = g->q[q];
        if (fast || g->mode[q] == 0) {
            const uint64_t mk = tt_ldrd_w(k, 0);
            pre[q] = (tt_smmlar(a, (int32_t)(uint32_t)mk, (int32_t)(uint32_t)(mk >> 32)) + (a >> 31)) >> k[2];
        } else if (g->mode[q] == 1) {
            pre[q] = tt_ssat10(tt_rq_apply(a, k[3], k[0], k[1], k[2])) + g->zy;
        } else {
            pre[q] = tt_ssat10(tt_mbqm_inline(tt_qadd(k[2], a), k[0], k[1])) + g->zy;
        }
        v[q] = tt_ssat8(pre[q]);
    }
    TT_UNROLL(4) for (int q = 0; q < 4; q++) y[q] = (int8_t)v[q];
    if (masked == 1 || (masked == 2 && mask)) {
        const uint32_t f = (uint32_t)(v[0] == pre[0]) | (uint32_t)(v[1] == pre[1]) << 1 |
                           (uint32_t)(v[2] == pre[2]) << 2 | (uint32_t)(v[3] == pre[3]) << 3;
        tt_mask_put_bits(mask, bit, f, 4); /* (within a byte when c % 4 == 0) */
    }
}

#define DW4_TAP(X, WT, A0, A1, A2, A3)                                                                  \
    do {                                                                                                \
        const uint32_t xe_ = tt_sxtb16(X), xo_ = tt_sxtb16_ror8(X);                                     \
        const uint32_t we_ = (uint32_t)(WT), wo_ = (uint32_t)((WT) >> 32);                              \
        A0 = tt_smlabb(xe_, we_, A0);                                                                   \
        A2 = tt_smlatt(xe_, we_, A2);                                                                   \
        A1 = tt_smlabb(xo_, wo_, A1);                                                                   \
        A3 = tt_smlatt(xo_, wo_, A3);                                                                   \
    } while (0)

/* One output row of tow outputs from the K staged rows rp[0..K-1] (pixel u of the tile at rp[i][u]). */
TT_ALWAYS_INLINE void dw4_row(const uint32_t *const *rp, int32_t tow, const dw4_group *g, int8_t *y, int32_t c,
                              uint8_t *mask, uint32_t bit, int K, int S, int fast, int masked)
{
    const uint64_t *t = g->t;
    int32_t ox = 0;
    for (; ox + 1 < tow; ox += 2, y += 2 * c, bit += 2 * (uint32_t)c) {
        const uint64_t i01 = tt_ldrd_w(g->init, 0), i23 = tt_ldrd_w(g->init, 2);
        int32_t a0 = (int32_t)(uint32_t)i01, a1 = (int32_t)(uint32_t)(i01 >> 32);
        int32_t a2 = (int32_t)(uint32_t)i23, a3 = (int32_t)(uint32_t)(i23 >> 32);
        int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
#define DW4_PAIR_ROW                                                                                    \
    do {                                                                                                \
        const uint32_t *r = rp[i] + S * ox;                                                             \
        TT_UNROLL(7) for (int j = 0; j < K; j++)                                                        \
        {                                                                                               \
            const uint64_t wt = tt_ld64(ti, j);                                                         \
            const uint32_t xa = r[j];                                                                   \
            DW4_TAP(xa, wt, a0, a1, a2, a3);                                                            \
            const uint32_t xb = r[j + S];                                                               \
            DW4_TAP(xb, wt, b0, b1, b2, b3);                                                            \
        }                                                                                               \
    } while (0)
        const uint64_t *ti = t;
        if (K == 3) /* rows unrolled for 3x3 only (code size) */
            TT_UNROLL(3) for (int i = 0; i < K; i++, ti += K) DW4_PAIR_ROW;
        else
            TT_UNROLL(1) for (int i = 0; i < K; i++, ti += K) DW4_PAIR_ROW;
#undef DW4_PAIR_ROW
        dw4_out4(a0, a1, a2, a3, g, y, mask, bit, fast, masked);
        dw4_out4(b0, b1, b2, b3, g, y + c, mask, bit + (uint32_t)c, fast, masked);
    }
    for (; ox < tow; ox++, y += c, bit += (uint32_t)c) {
        int32_t a0 = g->init[0], a1 = g->init[1], a2 = g->init[2], a3 = g->init[3];
        const uint64_t *ti = t;
        TT_UNROLL(1) for (int i = 0; i < K; i++, ti += K)
        {
            const uint32_t *r = rp[i] + S * ox;
            TT_UNROLL(7) for (int j = 0; j < K; j++)
            {
                const uint64_t wt = tt_ld64(ti, j);
                const uint32_t xa = r[j];
                DW4_TAP(xa, wt, a0, a1, a2, a3);
            }
        }
        dw4_out4(a0, a1, a2, a3, g, y, mask, bit, fast, masked);
    }
}

/* Every output row of group c0's column tile [ox0, ox0 + tow): before each output row the input rows
 * it adds are staged into their ring slots (row iy in slot (iy + pad_top) mod K), n words each. */
TT_ALWAYS_INLINE void dw4_tile(const dw_args *a, int32_t c0, const dw4_group *g, uint32_t *ring, int32_t ox0,
                               int32_t tow, int32_t n, int K, int S, int fast, int masked)
{
    const int32_t c = a->c, ow = a->ow, oh = a->oh, pt = a->pad_top;
    const int32_t ix0 = ox0 * S - a->pad_left;
    int32_t next = -pt, first = 0; /* next input row to stage; slot of the output row's first input row */
    int8_t *y = a->y + ox0 * c + c0;
    uint32_t bit = (uint32_t)(ox0 * c + c0);
    for (int32_t oy = 0; oy < oh; oy++, y += ow * c, bit += (uint32_t)(ow * c)) {
        const int32_t iy0 = oy * S - pt, end = iy0 + K;
        if (next < iy0)
            next = iy0;
        for (int32_t slot = next - iy0 + first; next < end; next++, slot++)
            dw4_stage(a, c0, next, ix0, n, ring + (slot >= K ? slot - K : slot) * n);
        const uint32_t *rp[DW_MAX_KERNEL];
        int32_t slot = first;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            rp[i] = ring + slot * n;
            slot = slot + 1 == K ? 0 : slot + 1;
        }
        dw4_row(rp, tow, g, y, c, a->mask, bit, K, S, fast, masked);
        first += S;
        if (first >= K)
            first -= K;
    }
}

typedef void (*dw4_tile_fn)(const dw_args *a, int32_t c0, const dw4_group *g, uint32_t *ring, int32_t ox0,
                            int32_t tow, int32_t n);
#define DW4_INST(K, S, FAST, MASKED)                                                                                  \
    TT_NOINLINE_NOSCHED static void dw4_tile_##K##_##S##_##FAST##MASKED(                                              \
        const dw_args *a, int32_t c0, const dw4_group *g, uint32_t *ring, int32_t ox0, int32_t tow, int32_t n)        \
    {                                                                                                                 \
        dw4_tile(a, c0, g, ring, ox0, tow, n, K, S, FAST, MASKED);                                                    \
    }
#define DW4_INST_KS(K, S) DW4_INST(K, S, 1, 0) DW4_INST(K, S, 1, 1) DW4_INST(K, S, 0, 2)
DW4_INST_KS(3, 1)
DW4_INST_KS(3, 2)
DW4_INST_KS(5, 1)
DW4_INST_KS(5, 2)
DW4_INST_KS(7, 1)
DW4_INST_KS(7, 2)

/* [kernel / 2 - 1][stride - 1][fast, fast masked, mixed lanes (masked or not)] */
static const dw4_tile_fn dw4_fns[3][2][3] = {
    {{dw4_tile_3_1_10, dw4_tile_3_1_11, dw4_tile_3_1_02}, {dw4_tile_3_2_10, dw4_tile_3_2_11, dw4_tile_3_2_02}},
    {{dw4_tile_5_1_10, dw4_tile_5_1_11, dw4_tile_5_1_02}, {dw4_tile_5_2_10, dw4_tile_5_2_11, dw4_tile_5_2_02}},
    {{dw4_tile_7_1_10, dw4_tile_7_1_11, dw4_tile_7_1_02}, {dw4_tile_7_2_10, dw4_tile_7_2_11, dw4_tile_7_2_02}},
};

_Static_assert(sizeof(dw4_group) <= DW4_GROUP_HEAD, "DW4_GROUP_HEAD");

TT_NOINLINE_NOSCHED void tt_dw4_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                     int32_t c_lo, void *scratch)
{
    uint32_t *ring = scratch; /* the caller's: dw4_scratch_bytes(kernel, stride, ow) */
    dw4_group *g = (dw4_group *)(void *)((char *)scratch + 4 * dw4_ring_words(kernel, a->stride, a->ow));
    const int32_t stride = a->stride, ow = a->ow, tile = dw4_tile_cols(kernel, stride);
    const int masked = a->mask != 0;
    for (int32_t c0 = 0; c0 + 3 < a->c; c0 += 4) {
        const int fast = dw4_prepare(w_lo, w_hi, c_lo, kernel, c0, a->bias, a->mult, a->shift, a->zx, a->zy, g);
        const dw4_tile_fn fn = dw4_fns[kernel / 2 - 1][stride - 1][fast ? masked : 2];
        for (int32_t ox0 = 0; ox0 < ow; ox0 += tile) {
            const int32_t tow = ow - ox0 < tile ? ow - ox0 : tile;
            fn(a, c0, g, ring, ox0, tow, (tow - 1) * stride + kernel);
        }
    }
}

#endif

void tt_dw_conv_run(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                       int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask, void *scratch)
{
#if TT_DSP
    if (dwp_supported(kernel, stride, c, ow)) { /* measured: tools/kernel_bench.py dwk */
        const dw_args g = {x, h, w, c, y, oh, ow, stride, pad_top, pad_left, bias, mult, shift, zx, zy, mask};
        tt_dwp_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
        if (c & 3)
            depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult,
                               shift, zx, zy, mask, c & ~3, c);
    } else if (dw4_supported(kernel, stride, c)) {
        const dw_args g = {x, h, w, c, y, oh, ow, stride, pad_top, pad_left, bias, mult, shift, zx, zy, mask};
        tt_dw4_conv(&g, kernel, w_lo, w_hi, c_lo, scratch);
        if (c & 3)
            depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult,
                               shift, zx, zy, mask, c & ~3, c);
    } else
#endif
    {
        (void)scratch;
        depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult,
                           shift, zx, zy, mask, 0, c);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)(oh * ow * c));
}

int32_t tt_conv_depthwise_scratch_bytes(const tt_geom *g)
{
    if (dwp_supported(g->kh, g->sh, g->cin, g->ow))
        return dwp_scratch_bytes(g->kh, g->sh, g->ow);
    return dw4_supported(g->kh, g->sh, g->cin) ? dw4_scratch_bytes(g->kh, g->sh, g->ow) : 0;
}

void tt_conv_depthwise(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch)
{
    tt_dw_conv_run(x, g->h, g->w, g->cin, y, g->oh, g->ow, g->kh, g->sh, g->pad_top, g->pad_left, l->w_lo, l->w_hi,
                   l->k_lo, l->bias, l->mult, l->shift, l->zx, l->zy, mask, scratch);
}

void tt_conv_depthwise_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t h, int32_t oh,
                            int32_t pad_top, void *scratch)
{
    tt_dw_conv_run(x, h, g->w, g->cin, y, oh, g->ow, g->kh, g->sh, pad_top, g->pad_left, l->w_lo, l->w_hi, l->k_lo,
                   l->bias, l->mult, l->shift, l->zx, l->zy, NULL, scratch);
}
