/* Fused weight gradient + SGD update of a pointwise conv / dense layer: the trained part w_lo [cout][k].
 * Paths: portable (element by element); DSP with a scratch (the packed path, below); DSP without one or
 * past PWU_HW_MAX positions (2 x 4 blocks on the raw rows). Every one gives the same bytes. */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/sgd_update.h"

/* The DSP packed path's block of output channels, and the most positions it takes (its scratch,
 * tt_weight_update_pointwise_scratch_bytes: PWU_OUT words per position pair, at most 2 KB; more
 * positions, or no scratch, take the 2 x 4 blocks). */
#define PWU_OUT 4
#define PWU_HW_MAX 256

/* ------------------------------------------------------------------ portable (and the DSP path's tails) */

/* sum_p g[p][o] (x[p][i] - zx), one element */
static int32_t pw_grad_element(const int16_t *g, int32_t hw, int32_t cout, const int8_t *xs, int32_t xs_c, int32_t zx,
                               int32_t o, int32_t i)
{
    int32_t s = 0;
    const int16_t *gp = g + o;
    const int8_t *xp = xs + i;
    for (int32_t p = 0; p < hw; p++, gp += cout, xp += xs_c)
        s += *gp * (*xp - zx);
    return s;
}

/* ------------------------------------------------------------------ Cortex-M7 DSP */

