/* Forward generic convolution: any conv2d (full kxk, grouped, strided 1x1), weights in one piece.
 *
 * acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy); mask = clamp inactive.
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/mask_bits.h"
#include "internal/pointwise_block.h"

/* ------------------------------------------------------------------ portable */

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

/* ------------------------------------------------------------------ Cortex-M7 DSP */

#if TT_DSP

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
        const int rq = dbl ? RQ_DBL : pw_prepare(bias, mult, shift, zy, ob, nb, tab), best = rq == RQ_BEST;
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

#endif

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
