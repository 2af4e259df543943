"""NumPy reference forward kernels of the TFLite int8 ops tinytrain imports, bit for bit as TFLite Micro.

Pure functions on int8 tensors laid out [..., H, W, C] (batch 1 HWC, optionally leading batch axes).
Every op here was compared with TFLite Micro's reference kernels on generated single-op models with
0 differing bytes (host/tests/test_tflite_kernels_ref.py); docs/tflite_ops.md gives the formulas and
where LiteRT's reference kernels differ.

Integer dot products are evaluated with float64 BLAS, exact while every partial sum stays below 2**53
(int8 products summed over at most ~10**9 terms); `_exact` checks the result is in int32 range.
Multipliers are computed from the float32 scales stored in the file exactly as TFLite does (double
arithmetic, its QuantizeMultiplier rounding half away from zero); nothing else uses floating point
except QUANTIZE / DEQUANTIZE, whose float arithmetic is TFLite's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinytrain.numerics import fixed_point as fp

QMIN, QMAX = -128, 127


# ---------------------------------------------------------------- multipliers, as TFLite computes them


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m * 2**(shift - 31), m in [2**30, 2**31); q = frexp mantissa times
    2**31 rounded half away from zero (std::round); shifts below -31 flush to (0, 0)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier must be finite and non-negative, got {real}")
    frac, shift = math.frexp(real)
    m = math.floor(frac * (1 << 31) + 0.5)  # exact: frac * 2**31 < 2**31 keeps 22 fraction bits
    if m == (1 << 31):
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(m), int(shift)


def _f32(v) -> float:
    """A scale as TFLite holds it: the stored float32, widened to double."""
    return float(np.float32(v))


def conv_multipliers(s_in: float, w_scales, s_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED:
    double(s_in) * double(s_w[c]) / double(s_out) (TFLite's PopulateConvolutionQuantizationParams)."""
    pairs = [quantize_multiplier(_f32(s_in) * _f32(s) / _f32(s_out)) for s in np.atleast_1d(w_scales)]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def quantize_value(f: float, scale: float, zero_point: int) -> int:
    """TFLite's Quantize() of activation bounds: zp + round(float32(f) / float32(scale)) half away from zero."""
    q = float(np.float32(f) / np.float32(scale))
    return int(zero_point + math.copysign(math.floor(abs(q) + 0.5), q))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """Clamp bounds of a fused activation on an int8 output (TFLite's CalculateActivationRangeQuantized)."""
    if activation == "NONE":
        return QMIN, QMAX
    if activation == "RELU":
        return max(QMIN, quantize_value(0.0, scale, zero_point)), QMAX
    if activation == "RELU6":
        return max(QMIN, quantize_value(0.0, scale, zero_point)), min(QMAX, quantize_value(6.0, scale, zero_point))
    if activation == "RELU_N1_TO_1":
        return max(QMIN, quantize_value(-1.0, scale, zero_point)), min(QMAX, quantize_value(1.0, scale, zero_point))
    raise ValueError(f"unsupported fused activation {activation!r}")


@dataclass(frozen=True)
class OutputStage:
    """acc (int32) -> clamp(MBQM(acc, multiplier[c], shift[c]) + zero_point, act_min, act_max) as int8."""

    multiplier: np.ndarray  # int64 [C] or [1]
    shift: np.ndarray  # int64 [C] or [1]
    zero_point: int
    act_min: int = QMIN
    act_max: int = QMAX

    def apply(self, acc: np.ndarray) -> np.ndarray:
        pre = fp.multiply_by_quantized_multiplier(acc, self.multiplier, self.shift) + self.zero_point
        return np.minimum(np.maximum(pre, self.act_min), self.act_max).astype(np.int8)


def conv_output_stage(s_in: float, w_scales, s_out: float, z_out: int, activation: str = "NONE") -> OutputStage:
    """Output stage of CONV_2D / DEPTHWISE_CONV_2D (one weight scale is broadcast to every channel)."""
    m, s = conv_multipliers(s_in, w_scales, s_out)
    return OutputStage(m, s, int(z_out), *activation_range(activation, s_out, z_out))


