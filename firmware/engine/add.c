/* Residual add, forward: TFLite int8 ADD (docs/numerics.md), y may alias a or b. */
#include "tt_kernels.h"

#include "internal/fixed_point.h"
#include "internal/mask_bits.h"

/* MBQM(x, m, -e) for m >= 0, |x| < 2^30, in the fewest instructions for each right shift e:
 * e = 0: SRDHM alone, floor((x m + 2^30) / 2^31) = floor((2x m + 2^31) / 2^32), one SMMULR on 2x;
 * e >= 1: floor((x m + C) / 2^(31 + e)) with C = 2^30 + 2^(30+e) - 2^31 [x < 0] (SRDHM's floor and
 * RDBPOT's rounding compose; fixed_point.h), the high word of C + x m shifted by e - 1, whose low
 * word starts at 2^30 + 2^31 [e = 1] - 2^31 [x < 0] and high word at 2^(e-2) [e >= 2] + s. */
enum { ADD_E0 = 0, ADD_E1 = 1, ADD_E2 = 2 };

TT_ALWAYS_INLINE int32_t add_scale(int32_t x, int32_t m, int32_t khi, int32_t sh, int form)
{
    if (form == ADD_E0)
        return (int32_t)(((int64_t)(x * 2) * m + (INT64_C(1) << 31)) >> 32);
    const int32_t s = x >> 31;
    const uint32_t lo = (form == ADD_E1 ? 0xC0000000u : 0x40000000u) ^ ((uint32_t)s << 31);
    const uint32_t hi = form == ADD_E1 ? 0u : (uint32_t)(khi + s);
    const int64_t n = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)x * m;
    return form == ADD_E1 ? (int32_t)(n >> 32) : (int32_t)(n >> 32) >> sh;
}

typedef struct {
    int32_t ls, zs1, zs2, m1, m2, k1, k2, sh1, sh2, mo, ko, ro;
} add_consts;

TT_ALWAYS_INLINE void add_loop(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const add_consts *k,
                               uint8_t *mask, int f1, int f2)
{
    const int32_t ls = k->ls, zs1 = k->zs1, zs2 = k->zs2, m1 = k->m1, m2 = k->m2, k1 = k->k1, k2 = k->k2;
    const int32_t sh1 = k->sh1, sh2 = k->sh2, mo = k->mo, ko = k->ko, ro = k->ro;
    uint32_t bits = 0;
    for (int32_t i = 0; i < n; i++) {
        /* (x - z) << ls = x << ls - z << ls: exact, |.| < 2^29 */
        const int32_t sa = add_scale(a[i] * (1 << ls) - zs1, m1, k1, sh1, f1);
        const int32_t sb = add_scale(b[i] * (1 << ls) - zs2, m2, k2, sh2, f2);
        const int32_t pre = tt_rq_apply(sa + sb, 0, mo, ko, ro);
        const int32_t v = tt_ssat8(pre);
        y[i] = (int8_t)v;
        if (mask)
            tt_mask_seq_put(mask, &bits, (uint32_t)i, (uint32_t)(v == pre));
    }
    if (mask)
        tt_mask_seq_end(mask, bits, (uint32_t)n);
}

typedef void (*add_loop_fn)(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const add_consts *k, uint8_t *mask);
#define ADD_INST(F1, F2)                                                                                       \
    TT_NOINLINE static void add_loop_##F1##_##F2(const int8_t *a, const int8_t *b, int8_t *y, int32_t n,       \
                                                  const add_consts *k, uint8_t *mask)                          \
    {                                                                                                          \
        if (mask)                                                                                              \
            add_loop(a, b, y, n, k, mask, F1, F2);                                                             \
        else                                                                                                   \
            add_loop(a, b, y, n, k, 0, F1, F2);                                                                \
    }
