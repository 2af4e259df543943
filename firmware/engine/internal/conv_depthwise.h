/* What the DSP paths of conv_depthwise.c and conv_depthwise_inplace.c share. Internal to the engine;
 * DSP builds only.
 */
#ifndef TT_CONV_DEPTHWISE_H
#define TT_CONV_DEPTHWISE_H

#include <stdint.h>

#include "dsp_intrinsics.h"

#if TT_DSP

#define DW_MAX_KERNEL 7

typedef struct {
    const int8_t *x;
    int32_t h, w, c;
    int8_t *y;
    int32_t oh, ow, stride, pad_top, pad_left;
    const int32_t *bias, *mult, *shift;
    int32_t zx, zy;
    uint8_t *mask;
} dw_args;

#define DW4_RING_WORDS 264 /* 1056 bytes of stack: K staged rows of a column tile */

/* Output columns per tile: K staged rows of (tow - 1) S + K pixels fit the ring. */
static inline int32_t dw4_tile_cols(int32_t kernel, int32_t stride)
{
    return (DW4_RING_WORDS / kernel - kernel) / stride + 1;
}

/* Whether the staged 4-channel path runs a conv (on channels 0 .. c - c % 4 - 1; out of place the
 * caller adds the rest, in place it needs c % 4 == 0 and one column tile). */
static inline int dw4_supported(int32_t kernel, int32_t stride, int32_t c)
{
    return (kernel == 3 || kernel == 5 || kernel == 7) && (stride == 1 || stride == 2) && c >= 4;
}

/* The staged 4-channel path (conv_depthwise.c) over channels 0 .. c - c % 4 - 1 of a->x, with one column
 * tile at stride 1 also in place (a->y = a->x): every input row of a group is staged before the output
 * row that overwrites it is written. */
void tt_dw4_conv(const dw_args *a, int32_t kernel, const int8_t *w_lo, const int8_t *w_hi, int32_t c_lo);

#endif

#endif
