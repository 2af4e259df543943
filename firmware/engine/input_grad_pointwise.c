/* Input gradient of a pointwise conv / dense layer: gx[p][i] = sum_o g[p][o] w[o][i], the weights
 * split into a lo part (input channels 0..k_lo-1) and a hi part. int32, or normalized int16 in
 * two passes (internal/input_grad_sink.h).
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/input_grad_sink.h"

/* ------------------------------------------------------------------ portable: column by column */

/* gx[p][i0 + i], i < n, for the input channels of one weight part (columns of a
 * [cout][stride] matrix starting at wcol = &w[0][first channel]); out = index of gx[p][i0]. */
TT_ALWAYS_INLINE void igp_columns_portable(const int16_t *gp, int32_t cout, const int8_t *wcol, int32_t stride,
                                           int32_t n, ig_sink *k, int mode, int32_t out)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t s = 0;
        const int8_t *wc = wcol + i;
        for (int32_t o = 0; o < cout; o++, wc += stride)
            s += gp[o] * *wc;
        ig_put(k, mode, out + i, s);
    }
}

#if !TT_DSP
/* The same sums, IGP_ROWS columns at a time in a local accumulator, adding g[o] times a contiguous
 * run of weight row o: a loop that compilers vectorize (the column form strides through the rows). */
#define IGP_ROWS 64
TT_ALWAYS_INLINE void igp_rows_portable(const int16_t *gp, int32_t cout, const int8_t *wcol, int32_t stride, int32_t n,
                                        ig_sink *k, int mode, int32_t out)
{
    int32_t acc[IGP_ROWS];
    for (int32_t i0 = 0; i0 < n; i0 += IGP_ROWS) {
        const int32_t m = n - i0 < IGP_ROWS ? n - i0 : IGP_ROWS;
        for (int32_t i = 0; i < m; i++)
            acc[i] = 0;
        const int8_t *wr = wcol + i0;
        for (int32_t o = 0; o < cout; o++, wr += stride) {
            const int32_t go = gp[o];
            for (int32_t i = 0; i < m; i++)
                acc[i] += go * wr[i];
        }
        for (int32_t i = 0; i < m; i++)
            ig_put(k, mode, out + i0 + i, acc[i]);
    }
}
#endif

/* ------------------------------------------------------------------ DSP: transposed weight tables, 4 columns */

#if TT_DSP
/* 4 input channels x 1 position, 2 output channels per iteration: the int16
 * pair (g[o], g[o+1]) is one load; each weight word is unpacked into
 * (i, i+2) / (i+1, i+3) lanes and multiplied by the matching g half (SMLAxy):
 * 3 loads + 4 unpacks + 8 MACs. */
TT_ALWAYS_INLINE void igp_columns_dsp(const int16_t *gp, int32_t cout, const int8_t *wcol, int32_t stride, int32_t n,
                                      ig_sink *k, int mode, int32_t out)
{
    int32_t i = 0;
    for (; i + 3 < n; i += 4) {
        const int8_t *w0 = wcol + i;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int32_t o = 0;
        for (; o + 1 < cout; o += 2) {
            const uint32_t gg = tt_read_s16x2(gp + o);
            const uint32_t wa = tt_read_s8x4(w0), wb = tt_read_s8x4(w0 + stride);
            w0 += 2 * stride;
            const uint32_t wae = tt_sxtb16(wa), wao = tt_sxtb16_ror8(wa);
            const uint32_t wbe = tt_sxtb16(wb), wbo = tt_sxtb16_ror8(wb);
            a0 = tt_smlabb(wae, gg, a0);
            a2 = tt_smlatb(wae, gg, a2);
            a1 = tt_smlabb(wao, gg, a1);
            a3 = tt_smlatb(wao, gg, a3);
            a0 = tt_smlabt(wbe, gg, a0);
            a2 = tt_smlatt(wbe, gg, a2);
            a1 = tt_smlabt(wbo, gg, a1);
            a3 = tt_smlatt(wbo, gg, a3);
        }
        if (o < cout) {
            const uint32_t gg = (uint32_t)(int32_t)gp[o] & 0xFFFFu;
            const uint32_t wa = tt_read_s8x4(w0);
            const uint32_t wae = tt_sxtb16(wa), wao = tt_sxtb16_ror8(wa);
            a0 = tt_smlabb(wae, gg, a0);
            a2 = tt_smlatb(wae, gg, a2);
            a1 = tt_smlabb(wao, gg, a1);
            a3 = tt_smlatb(wao, gg, a3);
        }
        ig_put(k, mode, out + i, a0);
        ig_put(k, mode, out + i + 1, a1);
        ig_put(k, mode, out + i + 2, a2);
        ig_put(k, mode, out + i + 3, a3);
    }
    if (i < n)
        igp_columns_portable(gp, cout, wcol + i, stride, n - i, k, mode, out + i);
}
#define IGP_COLUMNS igp_columns_dsp
#else
#define IGP_COLUMNS igp_rows_portable
#endif

