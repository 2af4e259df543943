/* Input gradients: the transposed convolutions of dL/dacc (int16) with the int8 weights.
 *
 * All three are written in gather form (each gx element sums everything that
 * reaches it), so gx needs no clearing and is written exactly once. Each kernel
 * body hands its values to a sink (ig_put) whose mode is a compile-time
 * constant of the instantiation: store int32; only track the range (pass 1 of
 * the normalized int16 form); store rshift_round(v, s) as int16 (pass 2).
 */
#include "tt_kernels.h"

#include "dsp_intrinsics.h"
#include "fixed_point.h"

enum { IG_STORE32 = 0, IG_RANGE = 1, IG_STORE16 = 2, IG_ACC32 = 3 };

typedef struct {
    int32_t *gx32;
    int16_t *gx16;
    int32_t lsh, rsh; /* IG_STORE16: rshift_round(v, s) = ceil(t / 2), t = (v << lsh) >> rsh (see ig_start16) */
    int32_t lo, hi;   /* IG_RANGE */
} ig_sink;

TT_ALWAYS_INLINE void ig_put(ig_sink *k, int mode, int32_t i, int32_t v)
{
    if (mode == IG_STORE32) {
        k->gx32[i] = v;
    } else if (mode == IG_ACC32) {
        k->gx32[i] += v;
    } else if (mode == IG_RANGE) {
        k->lo = v < k->lo ? v : k->lo;
        k->hi = v > k->hi ? v : k->hi;
    } else {
        const int32_t t = tt_wrap32((uint32_t)v << k->lsh) >> k->rsh;
        k->gx16[i] = (int16_t)(t - (t >> 1));
    }
}

/* Pass 2 constants from the range of pass 1; returns s. rshift_round(v, s) = floor((v + 2^(s-1)) / 2^s)
 * = ceil(floor(v / 2^(s-1)) / 2) for s >= 1 (floors compose); s = 0 runs the same formula on 2v,
 * which cannot overflow because then |v| < 2^15. */
static int32_t ig_start16(ig_sink *k, int32_t bits)
{
    const uint64_t a = tt_abs64(k->lo), b = (uint64_t)k->hi;
    const int32_t s = tt_normalize_shift(a > b ? a : b, bits);
    k->lsh = s == 0;
    k->rsh = s == 0 ? 0 : s - 1;
    return s;
}

/* ------------------------------------------------------------------ pointwise */

/* gx[p][i0 + i], i < n, for the input channels of one weight part (columns of a
 * [cout][stride] matrix starting at wcol = &w[0][first channel]); out = index of gx[p][i0]. */