#if TT_DSP
static inline int8_t add_clamp_weight(int8_t w, int32_t d)
{
    const int32_t v = w + d;
    return (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
}

/* update_weight over n consecutive elements of one output channel, with the
 * channel's shift and the rounding mode resolved once. In the common case, a
 * right shift n > 32 of P = -grad coef (|P| < 2^62), every step fits 32 bits and
 * round_shift's stochastic (P + (r << (n - 32))) >> n, capped at n = 62 after
 * a pre-shift, is exactly the high word of (P >> (n - 32)) + r (floors of
 * floors compose, and adding the integer r cannot cross a multiple of 2^32
 * differently); nearest is the same with r = 2^31. Anything else takes the
 * element-wise path. */
static void update_run(int8_t *w, const int32_t *grad, int32_t n, int32_t coef, int32_t e_total, update_stream s,
                       uint32_t index)
{
    const int32_t sh = e_total < -1000 ? 1000 : -e_total;
    if (sh <= 32 || (uint32_t)s.mode > (uint32_t)TT_ROUND_TRUNCATE) {
        for (int32_t j = 0; j < n; j++)
            update_weight(w + j, grad[j], coef, e_total, s, index + (uint32_t)j);
        return;
    }
    const int32_t m = sh - 32 > 63 ? 63 : sh - 32;
    if (s.mode == TT_ROUND_STOCHASTIC) {
        for (int32_t j = 0; j < n; j++) {
            const int64_t t = (-(int64_t)grad[j] * coef) >> m;
            const uint32_t r = tt_mix32_inline(s.first + index + (uint32_t)j);
            w[j] = add_clamp_weight(w[j], (int32_t)((t + (int64_t)r) >> 32));
        }
    } else if (s.mode == TT_ROUND_NEAREST) {
        for (int32_t j = 0; j < n; j++) {
            const int64_t t = (-(int64_t)grad[j] * coef) >> m;
            w[j] = add_clamp_weight(w[j], (int32_t)((t + (INT64_C(1) << 31)) >> 32));
        }
    } else { /* toward zero; |P| < 2^62 makes shifts of 63 and more give 0 */
        const int32_t sh63 = sh > 63 ? 63 : sh;
        for (int32_t j = 0; j < n; j++) {
            const int64_t p = -(int64_t)grad[j] * coef;
            w[j] = add_clamp_weight(w[j], (int32_t)(p >= 0 ? p >> sh63 : -((-p) >> sh63)));
        }
    }
}

/* Without the packed path's table (no scratch, more than PWU_HW_MAX positions) and for the output
 * channels past its last block of 4: 2 output channels x 4 input channels over all positions
 * (about 2.3 instructions per MAC: its 8 accumulators and strides spill), accumulators starting at init0 / init1
 * (-zx sum_p g: the zero-point fold). Positions in pairs (p, p+1) on SMLAD: one int16x2 load of
 * (g[p][o], g[p][o+1]) and one of (g[p+1][o], ...), PKHBT / PKHTB into (g[p][o], g[p+1][o]) and
 * (g[p][o+1], g[p+1][o+1]); one int8x4 load of x[p][i0..] and one of x[p+1][i0..], PKHBT / PKHTB into
 * the bytes (x[p][i0], x[p][i0+1], x[p+1][i0], x[p+1][i0+1]) and the same of i0+2, i0+3, whose
 * SXTB16 / SXTB16 ROR 8 are the four (x[p][i], x[p+1][i]) pairs; 8 SMLAD per 16 MACs. An odd last
 * position on SMLAxy. Sums wrap modulo 2^32 as the element-wise ones do. */
TT_NOINLINE_NOSCHED static void pw_grad_block_2x4(const int16_t *g, int32_t hw, int32_t cout, const int8_t *xs, int32_t xs_c, int32_t o,
                              int32_t i0, int32_t init0, int32_t init1, int32_t *a)
{
    const char *gp = (const char *)(g + o);
    const int8_t *xp = xs + i0;
    int32_t a00 = init0, a01 = init0, a02 = init0, a03 = init0;
    int32_t a10 = init1, a11 = init1, a12 = init1, a13 = init1;
    const int32_t gs = 2 * cout; /* bytes between positions */
    const int8_t *const xend = xp + (hw & ~1) * xs_c;
    while (xp != xend) {
        const uint32_t ga = tt_read_s16x2((const int16_t *)(const void *)gp);
        const uint32_t gb = tt_read_s16x2((const int16_t *)(const void *)(gp + gs));
        gp += 2 * gs;
        const uint32_t xa = tt_read_s8x4(xp), xb = tt_read_s8x4(xp + xs_c);
        xp += 2 * xs_c;
        const uint32_t g0 = tt_pkhbt(ga, gb), g1 = tt_pkhtb_hi(ga, gb);
        const uint32_t xl = tt_pkhbt(xa, xb), xh = tt_pkhtb_hi(xa, xb);
        uint32_t xv = tt_sxtb16(xl);
        a00 = tt_smlad(g0, xv, a00);
        a10 = tt_smlad(g1, xv, a10);
        xv = tt_sxtb16_ror8(xl);
        a01 = tt_smlad(g0, xv, a01);
        a11 = tt_smlad(g1, xv, a11);
        xv = tt_sxtb16(xh);
        a02 = tt_smlad(g0, xv, a02);
        a12 = tt_smlad(g1, xv, a12);
        xv = tt_sxtb16_ror8(xh);
        a03 = tt_smlad(g0, xv, a03);
        a13 = tt_smlad(g1, xv, a13);
    }
    if (hw & 1) {
        const uint32_t gg = tt_read_s16x2((const int16_t *)(const void *)gp), xv = tt_read_s8x4(xp);
        const uint32_t xe = tt_sxtb16(xv), xo = tt_sxtb16_ror8(xv);
        a00 = tt_smlabb(gg, xe, a00);
        a02 = tt_smlabt(gg, xe, a02);
        a10 = tt_smlatb(gg, xe, a10);
        a12 = tt_smlatt(gg, xe, a12);
        a01 = tt_smlabb(gg, xo, a01);
        a03 = tt_smlabt(gg, xo, a03);
        a11 = tt_smlatb(gg, xo, a11);
        a13 = tt_smlatt(gg, xo, a13);
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a02;
    a[3] = a03;
    a[4] = a10;
    a[5] = a11;
    a[6] = a12;
    a[7] = a13;
}

/* The packed path (a scratch given, 2 <= hw <= PWU_HW_MAX; about 1.8 instructions per MAC at 64
 * positions, against 3.0 for the 2 x 4 blocks above): PWU_OUT = 4 output channels at a time.
 *
 * Once per block of output channels o..o+3, pwu_pack writes their gradients of the position pairs
 * (p, p+1) as int16 pairs, word [pair][j] = (g[p][o+j], g[p+1][o+j]) (an odd last position:
 * (g[p][o+j], 0)), into the scratch, and sums each channel's gradients for the zero-point fold
 * (the accumulators start at -zx sum_p g, so that raw int8 inputs are multiplied). Then each pair of
 * input channels i, i+1 runs over that table in pwu_grad_4x2 with 4 x 2 accumulators in registers:
 * per position pair one LDRH of (x[p][i], x[p][i+1]) and one of row p+1, PKHBT into one word,
 * SXTB16 / SXTB16 ROR 8 into (x[p][i], x[p+1][i]) and (x[p][i+1], x[p+1][i+1]), then per output
 * channel one LDR of its table word and two SMLAD: 21 instructions per 16 MACs (the loop's end is
 * reloaded from the stack: it would be the 15th register). An odd last input channel runs the same
 * loop on the bytes of that one channel (pwu_grad_4x1). The table is written once per block and read
 * k / 2 times. Sums wrap modulo 2^32 as the element-wise ones do.
 *
 * The 8 results go straight to their updates (pwu_upd: each channel's case resolved once per block).
 * When the four channels share update_run's stochastic case, pwu_update2_form1 / _form2 do the 8
 * unrolled, about 20 instructions each (one SMULL by -coef, the shift in 32-bit halves, mix32 with its
 * constants in registers); anything else goes element by element through pwu_update (nearest in the
 * same form with r = 2^31; the rest through update_weight). */

/* The table of output channels o..o+3 (tab: 4 words a position pair, then 4 of an odd last
 * position), and sum_p g[p][o+j] into sums[j]. */
TT_NOINLINE static void pwu_pack(const int16_t *g, int32_t hw, int32_t cout, int32_t o, uint32_t *tab, int32_t *sums)
{
    const int16_t *gp = g + o;
    int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    const uint32_t one = 0x00010001u;
    for (int32_t r = hw >> 1; r > 0; r--, gp += 2 * cout, tab += 4) {
        const uint32_t a01 = tt_read_s16x2(gp), a23 = tt_read_s16x2(gp + 2);
        const uint32_t b01 = tt_read_s16x2(gp + cout), b23 = tt_read_s16x2(gp + cout + 2);
        const uint32_t q0 = tt_pkhbt(a01, b01), q1 = tt_pkhtb_hi(a01, b01);
        const uint32_t q2 = tt_pkhbt(a23, b23), q3 = tt_pkhtb_hi(a23, b23);
        tab[0] = q0;
        tab[1] = q1;
        tab[2] = q2;
        tab[3] = q3;
        s0 = tt_smlad(q0, one, s0);
        s1 = tt_smlad(q1, one, s1);
        s2 = tt_smlad(q2, one, s2);
        s3 = tt_smlad(q3, one, s3);
    }
    if (hw & 1) {
        const uint32_t a01 = tt_read_s16x2(gp), a23 = tt_read_s16x2(gp + 2);
        const uint32_t q0 = a01 & 0xFFFFu, q1 = a01 >> 16, q2 = a23 & 0xFFFFu, q3 = a23 >> 16;
        tab[0] = q0;
        tab[1] = q1;
        tab[2] = q2;
        tab[3] = q3;
        s0 = tt_smlabb(q0, one, s0);
        s1 = tt_smlabb(q1, one, s1);
        s2 = tt_smlabb(q2, one, s2);
        s3 = tt_smlabb(q3, one, s3);
    }
    sums[0] = s0;
    sums[1] = s1;
    sums[2] = s2;
    sums[3] = s3;
}

/* The table of pwu_pack times input channels (i, i + 1) (two) or i (!two) over hw positions:
 * a[2 j + c] = init[j] + sum_p g[p][o+j] x[p][i+c]. */
TT_ALWAYS_INLINE void pwu_grad_body(const uint32_t *tab, int32_t hw, const int8_t *xp, int32_t xs_c, const int32_t *init,
                                    int32_t *a, int two)
{
    int32_t a00 = init[0], a01 = init[0], a10 = init[1], a11 = init[1];
    int32_t a20 = init[2], a21 = init[2], a30 = init[3], a31 = init[3];
    const uint32_t *const end = tab + 4 * (hw >> 1);
    while (tab != end) {
        TT_OPAQUE(xs_c); /* xp += 2 xs_c in one ADD (else a hoisted 2 xs_c spills) */
        uint32_t xv;
        if (two)
            xv = tt_pkhbt(tt_read_u8x2(xp), tt_read_u8x2(xp + xs_c));
        else
            xv = (uint32_t)(uint8_t)xp[0] | (uint32_t)(uint8_t)xp[xs_c] << 16;
        xp += 2 * xs_c;
        const uint32_t xe = tt_sxtb16(xv), xo = two ? tt_sxtb16_ror8(xv) : 0u;
        uint32_t q = tab[0];
        a00 = tt_smlad(q, xe, a00);
        if (two)
            a01 = tt_smlad(q, xo, a01);
        q = tab[1];
        a10 = tt_smlad(q, xe, a10);
        if (two)
            a11 = tt_smlad(q, xo, a11);
        q = tab[2];
        a20 = tt_smlad(q, xe, a20);
        if (two)
            a21 = tt_smlad(q, xo, a21);
        q = tab[3];
        a30 = tt_smlad(q, xe, a30);
        if (two)
            a31 = tt_smlad(q, xo, a31);
        tab += 4;
    }
    if (hw & 1) { /* the table's top lanes are 0 */
        const uint32_t xv = two ? tt_read_u8x2(xp) : (uint32_t)(uint8_t)xp[0];
        const uint32_t xe = tt_sxtb16(xv), xo = tt_sxtb16_ror8(xv);
        a00 = tt_smlabb(tab[0], xe, a00);
        a10 = tt_smlabb(tab[1], xe, a10);
        a20 = tt_smlabb(tab[2], xe, a20);
        a30 = tt_smlabb(tab[3], xe, a30);
        if (two) {
            a01 = tt_smlabb(tab[0], xo, a01);
            a11 = tt_smlabb(tab[1], xo, a11);
            a21 = tt_smlabb(tab[2], xo, a21);
            a31 = tt_smlabb(tab[3], xo, a31);
        }
    }
    a[0] = a00;
    a[1] = a01;
    a[2] = a10;
    a[3] = a11;
    a[4] = a20;
    a[5] = a21;
    a[6] = a30;
    a[7] = a31;
}

TT_NOINLINE_NOSCHED static void pwu_grad_4x2(const uint32_t *tab, int32_t hw, const int8_t *xp, int32_t xs_c,
                                             const int32_t *init, int32_t *a)
{
    pwu_grad_body(tab, hw, xp, xs_c, init, a, 1);
}

TT_NOINLINE_NOSCHED static void pwu_grad_4x1(const uint32_t *tab, int32_t hw, const int8_t *xp, int32_t xs_c,
                                             const int32_t *init, int32_t *a)
{
    pwu_grad_body(tab, hw, xp, xs_c, init, a, 0);
}

/* One output channel's update, resolved once per block: update_run's common case (a right shift
 * sh > 32, stochastic or nearest; coef > INT32_MIN so that -coef is an int32 and the product one SMULL)
 * inline, with r = 2^31 for nearest; anything else (form 0) update_weight per element. With
 * m = min(sh - 32, 63) >= 32, P >> m is the high word of P shifted right by m - 32 (floors compose), a
 * 32-bit value whose sum with r needs no 64-bit shift. */
typedef struct {
    int32_t c; /* form 0: coef_mult; else -coef_mult */
    int32_t m; /* form 0: e_total; form 1: m; form 2: m - 32 */
    int32_t form;
} pwu_upd;

static pwu_upd pwu_upd_start(int32_t coef, int32_t e_total, update_stream s)
{
    pwu_upd u;
    const int32_t sh = e_total < -1000 ? 1000 : -e_total;
    const int32_t m = sh - 32 > 63 ? 63 : sh - 32;
    const int fast = sh > 32 && coef != INT32_MIN && (s.mode == TT_ROUND_STOCHASTIC || s.mode == TT_ROUND_NEAREST);
    u.form = !fast ? 0 : m < 32 ? 1 : 2;
    u.c = fast ? -coef : coef;
    u.m = !fast ? e_total : m < 32 ? m : m - 32;
    return u;
}

/* The stochastic / nearest delta of P = grad * coef_mult: the high word of (P >> m) + r, m < 32 (form 1,
 * the 64-bit shift in 32-bit halves) or m - 32 = mm (form 2: P's high word shifted right by mm). */
TT_ALWAYS_INLINE int32_t pwu_delta(int32_t grad, int32_t ncoef, int32_t mm, int form, uint32_t r)
{
    const int64_t p = (int64_t)grad * ncoef;
    const uint32_t lo = (uint32_t)p;
    const int32_t hi = (int32_t)(p >> 32);
    uint32_t tl;
    int32_t th;
    if (form == 2) {
        tl = (uint32_t)(hi >> mm);
        th = (int32_t)tl >> 31;
    } else {
        tl = (lo >> mm) | ((uint32_t)hi << (32 - mm));
        th = hi >> mm;
    }
    return th + (int32_t)(((uint64_t)tl + r) >> 32);
}

/* mix32 (fixed_point.h) with its two constants in registers (k1, k2: opaque to the compiler, which
 * would otherwise rebuild the second from the first in every iteration). */
TT_ALWAYS_INLINE uint32_t pwu_mix32(uint32_t x, uint32_t k1, uint32_t k2)
{
    x ^= x >> 16;
    x *= k1;
    x ^= x >> 15;
    x *= k2;
    x ^= x >> 16;
    return x;
}

/* The updates of a block's results a[2 j + c] (c < n) of output channel j, weight w[j k + c]. */
TT_NOINLINE static void pwu_update(int8_t *w, int32_t k, const int32_t *a, int32_t n, const pwu_upd *up,
                                   update_stream s, uint32_t idx)
{
    uint32_t k1 = 0x7FEB352Du, k2 = 0x846CA68Bu;
    TT_OPAQUE(k1);
    TT_OPAQUE(k2);
    for (int j = 0; j < PWU_OUT; j++, w += k, idx += (uint32_t)k, up++, a += 2) {
        const int32_t form = up->form, nc = up->c, mm = up->m;
        if (form == 0) {
            for (int32_t c = 0; c < n; c++)
                update_weight(w + c, a[c], nc, mm, s, idx + (uint32_t)c);
        } else if (s.mode != TT_ROUND_STOCHASTIC) { /* nearest */
            for (int32_t c = 0; c < n; c++)
                w[c] = add_clamp_weight(w[c], pwu_delta(a[c], nc, mm, form, UINT32_C(0x80000000)));
        } else if (form == 1) {
            uint32_t x = s.first + idx;
            for (int32_t c = 0; c < n; c++, x++)
                w[c] = add_clamp_weight(w[c], pwu_delta(a[c], nc, mm, 1, pwu_mix32(x, k1, k2)));
        } else {
            uint32_t x = s.first + idx;
            for (int32_t c = 0; c < n; c++, x++)
                w[c] = add_clamp_weight(w[c], pwu_delta(a[c], nc, mm, 2, pwu_mix32(x, k1, k2)));
        }
    }
}

/* pwu_update of two results per channel when all four channels take one stochastic form: unrolled,
 * the channels' constants loaded once. */
TT_ALWAYS_INLINE void pwu_update2_body(int8_t *w, int32_t k, const int32_t *a, const pwu_upd *up, uint32_t x,
                                       int form)
{
    uint32_t k1 = 0x7FEB352Du, k2 = 0x846CA68Bu;
    TT_OPAQUE(k1);
    TT_OPAQUE(k2);
    TT_UNROLL(4) for (int j = 0; j < PWU_OUT; j++, w += k, x += (uint32_t)k)
    {
        const int32_t nc = up[j].c, mm = up[j].m;
        w[0] = add_clamp_weight(w[0], pwu_delta(a[2 * j], nc, mm, form, pwu_mix32(x, k1, k2)));
        w[1] = add_clamp_weight(w[1], pwu_delta(a[2 * j + 1], nc, mm, form, pwu_mix32(x + 1u, k1, k2)));
    }
}

TT_NOINLINE static void pwu_update2_form1(int8_t *w, int32_t k, const int32_t *a, const pwu_upd *up, uint32_t x)
{
    pwu_update2_body(w, k, a, up, x, 1);
}

TT_NOINLINE static void pwu_update2_form2(int8_t *w, int32_t k, const int32_t *a, const pwu_upd *up, uint32_t x)
{
    pwu_update2_body(w, k, a, up, x, 2);
}

static void pw_update_from(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, const int8_t *xs,
                           int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u, int32_t o);

/* Output channels [0, cout & ~3) on the packed path, then the rest (pw_update_from, a tail call: the
 * two frames are not stacked). */
TT_NOINLINE static void pwu_packed(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e,
                                      const int8_t *xs, int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u,
                                      uint32_t *tab)
{
    const int32_t hw = gm->oh * gm->ow, cout = gm->cout, k = l->k_lo, zx = l->zx;
    const int32_t *coef_mult = l->wcoef_mult, *coef_shift = l->wcoef_shift;
    const update_stream st = update_start(u);
    int32_t o = 0;
    for (; o + PWU_OUT <= cout; o += PWU_OUT) {
        int32_t init[PWU_OUT];
        pwu_upd up[PWU_OUT];
        pwu_pack(g, hw, cout, o, tab, init);
        for (int j = 0; j < PWU_OUT; j++) {
            init[j] = (int32_t)(0u - (uint32_t)zx * (uint32_t)init[j]); /* -zx sum_p g */
            up[j] = pwu_upd_start(coef_mult[o + j], e + coef_shift[o + j] - 31, st);
        }
        /* 1 or 2: every channel's form, stochastic; else 0 */
        int uniform = st.mode == TT_ROUND_STOCHASTIC ? up[0].form : 0;
        for (int j = 1; j < PWU_OUT; j++)
            uniform = up[j].form == uniform ? uniform : 0;
        int8_t *w = w_lo + o * k;
        uint32_t idx = (uint32_t)(o * k);
        int32_t i = 0;
        for (; i + 1 < k; i += 2, w += 2, idx += 2) {
            int32_t a[8];
            pwu_grad_4x2(tab, hw, xs + i, xs_c, init, a);
            if (uniform == 1)
                pwu_update2_form1(w, k, a, up, st.first + idx);
            else if (uniform == 2)
                pwu_update2_form2(w, k, a, up, st.first + idx);
            else
                pwu_update(w, k, a, 2, up, st, idx);
        }
        if (i < k) {
            int32_t a[8];
            pwu_grad_4x1(tab, hw, xs + i, xs_c, init, a);
            pwu_update(w, k, a, 1, up, st, idx);
        }
    }
    if (o < cout)
        pw_update_from(gm, l, g, e, xs, xs_c, w_lo, u, o);
}
#endif

int32_t tt_weight_update_pointwise_scratch_bytes(const tt_geom *g)
{
    const int32_t hw = g->oh * g->ow;
    return hw >= 2 && hw <= PWU_HW_MAX ? PWU_OUT * 4 * ((hw + 1) / 2) : 0;
}

/* Output channels [o, cout): the DSP path's pairs of channels (2 x 4 blocks), the element-wise rest. Out of
 * line: its frame is not stacked on pwu_packed's, nor theirs on the entry's (tail calls). */
TT_NOINLINE static void pw_update_from(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e,
                                       const int8_t *xs, int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u, int32_t o)
{
    const int32_t hw = gm->oh * gm->ow, cout = gm->cout, k = l->k_lo, zx = l->zx;
    const int32_t *coef_mult = l->wcoef_mult, *coef_shift = l->wcoef_shift;
    const update_stream st = update_start(u);
#if TT_DSP
    for (; o + 1 < cout; o += 2) {
        int32_t gs0 = 0, gs1 = 0;
        const int16_t *gp = g + o;
        for (int32_t p = 0; p < hw; p++, gp += cout) {
            gs0 += gp[0];
            gs1 += gp[1];
        }
        const int32_t zg0 = zx * gs0, zg1 = zx * gs1;
        const int32_t m0 = coef_mult[o], m1 = coef_mult[o + 1];
        const int32_t e0 = e + coef_shift[o] - 31, e1 = e + coef_shift[o + 1] - 31;
        int8_t *w0 = w_lo + o * k, *w1 = w0 + k;
        const uint32_t idx0 = (uint32_t)(o * k), idx1 = idx0 + (uint32_t)k;
        int32_t i = 0;
        for (; i + 3 < k; i += 4) {
            int32_t a[8];
            pw_grad_block_2x4(g, hw, cout, xs, xs_c, o, i, (int32_t)(0u - (uint32_t)zg0), (int32_t)(0u - (uint32_t)zg1),
                              a);
            update_run(w0 + i, a, 4, m0, e0, st, idx0 + (uint32_t)i);
            update_run(w1 + i, a + 4, 4, m1, e1, st, idx1 + (uint32_t)i);
        }
        for (; i < k; i++) {
            update_weight(w0 + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o, i), m0, e0, st,
                          idx0 + (uint32_t)i);
            update_weight(w1 + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o + 1, i), m1, e1, st,
                          idx1 + (uint32_t)i);
        }
    }
#endif
    for (; o < cout; o++) {
        const int32_t eo = e + coef_shift[o] - 31;
        for (int32_t i = 0; i < k; i++)
            update_weight(w_lo + o * k + i, pw_grad_element(g, hw, cout, xs, xs_c, zx, o, i), coef_mult[o], eo, st,
                          (uint32_t)(o * k + i));
    }
}

void tt_weight_update_pointwise(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, const int8_t *xs,
                                int32_t xs_c, int8_t *w_lo, const tt_update_ctx *u, void *scratch)
{
#if TT_DSP
    const int32_t hw = gm->oh * gm->ow;
    if (scratch && hw >= 2 && hw <= PWU_HW_MAX) {
        pwu_packed(gm, l, g, e, xs, xs_c, w_lo, u, (uint32_t *)scratch);
        return;
    }
#else
    (void)scratch;
#endif
    pw_update_from(gm, l, g, e, xs, xs_c, w_lo, u, 0);
}