/* Output channels per transposed-weight table (in the caller's scratch: 4 input channels x up to 48 output
 * pairs x 4 bytes, 768 bytes at most). */
#define IGP_OC 96

/* The table of min(cout, IGP_OC) outputs: 16 bytes per output pair (an odd last output paired with 0). */
int32_t tt_input_grad_pointwise_scratch_bytes(const tt_geom *g)
{
    const int32_t no = g->cout < IGP_OC ? g->cout : IGP_OC;
    return 16 * ((no + 1) / 2);
}

#if TT_DSP
/* The weights of input channels wcol[0..3] (rows of `stride` bytes) for outputs [o0, o0 + no),
 * transposed into int16 pairs along the outputs: per output pair (o, o+1) the words (w[o][i],
 * w[o+1][i]), i = 0..3, which SMLAD meets with the int16 pair (g[o], g[o+1]). An odd last output
 * is paired with 0. */
TT_ALWAYS_INLINE void igp_entry(uint32_t a, uint32_t b, uint64_t *tab)
{
    const uint32_t ae = tt_sxtb16(a), ao = tt_sxtb16_ror8(a), be = tt_sxtb16(b), bo = tt_sxtb16_ror8(b);
    const uint32_t w[4] = {tt_pkhbt((int32_t)ae, (int32_t)be), tt_pkhbt((int32_t)ao, (int32_t)bo), tt_pkhtb_hi(ae, be),
                           tt_pkhtb_hi(ao, bo)};
    TT_MEMCPY(tab, w, sizeof w);
}

static void igp_table(const int8_t *wcol, int32_t stride, int32_t o0, int32_t no, uint64_t *tab)
{
    const int8_t *wa = wcol + o0 * stride;
    int32_t j = 0;
    for (; j + 1 < no; j += 2, wa += 2 * stride, tab += 2)
        igp_entry(tt_read_s8x4(wa), tt_read_s8x4(wa + stride), tab);
    if (j < no)
        igp_entry(tt_read_s8x4(wa), 0u, tab);
}

/* gx[p][i0..i0+3] (+)= sum over outputs [o0, o0 + no) of g[p][o] w[o][i] for every position, from the
 * table: per output pair one g load, two LDRD, 4 SMLAD. */
TT_ALWAYS_INLINE void igp_positions(const int16_t *g, int32_t hw, int32_t cout, int32_t o0, int32_t no,
                                    const uint64_t *tab, ig_sink *k, int mode, int32_t out, int32_t cin)
{
    const int32_t npairs = no >> 1;
    for (int32_t p = 0; p < hw; p++, out += cin) {
        const int16_t *gp = g + p * cout + o0;
        const uint64_t *t = tab;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        int32_t j = npairs;
        for (; j >= 4; j -= 4, gp += 8, t += 8) { /* 4 output pairs per step: the loop's cost over 32 MACs */
            TT_UNROLL(4)
            for (int32_t q = 0; q < 4; q++) {
                const uint32_t g0 = tt_read_s16x2(gp + 2 * q);
                const uint64_t t0 = tt_ld64(t, 2 * q), t1 = tt_ld64(t, 2 * q + 1);
                a0 = tt_smlad(g0, (uint32_t)t0, a0);
                a1 = tt_smlad(g0, (uint32_t)(t0 >> 32), a1);
                a2 = tt_smlad(g0, (uint32_t)t1, a2);
                a3 = tt_smlad(g0, (uint32_t)(t1 >> 32), a3);
            }
        }
        for (; j >= 2; j -= 2, gp += 4, t += 4) {
            const uint32_t g0 = tt_read_s16x2(gp), g1 = tt_read_s16x2(gp + 2);
            const uint64_t t0 = tt_ld64(t, 0), t1 = tt_ld64(t, 1), t2 = tt_ld64(t, 2), t3 = tt_ld64(t, 3);
            a0 = tt_smlad(g0, (uint32_t)t0, a0);
            a1 = tt_smlad(g0, (uint32_t)(t0 >> 32), a1);
            a2 = tt_smlad(g0, (uint32_t)t1, a2);
            a3 = tt_smlad(g0, (uint32_t)(t1 >> 32), a3);
            a0 = tt_smlad(g1, (uint32_t)t2, a0);
            a1 = tt_smlad(g1, (uint32_t)(t2 >> 32), a1);
            a2 = tt_smlad(g1, (uint32_t)t3, a2);
            a3 = tt_smlad(g1, (uint32_t)(t3 >> 32), a3);
        }
        if (j) {
            const uint32_t g0 = tt_read_s16x2(gp);
            const uint64_t t0 = tt_ld64(t, 0), t1 = tt_ld64(t, 1);
            a0 = tt_smlad(g0, (uint32_t)t0, a0);
            a1 = tt_smlad(g0, (uint32_t)(t0 >> 32), a1);
            a2 = tt_smlad(g0, (uint32_t)t1, a2);
            a3 = tt_smlad(g0, (uint32_t)(t1 >> 32), a3);
            gp += 2;
            t += 2;
        }
        if (no & 1) { /* the odd last output: g alone in the low lane (the table's high lanes are 0) */
            const uint32_t g0 = (uint32_t)(uint16_t)gp[0];
            const uint64_t t0 = tt_ld64(t, 0), t1 = tt_ld64(t, 1);
            a0 = tt_smlad(g0, (uint32_t)t0, a0);
            a1 = tt_smlad(g0, (uint32_t)(t0 >> 32), a1);
            a2 = tt_smlad(g0, (uint32_t)t1, a2);
            a3 = tt_smlad(g0, (uint32_t)(t1 >> 32), a3);
        }
        ig_put(k, mode, out, a0);
        ig_put(k, mode, out + 1, a1);
        ig_put(k, mode, out + 2, a2);
        ig_put(k, mode, out + 3, a3);
    }
}