ADD_INST(0, 0)
ADD_INST(0, 1)
ADD_INST(0, 2)
ADD_INST(1, 0)
ADD_INST(1, 1)
ADD_INST(1, 2)
ADD_INST(2, 0)
ADD_INST(2, 1)
ADD_INST(2, 2)
static const add_loop_fn add_loops[3][3] = {{add_loop_0_0, add_loop_0_1, add_loop_0_2},
                                            {add_loop_1_0, add_loop_1_1, add_loop_1_2},
                                            {add_loop_2_0, add_loop_2_1, add_loop_2_2}};

/* The common parameters: inputs scaled down (right shifts 0..31, multipliers >= 0, (x - z) << ls
 * below 2^29), the output's right shift 2..23 with zo folded into its constant (fixed_point.h). */
static int add_fast(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const tt_add_params *p, uint8_t *mask)
{
    const int32_t e1 = -p->s1, e2 = -p->s2;
    tt_rq qo;
    if (p->left_shift < 0 || p->left_shift > 20 || e1 < 0 || e1 > 31 || e2 < 0 || e2 > 31 || p->m1 < 0 || p->m2 < 0 ||
        !tt_rq_prepare(&qo, 0, p->mo, p->so) || !tt_rq_foldable(&qo))
        return 0;
    tt_rq_fold(&qo, p->zo);
    add_consts k;
    k.ls = p->left_shift;
    k.zs1 = p->z1 * (1 << k.ls);
    k.zs2 = p->z2 * (1 << k.ls);
    k.m1 = p->m1;
    k.m2 = p->m2;
    k.k1 = e1 >= 2 ? (int32_t)(UINT32_C(1) << (e1 - 2)) : 0;
    k.k2 = e2 >= 2 ? (int32_t)(UINT32_C(1) << (e2 - 2)) : 0;
    k.sh1 = e1 > 0 ? e1 - 1 : 0;
    k.sh2 = e2 > 0 ? e2 - 1 : 0;
    k.mo = qo.mult;
    k.ko = qo.khi;
    k.ro = qo.rsh;
    add_loops[e1 < 2 ? e1 : 2][e2 < 2 ? e2 : 2](a, b, y, n, &k, mask);
    return 1;
}

#if TT_DSP
/* The DSP form of the common case, every MBQM as one SMMLAR: with X = 2 x (|x| < 2^29),
 * SMMLAR(X, m, K) = SRDHM(x, m) + K exactly, and for a right shift e >= 1, K = 2^(e-1) (+ zo 2^e for
 * the output): (SMMLAR + (X >> 31)) >> e = RDBPOT(SRDHM, e) (+ zo), as in the conv kernels' RQ_DBL
 * form (internal/pointwise_block.h); e = 0 is
 * SRDHM alone. The inputs' 2 ((v - z) << ls) = v 2^(ls+1) - z 2^(ls+1). */
typedef struct {
    int32_t ls1, zs1, zs2, m1, m2, k1, k2, e1, e2, mo, ko, eo;
} add_dsp_consts;

TT_ALWAYS_INLINE int32_t add_dsp_scale(int32_t v, int32_t ls1, int32_t zs, int32_t m, int32_t k, int32_t e, int right)
{
    const int32_t x2 = v * (1 << ls1) - zs;
    const int32_t h = tt_smmlar(x2, m, k);
    return right ? (h + (x2 >> 31)) >> e : h;
}

TT_ALWAYS_INLINE void add_dsp_loop(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const add_dsp_consts *kc,
                                   uint8_t *mask, int r1, int r2)
{
    const int32_t ls1 = kc->ls1, zs1 = kc->zs1, zs2 = kc->zs2, m1 = kc->m1, m2 = kc->m2, k1 = kc->k1, k2 = kc->k2;
    const int32_t e1 = kc->e1, e2 = kc->e2, mo = kc->mo, ko = kc->ko, eo = kc->eo;
    uint32_t bits = 0;
    for (int32_t i = 0; i < n; i++) {
        const int32_t sa = add_dsp_scale(a[i], ls1, zs1, m1, k1, e1, r1);
        const int32_t sb = add_dsp_scale(b[i], ls1, zs2, m2, k2, e2, r2);
        const int32_t s2 = (sa + sb) * 2; /* |sa + sb| < 2^29 */
        const int32_t pre = (tt_smmlar(s2, mo, ko) + (s2 >> 31)) >> eo;
        const int32_t v = tt_ssat8(pre);
        y[i] = (int8_t)v;
        if (mask)
            tt_mask_seq_put(mask, &bits, (uint32_t)i, (uint32_t)(v == pre));
    }
    if (mask)
        tt_mask_seq_end(mask, bits, (uint32_t)n);
}

