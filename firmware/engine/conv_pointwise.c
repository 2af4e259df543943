/* Forward pointwise (1x1) convolution and dense layer, weights split into a trained lo part
 * (input channels 0..k_lo-1) and a frozen hi part.
 *
 * acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy); mask = clamp inactive.
 * Integer sums are exact and associative, so the DSP fast paths may reorder and
 * block them freely: sum w (x - zx) = sum w x - zx sum w (the zero point folded
 * through the per-channel weight sums keeps the hot loop pure int8 x int8).
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/mask_bits.h"
#include "internal/pointwise_block.h"

/* ------------------------------------------------------------------ portable */

#if !TT_DSP

#define PWP_BLOCK 64

static void pointwise_portable(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout, const int8_t *w_lo,
                               const int8_t *w_hi, int32_t k_lo, const int32_t *bias, const int32_t *mult,
                               const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
    /* Per position, PWP_BLOCK outputs at a time: their sums first, then their requantizations, each a
     * loop of its own (which compilers vectorize; interleaved, neither loop does). */
    const int32_t k_hi = cin - k_lo;
    int32_t acc[PWP_BLOCK];
    for (int32_t p = 0; p < hw; p++) {
        const int8_t *xp = x + p * cin;
        for (int32_t o0 = 0; o0 < cout; o0 += PWP_BLOCK) {
            const int32_t n = cout - o0 < PWP_BLOCK ? cout - o0 : PWP_BLOCK;
            for (int32_t j = 0; j < n; j++) {
                int32_t sum = 0;
                if (k_lo) {
                    const int8_t *wr = w_lo + (o0 + j) * k_lo;
                    for (int32_t i = 0; i < k_lo; i++)
                        sum += wr[i] * (xp[i] - zx);
                }
                if (k_hi) {
                    const int8_t *wr = w_hi + (o0 + j) * k_hi;
                    for (int32_t i = 0; i < k_hi; i++)
                        sum += wr[i] * (xp[k_lo + i] - zx);
                }
                acc[j] = sum;
            }
            tt_requant_store_run(acc, n, bias + o0, mult + o0, shift + o0, zy, y + p * cout + o0, mask,
                                 (uint32_t)(p * cout + o0));
        }
    }
}

#endif

/* ------------------------------------------------------------------ Cortex-M7 DSP */

#if TT_DSP

/* sum of n int8 weights */
static int32_t weight_row_sum(const int8_t *w, int32_t n)
{
    const uint32_t ones = 0x00010001u;
    int32_t s = 0;
    for (int32_t q = n >> 2; q > 0; --q) {
        const uint32_t v = tt_read_s8x4(w);
        w += 4;
        s = tt_smlad(tt_sxtb16(v), ones, s);
        s = tt_smlad(tt_sxtb16_ror8(v), ones, s);
    }
    for (int32_t r = n & 3; r > 0; --r)
        s += *w++;
    return s;
}

/* NP positions (rows x0 + i sx) of n inputs as int16 (x - zx) in SXTB16 lane order: per group
 * of 4 inputs NP doublewords, one per position, with lanes (i, i+2) in the low word and (i+1,
 * i+3) in the high word: what a weight word unpacked by SXTB16 / SXTB16 ROR 8 meets. Lanes past
 * n are 0. */
TT_ALWAYS_INLINE void pw_expand(const int8_t *x0, int32_t sx, int32_t n, int32_t zx, uint64_t *out, int np,
                                int dbl)
{
    const uint32_t zz = tt_pack16(zx, zx);
    int32_t i = 0;
    for (; i + 3 < n; i += 4, out += np)
        TT_UNROLL(4) for (int q = 0; q < np; q++) {
            const uint32_t a = tt_read_s8x4(x0 + q * sx + i);
            uint32_t e = tt_ssub16(tt_sxtb16(a), zz), o = tt_ssub16(tt_sxtb16_ror8(a), zz);
            if (dbl) {
                e = tt_sadd16(e, e);
                o = tt_sadd16(o, o);
            }
            out[q] = e | (uint64_t)o << 32;
        }
    if (i < n)
        TT_UNROLL(4) for (int q = 0; q < np; q++) {
            int32_t v[4] = {0, 0, 0, 0};
            for (int32_t j = 0; i + j < n; j++)
                v[j] = (x0[q * sx + i + j] - zx) * (dbl ? 2 : 1);
            out[q] = tt_pack16(v[0], v[2]) | (uint64_t)tt_pack16(v[1], v[3]) << 32;
        }
}