/* One weight part (n input channels, rows of `stride` bytes from wcol, gx columns from col0):
 * groups of 4 input channels through transposed tables of up to IGP_OC outputs (int32 results
 * accumulate over several tables; the normalized forms need one table: cout <= IGP_OC), the rest
 * column by column. Returns 0 when the part was not handled (normalized form, too many outputs). */
TT_ALWAYS_INLINE int igp_part(const int16_t *g, int32_t hw, int32_t cout, const int8_t *wcol, int32_t stride,
                              int32_t n, int32_t col0, int32_t cin, ig_sink *k, int mode, uint64_t *tab)
{
    if (mode != IG_STORE32 && cout > IGP_OC)
        return 0;
    int32_t i = 0;
    for (; i + 3 < n; i += 4)
        for (int32_t o0 = 0; o0 < cout; o0 += IGP_OC) {
            const int32_t no = cout - o0 < IGP_OC ? cout - o0 : IGP_OC;
            igp_table(wcol + i, stride, o0, no, tab);
            if (o0 == 0)
                igp_positions(g, hw, cout, o0, no, tab, k, mode, col0 + i, cin);
            else
                igp_positions(g, hw, cout, o0, no, tab, k, IG_ACC32, col0 + i, cin);
        }
    if (i < n)
        for (int32_t p = 0; p < hw; p++)
            igp_columns_portable(g + p * cout, cout, wcol + i, stride, n - i, k, mode, p * cin + col0 + i);
    return 1;
}
#endif

TT_ALWAYS_INLINE void pointwise_body(const int16_t *g, int32_t hw, int32_t cout, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t k_lo, int32_t cin, ig_sink *k, int mode, void *scratch)
{
    const int32_t k_hi = cin - k_lo;
#if TT_DSP
    if ((!k_lo || igp_part(g, hw, cout, w_lo, k_lo, k_lo, 0, cin, k, mode, scratch)) &&
        (!k_hi || igp_part(g, hw, cout, w_hi, k_hi, k_hi, k_lo, cin, k, mode, scratch)))
        return;
#else
    (void)scratch;
#endif
    for (int32_t p = 0; p < hw; p++) {
        const int16_t *gp = g + p * cout;
        if (k_lo)
            IGP_COLUMNS(gp, cout, w_lo, k_lo, k_lo, k, mode, p * cin);
        if (k_hi)
            IGP_COLUMNS(gp, cout, w_hi, k_hi, k_hi, k, mode, p * cin + k_lo);
    }
}

void tt_input_grad_pointwise(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t *gx, void *scratch)
{
    const int32_t hw = gm->oh * gm->ow, cout = gm->cout, cin = gm->cin, k_lo = l->k_lo;
    const int8_t *w_lo = l->w_lo, *w_hi = l->w_hi;
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_STORE32, scratch);
}

int32_t tt_input_grad_pointwise16(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, int32_t bits,
                                  int16_t *gx, void *scratch)
{
    const int32_t hw = gm->oh * gm->ow, cout = gm->cout, cin = gm->cin, k_lo = l->k_lo;
    const int8_t *w_lo = l->w_lo, *w_hi = l->w_hi;
    ig_sink k = {0, gx, 0, 0, 0, 0};
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_RANGE, scratch);
    const int32_t s = ig_start16(&k, bits);
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_STORE16, scratch);
    return e + s;
}
