/* Forward convolutions: pointwise (split lo/hi weights), depthwise (split by channel), generic.
 *
 * acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy); mask = clamp inactive.
 * Integer sums are exact and associative, so the DSP fast paths may reorder and
 * block them freely: sum w (x - zx) = sum w x - zx sum w (the zero point folded
 * through the per-channel weight sums keeps the hot loop pure int8 x int8).
 */
#include "tt_kernels.h"

#include "dsp_intrinsics.h"
#include "fixed_point.h"
#include "mask_bits.h"

/* ------------------------------------------------------------------ pointwise */

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

/* The hot loop: 2 output channels x 2 positions, 4 inputs per step (16 per
 * iteration). Each int8x4 load is unpacked once (SXTB16, SXTB16 ROR 8) and used
 * twice: 4 loads + 8 unpacks + 8 SMLAD per 16 MACs. The second row of x and of
 * w is addressed by a stride register from the first, so the loop needs only
 * two pointers. a = {c0p0, c0p1, c1p0, c1p1}. */
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

/* rows x0, x0 + sx and w0, w0 + sw over n inputs, added to s00..s11 */
TT_ALWAYS_INLINE void dot_2x2_rows(const int8_t *x0, int32_t sx, const int8_t *w0, int32_t sw, int32_t n,
                                   int32_t *a)
{
    int32_t s00 = a[0], s01 = a[1], s10 = a[2], s11 = a[3];
    for (const int8_t *end = x0 + (n & ~15); x0 != end; x0 += 16, w0 += 16) {
        DOT_2X2_STEP(0);
        DOT_2X2_STEP(4);
        DOT_2X2_STEP(8);
        DOT_2X2_STEP(12);
    }
    if (n & 8) {
        DOT_2X2_STEP(0);
        DOT_2X2_STEP(4);
        x0 += 8;
        w0 += 8;
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
    a[0] = s00;
    a[1] = s01;
    a[2] = s10;
    a[3] = s11;
}

/* One 2x2 block over both weight parts; out of line so that the loops get the
 * registers (inlined into the block loop, GCC spills the pointers). */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void dot_2x2_block(const int8_t *x0, int32_t cin, const int8_t *wl0, int32_t k_lo, const int8_t *wh0,
                          int32_t k_hi, int32_t *a)
{
    a[0] = a[1] = a[2] = a[3] = 0;
    if (!k_hi) { /* one part: x and w rows share the stride, one register fewer in the loop */
        dot_2x2_rows(x0, cin, wl0, cin, cin, a);
    } else if (!k_lo) {
        dot_2x2_rows(x0, cin, wh0, cin, cin, a);
    } else {
        dot_2x2_rows(x0, cin, wl0, k_lo, k_lo, a);
        dot_2x2_rows(x0 + k_lo, cin, wh0, k_hi, k_hi, a);
    }
}

/* 1 output channel x 2 positions (odd cout), zero point folded by the caller. */
TT_ALWAYS_INLINE void dot_1x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, int32_t n, int32_t *a)
{
    int32_t s0 = a[0], s1 = a[1];
    for (int32_t q = n >> 2; q > 0; --q) {
        const uint32_t xa = tt_read_s8x4(x0), xb = tt_read_s8x4(x1), w = tt_read_s8x4(w0);
        x0 += 4;
        x1 += 4;
        w0 += 4;
        const uint32_t we = tt_sxtb16(w), wo = tt_sxtb16_ror8(w);
        s0 = tt_smlad(we, tt_sxtb16(xa), s0);
        s1 = tt_smlad(we, tt_sxtb16(xb), s1);
        s0 = tt_smlad(wo, tt_sxtb16_ror8(xa), s0);
        s1 = tt_smlad(wo, tt_sxtb16_ror8(xb), s1);
    }
    for (int32_t r = n & 3; r > 0; --r) {
        const int32_t w = *w0++;
        s0 += w * *x0++;
        s1 += w * *x1++;
    }
    a[0] = s0;
    a[1] = s1;
}

/* 2 output channels x 1 position (odd hw, dense layers): the position is used
 * only once per weight, so subtract the zero point in the lanes (SSUB16)
 * instead of needing the weight sums. */
