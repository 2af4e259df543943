/* Input gradient of a depthwise conv: the transposed depthwise conv of dL/dacc with the int8
 * weights (channels split into a lo part 0..c_lo-1 and a hi part). int32, or normalized int16 in
 * two passes (internal/input_grad_sink.h).
 */
#include <string.h>

#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"
#include "internal/input_grad_sink.h"
#include "internal/input_grad_depthwise.h"

/* ------------------------------------------------------------------ portable: the HWC walk, one channel at a time */

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

/* ------------------------------------------------------------------ DSP: the HWC walk, 4 channels at a time */

#define DW_MAX_KERNEL 7
#if TT_DSP

/* 4 channels x 1 tap: (g[c0], g[c0+1]) and (g[c0+2], g[c0+3]) times the packed weights. */
#define DWHWC_MAC4(GP, WP)                                                                      \
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
TT_ALWAYS_INLINE void dwhwc_interior(const int16_t *gr, int32_t c, int32_t row_step, const uint32_t (*table)[2],
                                     int32_t kernel, int32_t *acc)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int32_t last = kernel * kernel - 1;
    TT_UNROLL(7)
    for (int32_t ii = 0; ii < kernel; ii++) {
        const int16_t *gp = gr + ii * row_step;
        TT_UNROLL(7)
        for (int32_t jj = 0; jj < kernel; jj++)
            DWHWC_MAC4(gp + jj * c, table[last - ii * kernel - jj]);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

typedef void (*dwhwc_interior_fn)(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a);
TT_NOINLINE static void dwhwc_interior_3(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwhwc_interior(gr, c, rs, t, 3, a);
}
TT_NOINLINE static void dwhwc_interior_5(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwhwc_interior(gr, c, rs, t, 5, a);
}
TT_NOINLINE static void dwhwc_interior_7(const int16_t *gr, int32_t c, int32_t rs, const uint32_t (*t)[2], int32_t *a)
{
    dwhwc_interior(gr, c, rs, t, 7, a);
}

/* Groups of 4 channels; their weights repacked once into int16 pairs matching
 * the (g[c], g[c+1]) pairs of two int16x2 loads: 4 SMLAxy per tap. Inputs whose
 * taps all land on outputs (stride 1, away from the borders) take the unrolled
 * window; the others walk their valid taps. */
TT_ALWAYS_INLINE void dwhwc_dsp(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                                int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                                ig_sink *k, int mode, uint32_t (*table)[2])
{
    const int32_t kk = kernel * kernel;
    const dwhwc_interior_fn interior = stride != 1 ? 0
                                     : kernel == 3 ? dwhwc_interior_3
                                     : kernel == 5 ? dwhwc_interior_5
                                     : kernel == 7 ? dwhwc_interior_7
                                                   : 0;
    /* stride 1: inputs ix whose outputs ix + pad - j, j < kernel, all exist */
    const int32_t ix_in0 = kernel - 1 - pad, ix_in1 = ow - pad < w ? ow - pad : w;
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
                        DWHWC_MAC4(g + gi, wp);
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

/* ------------------------------------------------------------------ Cortex-M7 DSP: channel planes
 *
 * The paper's trained depthwise layers are tiny images (4x4, 8x8) with hundreds of channels, where
 * the HWC walk above spends most of its time on borders. Here each channel's g is first copied into
 * a zero-bordered plane (row-major int16, so horizontally adjacent outputs are one int16 pair), and
 * every input gradient becomes a correlation of the plane with a sub-kernel: with stride s the
 * inputs fall into s x s classes by (iy + pad) mod s, ix likewise; the inputs of a class, taken in
 * order, slide one plane element at a time over the taps r, r + s, ... of the kernel, reversed.
 * Zero borders make every window complete, so the loops have no edges: per kernel row a block of 4
 * horizontally adjacent inputs takes the 2 NP + 2 int16 pairs under it and NP weight pairs, 4 NP
 * SMLAD (the sub-kernel row padded to an even width with a zero tap). */

#if TT_DSP
#define DWPLANE_MAX_NA 7
#define DWPLANE_MAX_NP 4
#define DWPLANE_ROW 16            /* plane row length (int16 elements): a compile-time constant */
#define DWPLANE_STACK_PLANES 160 /* int16 elements of planes in the caller's scratch (after the HWC walk's
                                    table): one plane, 10 rows (8x8 inputs, kernel 3) */

typedef struct {
    int32_t n[2];    /* taps of class r along the axis: kernel indices r, r + s, ... */
    int32_t i0[2];   /* first input coordinate of the class */
    int32_t cnt[2];  /* inputs in the class */
    int32_t base[2]; /* plane coordinate of the first input's window */
    int32_t off;     /* plane coordinate of g's coordinate 0 */
    int32_t size;    /* plane extent */
} dwplane_axis;

static void dwplane_axis_setup(dwplane_axis *a, int32_t in, int32_t out, int32_t kernel, int32_t s, int32_t pad,
                               int cols)
{
    int32_t q0[2] = {0, 0};
    a->off = 0;
    for (int32_t r = 0; r < s; r++) {
        a->n[r] = r < kernel ? (kernel - r + s - 1) / s : 0;
        a->i0[r] = ((r - pad) % s + s) % s;
        a->cnt[r] = a->i0[r] < in ? (in - 1 - a->i0[r]) / s + 1 : 0;
        q0[r] = (a->i0[r] + pad - r) / s; /* the output of tap r for the first input */
        if (a->n[r] > 0 && a->cnt[r] > 0 && a->n[r] - 1 - q0[r] > a->off)
            a->off = a->n[r] - 1 - q0[r];
    }
    a->size = a->off + out;
    for (int32_t r = 0; r < s; r++) {
        a->base[r] = q0[r] - a->n[r] + 1 + a->off;
        if (a->n[r] > 0 && a->cnt[r] > 0) {
            /* rows: the last window's rows; columns: blocks of 4 windows reading 2 NP + 2 pairs */
            const int32_t end = cols ? a->base[r] + 4 * ((a->cnt[r] + 3) / 4 - 1) + 2 * ((a->n[r] + 1) / 2) + 3
                                     : a->base[r] + a->cnt[r] - 1 + a->n[r];
            a->size = end > a->size ? end : a->size;
        }
    }
}

typedef struct {
    dwplane_axis y, x;
    int32_t stride, kernel, plane; /* plane = DWPLANE_ROW * y.size elements */
} dwplane_geom;

/* 1 if the plane form applies and a plane fits `elems` int16. */
static int dwplane_plan(dwplane_geom *G, int32_t oh, int32_t ow, int32_t kernel, int32_t stride, int32_t pad, int32_t h,
                        int32_t w, int32_t elems)
{
    if ((stride != 1 && stride != 2) || kernel < 1 || (kernel + stride - 1) / stride > DWPLANE_MAX_NA ||
        ((kernel + stride - 1) / stride + 1) / 2 > DWPLANE_MAX_NP || pad < 0 || pad >= kernel || oh < 1 || ow < 1)
        return 0;
    dwplane_axis_setup(&G->y, h, oh, kernel, stride, pad, 0);
    dwplane_axis_setup(&G->x, w, ow, kernel, stride, pad, 1);
    G->stride = stride;
    G->kernel = kernel;
    G->plane = DWPLANE_ROW * G->y.size;
    return G->x.size <= DWPLANE_ROW && G->plane <= elems;
}

/* One class of inputs: (iy, ix) with (iy + pad) mod s = ry, (ix + pad) mod s = rx. */
typedef struct {
    int32_t rows, cols; /* inputs of the class */
    int32_t base;       /* plane element of the first input's window */
    int32_t out;        /* gx element of the first input, channel 0 */
} dwplane_cls;

typedef struct {
    dwplane_cls cls[4];              /* [ry * stride + rx] */
    int32_t out_row, out_col;    /* gx elements between the rows / columns of a class */
    int32_t *gx32;
    int16_t *gx16;
    int32_t k0, sh;              /* IG_STORE16: rshift_round(v, s) = (v + k0) >> sh (k0 starts the sums) */
    uint32_t mx;                 /* IG_RANGE: max of v ^ (v >> 31) */
} dwplane_job;

/* Word i of a table of words kept in uint64_t elements. */
TT_ALWAYS_INLINE uint32_t dwplane_word(const uint64_t *t, int32_t i)
{
    uint32_t v;
    TT_MEMCPY(&v, (const unsigned char *)t + 4 * i, 4);
    return v;
}

TT_ALWAYS_INLINE void dwplane_set_word(uint64_t *t, int32_t i, uint32_t v)
{
    TT_MEMCPY((unsigned char *)t + 4 * i, &v, 4);
}

/* One output: store it (int32, or rounded int16) or track the max of v ^ (v >> 31). */
TT_ALWAYS_INLINE void dwplane_out(int mode, int32_t *o32, int16_t *o16, int32_t v, int32_t sh, uint32_t *mx)
{
    if (mode == IG_STORE32) {
        *o32 = v;
    } else if (mode == IG_STORE16) {
        *o16 = (int16_t)(v >> sh);
    } else {
        const uint32_t x = (uint32_t)(v ^ (v >> 31)); /* |v|, or |v| - 1 for v < 0 */
        *mx = x > *mx ? x : *mx;
    }
}

/* The reversed taps of class (ry, rx) of one channel's kernel wc as na x np int16 pairs: window row a,
 * column b meets kernel tap (ry + s (na-1-a), rx + s (nb-1-b)); an odd nb ends with a zero tap. */
TT_ALWAYS_INLINE void dwplane_weights(const int8_t *wc, int32_t kernel, int32_t s, int32_t ry, int32_t rx, int32_t na,
                                      int32_t nb, uint64_t *wt)
{
    const int32_t np = (nb + 1) / 2;
    TT_UNROLL(7)
    for (int32_t a = 0; a < na; a++) {
        const int8_t *wr = wc + (ry + s * (na - 1 - a)) * kernel + rx;
        TT_UNROLL(4)
        for (int32_t q = 0; q < np; q++) {
            const int32_t v0 = wr[s * (nb - 1 - 2 * q)];
            const int32_t v1 = 2 * q + 1 < nb ? wr[s * (nb - 2 - 2 * q)] : 0;
            dwplane_set_word(wt, a * np + q, tt_pack16(v0, v1));
        }
    }
}

/* The inputs of one class of one channel from its plane: rows x cols windows of na x (2 np) taps.
 * Blocks of 4 horizontally adjacent inputs: per kernel row the 2 np + 2 int16 pairs under them and
 * np weight pairs, 4 np SMLAD. The plane's rows are DWPLANE_ROW elements, so every load of a block is an
 * immediate offset from one pointer; cols a multiple of 4 (dwplane_class_any takes the others). */
TT_ALWAYS_INLINE void dwplane_class(const dwplane_cls *q, const int16_t *plane, const uint64_t *wtab, int32_t na,
                                    int32_t np, int32_t out_row, int32_t oc, int32_t *gx32, int16_t *gx16, int32_t k0,
                                    int32_t sh, uint32_t *mxp, int mode)
{
    const int32_t cols = q->cols, orow_step = out_row - cols * oc;
    uint32_t mx = *mxp;
    const int16_t *p = plane + q->base;
    int32_t *o32 = gx32 + q->out;
    int16_t *o16 = gx16 + q->out;
    for (int32_t m = q->rows; m > 0; m--) {
        const int16_t *pe = p + cols;
        do {
            const uint64_t *wt = wtab;
            TT_OPAQUE(wt); /* reload the weights per block rather than keep (and spill) them */
            int32_t a0 = k0, a1 = k0, a2 = k0, a3 = k0;
            TT_UNROLL(7)
            for (int32_t a = 0; a < na; a++) {
                const int16_t *pa = p + a * DWPLANE_ROW;
                TT_UNROLL(4)
                for (int32_t t = 0; t < np; t++) {
                    const uint32_t wq = dwplane_word(wt, a * np + t);
                    a0 = tt_smlad(tt_read_s16x2(pa + 2 * t), wq, a0);
                    a1 = tt_smlad(tt_read_s16x2(pa + 2 * t + 1), wq, a1);
                    a2 = tt_smlad(tt_read_s16x2(pa + 2 * t + 2), wq, a2);
                    a3 = tt_smlad(tt_read_s16x2(pa + 2 * t + 3), wq, a3);
                }
            }
            p += 4;
            dwplane_out(mode, o32, o16, a0, sh, &mx);
            o32 += oc, o16 += oc;
            dwplane_out(mode, o32, o16, a1, sh, &mx);
            o32 += oc, o16 += oc;
            dwplane_out(mode, o32, o16, a2, sh, &mx);
            o32 += oc, o16 += oc;
            dwplane_out(mode, o32, o16, a3, sh, &mx);
            o32 += oc, o16 += oc;
        } while (p != pe);
        p += DWPLANE_ROW - cols;
        o32 += orow_step, o16 += orow_step;
    }
    *mxp = mx;
}

/* Any cols (a partial last block per row), run-time na and np. */
static void dwplane_class_any(const dwplane_cls *q, const int16_t *plane, const uint64_t *wt, int32_t na, int32_t np,
                              dwplane_job *j, int32_t ch, int mode)
{
    const int32_t k0 = mode == IG_STORE16 ? j->k0 : 0;
    for (int32_t m = 0; m < q->rows; m++)
        for (int32_t b = 0; b < q->cols; b += 4) {
            const int16_t *p = plane + q->base + m * DWPLANE_ROW + b;
            int32_t a0 = k0, a1 = k0, a2 = k0, a3 = k0;
            for (int32_t a = 0; a < na; a++) {
                const int16_t *pa = p + a * DWPLANE_ROW;
                for (int32_t t = 0; t < np; t++) {
                    const uint32_t wq = dwplane_word(wt, a * np + t);
                    a0 = tt_smlad(tt_read_s16x2(pa + 2 * t), wq, a0);
                    a1 = tt_smlad(tt_read_s16x2(pa + 2 * t + 1), wq, a1);
                    a2 = tt_smlad(tt_read_s16x2(pa + 2 * t + 2), wq, a2);
                    a3 = tt_smlad(tt_read_s16x2(pa + 2 * t + 3), wq, a3);
                }
            }
            const int32_t v[4] = {a0, a1, a2, a3};
            for (int32_t t = 0; t < 4 && b + t < q->cols; t++) {
                const int32_t o = q->out + ch + m * j->out_row + (b + t) * j->out_col;
                dwplane_out(mode, j->gx32 + o, j->gx16 + o, v[t], j->sh, &j->mx);
            }
        }
}

/* Every class of one channel (weights wc, its plane): kernel and stride constants of the instantiation
 * (0: run-time values K, S, through dwplane_class_any). */
TT_ALWAYS_INLINE void dwplane_channel(dwplane_job *j, const int16_t *plane, const int8_t *wc, int32_t ch,
                                      int32_t kernel, int32_t s, int mode, uint64_t *wt)
{
    int32_t *gx32 = mode == IG_STORE32 ? j->gx32 + ch : 0;
    int16_t *gx16 = mode == IG_STORE16 ? j->gx16 + ch : 0;
    const int32_t k0 = mode == IG_STORE16 ? j->k0 : 0;
    TT_UNROLL(2)
    for (int32_t ry = 0; ry < s; ry++) {
        const int32_t na = ry < kernel ? (kernel - ry + s - 1) / s : 0;
        TT_UNROLL(2)
        for (int32_t rx = 0; rx < s; rx++) {
            const int32_t nb = rx < kernel ? (kernel - rx + s - 1) / s : 0, np = (nb + 1) / 2;
            const dwplane_cls *q = &j->cls[ry * s + rx];
            if (q->rows == 0 || q->cols == 0)
                continue;
            if (na == 0 || nb == 0) { /* no tap reaches these inputs */
                if (mode != IG_RANGE)
                    for (int32_t m = 0; m < q->rows; m++)
                        for (int32_t n = 0; n < q->cols; n++) {
                            const int32_t o = q->out + ch + m * j->out_row + n * j->out_col;
                            if (mode == IG_STORE32)
                                j->gx32[o] = 0;
                            else
                                j->gx16[o] = 0;
                        }
                continue;
            }
            dwplane_weights(wc, kernel, s, ry, rx, na, nb, wt);
            if ((q->cols & 3) == 0)
                dwplane_class(q, plane, wt, na, np, j->out_row, j->out_col, gx32, gx16, k0, j->sh, &j->mx, mode);
            else
                dwplane_class_any(q, plane, wt, na, np, j, ch, mode);
        }
    }
}

typedef void (*dwplane_fn)(dwplane_job *j, const int16_t *plane, const int8_t *wc, int32_t ch);
/* Words of the largest class's weight table: ceil(K / S) rows of ceil(K / S) taps in pairs. */
#define DWPLANE_WT(K, S) ((((K) + (S) - 1) / (S) * ((((K) + (S) - 1) / (S) + 1) / 2) + 1) / 2)
#define DWPLANE_INST(K, S)                                                                                            \
    TT_NOINLINE_NOSCHED static void dwplane_r_##K##_##S(dwplane_job *j, const int16_t *p, const int8_t *wc,           \
                                                       int32_t ch)                                                    \
    {                                                                                                                 \
        uint64_t wt[DWPLANE_WT(K, S)];                                                                                \
        dwplane_channel(j, p, wc, ch, K, S, IG_RANGE, wt);                                                            \
    }                                                                                                                 \
    TT_NOINLINE_NOSCHED static void dwplane_s16_##K##_##S(dwplane_job *j, const int16_t *p, const int8_t *wc,         \
                                                         int32_t ch)                                                  \
    {                                                                                                                 \
        uint64_t wt[DWPLANE_WT(K, S)];                                                                                \
        dwplane_channel(j, p, wc, ch, K, S, IG_STORE16, wt);                                                          \
    }                                                                                                                 \
    TT_NOINLINE_NOSCHED static void dwplane_s32_##K##_##S(dwplane_job *j, const int16_t *p, const int8_t *wc,         \
                                                         int32_t ch)                                                  \
    {                                                                                                                 \
        uint64_t wt[DWPLANE_WT(K, S)];                                                                                \
        dwplane_channel(j, p, wc, ch, K, S, IG_STORE32, wt);                                                          \
    }