/* The same over raw int8 rows x0, x0 + sx (x not expanded: inputs wider than PW_XMAX; the zero
 * point then enters through the weight sums). Per 4 inputs 4 loads + 8 unpacks + 8 SMLAD. */
#define DOT_2X2_STEP(off)                                                                       \
    do {                                                                                        \
        const uint32_t xa = tt_read_s8x4(x0 + (off)), xb = tt_read_s8x4(x0 + (off) + sx);       \
        const uint32_t xae = tt_sxtb16(xa), xao = tt_sxtb16_ror8(xa);                           \
        const uint32_t xbe = tt_sxtb16(xb), xbo = tt_sxtb16_ror8(xb);                           \
        uint32_t w = tt_read_s8x4(w0 + (off));                                                  \
        uint32_t we = tt_sxtb16(w), wo = tt_sxtb16_ror8(w);                                     \
        s00 = tt_smlad(we, xae, s00);                                                           \
        s01 = tt_smlad(we, xbe, s01);                                                           \
        s00 = tt_smlad(wo, xao, s00);                                                           \
        s01 = tt_smlad(wo, xbo, s01);                                                           \
        w = tt_read_s8x4(w0 + (off) + sw);                                                      \
        we = tt_sxtb16(w);                                                                      \
        wo = tt_sxtb16_ror8(w);                                                                 \
        s10 = tt_smlad(we, xae, s10);                                                           \
        s11 = tt_smlad(we, xbe, s11);                                                           \
        s10 = tt_smlad(wo, xao, s10);                                                           \
        s11 = tt_smlad(wo, xbo, s11);                                                           \
    } while (0)

TT_ALWAYS_INLINE void pw_dot8(const int8_t *x0, int32_t sx, const int8_t *w0, int32_t sw, int32_t n, int32_t *s)
{
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    for (const int8_t *end = x0 + (n & ~7); x0 != end; x0 += 8, w0 += 8) {
        DOT_2X2_STEP(0);
        DOT_2X2_STEP(4);
    }
    if (n & 4) {
        DOT_2X2_STEP(0);
        x0 += 4;
        w0 += 4;
    }
    for (int32_t r = n & 3; r > 0; --r, ++x0, ++w0) {
        const int32_t xa = x0[0], xb = x0[sx], wa = w0[0], wb = w0[sw];
        s00 += wa * xa;
        s01 += wa * xb;
        s10 += wb * xa;
        s11 += wb * xb;
    }
    s[0] = s00;
    s[1] = s01;
    s[2] = s10;
    s[3] = s11;
}

/* NP positions from p for output channels [ob, ob + nb): expanded once, every channel, then the
 * staged outputs copied to their rows. */
TT_ALWAYS_INLINE void pw_block_np(const pw_args *g, int32_t p, int32_t ob, int32_t nb, const pw_rq *tab,
                                  uint64_t *x16, int32_t k_lo, int32_t k_hi, int np, int rq, int masked)
{
    const int32_t cin = g->cin, cout = g->cout;
    uint64_t *xh = x16 + ((k_lo + 3) >> 2) * np;
    const int8_t *x0 = g->x + p * cin;
    if (k_lo)
        pw_expand(x0, cin, k_lo, g->zx, x16, np, rq == RQ_DBL);
    if (k_hi)
        pw_expand(x0 + k_lo, cin, k_hi, g->zx, xh, np, rq == RQ_DBL);
    uint32_t bits[4] = {0, 0, 0, 0};
    int8_t stage[4 * PW_BLOCK] __attribute__((aligned(4)));
    pw_channels(g, x16, xh, ob, nb, tab, stage, k_lo, k_hi, np, rq, masked, bits);
    TT_UNROLL(4) for (int q = 0; q < np; q++) copy_bytes(g->y + (p + q) * cout + ob, stage + q * PW_BLOCK, nb);
    if (masked)
        TT_UNROLL(4) for (int q = 0; q < np; q++)
            mask_put_run(g->mask, (uint32_t)((p + q) * cout + ob), bits[q], (uint32_t)nb);
}

