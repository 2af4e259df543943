/* Forward convolutions: pointwise (split lo/hi weights), depthwise (split by channel), generic.
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
#include "internal/depthwise_inplace.h"

/* ------------------------------------------------------------------ pointwise */

#if TT_DSP

/* Output channels per block: their requantization constants sit in a stack table. */
#define PW_BLOCK 16
/* Input channels up to which four positions are expanded to int16 (x - zx) on the stack (wider
 * inputs: pairs of channels x pairs of positions on the raw int8 rows). */
#define PW_XMAX 64

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

/* The r < 4 bytes w[0..r-1] as a little-endian word, the rest 0 (a row's last partial group,
 * without reading past the row). */
TT_ALWAYS_INLINE uint32_t read_s8_tail(const int8_t *w, int32_t r)
{
    uint32_t v = (uint8_t)w[0];
    if (r > 1)
        v |= (uint32_t)(uint8_t)w[1] << 8;
    if (r > 2)
        v |= (uint32_t)(uint8_t)w[2] << 16;
    return v;
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

/* Writes bits [0, n) of v at bit offset i of a mask, n <= 25. */
static void mask_put_run(uint8_t *mask, uint32_t i, uint32_t v, uint32_t n)
{
    while (n) {
        const uint32_t s = i & 7u, take = 8u - s < n ? 8u - s : n;
        tt_mask_put_bits_in_byte(mask, i, v & ((1u << take) - 1u), take);
        v >>= take;
        i += take;
        n -= take;
    }
}

/* the conv epilogue with the channel's constants prepared: y = clamp(MBQM(sat32(bias + sum)) + zy) */
TT_ALWAYS_INLINE uint32_t requant_store(int32_t sum, const tt_requant_channel *q, int32_t zy, int8_t *y)
{
    return tt_store_int8(tt_requant_apply(sum, q), zy, y);
}

/* Requantization modes of a block of channels: the general form (RQ_SLOW); the one-multiply form
 * with zy added (RQ_FAST) or folded into its constants (RQ_BEST); on expanded inputs doubled,
 * 2 (x - zx), one SMMLAR with zy folded (RQ_DBL: the expanded-rows depthwise path's form; the
 * accumulator starts at 2 bias, table {2 bias | m << 32, 2^(e-1) + zy 2^e | e << 32}). */
enum { RQ_SLOW = 0, RQ_FAST = 1, RQ_BEST = 2, RQ_DBL = 3 };

typedef struct {
    const int8_t *x;
    int32_t hw, cin;
    int8_t *y;
    int32_t cout;
    const int8_t *w_lo, *w_hi;
    int32_t k_lo, k_hi;
    const int32_t *bias, *mult, *shift;
    int32_t zx, zy;
    uint8_t *mask;
} pw_args;

/* acc[q] += w . x_q over one weight row w of n inputs and the expanded groups xg of NP positions.
 * Per 4 inputs: 1 load + 2 unpacks of the weights, NP LDRD and 2 NP SMLAD. */
#define PW_MAC_GROUP(A, XG, IDX0)                                                                  \
    do {                                                                                           \
        const uint32_t ae_ = tt_sxtb16(A), ao_ = tt_sxtb16_ror8(A);                                \
        TT_UNROLL(4) for (int q_ = 0; q_ < np; q_++)                                               \
        {                                                                                          \
            const uint64_t v_ = tt_ld64(XG, (IDX0) + q_);                                          \
            acc[q_] = tt_smlad(ae_, (uint32_t)v_, acc[q_]);                                        \
            acc[q_] = tt_smlad(ao_, (uint32_t)(v_ >> 32), acc[q_]);                                \
        }                                                                                          \
    } while (0)

TT_ALWAYS_INLINE void pw_dot_row(const uint64_t *xg, const int8_t *w, int32_t n, int32_t *acc, int np)
{
#if defined(__GNUC__)
    if (__builtin_constant_p(n)) { /* unrolled: every load at a constant offset from xg and w */
        TT_UNROLL(16) for (int32_t i = 0; i < (n & ~3); i += 4)
        {
            const uint32_t a = tt_read_s8x4(w + i);
            PW_MAC_GROUP(a, xg, (i >> 2) * np);
        }
        if (n & 3) {
            const uint32_t a = read_s8_tail(w + (n & ~3), n & 3);
            PW_MAC_GROUP(a, xg, (n >> 2) * np);
        }
        return;
    }
#endif
    for (const int8_t *end = w + (n & ~3); w != end; w += 4, xg += np) {
        const uint32_t a = tt_read_s8x4(w);
        PW_MAC_GROUP(a, xg, 0);
    }
    if (n & 3) {
        const uint32_t a = read_s8_tail(w, n & 3);
        PW_MAC_GROUP(a, xg, 0);
    }
}

/* n bytes, a word at a time (the library memcpy is a call). */
TT_ALWAYS_INLINE void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    if (n == 16) { /* a whole block: unrolled */
        TT_UNROLL(4) for (int32_t k = 0; k < 16; k += 4)
        {
            uint32_t v;
            TT_MEMCPY(&v, src + k, 4);
            TT_MEMCPY(dst + k, &v, 4);
        }
        return;
    }
    int32_t i = 0;
    for (; i + 3 < n; i += 4) {
        uint32_t v;
        TT_MEMCPY(&v, src + i, 4);
        TT_MEMCPY(dst + i, &v, 4);
    }
    for (; i < n; i++)
        dst[i] = src[i];
}