DWPLANE_INST(3, 1)
DWPLANE_INST(5, 1)
DWPLANE_INST(7, 1)
DWPLANE_INST(3, 2)
DWPLANE_INST(5, 2)
DWPLANE_INST(7, 2)

/* Run-time kernel and stride (1 and 2, any kernel up to the limits): the rare geometries. */
static int32_t dwplane_any_kernel, dwplane_any_stride;
static void dwplane_any(dwplane_job *j, const int16_t *p, const int8_t *wc, int32_t ch, int mode)
{
    uint64_t wt[DWPLANE_MAX_NA * DWPLANE_MAX_NP / 2];
    const int32_t kernel = dwplane_any_kernel, s = dwplane_any_stride;
    for (int32_t ry = 0; ry < s; ry++)
        for (int32_t rx = 0; rx < s; rx++) {
            const int32_t na = ry < kernel ? (kernel - ry + s - 1) / s : 0;
            const int32_t nb = rx < kernel ? (kernel - rx + s - 1) / s : 0;
            const dwplane_cls *q = &j->cls[ry * s + rx];
            if (q->rows == 0 || q->cols == 0)
                continue;
            if (na == 0 || nb == 0) {
                if (mode != IG_RANGE)
                    for (int32_t m = 0; m < q->rows; m++)
                        for (int32_t n = 0; n < q->cols; n++) {
                            const int32_t o = q->out + ch + m * j->out_row + n * j->out_col;
                            if (mode == IG_STORE32)
                                j->gx32[o] = 0;
                            else
                                j->gx16[o] = 0;
                        }
                continue;
            }
            dwplane_weights(wc, kernel, s, ry, rx, na, nb, wt);
            dwplane_class_any(q, p, wt, na, (nb + 1) / 2, j, ch, mode);
        }
}
static void dwplane_any_r(dwplane_job *j, const int16_t *p, const int8_t *wc, int32_t ch)
{
    dwplane_any(j, p, wc, ch, IG_RANGE);
}
static void dwplane_any_s16(dwplane_job *j, const int16_t *p, const int8_t *wc, int32_t ch)
{
    dwplane_any(j, p, wc, ch, IG_STORE16);
}
static void dwplane_any_s32(dwplane_job *j, const int16_t *p, const int8_t *wc, int32_t ch)
{
    dwplane_any(j, p, wc, ch, IG_STORE32);
}