TT_ALWAYS_INLINE void dot_2x1_zp(const int8_t *x0, const int8_t *w0, const int8_t *w1, int32_t n, int32_t zx, int32_t *a)
{
    const uint32_t zz = tt_pack16(zx, zx);
    int32_t s0 = a[0], s1 = a[1];
    for (int32_t q = n >> 2; q > 0; --q) {
        const uint32_t xa = tt_read_s8x4(x0), wa = tt_read_s8x4(w0), wb = tt_read_s8x4(w1);
        x0 += 4;
        w0 += 4;
        w1 += 4;
        const uint32_t xe = tt_ssub16(tt_sxtb16(xa), zz), xo = tt_ssub16(tt_sxtb16_ror8(xa), zz);
        s0 = tt_smlad(tt_sxtb16(wa), xe, s0);
        s1 = tt_smlad(tt_sxtb16(wb), xe, s1);
        s0 = tt_smlad(tt_sxtb16_ror8(wa), xo, s0);
        s1 = tt_smlad(tt_sxtb16_ror8(wb), xo, s1);
    }
    for (int32_t r = n & 3; r > 0; --r) {
        const int32_t xv = *x0++ - zx;
        s0 += *w0++ * xv;
        s1 += *w1++ * xv;
    }
    a[0] = s0;
    a[1] = s1;
}

TT_ALWAYS_INLINE int32_t dot_1x1_zp(const int8_t *x0, const int8_t *w0, int32_t n, int32_t zx, int32_t s)
{
    const uint32_t zz = tt_pack16(zx, zx);
    for (int32_t q = n >> 2; q > 0; --q) {
        const uint32_t xa = tt_read_s8x4(x0), wa = tt_read_s8x4(w0);
        x0 += 4;
        w0 += 4;
        s = tt_smlad(tt_sxtb16(wa), tt_ssub16(tt_sxtb16(xa), zz), s);
        s = tt_smlad(tt_sxtb16_ror8(wa), tt_ssub16(tt_sxtb16_ror8(xa), zz), s);
    }
    for (int32_t r = n & 3; r > 0; --r)
        s += *w0++ * (*x0++ - zx);
    return s;
}

/* the conv epilogue with the channel's constants prepared: y = clamp(MBQM(sat32(bias + sum)) + zy) */
TT_ALWAYS_INLINE uint32_t requant_store(int32_t sum, const tt_requant_channel *q, int32_t zy, int8_t *y)
{
    return tt_store_int8(tt_requant_apply(sum, q), zy, y);
}

static int32_t channel_weight_sum(const int8_t *w_lo, const int8_t *w_hi, int32_t k_lo, int32_t k_hi, int32_t o)
{
    return (k_lo ? weight_row_sum(w_lo + o * k_lo, k_lo) : 0) + (k_hi ? weight_row_sum(w_hi + o * k_hi, k_hi) : 0);
}

/* Output channel pairs outer (their weight rows stay in cache, flash reads stay
 * local, the requant constants are prepared once), position pairs inner. */