#define ADD_DSP_INST(R1, R2)                                                                                     \
    TT_NOINLINE static void add_dsp_##R1##R2(const int8_t *a, const int8_t *b, int8_t *y, int32_t n,             \
                                              const add_dsp_consts *kc, uint8_t *mask)                           \
    {                                                                                                            \
        if (mask)                                                                                                \
            add_dsp_loop(a, b, y, n, kc, mask, R1, R2);                                                          \
        else                                                                                                     \
            add_dsp_loop(a, b, y, n, kc, 0, R1, R2);                                                             \
    }
ADD_DSP_INST(0, 0)
ADD_DSP_INST(0, 1)
ADD_DSP_INST(1, 0)
ADD_DSP_INST(1, 1)

static int add_dsp(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const tt_add_params *p, uint8_t *mask)
{
    const int32_t e1 = -p->s1, e2 = -p->s2, eo = -p->so;
    if (p->left_shift < 0 || p->left_shift > 20 || e1 < 0 || e1 > 31 || e2 < 0 || e2 > 31 || p->m1 < 0 || p->m2 < 0 ||
        p->mo < 0 || eo < 1 || eo > 23)
        return 0;
    add_dsp_consts k;
    k.ls1 = p->left_shift + 1;
    k.zs1 = p->z1 * (1 << k.ls1);
    k.zs2 = p->z2 * (1 << k.ls1);
    k.m1 = p->m1;
    k.m2 = p->m2;
    k.k1 = e1 ? (int32_t)(UINT32_C(1) << (e1 - 1)) : 0;
    k.k2 = e2 ? (int32_t)(UINT32_C(1) << (e2 - 1)) : 0;
    k.e1 = e1;
    k.e2 = e2;
    k.mo = p->mo;
    k.ko = (int32_t)(UINT32_C(1) << (eo - 1)) + p->zo * (int32_t)(UINT32_C(1) << eo);
    k.eo = eo;
    if (e1 && e2)
        add_dsp_11(a, b, y, n, &k, mask);
    else if (e1)
        add_dsp_10(a, b, y, n, &k, mask);
    else if (e2)
        add_dsp_01(a, b, y, n, &k, mask);
    else
        add_dsp_00(a, b, y, n, &k, mask);
    return 1;
}
#endif

/* Element-wise, so y may alias a or b. */
void tt_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, const tt_add_params *p, uint8_t *mask)
{
#if TT_DSP
    if (add_dsp(a, b, y, n, p, mask))
        return;
#endif
    if (add_fast(a, b, y, n, p, mask))
        return;
    const int32_t ls = p->left_shift;
    for (int32_t i = 0; i < n; i++) {
        /* (x - z) << left_shift stays exact (|x - z| <= 255, left_shift 20); the sum
         * wraps exactly as the reference's wrap before its second MBQM. */
        const int32_t sa = tt_mbqm_inline(tt_wrap32((uint32_t)(a[i] - p->z1) << ls), p->m1, p->s1);
        const int32_t sb = tt_mbqm_inline(tt_wrap32((uint32_t)(b[i] - p->z2) << ls), p->m2, p->s2);
        const int32_t raw = tt_wrap32((uint32_t)sa + (uint32_t)sb);
        const uint32_t f = tt_store_int8(tt_mbqm_inline(raw, p->mo, p->so), p->zo, y + i);
        if (mask)
            tt_mask_put(mask, (uint32_t)i, f);
    }
    if (mask)
        tt_mask_finish(mask, (uint32_t)n);
}