static dwplane_fn dwplane_pick(int32_t kernel, int32_t stride, int mode)
{
#define DWPLANE_CASE(K, S)                                                                                 \
    case K * 8 + S:                                                                                        \
        return mode == IG_RANGE     ? dwplane_r_##K##_##S                                                  \
               : mode == IG_STORE16 ? dwplane_s16_##K##_##S                                                \
                                    : dwplane_s32_##K##_##S;
    switch (kernel * 8 + stride) {
        DWPLANE_CASE(3, 1)
        DWPLANE_CASE(5, 1)
        DWPLANE_CASE(7, 1)
        DWPLANE_CASE(3, 2)
        DWPLANE_CASE(5, 2)
        DWPLANE_CASE(7, 2)
    default:
        return mode == IG_RANGE ? dwplane_any_r : mode == IG_STORE16 ? dwplane_any_s16 : dwplane_any_s32;
    }
#undef DWPLANE_CASE
}

/* Channel ch + t of g into plane t (t < nch, 1 or 2), inside its zero border. Two channels: two
 * positions (two int16 pairs) become the next two elements of each plane (PKHBT, PKHTB). */
static void dwplane_fill(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t ch, int32_t nch,
                         const dwplane_geom *G, int16_t *planes)
{
    int16_t *d0 = planes + G->y.off * DWPLANE_ROW + G->x.off;
    const int16_t *gp = g + ch;
    if (nch == 2) {
        int16_t *d1 = d0 + G->plane;
        for (int32_t oy = 0; oy < oh; oy++, d0 += DWPLANE_ROW, d1 += DWPLANE_ROW) {
            int32_t ox = 0;
            for (; ox + 1 < ow; ox += 2, gp += 2 * c) {
                const uint32_t v0 = tt_read_s16x2(gp), v1 = tt_read_s16x2(gp + c);
                tt_write_s16x2(d0 + ox, (v0 & 0xFFFFu) | (v1 << 16));
                tt_write_s16x2(d1 + ox, (v0 >> 16) | (v1 & 0xFFFF0000u));
            }
            if (ox < ow) {
                const uint32_t v = tt_read_s16x2(gp);
                gp += c;
                d0[ox] = (int16_t)tt_lane_lo(v);
                d1[ox] = (int16_t)tt_lane_hi(v);
            }
        }
    } else {
        for (int32_t oy = 0; oy < oh; oy++, d0 += DWPLANE_ROW)
            for (int32_t ox = 0; ox < ow; ox++, gp += c)
                d0[ox] = *gp;
    }
}

