/* Cortex-M DSP (SIMD32) operations of the fast paths, behind tt_ names. Internal to the engine.
 *
 * On a core with the DSP extension they are the ACLE intrinsics of arm_acle.h,
 * one instruction each. With TT_EMULATE_DSP (host tests) they are plain C with
 * the same semantics, so the exact loop structure of every DSP fast path runs
 * on the host, under sanitizers, against the NumPy reference. TT_DSP (0 or 1)
 * selects the path in the kernels; TT_NO_DSP forces the portable path on Arm.
 *
 * Lane conventions: "e" = even bytes (0, 2) and "o" = odd bytes (1, 3) of an
 * int8x4 word, sign-extended into the two int16 lanes (bottom, top). The
 * multiply-accumulates wrap modulo 2^32 like the instructions (they only set
 * the sticky Q flag); the kernels' bit budgets keep every sum in range.
 */
#ifndef TT_DSP_INTRINSICS_H
#define TT_DSP_INTRINSICS_H

#include <stdint.h>
#include <string.h>

#include "compiler_hints.h"

/* Unaligned little-endian loads: one LDR on Cortex-M7 (unaligned LDR is allowed; LDRD/LDM are not). */
static inline uint32_t tt_read_s8x4(const int8_t *p)
{
    uint32_t v;
    TT_MEMCPY(&v, p, sizeof v);
    return v;
}

/* Bytes p[0], p[1] as the halfword p[0] | p[1] << 8, zero-extended: one LDRH. */
static inline uint32_t tt_read_u8x2(const int8_t *p)
{
    uint16_t v;
    TT_MEMCPY(&v, p, sizeof v);
    return v;
}

static inline uint32_t tt_read_s16x2(const int16_t *p)
{
    uint32_t v;
    TT_MEMCPY(&v, p, sizeof v);
    return v;
}

/* Unaligned little-endian store of an int16 pair: one STR on Cortex-M7. */
static inline void tt_write_s16x2(int16_t *p, uint32_t v) { TT_MEMCPY(p, &v, sizeof v); }

/* The signed int16 lanes of a word (SXTH, ASR #16). */
static inline int32_t tt_lane_lo(uint32_t x) { return (int32_t)((x & 0xFFFFu) ^ 0x8000u) - 0x8000; }
static inline int32_t tt_lane_hi(uint32_t x) { return (int32_t)((x >> 16) ^ 0x8000u) - 0x8000; }

/* (lo, hi) -> one word with lo in the bottom int16 lane: PKHBT. */
static inline uint32_t tt_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

#if defined(__ARM_FEATURE_DSP) && !defined(TT_NO_DSP)
#define TT_DSP 1
#include <arm_acle.h>

static inline uint32_t tt_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }

/* SXTB16 with its built-in ROR #8 operand. GCC 12's arm_acle.h has no __ror and
 * does not fold a rotate into SXTB16, so this one is inline assembly (as CMSIS's
 * __SXTB16_RORn is for GCC); not volatile, the compiler may schedule and CSE it. */
static inline uint32_t tt_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline int32_t tt_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int16x2_t)a, (int16x2_t)b, acc);
}
/* SMLAxy: acc + a.x * b.y, x/y = b(ottom) or t(op) int16 lane. */
static inline int32_t tt_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static inline int32_t tt_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
static inline int32_t tt_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
static inline int32_t tt_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static inline uint32_t tt_ssub16(uint32_t a, uint32_t b) { return (uint32_t)__ssub16((int16x2_t)a, (int16x2_t)b); }
/* acc + (a * lane of b) >> 16 (48-bit product, truncated): SMLAWB / SMLAWT. */
static inline int32_t tt_smlawb(int32_t a, uint32_t b, int32_t acc) { return __smlawb(a, (int32_t)b, acc); }
static inline int32_t tt_smlawt(int32_t a, uint32_t b, int32_t acc) { return __smlawt(a, (int32_t)b, acc); }
/* Lane-wise max / min of two int16 pairs: SSUB16 sets the GE flags, SEL picks (one asm block, so
 * nothing can come between them). */
