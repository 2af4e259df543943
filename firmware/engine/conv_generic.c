/* Forward generic convolution: any conv2d geometry (kh x kw window, a stride per axis, asymmetric
 * padding), groups 1 or depthwise.
 *
 * acc = sat32(bias + sum w (x - zx)); y = clamp(MBQM(acc) + zy); mask = clamp inactive.
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/generic_weights.h"
#include "internal/mask_bits.h"
#include "internal/pointwise_block.h"

/* ------------------------------------------------------------------ portable */

/* Any geometry, groups 1 or depthwise, one output at a time: the portable path (and the DSP path's
 * fallback). x holds g->h rows; g->oh rows are written. */
TT_NOINLINE static void conv_portable(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask)
{
    const int32_t h = g->h, w = g->w, cin = g->cin, oh = g->oh, ow = g->ow, cout = g->cout;
    const int32_t kh = g->kh, kw = g->kw, groups = g->groups;
    const int32_t ig = cin / groups, og = cout / groups;
    const int32_t zx = l->zx;
    for (int32_t oy = 0; oy < oh; oy++) {
        const int32_t iy0 = oy * g->sh - g->pad_top;
        const int32_t i_lo = iy0 < 0 ? -iy0 : 0, i_hi = iy0 + kh > h ? h - iy0 : kh;
        for (int32_t ox = 0; ox < ow; ox++) {
            const int32_t ix0 = ox * g->sw - g->pad_left;
            const int32_t j_lo = ix0 < 0 ? -ix0 : 0, j_hi = ix0 + kw > w ? w - ix0 : kw;
            const int32_t pos = oy * ow + ox;
            for (int32_t o = 0; o < cout; o++) {
                const int32_t g0 = (o / og) * ig;
                const int8_t *wo = tt_generic_weights(g, l, o);
                int32_t sum = 0;
                for (int32_t i = i_lo; i < i_hi; i++) {
                    for (int32_t j = j_lo; j < j_hi; j++) {
                        const int8_t *xp = x + ((iy0 + i) * w + ix0 + j) * cin + g0;
                        const int8_t *wp = wo + (i * kw + j) * ig;
                        for (int32_t ci = 0; ci < ig; ci++)
                            sum += wp[ci] * (xp[ci] - zx);
                    }
                }
                const uint32_t f = tt_requant_store(sum, l->bias[o], l->mult[o], l->shift[o], l->zy, y + pos * cout + o);
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
    int32_t h, w, cin, kh, kw, sh, sw, pad_top, pad_left, ow, zx;
    int rgb3x3; /* a 3x3 window of 3 channels (conv_expand_rgb3x3) */
} conv_geom;

static void conv_patch(const conv_geom *c, int32_t pos, int8_t *patch)
{
    const int32_t oy = pos / c->ow, ox = pos - oy * c->ow;
    const int32_t iy0 = oy * c->sh - c->pad_top, ix0 = ox * c->sw - c->pad_left;
    const int32_t cin = c->cin, kw = c->kw, row = kw * cin;
    const int cols_inside = ix0 >= 0 && ix0 + kw <= c->w;
    for (int32_t ky = 0; ky < c->kh; ky++, patch += row) {
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
        for (int32_t kx = 0; kx < kw; kx++) {
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

/* The commonest first layer, a 3x3 window of 3 channels (27 inputs), at a position whose window is inside
 * the input: the expanded groups straight from its 3 rows of 9 bytes (r0, r0 + row, r0 + 2 row), without
 * the patch copy: (r0[0..3]) (r0[4..7]) (r0[8], r1[0..2]) (r1[3..6]) (r1[7..8], r2[0..1]) (r2[2..5])
 * (r2[6..8], and a lane whose weight is 0). */
TT_ALWAYS_INLINE void conv_expand_rgb3x3(const int8_t *r0, int32_t row, int32_t zx, uint64_t *out, int32_t np,
                                         int dbl)
{
    const int8_t *r1 = r0 + row, *r2 = r1 + row;
    const uint32_t zz = tt_pack16(zx, zx);
    uint32_t v[7];
    v[0] = tt_read_s8x4(r0);
    v[1] = tt_read_s8x4(r0 + 4);
    v[2] = (uint32_t)(uint8_t)r0[8] | tt_read_s8x4(r1) << 8;
    v[3] = tt_read_s8x4(r1 + 3);
    v[4] = tt_read_u8x2(r1 + 7) | tt_read_u8x2(r2) << 16;
    v[5] = tt_read_s8x4(r2 + 2);
    v[6] = tt_read_u8x2(r2 + 6) | (uint32_t)(uint8_t)r2[8] << 16;
    TT_UNROLL(7) for (int i = 0; i < 7; i++, out += np)
    {
        uint32_t e = tt_ssub16(tt_sxtb16(v[i]), zz), o = tt_ssub16(tt_sxtb16_ror8(v[i]), zz);
        if (dbl) {
            e = tt_sadd16(e, e);
            o = tt_sadd16(o, o);
        }
        *out = e | (uint64_t)o << 32;
    }
}

TT_ALWAYS_INLINE void conv_block_np(const conv_geom *c, const pw_args *g, int32_t p, int32_t ob, int32_t nb,
                                    const pw_rq *tab, uint64_t *x16, int32_t k, int np, int rq, int masked)
{
    int8_t patch[PW_XMAX + 4] __attribute__((aligned(4)));
    for (int q = 0; q < np; q++) {
        if (k == 27 && c->rgb3x3) {
            const int32_t pos = p + q, oy = pos / c->ow, ox = pos - oy * c->ow;
            const int32_t iy0 = oy * c->sh - c->pad_top, ix0 = ox * c->sw - c->pad_left;
            if (iy0 >= 0 && iy0 + 3 <= c->h && ix0 >= 0 && ix0 + 3 <= c->w) {
                conv_expand_rgb3x3(c->x + (iy0 * c->w + ix0) * 3, c->w * 3, c->zx, x16 + q, np, rq == RQ_DBL);
                continue;
            }
        }
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
        conv_block(c, g, ob, nb, tab, g->x16, K, RQ, MASKED);                                                         \
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

static void conv_dsp(const tt_geom *gm, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch)
{
    pw_rq *tab = scratch; /* PW_TAB_BYTES, then the expanded patches */
    const int32_t k = gm->kh * gm->kw * gm->cin, cout = gm->cout, zy = l->zy;
    const int32_t *bias = l->bias, *mult = l->mult, *shift = l->shift;
    const conv_geom c = {x,      gm->h,  gm->w,        gm->cin,       gm->kh, gm->kw,
                         gm->sh, gm->sw, gm->pad_top,  gm->pad_left,  gm->ow, l->zx,
                         gm->kh == 3 && gm->kw == 3 && gm->cin == 3};
    const pw_args g = {x, gm->oh * gm->ow, k, y, cout, tt_generic_weights(gm, l, 0), 0, k, 0, bias, mult, shift, l->zx,
                       zy, mask, (uint64_t *)(void *)((char *)scratch + PW_TAB_BYTES)};
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

/* Whether the im2col path runs the conv (DSP builds). */
static int conv_im2col(const tt_geom *g)
{
    return g->groups == 1 && g->kh * g->kw * g->cin <= PW_XMAX;
}

int32_t tt_conv_generic_scratch_bytes(const tt_geom *g)
{
    return conv_im2col(g) ? PW_TAB_BYTES + PW_X16_BYTES : 0;
}

static void conv_run(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch)
{
#if TT_DSP
    if (conv_im2col(g))
        conv_dsp(g, l, x, y, mask, scratch);
    else
#endif
    {
        (void)scratch;
        conv_portable(g, l, x, y, mask);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)(g->oh * g->ow * g->cout));
}

void tt_conv_generic(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, uint8_t *mask, void *scratch)
{
    conv_run(g, l, x, y, mask, scratch);
}

void tt_conv_generic_rows(const tt_geom *g, const tt_layer *l, const int8_t *x, int8_t *y, int32_t h, int32_t oh,
                          int32_t pad_top, void *scratch)
{
    tt_geom band = *g;
    band.h = h;
    band.oh = oh;
    band.pad_top = pad_top;
    conv_run(&band, l, x, y, NULL, scratch);
}