def fc_output_stage(s_in: float, w_scales, s_out: float, z_out: int, activation: str = "NONE") -> OutputStage:
    """Output stage of FULLY_CONNECTED, per-tensor or per-channel weights alike: double(s_in) * double(s_w)
    / double(s_out). (TFLite's source has an overload that multiplies s_in * s_w in float32 first; TFLite
    Micro's per-tensor FC does not round that way: checked in test_tflite_kernels_ref.py.)"""
    m, s = conv_multipliers(s_in, w_scales, s_out)
    return OutputStage(m, s, int(z_out), *activation_range(activation, s_out, z_out))


# ---------------------------------------------------------------- helpers


def _exact(a: np.ndarray) -> np.ndarray:
    """float64 result of an integer product sum -> int64, checking it stayed an int32 accumulator."""
    r = np.rint(a)
    if r.size and np.abs(r).max() >= 2.0**31:
        raise OverflowError("an integer accumulation left the int32 range")
    return r.astype(np.int64)


def _pad_hw(x: np.ndarray, padding: tuple[int, int, int, int], value) -> np.ndarray:
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0),) * (x.ndim - 3) + ((top, bottom), (left, right), (0, 0)), constant_values=value)


def _taps(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, sh: int, sw: int):
    """Yields (i, j, view) with view[..., y, x, c] = xp[..., y*sh + i, x*sw + j, c]."""
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[..., i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw, :]


def _out_hw(h: int, w: int, kh: int, kw: int, stride, padding) -> tuple[int, int]:
    top, bottom, left, right = padding
    return (h + top + bottom - kh) // stride[0] + 1, (w + left + right - kw) // stride[1] + 1