static inline uint32_t tt_max16x2(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub16 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t tt_min16x2(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub16 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t tt_sadd16(uint32_t a, uint32_t b) { return (uint32_t)__sadd16((int16x2_t)a, (int16x2_t)b); }
/* (a.hi, b.hi) as (lo, hi) lanes in one PKHTB (b's top over a's top shifted down). */
static inline uint32_t tt_pkhtb_hi(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(b), "r"(a));
    return r;
}

static inline int32_t tt_qadd(int32_t a, int32_t b) { return __qadd(a, b); }
/* clamp to [-512, 511] and to int8: SSAT (GCC does not find it from the C clamps) */
static inline int32_t tt_ssat10(int32_t x) { return __ssat(x, 10); }
static inline int32_t tt_ssat8(int32_t x) { return __ssat(x, 8); }

/* (acc * 2^32 + a b + 2^31) >> 32: SMMLAR (the rounded high word of a 64-bit multiply-accumulate). */
static inline int32_t tt_smmlar(int32_t a, int32_t b, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
}
/* PKHBT lo, hi, LSL #16: the bottom half of lo, the bottom half of hi on top. */
static inline uint32_t tt_pkhbt(uint32_t lo, uint32_t hi)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(lo), "r"(hi));
    return r;
}

/* base[idx] of a word-aligned doubleword array in one LDRD (GCC's Cortex-M7 tuning splits 64-bit
 * loads into two LDR); idx a compile-time constant after inlining and unrolling (else a plain load). The
 * memory operand names the region from base on as read (so stores to it stay before the load)
 * without costing an address computation; it may extend past the array, which is never read
 * beyond idx (hence no -Warray-bounds). */
typedef struct {
    uint64_t d[512];
} tt_ld64_region;
#define tt_ld64(base, idx)                                                                            \
    __extension__({                                                                                   \
        uint64_t v_;                                                                                  \
        if (__builtin_constant_p(idx)) {                                                              \
            _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Warray-bounds\"")       \
            __asm__("ldrd %Q0, %R0, [%1, %2]"                                                         \
                    : "=r"(v_)                                                                        \
                    : "r"(base), "i"((idx) * 8), "m"(*(const tt_ld64_region *)(const void *)(base))); \
            _Pragma("GCC diagnostic pop")                                                             \
        } else {                                                                                      \
            v_ = (base)[idx];                                                                         \
        }                                                                                             \
        v_;                                                                                           \
    })

/* The 32-bit words p[off], p[off + 1] (p word-aligned, any element type) in one LDRD, low word =
 * the first; off a compile-time constant (in words) after inlining and unrolling, else two loads.
 * The memory operand (a may_alias type: p may point to int16 data) names the region read. */
typedef struct {
    uint32_t d[1024];
} __attribute__((may_alias)) tt_ldrd_region;
#define tt_ldrd_w(p, off)                                                                          \
    __extension__({                                                                                \
        uint64_t v_;                                                                               \
        if (__builtin_constant_p(off)) {                                                           \
            _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Warray-bounds\"")    \
            __asm__("ldrd %Q0, %R0, [%1, %2]"                                                      \
                    : "=r"(v_)                                                                     \
                    : "r"(p), "i"((off) * 4), "m"(*(const tt_ldrd_region *)(const void *)(p)));    \
            _Pragma("GCC diagnostic pop")                                                          \
        } else {                                                                                   \
            TT_MEMCPY(&v_, (const char *)(p) + 4 * (off), 8);                                      \
        }                                                                                          \
        v_;                                                                                        \
    })

/* The 32-bit words p[off], p[off + 1] (p word-aligned, any element type; off in words, a constant)
 * into the 32-bit variables lo, hi in one LDRD; _post: p[0], p[1], then the pointer variable p
 * advanced by 8 bytes (post-indexed: no separate address update). Two 32-bit outputs, not one
 * 64-bit value: GCC moves the halves of that into other registers or through the stack. */
#define tt_ldrd_pair(p, off, lo, hi)                                                                 \
    do {                                                                                             \
        _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Warray-bounds\"")          \
        __asm__("ldrd %0, %1, [%2, %3]"                                                              \
                : "=r"(lo), "=r"(hi)                                                                 \
                : "r"(p), "i"((off) * 4), "m"(*(const tt_ldrd_region *)(const void *)(p)));          \
        _Pragma("GCC diagnostic pop")                                                                \
    } while (0)
