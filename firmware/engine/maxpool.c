/* Max pool 2D (TFLite MAX_POOL_2D) and its gradient.
 *
 * Forward: the max of a window's in-bounds elements (padding never wins); input and output share
 * scale and zero point, so nothing is requantized. Backward: each window's gradient goes to its first
 * maximal element (taps in row-major order), overlapping windows add up, normalized to `bits`; the
 * pool's input is read again to find the maxima (no index map is kept).
 */
#include "tt_kernels.h"

#include "internal/dsp_intrinsics.h"
#include "internal/fixed_point.h"

/* The in-bounds taps [lo, hi) of the window starting at input coordinate `start` (kernel k, size n). */
static inline void window_taps(int32_t start, int32_t k, int32_t n, int32_t *lo, int32_t *hi)
{
    *lo = start < 0 ? -start : 0;
    *hi = start + k > n ? n - start : k;
}

/* ------------------------------------------------------------------ Cortex-M7 DSP */

#if TT_DSP
/* Lane-wise max of four int8: SSUB8 sets a GE flag per byte, SEL picks (one asm block, so nothing can
 * come between them). */
static inline uint32_t max8x4(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP) && !defined(TT_NO_DSP)
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b));
    return r;
#else
    uint32_t r = 0;
    for (int32_t i = 0; i < 4; i++) {
        const int32_t x = (int32_t)(((a >> (8 * i)) & 0xFFu) ^ 0x80u) - 0x80;
        const int32_t y = (int32_t)(((b >> (8 * i)) & 0xFFu) ^ 0x80u) - 0x80;
        r |= ((uint32_t)(x >= y ? x : y) & 0xFFu) << (8 * i);
    }
    return r;
#endif
}
#endif

void tt_maxpool(const tt_geom *g, const int8_t *x, int8_t *y)
{
    const int32_t h = g->h, w = g->w, c = g->cin;
    for (int32_t oy = 0; oy < g->oh; oy++) {
        const int32_t iy0 = oy * g->sh - g->pad_top;
        int32_t i_lo, i_hi;
        window_taps(iy0, g->kh, h, &i_lo, &i_hi);
        for (int32_t ox = 0; ox < g->ow; ox++) {
            const int32_t ix0 = ox * g->sw - g->pad_left;
            int32_t j_lo, j_hi;
            window_taps(ix0, g->kw, w, &j_lo, &j_hi);
            int8_t *yp = y + (oy * g->ow + ox) * c;
            int32_t ch = 0;
#if TT_DSP
            for (; ch + 3 < c; ch += 4) { /* 4 channels per SSUB8 / SEL */
                uint32_t m = 0x80808080u;
                for (int32_t i = i_lo; i < i_hi; i++)
                    for (int32_t j = j_lo; j < j_hi; j++)
                        m = max8x4(tt_read_s8x4(x + ((iy0 + i) * w + ix0 + j) * c + ch), m);
                TT_MEMCPY(yp + ch, &m, sizeof m);
            }
#endif
            for (; ch < c; ch++) {
                int32_t m = -128;
                for (int32_t i = i_lo; i < i_hi; i++)
                    for (int32_t j = j_lo; j < j_hi; j++) {
                        const int32_t v = x[((iy0 + i) * w + ix0 + j) * c + ch];
                        m = v > m ? v : m;
                    }
                yp[ch] = (int8_t)m;
            }
        }
    }
}

/* The input position (iy * w + ix) of the first maximal element of window (oy, ox), channel ch. */
static int32_t first_max(const tt_geom *g, const int8_t *x, int32_t oy, int32_t ox, int32_t ch)
{
    const int32_t iy0 = oy * g->sh - g->pad_top, ix0 = ox * g->sw - g->pad_left;
    int32_t i_lo, i_hi, j_lo, j_hi;
    window_taps(iy0, g->kh, g->h, &i_lo, &i_hi);
    window_taps(ix0, g->kw, g->w, &j_lo, &j_hi);
    int32_t best = -129, at = 0;
    for (int32_t i = i_lo; i < i_hi; i++)
        for (int32_t j = j_lo; j < j_hi; j++) {
            const int32_t p = (iy0 + i) * g->w + ix0 + j;
            const int32_t v = x[p * g->cin + ch];
            if (v > best) {
                best = v;
                at = p;
            }
        }
    return at;
}