/* One pass over every channel, nplanes (1 or 2) at a time (mode IG_RANGE: returns the max of
 * v ^ (v >> 31); the stores write gx32 / gx16, which may be g itself: a channel is in its plane before
 * its outputs are written). */
static uint32_t dwplane_pass(const dwplane_geom *G, const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t w,
                             const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int mode, int16_t *planes,
                             int32_t nplanes, int32_t *gx32, int16_t *gx16, int32_t s)
{
    const int32_t kernel = G->kernel, kk = kernel * kernel, st = G->stride;
    dwplane_job j;
    for (int32_t ry = 0; ry < st; ry++)
        for (int32_t rx = 0; rx < st; rx++) {
            dwplane_cls *q = &j.cls[ry * st + rx];
            q->rows = G->y.cnt[ry];
            q->cols = G->x.cnt[rx];
            q->base = G->y.base[ry] * DWPLANE_ROW + G->x.base[rx];
            q->out = (G->y.i0[ry] * w + G->x.i0[rx]) * c;
        }
    j.out_row = st * w * c;
    j.out_col = st * c;
    j.gx32 = gx32;
    j.gx16 = gx16;
    j.k0 = s > 0 ? (int32_t)(UINT32_C(1) << (s - 1)) : 0;
    j.sh = s;
    j.mx = 0;
    dwplane_any_kernel = kernel;
    dwplane_any_stride = st;
    const dwplane_fn fn = dwplane_pick(kernel, st, mode);
    memset(planes, 0, (size_t)(c > 1 ? nplanes : 1) * (size_t)G->plane * sizeof *planes);
    for (int32_t ch = 0; ch < c; ch += nplanes) {
        const int32_t nch = ch + 1 < c ? nplanes : 1;
        dwplane_fill(g, oh, ow, c, ch, nch, G, planes);
        fn(&j, planes, ch < c_lo ? w_lo + ch * kk : w_hi + (ch - c_lo) * kk, ch);
        if (nch == 2)
            fn(&j, planes + G->plane, ch + 1 < c_lo ? w_lo + (ch + 1) * kk : w_hi + (ch + 1 - c_lo) * kk, ch + 1);
    }
    return j.mx;
}

