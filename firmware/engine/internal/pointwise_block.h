/* The DSP pointwise engine shared by conv_pointwise.c and conv_generic.c (whose small full convs run
 * as pointwise on im2col rows): output channels in blocks of PW_BLOCK with their requantization
 * constants in a stack table, positions expanded to int16 (x - zx) once per group and served to
 * every channel of the block. Internal to the engine; DSP builds only. Its plain static functions
 * stay out of line in each of the two files, which use them all.
 */
#ifndef TT_POINTWISE_BLOCK_H
#define TT_POINTWISE_BLOCK_H

#include <stdint.h>

#include "dsp_intrinsics.h"
#include "fixed_point.h"
#include "mask_bits.h"

/* Output channels per block: their requantization constants sit in a table in the caller's scratch. */
#define PW_BLOCK 16
/* Input channels up to which four positions are expanded to int16 (x - zx) in the scratch (wider
 * inputs: pairs of channels x pairs of positions on the raw int8 rows). */
#define PW_XMAX 64
/* Expanded inputs of four positions: K inputs in groups of 4, plus one partial group of a second part. */
#define PW_X16_WORDS(K) (((K) / 4 + 1) * 4)
/* The scratch of the block engine (conv_pointwise.c, conv_generic.c): the block's requantization table
 * (PW_BLOCK x 16 bytes), then the expanded inputs (PW_X16_WORDS(PW_XMAX) words of 8 bytes; the
 * chunked path's chunk and partial sums fit there too). */
#define PW_TAB_BYTES (PW_BLOCK * 16)
#define PW_X16_BYTES (PW_X16_WORDS(PW_XMAX) * 8)

#if TT_DSP

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

/* Requantization modes of a block of channels: the general form (RQ_SLOW); the one-multiply form
 * with zy added (RQ_FAST) or folded into its constants (RQ_BEST); on expanded inputs doubled,
 * 2 (x - zx), one SMMLAR with zy folded (RQ_DBL, as in the depthwise DSP paths; the accumulator
 * starts at 2 bias, table {2 bias | m << 32, 2^(e-1) + zy 2^e | e << 32}). */
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
    uint64_t *x16; /* PW_X16_BYTES of the caller's scratch */
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

/* The requantization table of output channels [ob, ob + nb) and its mode: tt_rq_prepare's and
 * tt_rq_foldable's constants (fixed_point.h), written out here, where GCC then keeps the loop as tight
 * as when the two kernels shared one file (out of line, as then). */
TT_NOINLINE static int pw_prepare(const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zy,
                                  int32_t ob, int32_t nb, pw_rq *tab)
{
    int best = 1;
    for (int32_t j = 0; j < nb; j++) {
        const int32_t o = ob + j, b = bias[o], m = mult[o], e = -shift[o];
        if (m < 0 || e < 2 || e > 31)
            return RQ_SLOW;
        const int32_t rsh = e - 1;
        best &= rsh <= 22;
        tab[j][0] = (uint32_t)b | (uint64_t)(uint32_t)m << 32;
        tab[j][1] = (UINT32_C(1) << (e - 2)) | (uint64_t)(uint32_t)rsh << 32;
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
TT_NOINLINE static int pw_prepare_dbl(const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zy,
                                      int32_t ob, int32_t nb, int32_t k, pw_rq *tab)
{
    if (k > 16384)
        return 0;
    const int32_t lim = (1 << 30) - 32385 * k;
    for (int32_t j = 0; j < nb; j++) {
        tt_rq_chan r = {bias[ob + j], mult[ob + j], shift[ob + j], zy};
        if ((r.mult < 0 || r.shift > -1 || r.shift < -23 || r.bias <= -lim || r.bias >= lim) &&
            !tt_rq_dead(&r, tt_rq_sum_bound(k))) /* dead channels as the constants they are */
            return 0;
        const int32_t e = -r.shift, b = r.bias;
        const int32_t kk = tt_rq_dbl_k(e, r.zy);
        tab[j][0] = (uint32_t)(2 * b) | (uint64_t)(uint32_t)r.mult << 32;
        tab[j][1] = (uint32_t)kk | (uint64_t)(uint32_t)e << 32;
    }
    return 1;
}

#endif

#endif