static void pointwise_dsp(const int8_t *x, int32_t hw, int32_t cin, int8_t *y, int32_t cout, const int8_t *w_lo,
                          const int8_t *w_hi, int32_t k_lo, const int32_t *wsum, const int32_t *bias,
                          const int32_t *mult, const int32_t *shift, int32_t zx, int32_t zy, uint8_t *mask)
{
    const int32_t k_hi = cin - k_lo;
    const int even_cout = (cout & 1) == 0;
    int32_t o = 0;
    for (; o + 1 < cout; o += 2) {
        const int8_t *wl0 = k_lo ? w_lo + o * k_lo : 0, *wl1 = k_lo ? wl0 + k_lo : 0;
        const int8_t *wh0 = k_hi ? w_hi + o * k_hi : 0, *wh1 = k_hi ? wh0 + k_hi : 0;
        int32_t zw0 = 0, zw1 = 0;
        if (hw >= 2) {
            zw0 = zx * (wsum ? wsum[o] : channel_weight_sum(w_lo, w_hi, k_lo, k_hi, o));
            zw1 = zx * (wsum ? wsum[o + 1] : channel_weight_sum(w_lo, w_hi, k_lo, k_hi, o + 1));
        }
        const tt_requant_channel q0 = tt_requant_prepare(bias[o], mult[o], shift[o]);
        const tt_requant_channel q1 = tt_requant_prepare(bias[o + 1], mult[o + 1], shift[o + 1]);
        const int8_t *x0 = x;
        int8_t *y0 = y + o;
        uint32_t bit = (uint32_t)o;
        int32_t p = 0;
        for (; p + 1 < hw; p += 2, x0 += 2 * cin, y0 += 2 * cout, bit += 2u * (uint32_t)cout) {
            int32_t a[4];
            dot_2x2_block(x0, cin, wl0, k_lo, wh0, k_hi, a);
            const uint32_t f00 = requant_store(a[0] - zw0, &q0, zy, y0);
            const uint32_t f10 = requant_store(a[2] - zw1, &q1, zy, y0 + 1);
            const uint32_t f01 = requant_store(a[1] - zw0, &q0, zy, y0 + cout);
            const uint32_t f11 = requant_store(a[3] - zw1, &q1, zy, y0 + cout + 1);
            if (mask) {
                if (even_cout) { /* o and bit are even: both pairs sit inside one byte each */
                    tt_mask_put_bits_in_byte(mask, bit, f00 | (f10 << 1), 2);
                    tt_mask_put_bits_in_byte(mask, bit + (uint32_t)cout, f01 | (f11 << 1), 2);
                } else {
                    tt_mask_put_bits(mask, bit, f00 | (f10 << 1), 2);
                    tt_mask_put_bits(mask, bit + (uint32_t)cout, f01 | (f11 << 1), 2);
                }
            }
        }
        if (p < hw) {
            int32_t a[2] = {0, 0};
            if (k_lo)
                dot_2x1_zp(x0, wl0, wl1, k_lo, zx, a);
            if (k_hi)
                dot_2x1_zp(x0 + k_lo, wh0, wh1, k_hi, zx, a);
            const uint32_t f0 = requant_store(a[0], &q0, zy, y0);
            const uint32_t f1 = requant_store(a[1], &q1, zy, y0 + 1);
            if (mask)
                tt_mask_put_bits(mask, bit, f0 | (f1 << 1), 2);
        }
    }
    if (o < cout) { /* odd cout: the last channel alone */
        const int8_t *wl0 = k_lo ? w_lo + o * k_lo : 0, *wh0 = k_hi ? w_hi + o * k_hi : 0;
        const int32_t zw0 = hw >= 2 ? zx * (wsum ? wsum[o] : channel_weight_sum(w_lo, w_hi, k_lo, k_hi, o)) : 0;
        const tt_requant_channel q0 = tt_requant_prepare(bias[o], mult[o], shift[o]);
        int32_t p = 0;
        for (; p + 1 < hw; p += 2) {
            const int8_t *x0 = x + p * cin, *x1 = x0 + cin;
            int32_t a[2] = {0, 0};
            if (k_lo)
                dot_1x2(x0, x1, wl0, k_lo, a);
            if (k_hi)
                dot_1x2(x0 + k_lo, x1 + k_lo, wh0, k_hi, a);
            int8_t *y0 = y + p * cout + o;
            const uint32_t f0 = requant_store(a[0] - zw0, &q0, zy, y0);
            const uint32_t f1 = requant_store(a[1] - zw0, &q0, zy, y0 + cout);
            if (mask) {
                tt_mask_put(mask, (uint32_t)(p * cout + o), f0);
                tt_mask_put(mask, (uint32_t)((p + 1) * cout + o), f1);
            }
        }
        if (p < hw) {
            const int8_t *x0 = x + p * cin;
            int32_t s = 0;
            if (k_lo)
                s = dot_1x1_zp(x0, wl0, k_lo, zx, s);
            if (k_hi)
                s = dot_1x1_zp(x0 + k_lo, wh0, k_hi, zx, s);
            const uint32_t f = requant_store(s, &q0, zy, y + p * cout + o);
            if (mask)
                tt_mask_put(mask, (uint32_t)(p * cout + o), f);
        }
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

/* 4 channels (lanes e = c0, c0+2; o = c0+1, c0+3) x 1 tap: 1 load, 2 unpacks, 4 SMLAxy. */
#define DW_MAC4(X, WP)                                  \
    do {                                                \
        const uint32_t xe_ = tt_sxtb16(X);              \
        const uint32_t xo_ = tt_sxtb16_ror8(X);         \
        const uint32_t we_ = (WP)[0], wo_ = (WP)[1];    \
        a0 = tt_smlabb(xe_, we_, a0);                   \
        a2 = tt_smlatt(xe_, we_, a2);                   \
        a1 = tt_smlabb(xo_, wo_, a1);                   \
        a3 = tt_smlatt(xo_, wo_, a3);                   \
    } while (0)

/* All kernel^2 taps of an output whose window lies inside the image; with a
 * constant kernel the taps unroll completely: per tap one activation load, one
 * table load pair, 2 unpacks, 4 MACs. */
TT_ALWAYS_INLINE void dw_interior(const int8_t *xr, int32_t c, int32_t row_step, const uint32_t (*table)[2],
                                  int32_t kernel, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 7
#endif
    for (int32_t i = 0; i < kernel; i++, xr += row_step) {
        const int8_t *xp = xr;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 7
#endif
        for (int32_t j = 0; j < kernel; j++, xp += c) {
            const uint32_t xv = tt_read_s8x4(xp);
            DW_MAC4(xv, table[i * kernel + j]);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Out of line per kernel size, so that the position loop keeps no per-tap state. */
#if defined(__GNUC__)
#define DW_NOINLINE __attribute__((noinline))
#else
#define DW_NOINLINE
#endif
typedef void (*dw_interior_fn)(const int8_t *xr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t k, int32_t *a);
DW_NOINLINE static void dw_interior_3(const int8_t *xr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t k,
                                      int32_t *a)
{
    (void)k;
    dw_interior(xr, c, rs, t, 3, a);
}
DW_NOINLINE static void dw_interior_5(const int8_t *xr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t k,
                                      int32_t *a)
{
    (void)k;
    dw_interior(xr, c, rs, t, 5, a);
}
DW_NOINLINE static void dw_interior_7(const int8_t *xr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t k,
                                      int32_t *a)
{
    (void)k;
    dw_interior(xr, c, rs, t, 7, a);
}
DW_NOINLINE static void dw_interior_any(const int8_t *xr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t k,
                                        int32_t *a)
{
    dw_interior(xr, c, rs, t, k, a);
}

/* The ni x nj taps of a border output that fall inside the image (xr, table:
 * the first of them); returns the weights summed over those taps (SADD16
 * lanes) for the zero point. */
static void dw_border(const int8_t *xr, int32_t c, int32_t row_step, const uint32_t (*table)[2], int32_t kernel,
                      int32_t ni, int32_t nj, int32_t *acc, uint32_t *wsum)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint32_t se = 0, so = 0;
    for (int32_t i = 0; i < ni; i++, xr += row_step, table += kernel) {
        const int8_t *xp = xr;
        const uint32_t(*wp)[2] = table;
        for (int32_t j = 0; j < nj; j++, xp += c, wp++) {
            const uint32_t xv = tt_read_s8x4(xp);
            DW_MAC4(xv, *wp);
            se = tt_sadd16(se, (*wp)[0]);
            so = tt_sadd16(so, (*wp)[1]);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    wsum[0] = se;
    wsum[1] = so;
}

/* Groups of 4 channels: their weights are repacked once into a stack table of
 * int16 pairs matching the SXTB16 lanes of an int8x4 activation load; every
 * output then runs kernel^2 taps of 4 MACs. The zero point is folded through
 * the weight sums (of the whole kernel inside, of the valid taps at borders). */
static void depthwise_dsp(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                          int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, const int8_t *w_lo, const int8_t *w_hi,
                          int32_t c_lo, const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t zx,
                          int32_t zy, uint8_t *mask)
{
    const int32_t kk = kernel * kernel;
    const int32_t row_step = w * c;
    const dw_interior_fn interior = kernel == 3   ? dw_interior_3
                                    : kernel == 5 ? dw_interior_5
                                    : kernel == 7 ? dw_interior_7
                                                  : dw_interior_any;
    /* outputs whose window columns lie inside the image */
    const int32_t ox_lo = (pad_left + stride - 1) / stride;
    int32_t ox_hi = w - kernel + pad_left >= 0 ? (w - kernel + pad_left) / stride + 1 : 0;
    ox_hi = ox_hi > ow ? ow : ox_hi;
    uint32_t table[DW_MAX_KERNEL * DW_MAX_KERNEL][2];
    int32_t c0 = 0;
    for (; c0 + 3 < c; c0 += 4) {
        int32_t zw[4] = {0, 0, 0, 0};
        for (int32_t t = 0; t < kk; t++) {
            int32_t v[4];
            for (int32_t j = 0; j < 4; j++) {
                v[j] = dw_weight(w_lo, w_hi, c_lo, kk, c0 + j, t);
                zw[j] += v[j];
            }
            table[t][0] = tt_pack16(v[0], v[2]);
            table[t][1] = tt_pack16(v[1], v[3]);
        }
        for (int32_t j = 0; j < 4; j++)
            zw[j] *= zx;
        tt_requant_channel q[4];
        for (int32_t j = 0; j < 4; j++)
            q[j] = tt_requant_prepare(bias[c0 + j], mult[c0 + j], shift[c0 + j]);
        const int8_t *xc = x + c0;
        for (int32_t oy = 0; oy < oh; oy++) {
            const int32_t iy0 = oy * stride - pad_top;
            const int32_t i0 = iy0 < 0 ? -iy0 : 0, i1 = iy0 + kernel > h ? h - iy0 : kernel;
            /* inside rows: outputs [ox_in0, ox_in1) have their whole window in the image */
            const int32_t ox_in0 = i0 == 0 && i1 == kernel ? ox_lo : ow;
            const int32_t ox_in1 = i0 == 0 && i1 == kernel ? ox_hi : ow;
            int8_t *yp = y + oy * ow * c + c0;
            uint32_t bit = (uint32_t)(oy * ow * c + c0);
            int32_t ox = 0;
            for (; ox < ow; ox++, yp += c, bit += (uint32_t)c) {
                int32_t a[4];
                const int32_t ix0 = ox * stride - pad_left;
                if (ox >= ox_in0 && ox < ox_in1) {
                    interior(xc + (iy0 * w + ix0) * c, c, row_step, table, kernel, a);
                    a[0] -= zw[0];
                    a[1] -= zw[1];
                    a[2] -= zw[2];
                    a[3] -= zw[3];
                } else {
                    const int32_t j0 = ix0 < 0 ? -ix0 : 0, j1 = ix0 + kernel > w ? w - ix0 : kernel;
                    uint32_t ws[2];
                    dw_border(xc + ((iy0 + i0) * w + ix0 + j0) * c, c, row_step, table + i0 * kernel + j0, kernel,
                              i1 - i0, j1 - j0, a, ws);
                    a[0] -= zx * tt_lane_lo(ws[0]);
                    a[1] -= zx * tt_lane_lo(ws[1]);
                    a[2] -= zx * tt_lane_hi(ws[0]);
                    a[3] -= zx * tt_lane_hi(ws[1]);
                }
                const uint32_t f0 = requant_store(a[0], &q[0], zy, yp);
                const uint32_t f1 = requant_store(a[1], &q[1], zy, yp + 1);
                const uint32_t f2 = requant_store(a[2], &q[2], zy, yp + 2);
                const uint32_t f3 = requant_store(a[3], &q[3], zy, yp + 3);
                if (mask)
                    tt_mask_put_bits(mask, bit, f0 | (f1 << 1) | (f2 << 2) | (f3 << 3), 4);
            }
        }
    }
    if (c0 < c)
        depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy,
                           mask, c0, c);
}

#endif

void tt_conv_depthwise(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                       int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                       const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                       const int32_t *bias, const int32_t *mult, const int32_t *shift,
                       int32_t zx, int32_t zy, uint8_t *mask)
{
#if TT_DSP
    if (kernel <= DW_MAX_KERNEL)
        depthwise_dsp(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, mask);
    else
#endif
        depthwise_channels(x, h, w, c, y, oh, ow, kernel, stride, pad_top, pad_left, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy,
                           mask, 0, c);
    if (mask)
        tt_mask_finish(mask, (uint32_t)(oh * ow * c));
}

/* ------------------------------------------------------------------ generic */

void tt_conv_generic(const int8_t *x, int32_t h, int32_t w, int32_t cin, int8_t *y, int32_t oh, int32_t ow,
                     int32_t cout, int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left, int32_t groups,
                     const int8_t *weights, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                     int32_t zx, int32_t zy, uint8_t *mask)
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
    if (mask)
        tt_mask_finish(mask, (uint32_t)(oh * ow * cout));
}