def _add_bias(acc: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    # TFLite adds the bias in int32 without saturation; MBQM wraps anything outside int32 as C would
    return acc if bias is None else acc + np.asarray(bias, np.int64)


# ---------------------------------------------------------------- ops


def conv2d(x: np.ndarray, z_x: int, w: np.ndarray, bias: np.ndarray | None, stage: OutputStage,
           stride: tuple[int, int] = (1, 1), padding: tuple[int, int, int, int] = (0, 0, 0, 0)) -> np.ndarray:
    """CONV_2D. x [..., H, W, C] int8; w [O, KH, KW, C] int8 (symmetric); padding (top, bottom, left, right)
    pads with the input zero point (TFLite skips those taps, which is the same: they add 0).
    acc[o] = bias[o] + sum w[o,i,j,c] * (x[y*sh+i-top, x*sw+j-left, c] - z_x); y = stage(acc)."""
    *lead, h, wd, c = x.shape
    o, kh, kw, ic = w.shape
    if ic != c:
        raise ValueError(f"weights {w.shape} on {c} input channels")
    oh, ow = _out_hw(h, wd, kh, kw, stride, padding)
    xp = _pad_hw(x.astype(np.float64) - z_x, padding, 0.0)
    wf = w.astype(np.float64)
    if kh == kw == 1:
        acc = xp[..., ::stride[0], ::stride[1], :][..., :oh, :ow, :] @ wf[:, 0, 0, :].T
    else:
        acc = np.zeros((*lead, oh, ow, o))
        for i, j, v in _taps(xp, kh, kw, oh, ow, *stride):
            acc += v @ wf[:, i, j, :].T
    return stage.apply(_add_bias(_exact(acc), bias))


def depthwise_conv2d(x: np.ndarray, z_x: int, w: np.ndarray, bias: np.ndarray | None, stage: OutputStage,
                     stride: tuple[int, int] = (1, 1), padding: tuple[int, int, int, int] = (0, 0, 0, 0),
                     depth_multiplier: int = 1) -> np.ndarray:
    """DEPTHWISE_CONV_2D with TFLite's weight layout w [1, KH, KW, C*M]: output channel k = c*M + m reads
    input channel c = k // M. acc[k] = bias[k] + sum w[0,i,j,k] * (x[..., c] - z_x)."""
    *lead, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    if oc != c * depth_multiplier:
        raise ValueError(f"depthwise weights {w.shape} on {c} channels x multiplier {depth_multiplier}")
    oh, ow = _out_hw(h, wd, kh, kw, stride, padding)
    xf = x.astype(np.float64) - z_x
    if depth_multiplier != 1:
        xf = np.repeat(xf, depth_multiplier, axis=-1)
    xp = _pad_hw(xf, padding, 0.0)
    wf = w.astype(np.float64)
    acc = np.zeros((*lead, oh, ow, oc))
    for i, j, v in _taps(xp, kh, kw, oh, ow, *stride):
        acc += v * wf[0, i, j, :]
    return stage.apply(_add_bias(_exact(acc), bias))


def fully_connected(x: np.ndarray, z_x: int, w: np.ndarray, bias: np.ndarray | None, stage: OutputStage,
                    z_w: int = 0) -> np.ndarray:
    """FULLY_CONNECTED. x [..., K] int8 (flatten HWC first), w [O, K]: acc[o] = bias[o] + sum (w - z_w)(x - z_x);
    y = stage(acc) with one or per-output-channel multipliers (MBQM, TFLite's double rounding)."""
    xf = x.astype(np.float64) - z_x
    acc = xf @ (w.astype(np.float64) - z_w).T
    return stage.apply(_add_bias(_exact(acc), bias))


@dataclass(frozen=True)
class AddParams:
    """TFLite int8 ADD: inputs rescaled to twice the larger input scale with 20 bits of headroom."""

    left_shift: int
    a: tuple[int, int, int]  # (zero point, multiplier, shift)
    b: tuple[int, int, int]
    out: tuple[int, int, int]
    act_min: int = QMIN
    act_max: int = QMAX


def add_params(s_a: float, z_a: int, s_b: float, z_b: int, s_out: float, z_out: int,
               activation: str = "NONE") -> AddParams:
    """Multipliers as TFLite's PrepareAdd: twice_max = 2 * double(max(float32 s_a, s_b)),
    m_a = s_a / twice_max, m_b = s_b / twice_max, m_out = twice_max / (2**20 * s_out)."""
    left_shift = 20
    twice_max = 2.0 * _f32(max(np.float32(s_a), np.float32(s_b)))
    ma = quantize_multiplier(_f32(s_a) / twice_max)
    mb = quantize_multiplier(_f32(s_b) / twice_max)
    mo = quantize_multiplier(twice_max / ((1 << left_shift) * _f32(s_out)))
    return AddParams(left_shift, (int(z_a), *ma), (int(z_b), *mb), (int(z_out), *mo),
                     *activation_range(activation, s_out, z_out))


def add(a: np.ndarray, b: np.ndarray, p: AddParams) -> np.ndarray:
    """ADD: y = clamp(MBQM(MBQM((a - z_a) << 20, m_a) + MBQM((b - z_b) << 20, m_b), m_out) + z_out)."""
    def scaled(x: np.ndarray, zms: tuple[int, int, int]) -> np.ndarray:
        z, m, s = zms
        return fp.multiply_by_quantized_multiplier((x.astype(np.int64) - z) << p.left_shift, m, s)

    raw = scaled(a, p.a) + scaled(b, p.b)
    zo, mo, so = p.out
    pre = fp.multiply_by_quantized_multiplier(raw, mo, so) + zo
    return np.minimum(np.maximum(pre, p.act_min), p.act_max).astype(np.int8)


def _window_sums(x: np.ndarray, filt, stride, padding) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the in-bounds elements of every pooling window and their counts."""
    *lead, h, wd, c = x.shape
    oh, ow = _out_hw(h, wd, *filt, stride, padding)
    xp = _pad_hw(x.astype(np.int64), padding, 0)
    ones = _pad_hw(np.ones((h, wd, 1), np.int64), padding, 0)
    acc = np.zeros((*lead, oh, ow, c), np.int64)
    cnt = np.zeros((oh, ow, 1), np.int64)
    for _, _, v in _taps(xp, *filt, oh, ow, *stride):
        acc += v
    for _, _, v in _taps(ones, *filt, oh, ow, *stride):
        cnt += v
    return acc, cnt


def average_pool2d(x: np.ndarray, filt: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int, int, int] = (0, 0, 0, 0), act_min: int = QMIN,
                   act_max: int = QMAX) -> np.ndarray:
    """AVERAGE_POOL_2D: the raw int8 values of the window's in-bounds elements summed and divided by their
    count n (not by KH*KW: padding is excluded), rounded half away from zero: acc > 0 ? (acc + n/2) / n :
    (acc - n/2) / n with C's truncating division. No zero point, no requantization (input and output
    share scale and zero point)."""
    acc, n = _window_sums(x, filt, stride, padding)
    q = np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n))
    return np.minimum(np.maximum(q, act_min), act_max).astype(np.int8)


def max_pool2d(x: np.ndarray, filt: tuple[int, int], stride: tuple[int, int],
               padding: tuple[int, int, int, int] = (0, 0, 0, 0), act_min: int = QMIN,
               act_max: int = QMAX) -> np.ndarray:
    """MAX_POOL_2D: max of the window's in-bounds elements, clamped to the activation bounds."""
    *lead, h, wd, c = x.shape
    oh, ow = _out_hw(h, wd, *filt, stride, padding)
    xp = _pad_hw(x.astype(np.int16), padding, np.iinfo(np.int16).min)
    out = np.full((*lead, oh, ow, c), np.iinfo(np.int16).min, np.int16)
    for _, _, v in _taps(xp, *filt, oh, ow, *stride):
        np.maximum(out, v, out=out)
    return np.minimum(np.maximum(out, act_min), act_max).astype(np.int8)