/* Output channels [ob, ob + nb) (nb <= PW_BLOCK) over positions in quads, then a pair and a
 * single for the rest: each group of positions is expanded once and serves every channel. */
TT_ALWAYS_INLINE void pw_block(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab, uint64_t *x16,
                               int32_t k_lo, int32_t k_hi, int rq, int masked)
{
    int32_t p = 0;
    for (; p + 3 < g->hw; p += 4)
        pw_block_np(g, p, ob, nb, tab, x16, k_lo, k_hi, 4, rq, masked);
    if (p + 1 < g->hw) {
        pw_block_np(g, p, ob, nb, tab, x16, k_lo, k_hi, 2, rq, masked);
        p += 2;
    }
    if (p < g->hw)
        pw_block_np(g, p, ob, nb, tab, x16, k_lo, k_hi, 1, rq, masked);
}

/* Inputs wider than PW_XMAX: the same with the inputs in chunks of PW_KC (per part), the four
 * positions' partial sums of every channel of the block kept in a stack table between chunks. */
#define PW_KC 32

TT_ALWAYS_INLINE void pw_chunk_channels(const pw_args *g, const uint64_t *x16, const int8_t *w, int32_t stride,
                                        int32_t n, int32_t ob, int32_t nb, const pw_rq *tab, int32_t (*part)[4],
                                        int first, int last, int8_t *stage, int np, int rq, int masked,
                                        uint32_t *bits)
{
    const int32_t zy = g->zy;
    w += ob * stride;
    for (int32_t j = 0; j < nb; j++, w += stride, tab++, stage++) {
        int32_t acc[4] = {0, 0, 0, 0};
        if (!first)
            TT_UNROLL(4) for (int q = 0; q < np; q++) acc[q] = part[j][q];
        else if (rq == RQ_DBL)
            TT_UNROLL(4) for (int q = 0; q < np; q++) acc[q] = (int32_t)(uint32_t)tt_ld64(*tab, 0);
        pw_dot_row(x16, w, n, acc, np);
        if (!last) {
            TT_UNROLL(4) for (int q = 0; q < np; q++) part[j][q] = acc[q];
            continue;
        }
        int32_t pre[4], c[4];
        if (rq == RQ_DBL) {
            const uint64_t t0 = tt_ld64(*tab, 0), t1 = tt_ld64(*tab, 1);
            const int32_t qm = (int32_t)(uint32_t)(t0 >> 32), qk = (int32_t)(uint32_t)t1;
            const int32_t qe = (int32_t)(uint32_t)(t1 >> 32);
            TT_UNROLL(4) for (int q = 0; q < np; q++)
            {
                pre[q] = (tt_smmlar(acc[q], qm, qk) + (acc[q] >> 31)) >> qe;
                c[q] = tt_ssat8(pre[q]);
            }
        } else if (rq == RQ_SLOW) {
            const int32_t o = ob + j;
            TT_UNROLL(4) for (int q = 0; q < np; q++)
            {
                pre[q] = tt_ssat10(tt_mbqm_inline(tt_qadd(g->bias[o], acc[q]), g->mult[o], g->shift[o])) + zy;
                c[q] = tt_ssat8(pre[q]);
            }
        } else {
            const uint64_t t0 = tt_ld64(*tab, 0), t1 = tt_ld64(*tab, 1);
            const int32_t qb = (int32_t)(uint32_t)t0, qm = (int32_t)(uint32_t)(t0 >> 32);
            const int32_t qk = (int32_t)(uint32_t)t1, qr = (int32_t)(uint32_t)(t1 >> 32);
            TT_UNROLL(4) for (int q = 0; q < np; q++)
            {
                pre[q] = tt_rq_apply(acc[q], qb, qm, qk, qr) + (rq == RQ_BEST ? 0 : zy);
                c[q] = tt_ssat8(pre[q]);
            }
        }
        TT_UNROLL(4) for (int q = 0; q < np; q++) stage[q * PW_BLOCK] = (int8_t)c[q];
        if (masked)
            TT_UNROLL(4) for (int q = 0; q < np; q++) bits[q] |= (uint32_t)(c[q] == pre[q]) << j;
    }
}