/* The normalized form through planes: pass 1 the max (exactly, from max(v ^ (v >> 31)) unless it sits
 * next to a threshold of the shift, then by the HWC walk), pass 2 the stores. gx16 may be g. */
TT_NOINLINE static void dwhwc_range(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                                    int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi,
                                    int32_t c_lo, ig_sink *k, uint32_t (*tab)[2]);

static int32_t dwplane_normalized(const dwplane_geom *G, const int16_t *g, int32_t oh, int32_t ow, int32_t c,
                                  int32_t kernel, int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                  const int8_t *w_hi, int32_t c_lo, int32_t bits, int16_t *gx16, int16_t *planes,
                                  int32_t nplanes, uint32_t (*tab)[2])
{
    const uint32_t x = dwplane_pass(G, g, oh, ow, c, w, w_lo, w_hi, c_lo, IG_RANGE, planes, nplanes, 0, 0, 0);
    /* max |v| is x or x + 1 (x + 1 when reached only by a negative v) */
    int32_t s = tt_normalize_shift(x, bits);
    if (s != tt_normalize_shift((uint64_t)x + 1u, bits)) {
        ig_sink k = {0, 0, 0, 0, 0, 0};
        dwhwc_range(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, tab);
        s = ig_start16(&k, bits);
    }
    dwplane_pass(G, g, oh, ow, c, w, w_lo, w_hi, c_lo, IG_STORE16, planes, nplanes, 0, gx16, s);
    return s;
}
#endif