/* Windows along one axis that cover input coordinate `in`: outputs [lo, hi). */
static inline void covering(int32_t in, int32_t pad, int32_t stride, int32_t k, int32_t out, int32_t *lo,
                            int32_t *hi)
{
    const int32_t t = in + pad; /* o stride <= t <= o stride + k - 1 */
    const int32_t a = t - k + 1;
    int32_t l = a > 0 ? (a + stride - 1) / stride : 0;
    int32_t h = t / stride + 1;
    *lo = l;
    *hi = h < out ? h : out;
}

/* The gradient of input element (iy, ix, ch): the sum of gy over the windows whose first max it is. */
static int32_t gather(const tt_geom *g, const int16_t *gy, const int8_t *x, int32_t iy, int32_t ix, int32_t ch)
{
    int32_t oy0, oy1, ox0, ox1, s = 0;
    covering(iy, g->pad_top, g->sh, g->kh, g->oh, &oy0, &oy1);
    covering(ix, g->pad_left, g->sw, g->kw, g->ow, &ox0, &ox1);
    for (int32_t oy = oy0; oy < oy1; oy++)
        for (int32_t ox = ox0; ox < ox1; ox++)
            if (first_max(g, x, oy, ox, ch) == iy * g->w + ix)
                s += gy[(oy * g->ow + ox) * g->cout + ch];
    return s;
}

int32_t tt_maxpool_grad(const tt_geom *g, const int16_t *gy, int32_t e, const int8_t *x, int32_t bits, int16_t *gx)
{
    const int32_t c = g->cin, n = g->h * g->w * c, m = g->oh * g->ow * c;
    if (g->sh >= g->kh && g->sw >= g->kw) {
        /* Windows do not overlap: every gy lands on one element, alone, so the range is gy's. */
        int32_t lo = 0, hi = 0;
        for (int32_t i = 0; i < m; i++) {
            lo = gy[i] < lo ? gy[i] : lo;
            hi = gy[i] > hi ? gy[i] : hi;
        }
        const uint64_t a = tt_abs64(lo);
        const int32_t s = tt_normalize_shift(a > (uint64_t)hi ? a : (uint64_t)hi, bits);
        for (int32_t i = 0; i < n; i++)
            gx[i] = 0;
        for (int32_t oy = 0; oy < g->oh; oy++)
            for (int32_t ox = 0; ox < g->ow; ox++)
                for (int32_t ch = 0; ch < c; ch++) {
                    const int32_t p = first_max(g, x, oy, ox, ch);
                    gx[p * c + ch] = (int16_t)tt_rshift_round(gy[(oy * g->ow + ox) * c + ch], s);
                }
        return e + s;
    }
    /* Overlapping windows: gather form, two passes (the range, then the values). */
    int32_t lo = 0, hi = 0;
    for (int32_t iy = 0; iy < g->h; iy++)
        for (int32_t ix = 0; ix < g->w; ix++)
            for (int32_t ch = 0; ch < c; ch++) {
                const int32_t v = gather(g, gy, x, iy, ix, ch);
                lo = v < lo ? v : lo;
                hi = v > hi ? v : hi;
            }
    const uint64_t a = tt_abs64(lo);
    const int32_t s = tt_normalize_shift(a > (uint64_t)hi ? a : (uint64_t)hi, bits);
    for (int32_t iy = 0; iy < g->h; iy++)
        for (int32_t ix = 0; ix < g->w; ix++)
            for (int32_t ch = 0; ch < c; ch++)
                gx[(iy * g->w + ix) * c + ch] = (int16_t)tt_rshift_round(gather(g, gy, x, iy, ix, ch), s);
    return e + s;
}