TT_ALWAYS_INLINE void pw_chunked_np(const pw_args *g, int32_t p, int32_t ob, int32_t nb, const pw_rq *tab,
                                    uint64_t *x16, int32_t (*part)[4], int np, int rq, int masked)
{
    const int32_t cin = g->cin, cout = g->cout;
    const int8_t *x0 = g->x + p * cin;
    uint32_t bits[4] = {0, 0, 0, 0};
    int8_t stage[4 * PW_BLOCK] __attribute__((aligned(4)));
    for (int32_t seg = 0; seg < 2; seg++) {
        const int32_t len = seg ? g->k_hi : g->k_lo, col0 = seg ? g->k_lo : 0;
        const int8_t *w = seg ? g->w_hi : g->w_lo;
        for (int32_t k0 = 0; k0 < len; k0 += PW_KC) {
            const int32_t n = len - k0 < PW_KC ? len - k0 : PW_KC;
            const int first = col0 + k0 == 0, last = col0 + k0 + n == cin;
            pw_expand(x0 + col0 + k0, cin, n, g->zx, x16, np, rq == RQ_DBL);
            if (n == PW_KC) /* a whole chunk: its loop unrolls completely */
                pw_chunk_channels(g, x16, w + k0, len, PW_KC, ob, nb, tab, part, first, last, stage, np, rq, masked,
                                  bits);
            else
                pw_chunk_channels(g, x16, w + k0, len, n, ob, nb, tab, part, first, last, stage, np, rq, masked, bits);
        }
    }
    TT_UNROLL(4) for (int q = 0; q < np; q++) copy_bytes(g->y + (p + q) * cout + ob, stage + q * PW_BLOCK, nb);
    if (masked)
        TT_UNROLL(4) for (int q = 0; q < np; q++)
            mask_put_run(g->mask, (uint32_t)((p + q) * cout + ob), bits[q], (uint32_t)nb);
}

_Static_assert(PW_KC * 8 + PW_BLOCK * 16 <= PW_X16_BYTES, "the chunked path's scratch");

TT_ALWAYS_INLINE void pw_chunked(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab, int rq, int masked)
{
    uint64_t *x16 = g->x16; /* PW_KC words, then the partial sums */
    int32_t(*part)[4] = (int32_t(*)[4])(void *)(x16 + PW_KC);
    int32_t p = 0;
    for (; p + 3 < g->hw; p += 4)
        pw_chunked_np(g, p, ob, nb, tab, x16, part, 4, rq, masked);
    if (p + 1 < g->hw) {
        pw_chunked_np(g, p, ob, nb, tab, x16, part, 2, rq, masked);
        p += 2;
    }
    if (p < g->hw)
        pw_chunked_np(g, p, ob, nb, tab, x16, part, 1, rq, masked);
}

/* Inputs wider than PW_XMAX are not expanded: pairs of channels x pairs of positions over the
 * raw int8 rows (the zero point through the weight sums, zinit = -zx sum w). The odd last
 * channel or position is paired with itself (its duplicate stores write the same values). */