TT_ALWAYS_INLINE void pw_columns_portable(const int16_t *gp, int32_t cout, const int8_t *wcol, int32_t stride,
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

#if TT_DSP
/* 4 input channels x 1 position, 2 output channels per iteration: the int16
 * pair (g[o], g[o+1]) is one load; each weight word is unpacked into
 * (i, i+2) / (i+1, i+3) lanes and multiplied by the matching g half (SMLAxy):
 * 3 loads + 4 unpacks + 8 MACs. */
TT_ALWAYS_INLINE void pw_columns_dsp(const int16_t *gp, int32_t cout, const int8_t *wcol, int32_t stride, int32_t n,
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
        pw_columns_portable(gp, cout, wcol + i, stride, n - i, k, mode, out + i);
}
#define PW_COLUMNS pw_columns_dsp
#else
#define PW_COLUMNS pw_columns_portable
#endif

#if TT_DSP
/* Output channels per transposed-weight table: 4 input channels x 32 output pairs x 4 bytes. */
#define IGP_OC 64

/* The weights of input channels wcol[0..3] (rows of `stride` bytes) for outputs [o0, o0 + no),
 * transposed into int16 pairs along the outputs: per output pair (o, o+1) the words (w[o][i],
 * w[o+1][i]), i = 0..3, which SMLAD meets with the int16 pair (g[o], g[o+1]). An odd last output
 * is paired with 0. */
static void igp_table(const int8_t *wcol, int32_t stride, int32_t o0, int32_t no, uint64_t *tab)
{
    const int8_t *wa = wcol + o0 * stride;
    for (int32_t j = 0; j < no; j += 2, wa += 2 * stride, tab += 2) {
        const uint32_t a = tt_read_s8x4(wa), b = j + 1 < no ? tt_read_s8x4(wa + stride) : 0u;
        const uint32_t ae = tt_sxtb16(a), ao = tt_sxtb16_ror8(a), be = tt_sxtb16(b), bo = tt_sxtb16_ror8(b);
        tab[0] = tt_pack16((int32_t)ae, (int32_t)be) | (uint64_t)tt_pack16((int32_t)ao, (int32_t)bo) << 32;
        tab[1] = tt_pack16((int32_t)(ae >> 16), (int32_t)(be >> 16)) |
                 (uint64_t)tt_pack16((int32_t)(ao >> 16), (int32_t)(bo >> 16)) << 32;
    }
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
                              int32_t n, int32_t col0, int32_t cin, ig_sink *k, int mode)
{
    if (mode != IG_STORE32 && cout > IGP_OC)
        return 0;
    uint64_t tab[IGP_OC];
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
            pw_columns_portable(g + p * cout, cout, wcol + i, stride, n - i, k, mode, p * cin + col0 + i);
    return 1;
}
#endif

TT_ALWAYS_INLINE void pointwise_body(const int16_t *g, int32_t hw, int32_t cout, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t k_lo, int32_t cin, ig_sink *k, int mode)
{
    const int32_t k_hi = cin - k_lo;
#if TT_DSP
    if ((!k_lo || igp_part(g, hw, cout, w_lo, k_lo, k_lo, 0, cin, k, mode)) &&
        (!k_hi || igp_part(g, hw, cout, w_hi, k_hi, k_hi, k_lo, cin, k, mode)))
        return;
#endif
    for (int32_t p = 0; p < hw; p++) {
        const int16_t *gp = g + p * cout;
        if (k_lo)
            PW_COLUMNS(gp, cout, w_lo, k_lo, k_lo, k, mode, p * cin);
        if (k_hi)
            PW_COLUMNS(gp, cout, w_hi, k_hi, k_hi, k, mode, p * cin + k_lo);
    }
}

void tt_input_grad_pointwise(const int16_t *g, int32_t hw, int32_t cout,
                             const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, int32_t cin, int32_t *gx)
{
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_STORE32);
}

int32_t tt_input_grad_pointwise16(const int16_t *g, int32_t e, int32_t hw, int32_t cout, const int8_t *w_lo,
                                  const int8_t *w_hi, int32_t k_lo, int32_t cin, int32_t bits, int16_t *gx)
{
    ig_sink k = {0, gx, 0, 0, 0, 0};
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_RANGE);
    const int32_t s = ig_start16(&k, bits);
    pointwise_body(g, hw, cout, w_lo, w_hi, k_lo, cin, &k, IG_STORE16);
    return e + s;
}

/* ------------------------------------------------------------------ depthwise / generic */

/* Taps of a kernel axis that reach input coordinate `in` (gather form): i = first, first + stride, ... < end,
 * output coordinate (in + pad - i) / stride. Returns the number of taps. */
static inline int32_t tap_range(int32_t in, int32_t pad, int32_t stride, int32_t kernel, int32_t out_size,
                                int32_t *first)
{
    const int32_t t = in + pad; /* i <= t and t - i <= stride (out_size - 1), t - i = 0 mod stride */
    int32_t lo = t - stride * (out_size - 1);
    if (lo < 0)
        lo = 0;
    lo += (t - lo) % stride;
    const int32_t hi = t < kernel - 1 ? t : kernel - 1;
    *first = lo;
    return lo > hi ? 0 : (hi - lo) / stride + 1;
}

TT_ALWAYS_INLINE void dw_channels_portable(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                           int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                           const int8_t *w_hi, int32_t c_lo, ig_sink *k, int mode, int32_t c_begin,
                                           int32_t c_end)
{
    const int32_t kk = kernel * kernel;
    for (int32_t iy = 0; iy < h; iy++) {
        int32_t i0;
        const int32_t ni = tap_range(iy, pad, stride, kernel, oh, &i0);
        for (int32_t ix = 0; ix < w; ix++) {
            int32_t j0;
            const int32_t nj = tap_range(ix, pad, stride, kernel, ow, &j0);
            for (int32_t ch = c_begin; ch < c_end; ch++) {
                const int8_t *wc = ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk;
                int32_t s = 0;
                for (int32_t a = 0; a < ni; a++) {
                    const int32_t i = i0 + a * stride, oy = (iy + pad - i) / stride;
                    for (int32_t b = 0; b < nj; b++) {
                        const int32_t j = j0 + b * stride, ox = (ix + pad - j) / stride;
                        s += g[(oy * ow + ox) * c + ch] * wc[i * kernel + j];
                    }
                }
                ig_put(k, mode, (iy * w + ix) * c + ch, s);
            }
        }
    }
}