#define tt_ldrd_pair_post(p, lo, hi)                                                                 \
    do {                                                                                             \
        _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Warray-bounds\"")          \
        __asm__("ldrd %0, %1, [%2], #8"                                                              \
                : "=&r"(lo), "=&r"(hi), "+r"(p)                                                      \
                : "m"(*(const tt_ldrd_region *)(const void *)(p)));                                  \
        _Pragma("GCC diagnostic pop")                                                                \
    } while (0)

/* Two words to p[0], p[1] (p word-aligned) in one STRD. */
typedef struct {
    uint32_t d[2];
} __attribute__((may_alias)) tt_strd_words;
static inline void tt_strd(void *p, uint32_t lo, uint32_t hi)
{
    __asm__("strd %1, %2, [%3]" : "=m"(*(tt_strd_words *)p) : "r"(lo), "r"(hi), "r"(p));
}
/* The same, then the pointer variable p advanced by 8 bytes (post-indexed). */
#define tt_strd_post(p, lo, hi)                                                                      \
    __asm__("strd %2, %3, [%1], #8" : "=m"(*(tt_strd_words *)(void *)(p)), "+r"(p) : "r"(lo), "r"(hi))
/* The same, advanced by 24 bytes. */
#define tt_strd_post24(p, lo, hi)                                                                    \
    __asm__("strd %2, %3, [%1], #24" : "=m"(*(tt_strd_words *)(void *)(p)), "+r"(p) : "r"(lo), "r"(hi))

#else
#if defined(TT_EMULATE_DSP)
#define TT_DSP 1
/* Host tests of the DSP path: the instruction models are called, not inlined into the unrolled
 * kernels, which keeps those quick to compile under the sanitizers (minutes otherwise). */
#define TT_DSP_MODEL static __attribute__((noinline, unused))
#else
#define TT_DSP 0
#define TT_DSP_MODEL static inline
#endif

/* Plain C models of the same instructions (also what the portable saturating add uses). */
TT_DSP_MODEL int32_t tt_byte_s(uint32_t x, int32_t i) { return (int32_t)(((x >> (8 * i)) & 0xFFu) ^ 0x80u) - 0x80; }
TT_DSP_MODEL int32_t tt_s32(uint32_t u) { return u < 0x80000000u ? (int32_t)u : (int32_t)(u - 0x80000000u) + INT32_MIN; }
TT_DSP_MODEL int32_t tt_wrap_add(int32_t acc, int32_t p) { return tt_s32((uint32_t)acc + (uint32_t)p); }