/* ------------------------------------------------------------------ kernels: the planes (DSP), else the HWC walk */

TT_ALWAYS_INLINE void dwhwc_body_inl(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                     int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t c_lo, ig_sink *k, int mode, uint32_t (*tab)[2])
{
#if TT_DSP
    if (kernel <= DW_MAX_KERNEL) {
        dwhwc_dsp(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, mode, tab);
        return;
    }
#else
    (void)tab;
#endif
    dw_channels_portable(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, mode, 0, c);
}

/* The HWC walk, one function per sink mode: its weight table stays out of the callers' frames (the
 * stack's high-water mark counts). */
#define DWHWC_ARGS                                                                                               \
    const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride, int32_t pad, int32_t h, \
        int32_t w, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, ig_sink *k, uint32_t (*tab)[2]
#define DWHWC_INST(NAME, MODE)                                                                            \
    TT_NOINLINE static void NAME(DWHWC_ARGS)                                                              \
    {                                                                                                     \
        dwhwc_body_inl(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, MODE, tab);          \
    }
DWHWC_INST(dwhwc_range, IG_RANGE)
DWHWC_INST(dwhwc_store16, IG_STORE16)
DWHWC_INST(dwhwc_store32, IG_STORE32)

static void dwhwc_body(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel, int32_t stride,
                       int32_t pad, int32_t h, int32_t w, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                       ig_sink *k, int mode, void *scratch)
{
    (mode == IG_RANGE ? dwhwc_range : mode == IG_STORE16 ? dwhwc_store16 : dwhwc_store32)(
        g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, k, (uint32_t(*)[2])scratch);
}