#if TT_DSP
#define DW_MAX_KERNEL 7

/* 4 channels x 1 tap: (g[c0], g[c0+1]) and (g[c0+2], g[c0+3]) times the packed weights. */
#define DWG_MAC4(GP, WP)                                                                        \
    do {                                                                                        \
        const uint32_t g01_ = tt_read_s16x2(GP), g23_ = tt_read_s16x2((GP) + 2);                \
        a0 = tt_smlabb(g01_, (WP)[0], a0);                                                      \
        a1 = tt_smlatt(g01_, (WP)[0], a1);                                                      \
        a2 = tt_smlabb(g23_, (WP)[1], a2);                                                      \
        a3 = tt_smlatt(g23_, (WP)[1], a3);                                                      \
    } while (0)

/* Stride 1, every tap inside: gx = sum over the kernel x kernel window of g whose
 * corner gr is output (iy + pad - kernel + 1, ix + pad - kernel + 1), against the
 * taps in reverse order. With a constant kernel the taps unroll completely. */
TT_ALWAYS_INLINE void dwg_interior(const int16_t *gr, int32_t c, int32_t row_step, const uint32_t (*table)[2],
                                   int32_t kernel, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int32_t last = kernel * kernel - 1;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 7
#endif
    for (int32_t ii = 0; ii < kernel; ii++) {
        const int16_t *gp = gr + ii * row_step;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 7
#endif
        for (int32_t jj = 0; jj < kernel; jj++)
            DWG_MAC4(gp + jj * c, table[last - ii * kernel - jj]);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

#if defined(__GNUC__)
#define DWG_NOINLINE __attribute__((noinline))
#else
#define DWG_NOINLINE
#endif
typedef void (*dwg_interior_fn)(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a);
DWG_NOINLINE static void dwg_interior_3(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwg_interior(gr, c, rs, t, 3, a);
}
DWG_NOINLINE static void dwg_interior_5(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwg_interior(gr, c, rs, t, 5, a);
}
DWG_NOINLINE static void dwg_interior_7(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwg_interior(gr, c, rs, t, 7, a);
}

/* Groups of 4 channels; their weights repacked once into int16 pairs matching
 * the (g[c], g[c+1]) pairs of two int16x2 loads: 4 SMLAxy per tap. Inputs whose
 * taps all land on outputs (stride 1, away from the borders) take the unrolled
 * window; the others walk their valid taps. */
TT_ALWAYS_INLINE void dw_dsp(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                             int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                             ig_sink *k, int mode)
{
    const int32_t kk = kernel * kernel;
    const dwg_interior_fn interior = stride != 1 ? 0
                                     : kernel == 3 ? dwg_interior_3
                                     : kernel == 5 ? dwg_interior_5
                                     : kernel == 7 ? dwg_interior_7
                                                   : 0;
    /* stride 1: inputs ix whose outputs ix + pad - j, j < kernel, all exist */
    const int32_t ix_in0 = kernel - 1 - pad, ix_in1 = ow - pad < w ? ow - pad : w;
    uint32_t table[DW_MAX_KERNEL * DW_MAX_KERNEL][2];
    int32_t c0 = 0;
    for (; c0 + 3 < c; c0 += 4) {
        for (int32_t t = 0; t < kk; t++) {
            int32_t v[4];
            for (int32_t j = 0; j < 4; j++) {
                const int32_t ch = c0 + j;
                v[j] = ch < c_lo ? w_lo[ch * kk + t] : w_hi[(ch - c_lo) * kk + t];
            }
            table[t][0] = tt_pack16(v[0], v[1]);
            table[t][1] = tt_pack16(v[2], v[3]);
        }
        for (int32_t iy = 0; iy < h; iy++) {
            int32_t i0;
            const int32_t ni = tap_range(iy, pad, stride, kernel, oh, &i0);
            const int rows_inside = interior && iy + pad - kernel + 1 >= 0 && iy + pad <= oh - 1;
            for (int32_t ix = 0; ix < w; ix++) {
                const int32_t out = (iy * w + ix) * c + c0;
                if (rows_inside && ix >= ix_in0 && ix < ix_in1) {
                    int32_t acc[4];
                    interior(g + ((iy + pad - kernel + 1) * ow + ix + pad - kernel + 1) * c + c0, c, ow * c, table, acc);
                    ig_put(k, mode, out, acc[0]);
                    ig_put(k, mode, out + 1, acc[1]);
                    ig_put(k, mode, out + 2, acc[2]);
                    ig_put(k, mode, out + 3, acc[3]);
                    continue;
                }
                int32_t j0;
                const int32_t nj = tap_range(ix, pad, stride, kernel, ow, &j0);
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                for (int32_t a = 0; nj > 0 && a < ni; a++) {
                    const int32_t i = i0 + a * stride, oy = (iy + pad - i) / stride;
                    /* an index, not a pointer: stepping left past the first output would leave the array */
                    int32_t gi = (oy * ow + (ix + pad - j0) / stride) * c + c0;
                    const uint32_t *wp = table[i * kernel + j0];
                    for (int32_t b = 0; b < nj; b++, gi -= c, wp += 2 * stride)
                        DWG_MAC4(g + gi, wp);
                }
                ig_put(k, mode, out, a0);
                ig_put(k, mode, out + 1, a1);
                ig_put(k, mode, out + 2, a2);
                ig_put(k, mode, out + 3, a3);
            }
        }
    }
    if (c0 < c)
        dw_channels_portable(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, mode, c0, c);
}
#endif

TT_ALWAYS_INLINE void depthwise_body(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                     int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t c_lo, ig_sink *k, int mode)
{
#if TT_DSP
    if (kernel <= DW_MAX_KERNEL) {
        dw_dsp(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, mode);
        return;
    }
#endif
    dw_channels_portable(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, mode, 0, c);
}

void tt_input_grad_depthwise(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                             int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi,
                             int32_t c_lo, int32_t *gx)
{
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    depthwise_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_STORE32);
}

int32_t tt_input_grad_depthwise16(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                  int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                  const int8_t *w_hi, int32_t c_lo, int32_t bits, int16_t *gx)
{
    ig_sink k = {0, gx, 0, 0, 0, 0};
    depthwise_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_RANGE);
    const int32_t s = ig_start16(&k, bits);
    depthwise_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_STORE16);
    return e + s;
}

