/* What the DSP paths of conv_depthwise.c and conv_depthwise_inplace.c share. Internal to the engine;
 * DSP builds only.
 */
#ifndef TT_CONV_DEPTHWISE_H
#define TT_CONV_DEPTHWISE_H

#include <stdint.h>

#include "dsp_intrinsics.h"

/* tt_conv_depthwise with its geometry as arguments (square window, one stride): conv_depthwise.c; the
 * portable in-place path runs it row by row. scratch: dw4_scratch_bytes(kernel, stride, ow) where dw4_supported. */
void tt_dw_conv_run(const int8_t *x, int32_t h, int32_t w, int32_t c, int8_t *y, int32_t oh, int32_t ow,
                    int32_t kernel, int32_t stride, int32_t pad_top, int32_t pad_left,
                    const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                    const int32_t *bias, const int32_t *mult, const int32_t *shift,
                    int32_t zx, int32_t zy, uint8_t *mask, void *scratch);

#define DW_MAX_KERNEL 7

/* Whether a channel takes the DSP paths' one-SMMLAR requantization: multiplier >= 0, right shift
 * 1..23, |bias| < 2^29 - 2^21 so that the doubled accumulator cannot overflow (dead channels first
 * become constants that do, fixed_point.h's tt_rq_dead). */
static inline int dw_fast_form(int32_t bias, int32_t mult, int32_t shift)
{
    const int32_t e = -shift;
    return mult >= 0 && e >= 1 && e <= 23 && bias > -(1 << 29) + (1 << 21) && bias < (1 << 29) - (1 << 21);
}

#define DW4_RING_WORDS 264 /* 1056 bytes: K staged rows of a column tile */
/* The group constants' bytes before their taps (dw4_group, conv_depthwise.c: 4 x (init, 4 constants,
 * mode) and zy, 100 bytes, 104 with the alignment of the taps). */
#define DW4_GROUP_HEAD 104

/* Whether the staged 4-channel path runs a conv (on channels 0 .. c - c % 4 - 1; out of place the
 * caller adds the rest, in place it needs c % 4 == 0 and one column tile). */
static inline int dw4_supported(int32_t kernel, int32_t stride, int32_t c)
{
    return (kernel == 3 || kernel == 5 || kernel == 7) && (stride == 1 || stride == 2) && c >= 4;
}

/* Output columns per tile: K staged rows of (tow - 1) S + K pixels fit the ring. */
static inline int32_t dw4_tile_cols(int32_t kernel, int32_t stride)
{
    return (DW4_RING_WORDS / kernel - kernel) / stride + 1;
}

/* Words of the ring a conv of rows of ow outputs stages: K rows of its widest tile (an even count, so
 * that the group's constants after it stay 8-byte aligned). */
static inline int32_t dw4_ring_words(int32_t kernel, int32_t stride, int32_t ow)
{
    const int32_t tile = dw4_tile_cols(kernel, stride), tow = ow < tile ? ow : tile;
    const int32_t words = kernel * ((tow - 1) * stride + kernel);
    return (words + 1) & ~1;
}

/* The staged path's scratch for rows of ow outputs: the ring, then the group's constants and taps.
 * Every build knows it (the plan is the same for all builds). */
static inline int32_t dw4_scratch_bytes(int32_t kernel, int32_t stride, int32_t ow)
{
    return 4 * dw4_ring_words(kernel, stride, ow) + DW4_GROUP_HEAD + 8 * kernel * kernel;
}

/* The planar path (conv_depthwise_inplace.c): groups of 4 channels expanded into four int16 planes of
 * K rows of a column tile (one SMLAD per pair of taps; 3x3: 6 multiplies per output, dw3_row). Its ring
 * of 4 K rows of pitch halfwords (3x3: the 3 rows interleaved by doublewords, dw3_ring_bytes) is at
 * most DWP_RING_BYTES. */
#define DWP_RING_BYTES 2304

static inline int32_t dwp_pitch(int32_t kernel, int32_t stride, int32_t tow)
{
    return ((tow - 1) * stride + kernel + 2) & ~1;
}

/* 3x3: the ring's 3 slots interleaved by doublewords (conv_depthwise_inplace.c, dw3_tile): 4 planes of
 * ceil(n / 4) groups of 3 slots x 4 halfwords, for rows of n = (tow - 1) S + 4 halfwords. */
static inline int32_t dw3_ring_bytes(int32_t stride, int32_t tow)
{
    return 96 * (((tow - 1) * stride + 4 + 3) >> 2);
}

/* Output columns per tile: the widest whose ring fits DWP_RING_BYTES. */
static inline int32_t dwp_tile_cols(int32_t kernel, int32_t stride)
{
    if (kernel == 3)
        return (DWP_RING_BYTES / 96 * 4 - 4) / stride + 1;
    const int32_t pitch = (DWP_RING_BYTES / (8 * kernel)) & ~1;
    return (pitch - kernel - 2) / stride + 1;
}

/* Bytes of the 4 planes' ring of a column tile of tow outputs. */
static inline int32_t dwexp4_ring_bytes(int32_t kernel, int32_t stride, int32_t tow)
{
    return kernel == 3 ? dw3_ring_bytes(stride, tow) : 8 * kernel * dwp_pitch(kernel, stride, tow);
}

/* Kernels 3 (its rows: dw3_row, conv_depthwise_inplace.c), 5 and 7; rows of at least 4 outputs
 * (measured, tools/kernel_bench.py dwk). */
static inline int dwp_supported(int32_t kernel, int32_t stride, int32_t c, int32_t ow)
{
    return (kernel == 3 || kernel == 5 || kernel == 7) && (stride == 1 || stride == 2) && c >= 4 && ow >= 4;
}

/* The 4 channels' constants after the ring (4 x 140 bytes: conv_depthwise_inplace.c's dwexp_chan), in
 * the scratch and not on the stack. */
#define DWP_CHAN_BYTES 560

/* Bytes of the ring of rows of ow outputs (the widest column tile); the constants follow it. */
static inline int32_t dwp_ring_bytes(int32_t kernel, int32_t stride, int32_t ow)
{
    const int32_t tile = dwp_tile_cols(kernel, stride), tow = ow < tile ? ow : tile;
    return dwexp4_ring_bytes(kernel, stride, tow);
}

static inline int32_t dwp_scratch_bytes(int32_t kernel, int32_t stride, int32_t ow)
{
    return dwp_ring_bytes(kernel, stride, ow) + DWP_CHAN_BYTES;
}

#if TT_DSP

typedef struct {
    const int8_t *x;
    int32_t h, w, c;
    int8_t *y;
    int32_t oh, ow, stride, pad_top, pad_left;
    const int32_t *bias, *mult, *shift;
    int32_t zx, zy;
    uint8_t *mask;
} dw_args;

/* The staged 4-channel path (conv_depthwise.c) over channels 0 .. c - c % 4 - 1 of a->x, with one column
 * tile at stride 1 also in place (a->y = a->x): every input row of a group is staged before the output
 * row that overwrites it is written. */
void tt_dw4_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                 void *scratch);

/* The planar path (conv_depthwise_inplace.c) over channels 0 .. c - c % 4 - 1, out of place, in column
 * tiles of dwp_tile_cols; scratch: dwp_scratch_bytes. */
void tt_dwp_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo,
                 void *scratch);

#endif

#endif