/* The caller's scratch: the HWC walk's weight table (DW_MAX_KERNEL^2 taps x 8 bytes), then the planes. */
#define DWI_TABLE_BYTES (DW_MAX_KERNEL * DW_MAX_KERNEL * 8)

int32_t tt_input_grad_depthwise_scratch_bytes(const tt_geom *g)
{
    (void)g;
    return DWI_TABLE_BYTES + 160 * 2; /* + DWPLANE_STACK_PLANES int16 */
}

#if TT_DSP
_Static_assert(160 == DWPLANE_STACK_PLANES, "tt_input_grad_depthwise_scratch_bytes");

/* The plane forms with their plane in the caller's scratch (after the table). */
TT_NOINLINE static void dwplane32_stack(const dwplane_geom *G, const int16_t *g, int32_t oh, int32_t ow, int32_t c,
                                        int32_t w, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t *gx,
                                        void *scratch)
{
    int16_t *planes = (int16_t *)(void *)((char *)scratch + DWI_TABLE_BYTES);
    dwplane_pass(G, g, oh, ow, c, w, w_lo, w_hi, c_lo, IG_STORE32, planes, 1, gx, 0, 0);
}

TT_NOINLINE static int32_t dwplane16_stack(const dwplane_geom *G, const int16_t *g, int32_t oh, int32_t ow, int32_t c,
                                           int32_t kernel, int32_t stride, int32_t pad, int32_t h, int32_t w,
                                           const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo, int32_t bits,
                                           int16_t *gx, void *scratch)
{
    int16_t *planes = (int16_t *)(void *)((char *)scratch + DWI_TABLE_BYTES);
    return dwplane_normalized(G, g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits, gx, planes, 1,
                              (uint32_t(*)[2])scratch);
}
#endif