TT_DSP_MODEL uint32_t tt_sxtb16(uint32_t x) { return tt_pack16(tt_byte_s(x, 0), tt_byte_s(x, 2)); }
TT_DSP_MODEL uint32_t tt_sxtb16_ror8(uint32_t x) { return tt_pack16(tt_byte_s(x, 1), tt_byte_s(x, 3)); }
TT_DSP_MODEL int32_t tt_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    /* The two products are added exactly (SMLAD keeps 33 bits), then wrapped. */
    int64_t s = (int64_t)tt_lane_lo(a) * tt_lane_lo(b) + (int64_t)tt_lane_hi(a) * tt_lane_hi(b) + acc;
    return tt_s32((uint32_t)(uint64_t)s);
}
TT_DSP_MODEL int32_t tt_smlabb(uint32_t a, uint32_t b, int32_t acc) { return tt_wrap_add(acc, tt_lane_lo(a) * tt_lane_lo(b)); }
TT_DSP_MODEL int32_t tt_smlabt(uint32_t a, uint32_t b, int32_t acc) { return tt_wrap_add(acc, tt_lane_lo(a) * tt_lane_hi(b)); }
TT_DSP_MODEL int32_t tt_smlatb(uint32_t a, uint32_t b, int32_t acc) { return tt_wrap_add(acc, tt_lane_hi(a) * tt_lane_lo(b)); }
TT_DSP_MODEL int32_t tt_smlatt(uint32_t a, uint32_t b, int32_t acc) { return tt_wrap_add(acc, tt_lane_hi(a) * tt_lane_hi(b)); }
TT_DSP_MODEL uint32_t tt_ssub16(uint32_t a, uint32_t b)
{
    return tt_pack16(tt_lane_lo(a) - tt_lane_lo(b), tt_lane_hi(a) - tt_lane_hi(b));
}
TT_DSP_MODEL uint32_t tt_sadd16(uint32_t a, uint32_t b)
{
    return tt_pack16(tt_lane_lo(a) + tt_lane_lo(b), tt_lane_hi(a) + tt_lane_hi(b));
}
TT_DSP_MODEL int32_t tt_smlawb(int32_t a, uint32_t b, int32_t acc)
{
    return tt_wrap_add(acc, (int32_t)(((int64_t)a * tt_lane_lo(b)) >> 16));
}
TT_DSP_MODEL int32_t tt_smlawt(int32_t a, uint32_t b, int32_t acc)
{
    return tt_wrap_add(acc, (int32_t)(((int64_t)a * tt_lane_hi(b)) >> 16));
}
TT_DSP_MODEL int32_t tt_max_s(int32_t a, int32_t b) { return a > b ? a : b; }
TT_DSP_MODEL int32_t tt_min_s(int32_t a, int32_t b) { return a < b ? a : b; }
TT_DSP_MODEL uint32_t tt_max16x2(uint32_t a, uint32_t b)
{
    return tt_pack16(tt_max_s(tt_lane_lo(a), tt_lane_lo(b)), tt_max_s(tt_lane_hi(a), tt_lane_hi(b)));
}
TT_DSP_MODEL uint32_t tt_min16x2(uint32_t a, uint32_t b)
{
    return tt_pack16(tt_min_s(tt_lane_lo(a), tt_lane_lo(b)), tt_min_s(tt_lane_hi(a), tt_lane_hi(b)));
}
TT_DSP_MODEL uint32_t tt_pkhtb_hi(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }
TT_DSP_MODEL int32_t tt_qadd(int32_t a, int32_t b)
{
    int64_t s = (int64_t)a + b;
    return s > INT32_MAX ? INT32_MAX : s < INT32_MIN ? INT32_MIN : (int32_t)s;
}
TT_DSP_MODEL int32_t tt_ssat10(int32_t x) { return x > 511 ? 511 : x < -512 ? -512 : x; }
TT_DSP_MODEL int32_t tt_ssat8(int32_t x) { return x > 127 ? 127 : x < -128 ? -128 : x; }
TT_DSP_MODEL int32_t tt_smmlar(int32_t a, int32_t b, int32_t acc)
{
    const uint64_t v = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)a * b) + 0x80000000u;
    return tt_s32((uint32_t)(v >> 32));
}
TT_DSP_MODEL uint32_t tt_pkhbt(uint32_t lo, uint32_t hi) { return (lo & 0xFFFFu) | (hi << 16); }
#define tt_ld64(base, idx) ((base)[idx])
#define tt_ldrd_pair(p, off, lo, hi)                                                                 \
    do {                                                                                             \
        memcpy(&(lo), (const char *)(p) + 4 * (off), 4);                                             \
        memcpy(&(hi), (const char *)(p) + 4 * (off) + 4, 4);                                         \
    } while (0)
#define tt_ldrd_pair_post(p, lo, hi)                                                                 \
    do {                                                                                             \
        tt_ldrd_pair(p, 0, lo, hi);                                                                  \
        (p) = (__typeof__(p))(const void *)((const char *)(p) + 8);                                  \
    } while (0)
TT_DSP_MODEL void tt_strd(void *p, uint32_t lo, uint32_t hi)
{
    memcpy(p, &lo, 4);
    memcpy((char *)p + 4, &hi, 4);
}
#define tt_strd_post(p, lo, hi)                                                                      \
    do {                                                                                             \
        tt_strd(p, lo, hi);                                                                          \
        (p) = (__typeof__(p))(void *)((char *)(p) + 8);                                              \
    } while (0)
#define tt_strd_post24(p, lo, hi)                                                                    \
    do {                                                                                             \
        tt_strd(p, lo, hi);                                                                          \
        (p) = (__typeof__(p))(void *)((char *)(p) + 24);                                             \
    } while (0)
TT_DSP_MODEL uint64_t tt_ldrd_w(const void *p, int32_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)p + 4 * off, 8); /* little-endian host: low word first */
    return v;
}
#endif

#endif