def mean_multiplier(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """TFLite's MEAN rescaling: (m, e) = QuantizeMultiplier(s_in / s_out); k = min(floor(log2 n), 32, 31 + e);
    m' = (m << k) // n (int64, truncating); e' = e - k. Equal to requantizing by s_in / (n s_out) only
    when n is a power of two."""
    m, e = quantize_multiplier(_f32(s_in) / _f32(s_out))
    k = min(n.bit_length() - 1, 32, 31 + e)
    return (m << k) // n, e - k


def mean_hw(x: np.ndarray, z_x: int, s_in: float, s_out: float, z_out: int) -> np.ndarray:
    """MEAN over H and W: y = clamp(MBQM(sum (x - z_x), m', e') + z_out) with mean_multiplier; [..., 1, 1, C]."""
    *lead, h, wd, c = x.shape
    n = h * wd
    m, e = mean_multiplier(s_in, s_out, n)
    acc = (x.astype(np.int64) - z_x).sum(axis=(-3, -2), keepdims=True)
    pre = fp.multiply_by_quantized_multiplier(acc, m, e) + z_out
    return np.minimum(np.maximum(pre, QMIN), QMAX).astype(np.int8)


def pad(x: np.ndarray, paddings: tuple[tuple[int, int], ...], z_x: int) -> np.ndarray:
    """PAD: constant padding with the zero point (real 0). `paddings` are (before, after) pairs for H, W
    and optionally C of [..., H, W, C]: ((top, bottom), (left, right)[, (front, back)])."""
    pads = ((0, 0),) * (x.ndim - 3) + tuple(tuple(p) for p in paddings) + ((0, 0),) * (3 - len(paddings))
    return np.pad(x, pads, constant_values=np.int8(z_x))


def requantize(x: np.ndarray, s_in: float, z_in: int, s_out: float, z_out: int) -> np.ndarray:
    """int8 -> int8 QUANTIZE: y = clamp(MBQM(x - z_in, QuantizeMultiplier(s_in / s_out)) + z_out)."""
    m, e = quantize_multiplier(_f32(s_in) / _f32(s_out))
    pre = fp.multiply_by_quantized_multiplier(x.astype(np.int64) - z_in, m, e) + z_out
    return np.minimum(np.maximum(pre, QMIN), QMAX).astype(np.int8)


def concatenation(xs: list[np.ndarray], quants: list[tuple[float, int]] | None = None,
                  out_quant: tuple[float, int] | None = None, axis: int = -1) -> np.ndarray:
    """CONCATENATION along channels. TFLite's int8 kernel copies bytes and requires every input to share the
    output's (scale, zero point); an input quantized differently is requantized first exactly as the
    int8->int8 QUANTIZE that converters insert in front of it (`requantize`)."""
    parts = []
    for i, x in enumerate(xs):
        if quants is not None and out_quant is not None and (
                np.float32(quants[i][0]) != np.float32(out_quant[0]) or quants[i][1] != out_quant[1]):
            x = requantize(x, quants[i][0], quants[i][1], out_quant[0], out_quant[1])
        parts.append(x.astype(np.int8))
    return np.concatenate(parts, axis=axis)


def reshape(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """RESHAPE / flatten: the same bytes in row-major (HWC) order."""
    return x.reshape(shape)


def quantize(f: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float32 -> int8 QUANTIZE (TFLite's AffineQuantize): clamp(int32(round(float32(f) / float32(scale))) + zp),
    the division in float32, round half away from zero. Bit for bit TFLite Micro's wherever TFLite's C++ is
    defined, i.e. |f / scale| < 2**31. Beyond that (and for NaN) the C++ converts out of int32 range and
    overflows int32 adding zp, which is undefined: x86 builds give -128 even for +1e30; here such values
    saturate (-128 / 127) and NaN maps to the zero point (the M7's VCVT gives 0 for NaN)."""
    q = (np.asarray(f, np.float32) / np.float32(scale)).astype(np.float64)
    r = np.copysign(np.floor(np.abs(q) + 0.5), q)
    r = np.where(np.isnan(r), 0.0, np.clip(r, -(2.0**31), 2.0**31))
    return np.clip(r + zero_point, QMIN, QMAX).astype(np.int8)


def quantize_input(f: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The float edge of a float-input model, done on the host: what its leading QUANTIZE computes
    (`quantize`), so the board can be fed int8 that equals TFLite's own conversion bit for bit."""
    return quantize(f, scale, zero_point)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 -> float32 DEQUANTIZE: float32(double(scale) * (q - zp))."""
    return (_f32(scale) * (np.asarray(q).astype(np.float64) - zero_point)).astype(np.float32)


def dequantize_output(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """The float edge of a float-output model, done on the host: what its trailing DEQUANTIZE computes
    (`dequantize`); equal bit for bit (as float32) to TFLite's float output."""
    return dequantize(q, scale, zero_point)


# ---------------------------------------------------------------- SOFTMAX (gemmlowp fixed point, as TFLite Micro)

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5  # exp() input in Q5.26 (kScaledDiffIntegerBits)
SOFTMAX_ACCUMULATION_INTEGER_BITS = 12  # sum of exps in Q12.19 (kAccumulationIntegerBits)
SOFTMAX_OUTPUT_SCALE = 1.0 / 256  # TFLite's int8 SOFTMAX output quantization, fixed (Prepare refuses others)
SOFTMAX_OUTPUT_ZERO_POINT = -128

_INT32_MAX = (1 << 31) - 1
_INT32_MIN = -(1 << 31)


@dataclass(frozen=True)
class SoftmaxParams:
    """What TFLite's int8 SOFTMAX Prepare computes: exp() input = MBQM>1(x - max, input_multiplier,
    input_left_shift) in Q5.26; differences below diff_min give exp 0 (output -128)."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(s_in: float, beta: float = 1.0) -> SoftmaxParams:
    """TFLite's PreprocessSoftmaxScaling and CalculateInputRadius (double-rounding build, as TFLite Micro):
    real = min(double(float32 beta) * double(float32 s_in) * 2**26, 2**31 - 1), (m, shift) =
    QuantizeMultiplier(real) (QuantizeMultiplierGreaterThanOne: real must exceed 1), and
    diff_min = -floor(31 * 2**26 / 2**shift)."""
    real = min(_f32(beta) * _f32(s_in) * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)), float(_INT32_MAX))
    if not real > 1.0:
        raise ValueError(f"SOFTMAX with beta {beta} on input scale {s_in} gives the input multiplier {real} <= 1, "
                         "which TFLite refuses (QuantizeMultiplierGreaterThanOne)")
    m, shift = quantize_multiplier(real)
    radius = math.floor(((1 << SOFTMAX_SCALED_DIFF_INTEGER_BITS) - 1)
                        * float(1 << (31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS)) / float(1 << shift))
    return SoftmaxParams(m, shift, -radius)


def _srdhm(a, b) -> np.ndarray:
    return fp.saturating_rounding_doubling_high_mul(a, b)


def _rdbp(x, e) -> np.ndarray:
    return fp.rounding_divide_by_pot(x, e)


def _saturating_shift_left(x: np.ndarray, e: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT<e> for e > 0 on int32 raw values."""
    threshold = (1 << (31 - e)) - 1
    return np.where(x > threshold, _INT32_MAX, np.where(x < -threshold, _INT32_MIN, x << e))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8 to the 4th power."""
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = a + (1 << 28)  # a + 1/8
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbp(x4, 2)
    poly = _rdbp(_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1)  # x4/24 + x3/6 + x2/2
    return constant_term + _srdhm(constant_term, x + poly)


def exp_on_negative_values(a: np.ndarray) -> np.ndarray:
    """gemmlowp's exp_on_negative_values for Q5.26 input a <= 0 (int32 raw), Q0.31 result: exp of a mod 1/4
    by the Taylor series, then one multiplier per set bit of the rest (a barrel shifter of exp(-2**k),
    k = -2..4), 1.0 (2**31 - 1) at a = 0."""
    frac = 31 - SOFTMAX_SCALED_DIFF_INTEGER_BITS
    quarter = 1 << (frac - 2)
    a = np.asarray(a, np.int64)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        _saturating_shift_left(a_mod_quarter_minus_quarter, SOFTMAX_SCALED_DIFF_INTEGER_BITS))
    remainder = a_mod_quarter_minus_quarter - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):
        if SOFTMAX_SCALED_DIFF_INTEGER_BITS > exponent:
            result = np.where(remainder & (1 << (frac + exponent)), _srdhm(result, multiplier), result)
    return np.where(a == 0, _INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1), Q0.31 in and out, by three Newton-Raphson steps in Q2.29
    from 48/17 - 32/17 d, d = (1 + a) / 2 (RoundingHalfSum)."""
    half_denominator = (a + _INT32_MAX + 1) >> 1  # RoundingHalfSum(a, One): the sum is >= 0 here
    x = 1515870810 + _srdhm(half_denominator, -1010580540)  # 48/17 and -32/17 in Q2.29
    for _ in range(3):
        one_minus_half_denominator_times_x = (1 << 29) - _srdhm(half_denominator, x)
        x = x + _saturating_shift_left(_srdhm(x, one_minus_half_denominator_times_x), 2)  # Q4.27 -> Q2.29
    return _saturating_shift_left(x, 1)  # ExactMulByPot<-1> (x / 2, Q1.30), then Rescale to Q0.31


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's GetReciprocal: (1 / x as Q0.31 of x shifted to [1, 2), num_bits_over_unit), x > 0."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)  # CountLeadingZeros(uint32)
    shifted_sum_minus_one = (x << headroom_plus_one) - (1 << 31)
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), x_integer_digits - headroom_plus_one


def softmax_int8(x: np.ndarray, s_in: float, z_in: int, s_out: float = SOFTMAX_OUTPUT_SCALE,
                 z_out: int = SOFTMAX_OUTPUT_ZERO_POINT, beta: float = 1.0) -> np.ndarray:
    """SOFTMAX over the last axis, int8 in and out, bit for bit as TFLite Micro's reference kernel
    (tensorflow/lite/kernels/internal/reference/softmax.h with softmax_params): per row, d = x - max(x);
    where d >= diff_min, e = exp_on_negative_values(MBQM>1(d, m, shift)) (Q0.31) and the sum of
    RDBP(e, 12) (Q12.19) gives (r, n) = GetReciprocal(sum, 12); y = clamp(RDBP(SRDHM(r, e), n + 23) - 128);
    elsewhere y = -128. The input zero point cancels in d. The output quantization is TFLite's fixed
    (1/256, -128): Prepare refuses anything else, and so does this function (ValueError), as it does what
    makes TFLite Micro abort: s_in * beta <= 2**-26, or a row whose sum of exps reaches 512."""
    if np.float32(s_out) != np.float32(SOFTMAX_OUTPUT_SCALE) or int(z_out) != SOFTMAX_OUTPUT_ZERO_POINT:
        raise ValueError(f"TFLite's int8 SOFTMAX outputs scale 1/256 and zero point -128, not ({s_out}, {z_out})")
    del z_in  # softmax of differences: the zero point cancels
    p = softmax_params(s_in, beta)
    xi = np.asarray(x).astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    # MultiplyByQuantizedMultiplierGreaterThanOne: SRDHM(d * 2**shift, m); d below diff_min is never used
    scaled = _srdhm(fp.wrap_int32(np.where(valid, diff, 0) << p.input_left_shift), p.input_multiplier)
    e = np.where(valid, exp_on_negative_values(scaled), 0)
    total = fp.wrap_int32(_rdbp(e, SOFTMAX_ACCUMULATION_INTEGER_BITS).sum(axis=-1, keepdims=True))  # Q0.31 -> Q12.19
    if np.any(total >= 1 << 28):
        # the final RoundingDivideByPOT would shift by more than 31: gemmlowp asserts, TFLite Micro aborts
        raise ValueError("a SOFTMAX row's sum of exponentials reaches 512 (512 or more entries near the row's "
                         "maximum); TFLite's int8 kernel cannot represent that and TFLite Micro aborts")
    recip, bits_over_unit = get_reciprocal(total, SOFTMAX_ACCUMULATION_INTEGER_BITS)
    unsat = _rdbp(_srdhm(recip, e), bits_over_unit + 31 - 8)
    y = np.clip(unsat + QMIN, QMIN, QMAX)
    return np.where(valid, y, QMIN).astype(np.int8)