void tt_input_grad_depthwise(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t *gx, void *scratch)
{
    const int32_t oh = gm->oh, ow = gm->ow, c = gm->cout, kernel = gm->kh, stride = gm->sh, pad = gm->pad_top;
    const int32_t h = gm->h, w = gm->w, c_lo = l->k_lo;
    const int8_t *w_lo = l->w_lo, *w_hi = l->w_hi;
#if TT_DSP
    dwplane_geom G;
    if (dwplane_plan(&G, oh, ow, kernel, stride, pad, h, w, DWPLANE_STACK_PLANES)) {
        dwplane32_stack(&G, g, oh, ow, c, w, w_lo, w_hi, c_lo, gx, scratch);
        return;
    }
#endif
    ig_sink k = {gx, 0, 0, 0, 0, 0};
    dwhwc_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_STORE32, scratch);
}

/* ------------------------------------------------------------------ internal (input_grad_depthwise_inplace.c) */

int32_t tt_input_grad_depthwise16_shift(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                        int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                        const int8_t *w_hi, int32_t c_lo, int32_t bits, void *ks)
{
    ig_sink k = {0, 0, 0, 0, 0, 0};
    dwhwc_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_RANGE, ks);
    return ig_start16(&k, bits);
}

#if TT_DSP
int tt_input_grad_depthwise16_planes(const int16_t *g, int32_t oh, int32_t ow, int32_t c, int32_t kernel,
                                     int32_t stride, int32_t pad, int32_t h, int32_t w, const int8_t *w_lo,
                                     const int8_t *w_hi, int32_t c_lo, int32_t bits, int16_t *gx, int16_t *scratch,
                                     int32_t scratch_elems, int32_t *s, void *ks)
{
    dwplane_geom G;
    if (dwplane_plan(&G, oh, ow, kernel, stride, pad, h, w, scratch_elems)) {
        const int32_t nplanes = 2 * G.plane <= scratch_elems ? 2 : 1;
        *s = dwplane_normalized(&G, g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits, gx, scratch,
                                nplanes, (uint32_t(*)[2])ks);
        return 1;
    }
    if (dwplane_plan(&G, oh, ow, kernel, stride, pad, h, w, DWPLANE_STACK_PLANES)) {
        *s = dwplane16_stack(&G, g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits, gx, ks);
        return 1;
    }
    return 0;
}
#endif

int32_t tt_input_grad_depthwise16(const tt_geom *gm, const tt_layer *l, const int16_t *g, int32_t e, int32_t bits,
                                  int16_t *gx, void *scratch)
{
    const int32_t oh = gm->oh, ow = gm->ow, c = gm->cout, kernel = gm->kh, stride = gm->sh, pad = gm->pad_top;
    const int32_t h = gm->h, w = gm->w, c_lo = l->k_lo;
    const int8_t *w_lo = l->w_lo, *w_hi = l->w_hi;
#if TT_DSP
    dwplane_geom G;
    if (dwplane_plan(&G, oh, ow, kernel, stride, pad, h, w, DWPLANE_STACK_PLANES))
        return e + dwplane16_stack(&G, g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits, gx, scratch);
#endif
    ig_sink k = {0, gx, 0, 0, 0, 0};
    dwhwc_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_RANGE, scratch);
    const int32_t s = ig_start16(&k, bits);
    dwhwc_body(g, oh, ow, c, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, &k, IG_STORE16, scratch);
    return e + s;
}