/* A block's requantization table: per channel {bias | mult << 32, khi | rsh << 32} (two LDRD). */
typedef uint64_t pw_rq[2];

/* Channels [ob, ob + nb) of NP positions whose inputs are expanded in xl (the k_lo inputs of the
 * lo part) and xh (k_hi of the hi part): one channel at a time, its weights unpacked once for the
 * NP positions. The outputs go to stage[q][j] (one pointer, constant offsets), copied out by the
 * caller; mask bits of position q to bits[q]. */
TT_ALWAYS_INLINE void pw_channels(const pw_args *g, const uint64_t *xl, const uint64_t *xh, int32_t ob, int32_t nb,
                                  const pw_rq *tab, int8_t *stage, int32_t k_lo, int32_t k_hi, int np, int rq,
                                  int masked, uint32_t *bits)
{
    const int8_t *wl = k_lo ? g->w_lo + ob * k_lo : 0, *wh = k_hi ? g->w_hi + ob * k_hi : 0;
    const int32_t zy = g->zy;
    for (int32_t j = 0; j < nb; j++, wl += k_lo, wh += k_hi, tab++, stage++) {
        int32_t acc[4] = {0, 0, 0, 0};
        uint64_t t0 = 0;
        if (rq == RQ_DBL) {
            t0 = tt_ld64(*tab, 0);
            TT_UNROLL(4) for (int q = 0; q < np; q++) acc[q] = (int32_t)(uint32_t)t0;
        }
        if (k_lo)
            pw_dot_row(xl, wl, k_lo, acc, np);
        if (k_hi)
            pw_dot_row(xh, wh, k_hi, acc, np);
        int32_t pre[4], c[4];
        if (rq == RQ_DBL) {
            const uint64_t t1 = tt_ld64(*tab, 1);
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

TT_ALWAYS_INLINE void pw_chunked(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab, int rq, int masked)
{
    uint64_t x16[PW_KC];
    int32_t part[PW_BLOCK][4];
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
/* Expanded inputs of four positions: K inputs in groups of 4, plus one partial group of a second part. */
#define PW_X16_WORDS(K) (((K) / 4 + 1) * 4)
#define PW_INST(NAME, KLO, KHI, XK, RQ, MASKED)                                                                       \
    TT_NOINLINE_NOSCHED static void NAME(const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab,                  \
                                         const int32_t *zinit)                                                        \
    {                                                                                                                 \
        uint64_t x16[PW_X16_WORDS(XK)];                                                                               \
        (void)zinit;                                                                                                  \
        pw_block(g, ob, nb, tab, x16, KLO, KHI, RQ, MASKED);                                                          \
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

/* The requantization table of output channels [ob, ob + nb) and its mode (k: products per sum,
 * unused while every mode keeps the saturating bias add). */
static int pw_prepare(const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zy, int32_t ob,
                      int32_t nb, int32_t k, pw_rq *tab)
{
    (void)k;
    int best = 1;
    for (int32_t j = 0; j < nb; j++) {
        tt_rq q;
        if (!tt_rq_prepare(&q, bias[ob + j], mult[ob + j], shift[ob + j]))
            return RQ_SLOW;
        best &= tt_rq_foldable(&q);
        tab[j][0] = (uint32_t)q.bias | (uint64_t)(uint32_t)q.mult << 32;
        tab[j][1] = (uint32_t)q.khi | (uint64_t)(uint32_t)q.rsh << 32;
    }
    for (int32_t j = 0; best && j < nb; j++) {
        tt_rq q = {0, 0, (int32_t)(uint32_t)tab[j][1], (int32_t)(uint32_t)(tab[j][1] >> 32)};
        tt_rq_fold(&q, zy);
        tab[j][1] = (uint32_t)q.khi | (uint64_t)(uint32_t)q.rsh << 32;
    }
    return best ? RQ_BEST : RQ_FAST;
}

/* The RQ_DBL table of output channels [ob, ob + nb) of k products per sum (|x - zx| <= 255, |w| <= 127):
 * 1 if every channel allows it (multiplier >= 0, right shift 1..23, |bias| + 32385 k < 2^30 so that
 * the doubled accumulator cannot overflow), else 0. */
static int pw_prepare_dbl(const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zy, int32_t ob,
                          int32_t nb, int32_t k, pw_rq *tab)
{
    if (k > 16384)
        return 0;
    const int32_t lim = (1 << 30) - 32385 * k;
    for (int32_t j = 0; j < nb; j++) {
        const int32_t o = ob + j, e = -shift[o], b = bias[o];
        if (mult[o] < 0 || e < 1 || e > 23 || b <= -lim || b >= lim)
            return 0;
        const int32_t kk = (int32_t)(UINT32_C(1) << (e - 1)) + zy * (int32_t)(UINT32_C(1) << e);
        tab[j][0] = (uint32_t)(2 * b) | (uint64_t)(uint32_t)mult[o] << 32;
        tab[j][1] = (uint32_t)kk | (uint64_t)(uint32_t)e << 32;
    }
    return 1;
}

/* Blocks of PW_BLOCK output channels (their requantization constants prepared once in a stack
 * table); within a block, groups of positions expanded to int16 once (inputs up to PW_XMAX)
 * serve every channel of the block. */
static void pointwise_dsp(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout, const int8_t *w_lo,
                          const int8_t *w_hi, int32_t k_lo, const int32_t *wsum, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
    const int32_t k_hi = cin - k_lo;
    const pw_args g = {x, hw, cin, y, cout, w_lo, w_hi, k_lo, k_hi, bias, mult, shift, zx, zy, mask};
    const int expand = cin <= PW_XMAX;
    pw_rq tab[PW_BLOCK];
    int32_t zinit[PW_BLOCK];
    for (int32_t ob = 0; ob < cout; ob += PW_BLOCK) {
        const int32_t nb = cout - ob < PW_BLOCK ? cout - ob : PW_BLOCK;
        /* (not on the chunked path: there each block expands its chunks again, the doubling costs more
         * than it saves; measured) */
        const int dbl = expand && pw_prepare_dbl(bias, mult, shift, zy, ob, nb, cin, tab);
        const int rq = dbl ? RQ_DBL : pw_prepare(bias, mult, shift, zy, ob, nb, cin, tab);
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

/* ------------------------------------------------------------------ generic conv, DSP path */

/* Full convolutions (groups 1) whose patch of K = kernel^2 cin inputs fits PW_XMAX (a first layer:
 * 3x3x3 = 27) run as the pointwise kernel on im2col rows: each output position's patch is
 * gathered in the weights' order (ky, kx, ci) with padding taps at zx, expanded to int16
 * (x - zx), and four positions serve every output channel of a block. */
typedef struct {
    const int8_t *x;
    int32_t h, w, cin, kernel, stride, pad_top, pad_left, ow, zx;
} conv_geom;

static void conv_patch(const conv_geom *c, int32_t pos, int8_t *patch)
{
    const int32_t oy = pos / c->ow, ox = pos - oy * c->ow;
    const int32_t iy0 = oy * c->stride - c->pad_top, ix0 = ox * c->stride - c->pad_left;
    const int32_t cin = c->cin, kernel = c->kernel, row = kernel * cin;
    const int cols_inside = ix0 >= 0 && ix0 + kernel <= c->w;
    for (int32_t ky = 0; ky < kernel; ky++, patch += row) {
        const int32_t iy = iy0 + ky;
        if (iy < 0 || iy >= c->h) {
            for (int32_t i = 0; i < row; i++)
                patch[i] = (int8_t)c->zx;
            continue;
        }
        const int8_t *src = c->x + (iy * c->w + ix0) * cin;
        if (cols_inside) {
            copy_bytes(patch, src, row);
            continue;
        }
        for (int32_t kx = 0; kx < kernel; kx++) {
            const int inside = ix0 + kx >= 0 && ix0 + kx < c->w;
            for (int32_t ci = 0; ci < cin; ci++)
                patch[kx * cin + ci] = inside ? src[kx * cin + ci] : (int8_t)c->zx;
        }
    }
}

/* One position's n patch inputs as column `col` of the expanded layout of np positions. */
TT_ALWAYS_INLINE void conv_expand(const int8_t *patch, int32_t n, int32_t zx, uint64_t *out, int32_t np, int dbl)
{
    const uint32_t zz = tt_pack16(zx, zx);
    int32_t i = 0;
    for (; i + 3 < n; i += 4, out += np) {
        const uint32_t a = tt_read_s8x4(patch + i);
        uint32_t e = tt_ssub16(tt_sxtb16(a), zz), o = tt_ssub16(tt_sxtb16_ror8(a), zz);
        if (dbl) {
            e = tt_sadd16(e, e);
            o = tt_sadd16(o, o);
        }
        *out = e | (uint64_t)o << 32;
    }
    if (i < n) {
        int32_t v[4] = {0, 0, 0, 0};
        for (int32_t j = 0; i + j < n; j++)
            v[j] = (patch[i + j] - zx) * (dbl ? 2 : 1);
        *out = tt_pack16(v[0], v[2]) | (uint64_t)tt_pack16(v[1], v[3]) << 32;
    }
}

TT_ALWAYS_INLINE void conv_block_np(const conv_geom *c, const pw_args *g, int32_t p, int32_t ob, int32_t nb,
                                    const pw_rq *tab, uint64_t *x16, int32_t k, int np, int rq, int masked)
{
    int8_t patch[PW_XMAX + 4] __attribute__((aligned(4)));
    for (int q = 0; q < np; q++) {
        conv_patch(c, p + q, patch);
        conv_expand(patch, k, c->zx, x16 + q, np, rq == RQ_DBL);
    }
    uint32_t bits[4] = {0, 0, 0, 0};
    int8_t stage[4 * PW_BLOCK] __attribute__((aligned(4)));
    pw_channels(g, x16, x16, ob, nb, tab, stage, k, 0, np, rq, masked, bits);
    const int32_t cout = g->cout;
    TT_UNROLL(4) for (int q = 0; q < np; q++) copy_bytes(g->y + (p + q) * cout + ob, stage + q * PW_BLOCK, nb);
    if (masked)
        TT_UNROLL(4) for (int q = 0; q < np; q++)
            mask_put_run(g->mask, (uint32_t)((p + q) * cout + ob), bits[q], (uint32_t)nb);
}

TT_ALWAYS_INLINE void conv_block(const conv_geom *c, const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab,
                                 uint64_t *x16, int32_t k, int rq, int masked)
{
    int32_t p = 0;
    for (; p + 3 < g->hw; p += 4)
        conv_block_np(c, g, p, ob, nb, tab, x16, k, 4, rq, masked);
    if (p + 1 < g->hw) {
        conv_block_np(c, g, p, ob, nb, tab, x16, k, 2, rq, masked);
        p += 2;
    }
    if (p < g->hw)
        conv_block_np(c, g, p, ob, nb, tab, x16, k, 1, rq, masked);
}

typedef void (*conv_block_fn)(const conv_geom *c, const pw_args *g, int32_t ob, int32_t nb, const pw_rq *tab);
#define CONV_INST(NAME, K, XK, RQ, MASKED)                                                                            \
    TT_NOINLINE_NOSCHED static void NAME(const conv_geom *c, const pw_args *g, int32_t ob, int32_t nb,                \
                                         const pw_rq *tab)                                                            \
    {                                                                                                                 \
        uint64_t x16[PW_X16_WORDS(XK)];                                                                               \
        conv_block(c, g, ob, nb, tab, x16, K, RQ, MASKED);                                                            \
    }
CONV_INST(conv_k27_dbl, 27, 27, RQ_DBL, 0)
CONV_INST(conv_any_dbl, g->k_lo, PW_XMAX, RQ_DBL, 0)
CONV_INST(conv_any_dbl_m, g->k_lo, PW_XMAX, RQ_DBL, 1)
CONV_INST(conv_k27_best, 27, 27, RQ_BEST, 0)
CONV_INST(conv_k27_fast, 27, 27, RQ_FAST, 0)
CONV_INST(conv_any_best, g->k_lo, PW_XMAX, RQ_BEST, 0)
CONV_INST(conv_any_fast, g->k_lo, PW_XMAX, RQ_FAST, 0)
CONV_INST(conv_any_best_m, g->k_lo, PW_XMAX, RQ_BEST, 1)
CONV_INST(conv_any_fast_m, g->k_lo, PW_XMAX, RQ_FAST, 1)
CONV_INST(conv_any_slow, g->k_lo, PW_XMAX, RQ_SLOW, g->mask != 0)

static void conv_dsp(const int8_t *x, int32_t h, int32_t w, int32_t cin, int8_t *y, int32_t oh, int32_t ow,
                     int32_t cout, int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                     const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zx,
                     int32_t zy, uint8_t *mask)
{
    const int32_t k = kernel * kernel * cin;
    const conv_geom c = {x, h, w, cin, kernel, stride, pad_top, pad_left, ow, zx};
    const pw_args g = {x, oh * ow, k, y, cout, weights, 0, k, 0, bias, mult, shift, zx, zy, mask};
    pw_rq tab[PW_BLOCK];
    for (int32_t ob = 0; ob < cout; ob += PW_BLOCK) {
        const int32_t nb = cout - ob < PW_BLOCK ? cout - ob : PW_BLOCK;
        const int dbl = pw_prepare_dbl(bias, mult, shift, zy, ob, nb, k, tab);
        const int rq = dbl ? RQ_DBL : pw_prepare(bias, mult, shift, zy, ob, nb, k, tab), best = rq == RQ_BEST;
        conv_block_fn fn;
        if (dbl)
            fn = mask ? conv_any_dbl_m : k == 27 ? conv_k27_dbl : conv_any_dbl;
        else if (rq == RQ_SLOW)
            fn = conv_any_slow;
        else if (mask)
            fn = best ? conv_any_best_m : conv_any_fast_m;
        else if (k == 27)
            fn = best ? conv_k27_best : conv_k27_fast;
        else
            fn = best ? conv_any_best : conv_any_fast;
        fn(&c, &g, ob, nb, tab);
    }
}

#else

static void pointwise_portable(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout, const int8_t *w_lo,
                               const int8_t *w_hi, int32_t k_lo, const int32_t *bias, const int32_t *mult,
                               const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
    const int32_t k_hi = cin - k_lo;
    for (int32_t p = 0; p < hw; p++) {
        const int8_t *xp = x + p * cin;
        for (int32_t o = 0; o < cout; o++) {
            int32_t sum = 0;
            if (k_lo) {
                const int8_t *wr = w_lo + o * k_lo;
                for (int32_t i = 0; i < k_lo; i++)
                    sum += wr[i] * (xp[i] - zx);
            }
            if (k_hi) {
                const int8_t *wr = w_hi + o * k_hi;
                for (int32_t i = 0; i < k_hi; i++)
                    sum += wr[i] * (xp[k_lo + i] - zx);
            }
            const uint32_t f = tt_requant_store(sum, bias[o], mult[o], shift[o], zy, y + p * cout + o);
            if (mask)
                tt_mask_put(mask, (uint32_t)(p * cout + o), f);
        }
    }
}

#endif

void tt_conv_pointwise(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, const int32_t *wsum,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask)
{
#if TT_DSP
    pointwise_dsp(x, hw, cin, y, cout, w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy, mask);
#else
    (void)wsum; /* a speed-up only: the portable path sums w (x - zx) directly */
    pointwise_portable(x, hw, cin, y, cout, w_lo, w_hi, k_lo, bias, mult, shift, zx, zy, mask);
#endif
    if (mask)
        tt_mask_finish(mask, (uint32_t)(hw * cout));
}

/* ------------------------------------------------------------------ depthwise */

/* Weight of channel ch, tap t, from the lo (SRAM) or hi (flash) part. */
static inline int32_t dw_weight(const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t kk, int32_t ch, int32_t t)
{
    return ch < c_lo ? w_lo[ch * kk + t] : w_hi[(ch - c_lo) * kk + t];
}

/* Channels [c_begin, c_end) one at a time: the portable path, and the channel tail of the DSP path. */
static void depthwise_channels(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                               int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, const int8_t *w_lo,
                               const int8_t *w_hi,
                               int32_t c_lo, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                               int32_t zx, int32_t zy, uint8_t *mask, int32_t c_begin, int32_t c_end)
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

#if TT_DSP

#define DW_MAX_KERNEL 7

typedef struct {
    const int8_t *x;
    int32_t h, w, c;
    int8_t *y;
    int32_t oh, ow, stride, pad_top, pad_left;
    const int32_t *bias, *mult, *shift;
    int32_t zx, zy;
    uint8_t *mask;
} dw_args;

/* ------------------------------------------------------------------ depthwise through expanded rows
 *
 * The main DSP path (kernels 3, 5, 7; strides 1, 2), one channel at a time. The channel's input rows
 * are expanded once each into a ring of k rows of int16 on the stack, padding included (zx, whose
 * products the zero-point fold cancels), so that every output is branch-free: per kernel row
 * (k+1)/2 SMLAD of a word (X[u], X[u+1]) of the row with a pair of weights (w[2t], w[2t+1]), the odd
 * last tap paired with a 0 weight (its partner X is any defined value). Two horizontally adjacent
 * outputs share their weight loads (stride 1: one LDRD serves two pairs of the even output, the odd
 * one reads unaligned words; stride 2: both read aligned words). An output row is written only
 * after every input row it covers is in the ring, so the output may overwrite the input (in-place
 * stride 1: input row r + k/2 of the channel is expanded before its output row r is stored).
 *
 * Requantization of a channel whose constants allow it (multiplier >= 0, right shift e in 1..23,
 * |bias| < 2^29 - 2^21, so that 2 acc cannot overflow) in 4 instructions: with weights doubled and
 * the accumulator started at A = 2 (bias - zx sum w), SMMLAR(A, m, K) = SRDHM(acc, m) + K (the
 * rounded high word of 2 acc m is floor((acc m + 2^30) / 2^31)), and with K = 2^(e-1) + zy 2^e,
 * (SMMLAR + (A >> 31)) >> e = RDBPOT(SRDHM, e) + zy (the floors compose as in fixed_point.h). Other
 * channels (dead ones, biases near -2^31) take the general saturating form. */

#define DWEXP_RING_HALFS 320 /* 640 bytes of stack: k rows of a column tile */

typedef struct {
    uint32_t w[DW_MAX_KERNEL][4]; /* kernel row i, pair t: (w[i][2t], w[i][2t+1]) (doubled: fast) */
    int32_t init;                 /* fast: 2 (bias - zx sum w); general: -zx sum w */
    int32_t m, k, e;              /* fast: multiplier, 2^(e-1) + zy 2^e, right shift */
    int32_t bias, mult, shift, zy;
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
    q->mult = mult;
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

/* The weights of kernel row i as words w[0..P-1] (pairs), read two at a time. */
#define DWEXP_LOAD_W(WQ, W, P)                                             \
    do {                                                                   \
        TT_UNROLL(4) for (int t_ = 0; t_ + 1 < (P); t_ += 2)               \
        {                                                                  \
            const uint64_t d_ = tt_ldrd_w(WQ, t_);                         \
            W[t_] = (uint32_t)d_;                                          \
            W[t_ + 1] = (uint32_t)(d_ >> 32);                              \
        }                                                                  \
        if ((P) & 1)                                                       \
            W[(P) - 1] = (WQ)[(P) - 1];                                    \
    } while (0)

/* Aligned words V[0..n-1] from xr (word aligned), two at a time. */
#define DWEXP_LOAD_V(XR, V, N)                                             \
    do {                                                                   \
        TT_UNROLL(8) for (int u_ = 0; u_ + 1 < (N); u_ += 2)               \
        {                                                                  \
            const uint64_t d_ = tt_ldrd_w(XR, u_);                         \
            V[u_] = (uint32_t)d_;                                          \
            V[u_ + 1] = (uint32_t)(d_ >> 32);                              \
        }                                                                  \
        if ((N) & 1)                                                       \
            V[(N) - 1] = tt_read_s16x2((XR) + 2 * ((N) - 1));              \
    } while (0)

/* One output row of tow outputs of the channel from its K expanded input rows rp[0..K-1]: y is the
 * row's first output, c the step between outputs, bit its mask index. Four outputs at a time share
 * every weight load (and, stride 2, every input word; stride 1, the even outputs read aligned words
 * two at a time, the odd ones unaligned words). */
TT_ALWAYS_INLINE void dwexp_row(const int16_t *const *rp, int32_t tow, const dwexp_chan *q, int8_t *y, int32_t c,
                              uint8_t *mask, uint32_t bit, int K, int S, int fast, int masked)
{
    enum { MAXP = (DW_MAX_KERNEL + 1) / 2 };
    const int P = (K + 1) / 2; /* pairs per kernel row */
    const int32_t init = q->init;
    const dwexp_rq rq = dwexp_rq_of(q, fast);
    int32_t ox = 0;
    for (; ox + 3 < tow; ox += 4, y += 4 * c, bit += 4 * (uint32_t)c) {
        int32_t a0 = init, a1 = init, a2 = init, a3 = init;
        TT_UNROLL(7) for (int i = 0; i < K; i++)
        {
            const int16_t *xr = rp[i] + S * ox; /* word aligned: ox even, rows of even length */
            const uint32_t *wq = q->w[i];
            /* loads in the order they are consumed (few live registers, no spills) */
            if (S == 1) {
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
            } else {
                /* output ox + j, pair t: the word at halfword 2 (ox + j + t) */
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
            const int16_t *xr = rp[i] + S * ox;
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
                               int32_t tow, int32_t n, int32_t pitch, int K, int S, int fast, int masked)
{
    const int32_t c = g->c, ow = g->ow, oh = g->oh, pt = g->pad_top;
    const int32_t ix0 = ox0 * S - g->pad_left;
    int32_t next = -pt, first = 0; /* next input row to expand; slot of the output row's first input row */
    int8_t *y = g->y + ox0 * c + ch;
    uint32_t bit = (uint32_t)(ox0 * c + ch);
    for (int32_t oy = 0; oy < oh; oy++, y += ow * c, bit += (uint32_t)(ow * c)) {
        const int32_t iy0 = oy * S - pt, end = iy0 + K;
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
        dwexp_row(rp, tow, q, y, c, g->mask, bit, K, S, fast, masked);
        first += S;
        if (first >= K)
            first -= K;
    }
}

typedef void (*dwexp_tile_fn)(const dw_args *g, int32_t ch, const dwexp_chan *q, int16_t *ring, int32_t ox0,
                              int32_t tow, int32_t n, int32_t pitch);
#define DWEXP_INST(K, S, FAST, MASKED)                                                                                \
    TT_NOINLINE_NOSCHED static void dwexp_tile_##K##_##S##_##FAST##MASKED(                                            \
        const dw_args *g, int32_t ch, const dwexp_chan *q, int16_t *ring, int32_t ox0, int32_t tow, int32_t n,        \
        int32_t pitch)                                                                                                \
    {                                                                                                                 \
        dwexp_tile(g, ch, q, ring, ox0, tow, n, pitch, K, S, FAST, MASKED);                                           \
    }
#define DWEXP_INST_KS(K, S) DWEXP_INST(K, S, 1, 0) DWEXP_INST(K, S, 1, 1) DWEXP_INST(K, S, 0, 2)
DWEXP_INST_KS(3, 1)
DWEXP_INST_KS(5, 1)
DWEXP_INST_KS(7, 1)

/* [kernel / 2 - 1][fast, fast masked, general (masked or not)]: stride 1 only (the path now runs only
 * in place, for rows wider than the staged 4-channel path's one tile; strides 2 were slower there) */
static const dwexp_tile_fn dwexp_fns[3][3] = {
    {dwexp_tile_3_1_10, dwexp_tile_3_1_11, dwexp_tile_3_1_02},
    {dwexp_tile_5_1_10, dwexp_tile_5_1_11, dwexp_tile_5_1_02},
    {dwexp_tile_7_1_10, dwexp_tile_7_1_11, dwexp_tile_7_1_02},
};

/* Output columns per tile for a kernel and stride: k expanded rows of a tile fit the ring. */
static int32_t dwexp_tile_cols(int32_t kernel, int32_t stride)
{
    const int32_t pitch = (DWEXP_RING_HALFS / kernel) & ~1;
    const int32_t p = (kernel + 1) / 2;
    return stride == 1 ? pitch - kernel : (pitch + 2) / 2 - p;
}

/* Every output of channel ch, in column tiles of at most dwexp_tile_cols (the input may be the
 * output when there is one tile and the stride is 1). */
static void dwexp_channel(const dw_args *g, int32_t ch, int32_t kernel, const int8_t *wc, int16_t *ring)
{
    const int32_t stride = g->stride, ow = g->ow;
    const int masked = g->mask != 0;
    dwexp_chan q;
    const int fast = dwexp_prepare(wc, kernel, g->bias[ch], g->mult[ch], g->shift[ch], g->zx, g->zy, &q);
    const dwexp_tile_fn fn = dwexp_fns[kernel / 2 - 1][fast ? masked : 2];
    const int32_t tile = dwexp_tile_cols(kernel, stride), p = (kernel + 1) / 2;
    for (int32_t ox0 = 0; ox0 < ow; ox0 += tile) {
        const int32_t tow = ow - ox0 < tile ? ow - ox0 : tile;
        const int32_t n = stride == 1 ? tow + kernel : 2 * (tow + p) - 2; /* halfwords read per row */
        fn(g, ch, &q, ring, ox0, tow, n, (n + 1) & ~1);
    }
}

/* Whether the expanded-rows path runs this conv (and with `inplace`, in place: one column tile). */
static int dwexp_supported(int32_t kernel, int32_t stride, int32_t ow, int inplace)
{
    /* 3x3 stride 2 (each input feeds only 2.25 MACs) and narrow outputs (per-channel costs over few
     * outputs): the 4-lane path does better (measured: tools/kernel_bench.py) */
    if ((kernel != 3 && kernel != 5 && kernel != 7) || (stride != 1 && stride != 2) || (kernel == 3 && stride == 2) ||
        ow < 8)
        return 0;
    return inplace && stride == 1 && ow <= dwexp_tile_cols(kernel, stride);
}

TT_NOINLINE_NOSCHED static void dwexp_conv(const dw_args *g, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                            int32_t c_lo)
{
    uint32_t ring32[DWEXP_RING_HALFS / 2]; /* word aligned */
    int16_t *ring = (int16_t *)(void *)ring32;
    const int32_t kk = kernel * kernel;
    for (int32_t ch = 0; ch < g->c; ch++)
        dwexp_channel(g, ch, kernel, ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk, ring);
}

/* ------------------------------------------------------------------ depthwise, 4 channels on staged rows
 *
 * Groups of 4 channels (c % 4 == 0): bands of a few rows (a patch stage's strips) and small tensors,
 * where the expanded-rows path's per-channel costs do not pay. The group's input rows are staged once
 * each into a ring of K rows on the stack, one word (its 4 channels' int8) per pixel, padding included
 * as zx bytes (whose products the zero-point fold cancels): every output is then branch-free with
 * constant offsets. Per tap: one word of the staged row, SXTB16 / SXTB16 ROR 8, one LDRD of the tap's
 * weights as int16 lanes ((c0, c0+2), (c0+1, c0+3)) and 4 SMLAxy; two horizontally adjacent outputs
 * share the weight loads (and at stride 1 all but one pixel). Requantization as in the expanded-rows
 * path (weights doubled, one SMMLAR) when every channel of the group allows it, else the general form.
 * An output row is written only after every row it reads is in the ring, and each row is staged once,
 * so with one column tile (and stride 1) the output may overwrite the input. */

#define DW4_RING_WORDS 264 /* 1056 bytes of stack: K staged rows of a column tile */

typedef struct {
    uint64_t t[DW_MAX_KERNEL * DW_MAX_KERNEL]; /* tap t: (w[c0], w[c0+2]) | (w[c0+1], w[c0+3]) << 32 */
    int32_t init[4];    /* lane mode 0: 2 (bias - zx sum w) (its weights doubled); else -zx sum w */
    int32_t q[4][4];    /* mode 0: multiplier, 2^(e-1) + zy 2^e, right shift e; mode 1: multiplier, khi, rsh,
                         * bias (fixed_point.h's one-multiply form); mode 2: multiplier, shift, bias */
    int32_t mode[4], zy;
} dw4_group;

/* The group's constants; returns 1 when every channel has the one-SMMLAR requantization (mode 0:
 * multiplier >= 0, right shift 1..23, |bias| < 2^29 - 2^21 so that the doubled accumulator cannot
 * overflow), else 0 (the lanes then pick their form: mode 1, tt_rq_apply, or mode 2, the general one:
 * dead channels, biases near -2^31). */
static int dw4_prepare(const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t kernel, int32_t c0,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy,
                       dw4_group *g)
{
    const int32_t kk = kernel * kernel;
    const int8_t *p[4];
    int32_t f[4];
    int all = 1;
    for (int32_t j = 0; j < 4; j++) {
        const int32_t ch = c0 + j, e = -shift[ch], b = bias[ch];
        p[j] = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
        tt_rq r = {0, 0, 0, 0};
        if (mult[ch] >= 0 && e >= 1 && e <= 23 && b > -(1 << 29) + (1 << 21) && b < (1 << 29) - (1 << 21))
            g->mode[j] = 0;
        else if (tt_rq_prepare(&r, b, mult[ch], shift[ch]))
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
        const int32_t ch = c0 + j, e = -shift[ch];
        g->q[j][0] = mult[ch];
        if (g->mode[j] == 0) {
            g->init[j] = 2 * (bias[ch] - zx * s[j]);
            g->q[j][1] = (int32_t)(UINT32_C(1) << (e - 1)) + zy * (int32_t)(UINT32_C(1) << e);
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

/* Output columns per tile: K staged rows of (tow - 1) S + K pixels fit the ring. */
static int32_t dw4_tile_cols(int32_t kernel, int32_t stride)
{
    return (DW4_RING_WORDS / kernel - kernel) / stride + 1;
}

/* (c % 4 != 0: groups of 4 channels, the rest by depthwise_channels; not in place) */
static int dw4_supported(int32_t kernel, int32_t stride, int32_t c)
{
    return (kernel == 3 || kernel == 5 || kernel == 7) && (stride == 1 || stride == 2) && c >= 4;
}

TT_NOINLINE_NOSCHED static void dw4_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi,
                                 int32_t c_lo)
{
    uint32_t ring[DW4_RING_WORDS];
    dw4_group g;
    const int32_t stride = a->stride, ow = a->ow, tile = dw4_tile_cols(kernel, stride);
    const int masked = a->mask != 0;
    for (int32_t c0 = 0; c0 + 3 < a->c; c0 += 4) {
        const int fast = dw4_prepare(w_lo, w_hi, c_lo, kernel, c0, a->bias, a->mult, a->shift, a->zx, a->zy, &g);
        const dw4_tile_fn fn = dw4_fns[kernel / 2 - 1][stride - 1][fast ? masked : 2];
        for (int32_t ox0 = 0; ox0 < ow; ox0 += tile) {
            const int32_t tow = ow - ox0 < tile ? ow - ox0 : tile;
            fn(a, c0, &g, ring, ox0, tow, (tow - 1) * stride + kernel);
        }
    }
}

#endif

void tt_conv_depthwise(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                       int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask)
{
#if TT_DSP
    if (dw4_supported(kernel, stride, c)) { /* measured: better than the expanded rows on MCUNet's layers */
        const dw_args g = {x, h, w, c, y, oh, ow, stride, pad_top, pad_left, bias, mult, shift, zx, zy, mask};
        dw4_conv(&g, kernel, w_lo, w_hi, c_lo);
        if (c & 3)
            depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult,
                               shift, zx, zy, mask, c & ~3, c);
    } else
#endif
        depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy,
                           mask, 0, c);
    if (mask)
        tt_mask_finish(mask, (uint32_t)(oh * ow * c));
}

/* The in-place stride-1 form (depthwise_inplace.c) on the DSP path: the planes path reads every
 * input row of a group before it writes the rows it overwrites, so y may be x. 0 when it does not
 * apply (the caller then runs the ring form). */
int tt_conv_depthwise_inplace_fast(int8_t *xy, int32_t h, int32_t w, int32_t c, int32_t kernel, int32_t pad,
                                   const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, const int32_t *bias,
                                   const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
#if TT_DSP
    if (pad != kernel / 2)
        return 0;
    const dw_args g = {xy, h, w, c, xy, h, w, 1, pad, pad, bias, mult, shift, zx, zy, mask};
    if (dw4_supported(kernel, 1, c) && (c & 3) == 0 && w <= dw4_tile_cols(kernel, 1)) /* one column tile */
        dw4_conv(&g, kernel, w_lo, w_hi, c_lo);
    else if (dwexp_supported(kernel, 1, w, 1))
        dwexp_conv(&g, kernel, w_lo, w_hi, c_lo);
    else
        return 0;
    if (mask)
        tt_mask_finish(mask, (uint32_t)(h * w * c));
    return 1;
#else
    (void)xy, (void)h, (void)w, (void)c, (void)kernel, (void)pad, (void)w_lo, (void)w_hi, (void)c_lo;
    (void)bias, (void)mult, (void)shift, (void)zx, (void)zy, (void)mask;
    return 0;
#endif
}

/* ------------------------------------------------------------------ generic */

/* Any groups, one output at a time: the portable path (and the DSP path's fallback). */
TT_NOINLINE static void conv_portable(const int8_t *x, int32_t h, int32_t w, int32_t cin, int8_t *y, int32_t oh,
                                      int32_t ow, int32_t cout, int32_t kernel, int32_t stride, int32_t pad_top,
                                      int32_t pad_left, int32_t groups, const int8_t *weights, const int32_t *bias,
                                      const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
    const int32_t ig = cin / groups, og = cout / groups;
    const int32_t wrow = kernel * kernel * ig;
    for (int32_t oy = 0; oy < oh; oy++) {
        const int32_t iy0 = oy * stride - pad_top;
        const int32_t i_lo = iy0 < 0 ? -iy0 : 0, i_hi = iy0 + kernel > h ? h - iy0 : kernel;
        for (int32_t ox = 0; ox < ow; ox++) {
            const int32_t ix0 = ox * stride - pad_left;
            const int32_t j_lo = ix0 < 0 ? -ix0 : 0, j_hi = ix0 + kernel > w ? w - ix0 : kernel;
            const int32_t pos = oy * ow + ox;
            for (int32_t o = 0; o < cout; o++) {
                const int32_t g0 = (o / og) * ig;
                const int8_t *wo = weights + o * wrow;
                int32_t sum = 0;
                for (int32_t i = i_lo; i < i_hi; i++) {
                    for (int32_t j = j_lo; j < j_hi; j++) {
                        const int8_t *xp = x + ((iy0 + i) * w + ix0 + j) * cin + g0;
                        const int8_t *wp = wo + (i * kernel + j) * ig;
                        for (int32_t ci = 0; ci < ig; ci++)
                            sum += wp[ci] * (xp[ci] - zx);
                    }
                }
                const uint32_t f = tt_requant_store(sum, bias[o], mult[o], shift[o], zy, y + pos * cout + o);
                if (mask)
                    tt_mask_put(mask, (uint32_t)(pos * cout + o), f);
            }
        }
    }
}

void tt_conv_generic(const int8_t *x, int32_t h, int32_t w, int32_t cin, int8_t *y, int32_t oh, int32_t ow,
                     int32_t cout, int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, int32_t groups,
                     const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                     int32_t zx, int32_t zy, uint8_t *mask)
{
#if TT_DSP
    if (groups == 1 && kernel * kernel * cin <= PW_XMAX)
        conv_dsp(x, h, w, cin, y, oh, ow, cout, kernel, stride, pad_top, pad_left, weights, bias, mult, shift, zx, zy,
                 mask);
    else
#endif
        conv_portable(x, h, w, cin, y, oh, ow, cout, kernel, stride, pad_top, pad_left, groups, weights, bias, mult,
                      shift, zx, zy, mask);
    if (mask)
        tt_mask_finish(mask, (uint32_t)(oh * ow * cout));
}