TT_ALWAYS_INLINE void generic_body(const int16_t *g, int32_t oh, int32_t ow, int32_t cout, int32_t kernel,
                                   int32_t stride, int32_t pad, int32_t groups, const int8_t *weights, int32_t h,
                                   int32_t w, int32_t cin, ig_sink *k, int mode)
{
    const int32_t ig = cin / groups, og = cout / groups;
    const int32_t wrow = kernel * kernel * ig;
    for (int32_t iy = 0; iy < h; iy++) {
        int32_t i0;
        const int32_t ni = tap_range(iy, pad, stride, kernel, oh, &i0);
        for (int32_t ix = 0; ix < w; ix++) {
            int32_t j0;
            const int32_t nj = tap_range(ix, pad, stride, kernel, ow, &j0);
            for (int32_t ci = 0; ci < cin; ci++) {
                const int32_t grp = ci / ig, cl = ci - grp * ig;
                int32_t s = 0;
                for (int32_t a = 0; a < ni; a++) {
                    const int32_t i = i0 + a * stride, oy = (iy + pad - i) / stride;
                    for (int32_t b = 0; b < nj; b++) {
                        const int32_t j = j0 + b * stride, ox = (ix + pad - j) / stride;
                        const int16_t *gp = g + (oy * ow + ox) * cout + grp * og;
                        const int8_t *wp = weights + grp * og * wrow + (i * kernel + j) * ig + cl;
                        for (int32_t o = 0; o < og; o++, wp += wrow)
                            s += gp[o] * *wp;
                    }
                }
                ig_put(k, mode, (iy * w + ix) * cin + ci, s);
            }
        }
    }
}

void tt_input_grad_generic(const int16_t *g, int32_t oh, int32_t ow, int32_t cout, int32_t kernel, int32_t stride,
                           int32_t pad, int32_t groups, const int8_t *weights, int32_t h, int32_t w, int32_t cin,
                           int32_t *gx)
{
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_STORE32);
}

int32_t tt_input_grad_generic16(const int16_t *g, int32_t e, int32_t oh, int32_t ow, int32_t cout, int32_t kernel,
                                int32_t stride, int32_t pad, int32_t groups, const int8_t *weights, int32_t h,
                                int32_t w, int32_t cin, int32_t bits, int16_t *gx)
{
    ig_sink k = {0, gx, 0, 0, 0, 0};
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_RANGE);
    const int32_t s = ig_start16(&k, bits);
    generic_body(g, oh, ow, cout, kernel, stride, pad, groups, weights, h, w, cin, &k, IG_STORE16);
    return e + s;
}
