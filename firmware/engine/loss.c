/* Softmax cross-entropy gradient on int8 logits, all integer (docs/numerics.md, "Loss"). */
#include "tt_kernels.h"

#include "internal/fixed_point.h"

/* dL/dq_i before scaling: floor(T[max - q_i] 2^15 / S) - 2^15 [i = label]. */
static inline int64_t softmax_grad(const int8_t *logits, int32_t i, int32_t label, int32_t qmax, const uint32_t *table,
                                   uint64_t sum)
{
    const uint64_t e = table[qmax - logits[i]];
    const int64_t p = (int64_t)((e << 15) / sum);
    return i == label ? p - 32768 : p;
}

/* Three passes, no scratch: the two block-float maxima are |g| lr and |m| s_mult,
 * so each is known before the values it scales are formed; the intermediate
 * 16-bit mantissas are parked in g itself. */
int32_t tt_loss_grad(const int8_t *logits, int32_t n, int32_t label, const uint32_t *table,
                     uint32_t lr_scale, int32_t s_mult, int32_t s_shift, int32_t bits, int16_t *g)
{
    int32_t qmax = -128;
    for (int32_t i = 0; i < n; i++)
        if (logits[i] > qmax)
            qmax = logits[i];
    uint64_t sum = 0;
    for (int32_t i = 0; i < n; i++)
        sum += table[qmax - logits[i]];
    if (sum == 0) /* only with a table whose every used entry is 0; the real table has T[0] = 2^20 */
        sum = 1;

    uint64_t gmax = 0;
    for (int32_t i = 0; i < n; i++) {
        const uint64_t a = tt_abs64(softmax_grad(logits, i, label, qmax, table, sum));
        if (a > gmax)
            gmax = a;
    }
    /* v = g * lr_scale, exponent -31, renormalized to 16 bits */
    const int32_t s1 = tt_normalize_shift(gmax * lr_scale, 16);
    uint64_t mmax = 0;
    for (int32_t i = 0; i < n; i++) {
        const int64_t m = tt_rshift_round(softmax_grad(logits, i, label, qmax, table, sum) * (int64_t)lr_scale, s1);
        g[i] = (int16_t)m;
        const uint64_t a = tt_abs64(m);
        if (a > mmax)
            mmax = a;
    }
    /* times s_q = s_mult 2^(s_shift - 31), renormalized to `bits` */
    const int32_t s2 = tt_normalize_shift(mmax * tt_abs64(s_mult), bits);
    for (int32_t i = 0; i < n; i++)
        g[i] = (int16_t)tt_rshift_round((int64_t)g[i] * s_mult, s2);
    return -31 + s1 + s_shift - 31 + s2;
}
