"""The Python twins of the firmware's scratch-size functions (tt_<kernel>_scratch_bytes in
engine/tt_kernels.h): how many bytes of planned scratch a kernel's Cortex-M7 DSP path works in, for a
layer's geometry (a dict of tt_geom fields, ops.base.geometry_fields). The compiler plans that much as a
buffer of the step (live during that step only); host/tests/test_c_kernels.py compares every function
with its C twin over many geometries.
"""

from __future__ import annotations

from collections.abc import Mapping

Geom = Mapping[str, int]

# engine/internal/pointwise_block.h: PW_BLOCK output channels per requantization table (16 bytes each),
# four positions of up to PW_XMAX inputs expanded to int16 (PW_X16_WORDS words of 8 bytes)
PW_BLOCK, PW_XMAX = 16, 64
PW_TAB_BYTES = PW_BLOCK * 16
PW_X16_BYTES = (PW_XMAX // 4 + 1) * 4 * 8
# engine/internal/conv_depthwise.h: the staged path's ring (at most 264 words: K rows of a column tile),
# then the group's constants (104 bytes) and K x K taps of 8 bytes
DW4_RING_WORDS, DW4_GROUP_HEAD = 264, 104
# engine/conv_depthwise_inplace.c: the expanded rows' ring (at most 320 halfwords)
DWEXP_RING_HALFS = 320
# engine/internal/conv_depthwise.h: the planar path's ring (4 planes of K rows of a column tile)
DWP_RING_BYTES = 2304
# then the 4 channels' constants (4 x 140 bytes)
DWP_CHAN_BYTES = 560
# engine/input_grad_pointwise.c: outputs per transposed weight table
IGP_OC = 96
# engine/weight_update_pointwise.c: the packed path's output channels per table and most positions
PWU_OUT, PWU_HW_MAX = 4, 256
# engine/input_grad_depthwise.c: the HWC walk's table (7 x 7 taps of 8 bytes), then 160 int16 of planes
DWI_SCRATCH_BYTES = 7 * 7 * 8 + 160 * 2


def _dw4_supported(kernel: int, stride: int, c: int) -> bool:
    return kernel in (3, 5, 7) and stride in (1, 2) and c >= 4


def _dwexp_supported(kernel: int, w: int) -> bool:
    return kernel in (3, 5, 7) and (4 if kernel == 3 else 8) <= w <= ((DWEXP_RING_HALFS // kernel) & ~1) - kernel


def conv_pointwise(g: Geom) -> int:
    return PW_TAB_BYTES + PW_X16_BYTES + PW_BLOCK * 4


def _dw4_bytes(kernel: int, stride: int, ow: int) -> int:
    """K staged rows of the widest column tile (an even count of words), the group's constants and taps."""
    tile = (DW4_RING_WORDS // kernel - kernel) // stride + 1
    words = kernel * ((min(ow, tile) - 1) * stride + kernel)
    return 4 * ((words + 1) & ~1) + DW4_GROUP_HEAD + 8 * kernel * kernel


def _dwp_supported(kernel: int, stride: int, c: int, ow: int) -> bool:
    return kernel in (3, 5, 7) and stride in (1, 2) and c >= 4 and ow >= 4


def _dw3_ring_bytes(stride: int, tow: int) -> int:
    """3x3: 4 planes of ceil(n / 4) groups of the 3 slots' 4 halfwords, rows of n = (tow - 1) S + 4."""
    return 96 * (((tow - 1) * stride + 4 + 3) // 4)


def _dwp_bytes(kernel: int, stride: int, ow: int) -> int:
    """4 planes of K int16 rows of the widest column tile (+ the odd last tap's partner, an even pitch)."""
    if kernel == 3:
        tile = (DWP_RING_BYTES // 96 * 4 - 4) // stride + 1
        return _dw3_ring_bytes(stride, min(ow, tile)) + DWP_CHAN_BYTES
    tile = (((DWP_RING_BYTES // (8 * kernel)) & ~1) - kernel - 2) // stride + 1
    return 8 * kernel * (((min(ow, tile) - 1) * stride + kernel + 2) & ~1) + DWP_CHAN_BYTES


def conv_depthwise(g: Geom) -> int:
    if _dwp_supported(g["kh"], g["sh"], g["cin"], g["ow"]):
        return _dwp_bytes(g["kh"], g["sh"], g["ow"])
    return _dw4_bytes(g["kh"], g["sh"], g["ow"]) if _dw4_supported(g["kh"], g["sh"], g["cin"]) else 0


def conv_depthwise_inplace(g: Geom) -> int:
    k, w = g["kh"], g["w"]
    staged = _dw4_bytes(k, 1, w) if _dw4_supported(k, 1, g["cin"]) else 0
    # 4 planes of k rows of w + k halfwords, the 4 channels' constants
    expanded = 0
    if _dwexp_supported(k, w):
        expanded = (_dw3_ring_bytes(1, w) if k == 3 else 8 * k * ((w + k + 1) & ~1)) + DWP_CHAN_BYTES
    rows = _dwp_bytes(k, 1, w) if _dwp_supported(k, 1, g["cin"], w) else 0  # the ring form's rows
    return max(staged, expanded, rows)


def conv_generic(g: Geom) -> int:
    im2col = g["groups"] == 1 and g["kh"] * g["kw"] * g["cin"] <= PW_XMAX
    return PW_TAB_BYTES + PW_X16_BYTES if im2col else 0


def input_grad_pointwise(g: Geom) -> int:
    return 16 * ((min(g["cout"], IGP_OC) + 1) // 2)


def input_grad_depthwise(g: Geom) -> int:
    return DWI_SCRATCH_BYTES


def weight_update_pointwise(g: Geom) -> int:
    """The gradients of PWU_OUT output channels, int16 pairs of positions (one word per channel and pair)."""
    hw = g["oh"] * g["ow"]
    return PWU_OUT * 4 * ((hw + 1) // 2) if 2 <= hw <= PWU_HW_MAX else 0


def input_grad_generic(g: Geom) -> int:
    return 0  # portable C only


SIZES = {
    "conv_pointwise": conv_pointwise, "conv_depthwise": conv_depthwise,
    "conv_depthwise_inplace": conv_depthwise_inplace, "conv_generic": conv_generic,
    "input_grad_pointwise": input_grad_pointwise, "input_grad_depthwise": input_grad_depthwise,
    "weight_update_pointwise": weight_update_pointwise,
}