TT_ALWAYS_INLINE void pw_block_raw(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab, const int32_t *zinit,
                                   int rq, int masked)
{
    const int32_t cin = g->cin, cout = g->cout, k_lo = g->k_lo, k_hi = g->k_hi, zy = g->zy;
    for (int32_t p = 0; p < g->hw; p += 2) {
        const int32_t pb = p + 1 < g->hw ? p + 1 : p;
        const int8_t *xa = g->x + p * cin;
        const int32_t sx = (pb - p) * cin, sy = (pb - p) * cout;
        int8_t *ya = g->y + p * cout + ob;
        const int8_t *wl = k_lo ? g->w_lo + ob * k_lo : 0, *wh = k_hi ? g->w_hi + ob * k_hi : 0;
        uint32_t ba = 0, bb = 0;
        for (int32_t j = 0; j < nb; j += 2, wl += 2 * k_lo, wh += 2 * k_hi) {
            const int32_t d = j + 1 < nb; /* 0: the odd last channel alone */
            int32_t s[4];
            s[0] = s[1] = zinit[j];
            s[2] = s[3] = zinit[j + d];
            if (k_lo)
                pw_dot8(xa, sx, wl, d * k_lo, k_lo, s);
            if (k_hi)
                pw_dot8(xa + k_lo, sx, wh, d * k_hi, k_hi, s);
            for (int32_t h = 0; h < 2; h++) {
                const int32_t jj = j + h * d, o = ob + jj;
                int32_t pa, pbv;
                if (rq == RQ_SLOW) {
                    pa = tt_ssat10(tt_mbqm_inline(tt_qadd(g->bias[o], s[2 * h]), g->mult[o], g->shift[o])) + zy;
                    pbv = tt_ssat10(tt_mbqm_inline(tt_qadd(g->bias[o], s[2 * h + 1]), g->mult[o], g->shift[o])) + zy;
                } else {
                    const int32_t qb = (int32_t)(uint32_t)tab[jj][0], qm = (int32_t)(uint32_t)(tab[jj][0] >> 32);
                    const int32_t qk = (int32_t)(uint32_t)tab[jj][1], qr = (int32_t)(uint32_t)(tab[jj][1] >> 32);
                    pa = tt_rq_apply(s[2 * h], qb, qm, qk, qr) + (rq == RQ_BEST ? 0 : zy);
                    pbv = tt_rq_apply(s[2 * h + 1], qb, qm, qk, qr) + (rq == RQ_BEST ? 0 : zy);
                }
                const int32_t ca = tt_ssat8(pa), cb = tt_ssat8(pbv);
                ya[jj] = (int8_t)ca;
                ya[sy + jj] = (int8_t)cb;
                if (masked) {
                    ba |= (uint32_t)(ca == pa) << jj;
                    bb |= (uint32_t)(cb == pbv) << jj;
                }
            }
        }
        if (masked) {
            mask_put_run(g->mask, (uint32_t)(p * cout + ob), ba, (uint32_t)nb);
            mask_put_run(g->mask, (uint32_t)(pb * cout + ob), bb, (uint32_t)nb);
        }
    }
}

typedef void (*pw_block_fn)(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab, const int32_t *zinit);

/* Instantiations: expanded x with one weight part of a constant width (small layers: the loops
 * unroll completely), expanded with any parts, raw x; zy folded or not; masked or not. */
#define PW_INST(NAME, KLO, KHI, XK, RQ, MASKED)                                                                       \
    TT_NOINLINE_NOSCHED static void NAME(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab,                  \
                                         const int32_t *zinit)                                                        \
    {                                                                                                                 \
        (void)zinit;                                                                                                  \
        pw_block(g, ob, nb, tab, g->x16, KLO, KHI, RQ, MASKED);                                                       \
    }
#define PW_RAW(NAME, RQ, MASKED)                                                                                      \
    TT_NOINLINE_NOSCHED static void NAME(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab,                  \
                                         const int32_t *zinit)                                                        \
    {                                                                                                                 \
        pw_block_raw(g, ob, nb, tab, zinit, RQ, MASKED);                                                              \
    }
#define PW_FIXED(K)                                                                                                \
    PW_INST(pw_k##K##_lo, K, 0, K, RQ_DBL, 0)                                                                      \
    PW_INST(pw_k##K##_hi, 0, K, K, RQ_DBL, 0)
PW_FIXED(8)
PW_FIXED(16)
PW_FIXED(24)
PW_FIXED(32)
PW_FIXED(40)
PW_FIXED(48)
PW_FIXED(56)
PW_FIXED(64)
PW_INST(pw_x16_dbl, g->k_lo, g->k_hi, PW_XMAX, RQ_DBL, 0)
PW_INST(pw_x16_dbl_m, g->k_lo, g->k_hi, PW_XMAX, RQ_DBL, 1)
PW_INST(pw_x16_best, g->k_lo, g->k_hi, PW_XMAX, RQ_BEST, 0)
PW_INST(pw_x16_best_m, g->k_lo, g->k_hi, PW_XMAX, RQ_BEST, 1)
PW_INST(pw_x16_fast, g->k_lo, g->k_hi, PW_XMAX, RQ_FAST, 0)
PW_INST(pw_x16_fast_m, g->k_lo, g->k_hi, PW_XMAX, RQ_FAST, 1)
PW_INST(pw_x16_slow, g->k_lo, g->k_hi, PW_XMAX, RQ_SLOW, g->mask != 0)
#define PW_CHUNKED(NAME, RQ, MASKED)                                                                                  \
    TT_NOINLINE_NOSCHED static void NAME(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab,                  \
                                         const int32_t *zinit)                                                        \
    {                                                                                                                 \
        (void)zinit;                                                                                                  \
        pw_chunked(g, ob, nb, tab, RQ, MASKED);                                                                       \
    }
PW_CHUNKED(pw_xc_best, RQ_BEST, 0)
PW_CHUNKED(pw_xc_best_m, RQ_BEST, 1)
PW_CHUNKED(pw_xc_fast, RQ_FAST, 0)
PW_CHUNKED(pw_xc_fast_m, RQ_FAST, 1)
PW_CHUNKED(pw_xc_slow, RQ_SLOW, g->mask != 0)
PW_RAW(pw_x8_best, RQ_BEST, 0)
PW_RAW(pw_x8_best_m, RQ_BEST, 1)
PW_RAW(pw_x8_fast, RQ_FAST, 0)
PW_RAW(pw_x8_fast_m, RQ_FAST, 1)
PW_RAW(pw_x8_slow, RQ_SLOW, g->mask != 0)

static pw_block_fn pw_fixed(int32_t k, int lo)
{
    switch (k) {
    case 8: return lo ? pw_k8_lo : pw_k8_hi;
    case 16: return lo ? pw_k16_lo : pw_k16_hi;
    case 24: return lo ? pw_k24_lo : pw_k24_hi;
    case 32: return lo ? pw_k32_lo : pw_k32_hi;
    case 40: return lo ? pw_k40_lo : pw_k40_hi;
    case 48: return lo ? pw_k48_lo : pw_k48_hi;
    case 56: return lo ? pw_k56_lo : pw_k56_hi;
    case 64: return lo ? pw_k64_lo : pw_k64_hi;
    default: return 0;
    }
}

/* Blocks of PW_BLOCK output channels (their requantization constants prepared once in a stack
 * table); within a block, groups of positions expanded to int16 once (inputs up to PW_XMAX)
 * serve every channel of the block. */
static void pointwise_dsp(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout, const int8_t *w_lo,
                          const int8_t *w_hi, int32_t k_lo, const int32_t *wsum, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask,
                          void *scratch)
{
    const int32_t k_hi = cin - k_lo;
    pw_rq *tab = scratch; /* PW_TAB_BYTES, the expanded inputs, the weight sums' zero-point terms */
    uint64_t *x16 = (uint64_t *)(void *)((char *)scratch + PW_TAB_BYTES);
    int32_t *zinit = (int32_t *)(void *)((char *)scratch + PW_TAB_BYTES + PW_X16_BYTES);
    const pw_args g = {x, hw, cin, y, cout, w_lo, w_hi, k_lo, k_hi, bias, mult, shift, zx, zy, mask, x16};
    const int expand = cin <= PW_XMAX;
    for (int32_t ob = 0; ob < cout; ob += PW_BLOCK) {
        const int32_t nb = cout - ob < PW_BLOCK ? cout - ob : PW_BLOCK;
        /* (not on the chunked path: there each block expands its chunks again, the doubling costs more
         * than it saves; measured) */
        const int dbl = expand && pw_prepare_dbl(bias, mult, shift, zy, ob, nb, cin, tab);
        const int rq = dbl ? RQ_DBL : pw_prepare(bias, mult, shift, zy, ob, nb, tab);
        for (int32_t j = 0; j < nb; j++) {
            const int32_t o = ob + j;
            zinit[j] = expand ? 0
                              : -zx * (wsum ? wsum[o]
                                            : (k_lo ? weight_row_sum(w_lo + o * k_lo, k_lo) : 0) +
                                                  (k_hi ? weight_row_sum(w_hi + o * k_hi, k_hi) : 0));
        }
        const int m = mask != 0;
        pw_block_fn fn;
        const int best = rq == RQ_BEST;
        if (rq == RQ_SLOW)
            fn = expand ? pw_x16_slow : hw >= 4 ? pw_xc_slow : pw_x8_slow;
        else if (dbl)
            fn = !m && (k_lo == 0 || k_hi == 0) && pw_fixed(cin, k_hi == 0) ? pw_fixed(cin, k_hi == 0)
                                                                             : m ? pw_x16_dbl_m : pw_x16_dbl;
        else if (!expand && hw >= 4)
            fn = best ? (m ? pw_xc_best_m : pw_xc_best) : (m ? pw_xc_fast_m : pw_xc_fast);
        else if (!expand)
            fn = best ? (m ? pw_x8_best_m : pw_x8_best) : (m ? pw_x8_fast_m : pw_x8_fast);
        else
            fn = best ? (m ? pw_x16_best_m : pw_x16_best) : (m ? pw_x16_fast_m : pw_x16_fast);
        fn(&g, ob, nb, tab, zinit);
    }
}

#endif

TT_NOINLINE static void pointwise_run(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, const int32_t *wsum,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask, void *scratch)
{
#if TT_DSP
    pointwise_dsp(x, hw, cin, y, cout, w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy, mask, scratch);
#else
    (void)wsum;
    (void)scratch; /* a speed-up only: the portable path sums w (x - zx) directly */
    pointwise_portable(x, hw, cin, y, cout, w_lo, w_hi, k_lo, bias, mult, shift, zx, zy, mask);
#endif
    if (mask)
        tt_mask_finish(mask, (uint32_t)(hw * cout));
}

/* The requantization table, the expanded inputs, the zero-point terms of a block. */
int32_t tt_conv_pointwise_scratch_bytes(const tt_geom *g)
{
    (void)g;
    return PW_TAB_BYTES + PW_X16_BYTES + PW_BLOCK * 4;
}

void tt_conv_pointwise(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch)
{
    pointwise_run(x, g->h * g->w, g->cin, y, g->cout, l->w_lo, l->w_hi, l->k_lo, l->wsum, l->bias, l->mult, l->shift,
                  l->zx, l->zy, mask, scratch);
}

void tt_conv_pointwise_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t rows,
                            void *scratch)
{
    pointwise_run(x, rows * g->w, g->cin, y, g->cout, l->w_lo, l->w_hi, l->k_lo, l->wsum, l->bias, l->mult, l->shift,
                  l->zx, l->zy, NULL, scratch);
}
