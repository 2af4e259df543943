"""Integer arithmetic shared bit for bit by the NumPy reference and the C kernels.

Forward requantization follows TFLite's int8 kernels (gemmlowp's
SaturatingRoundingDoublingHighMul + RoundingDivideByPOT). Gradients are
block-floating-point: an integer mantissa tensor plus one power-of-two
exponent per tensor chosen at run time (see docs/numerics.md).
All functions take and return NumPy integer arrays and never use floats on
values that decide learned weights.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
LR_ONE = 1 << 16  # a step's learning-rate scale is Q16: LR_ONE is the compiled learning rate


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: real = m * 2**(shift - 31) with m in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:
        raise ValueError(f"multiplier must be finite and non-negative, got {real}")
    frac, shift = math.frexp(real)
    m = math.floor(frac * (1 << 31) + 0.5)  # std::round: half away from zero (exact: 22 fraction bits at most)
    if m == (1 << 31):
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(m), int(shift)


def wrap_int32(v: np.ndarray) -> np.ndarray:
    """Two's-complement wrap of int64 values to int32 (what C's unsigned arithmetic does)."""
    return ((np.asarray(v, dtype=np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul. Its nudge (2**30, or 1 - 2**30 below zero) followed
    by a division truncating toward zero is exactly floor((a*b + 2**30) / 2**31), one shift on int64."""
    a64 = np.asarray(a, dtype=np.int64)
    b64 = np.asarray(b, dtype=np.int64)
    q = (a64 * b64 + (1 << 30)) >> 31
    if np.any(b64 == INT32_MIN):
        q = np.where((a64 == INT32_MIN) & (b64 == INT32_MIN), INT32_MAX, q)
    return q


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT (round half away from zero), exponent >= 0: x / 2**e rounded is
    floor((x + 2**(e-1) - [x < 0]) / 2**e) for e > 0, and x for e = 0."""
    x64 = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    return (x64 + ((np.int64(1) << e) >> 1) - ((x64 < 0) & (e > 0))) >> e


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray | int,
                                     shift: np.ndarray | int) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier (double rounding), int32 in and out."""
    shift = np.asarray(shift, dtype=np.int64)
    x64 = np.asarray(x, dtype=np.int64)
    if np.any(shift > 0):
        x64 = wrap_int32(x64 << np.maximum(shift, 0))
    elif x64.size and (x64.min() < INT32_MIN or x64.max() > INT32_MAX):
        x64 = wrap_int32(x64)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x64, multiplier), np.maximum(-shift, 0))


# ---------------------------------------------------------------- gradients


def rshift_round(v: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """floor(v / 2**n + 1/2) for n >= 0 (round half up), on int64."""
    v64 = np.asarray(v, dtype=np.int64)
    n64 = np.asarray(n, dtype=np.int64)
    half = np.where(n64 > 0, np.int64(1) << np.maximum(n64 - 1, 0), 0)
    return (v64 + half) >> n64


def normalize_shift(max_abs: int, bits: int) -> int:
    """Right shift that brings values with this max |v| into `bits`-bit signed range."""
    if max_abs == 0:
        return 0
    limit = (1 << (bits - 1)) - 1
    s = max(0, int(max_abs).bit_length() - (bits - 1))
    if s > 0 and ((max_abs + (1 << (s - 1))) >> s) > limit:
        s += 1
    return s


def normalize(v: np.ndarray, exp: int, bits: int) -> tuple[np.ndarray, int]:
    """Block-floating-point renormalization: mantissas of at most `bits` signed bits.

    Returns (mantissas as int64, new exponent). Never shifts left: the input is exact.
    """
    v64 = np.asarray(v, dtype=np.int64)
    max_abs = int(np.abs(v64).max()) if v64.size else 0
    s = normalize_shift(max_abs, bits)
    return rshift_round(v64, s), exp + s


# ---------------------------------------------------------------- updates

ROUNDING_MODES = ("stochastic", "nearest", "truncate")


def mix32(x: np.ndarray) -> np.ndarray:
    """lowbias32 integer hash (C. Wellons): a bijection on uint32 with good avalanche."""
    x = np.asarray(x, dtype=np.uint32).copy()
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return x


def random_bits(seed: int, step: int, first_index: int, count: int) -> np.ndarray:
    """The counter-based PRNG of the update: 32 random bits per trainable element.

    r = mix32(mix32(seed ^ step) + index) with uint32 wrap-around; `index` runs
    over every trainable element of the model in a fixed order (the compiler's
    element offsets), so the draw of an element does not depend on which other
    tensors were updated before it.
    """
    with np.errstate(over="ignore"):
        base = mix32(np.array([(seed ^ step) & 0xFFFFFFFF], dtype=np.uint32))[0]
        idx = (np.arange(count, dtype=np.uint64) + np.uint64(first_index)) & np.uint64(0xFFFFFFFF)
        return mix32((idx.astype(np.uint32) + base).astype(np.uint32))


def round_shift(v: np.ndarray, e: np.ndarray | int, mode: str, rand: np.ndarray | None = None) -> np.ndarray:
    """v * 2**e rounded to an integer by `mode`; v is int64 with |v| < 2**62; e is one exponent or one
    per element (it broadcasts against v, e.g. one per row of a weight update).

    e >= 0: a left shift (v clamped to ±2**21 and e to 40: a shift that large would only saturate).
    e < 0, n = -e (beyond 62, v is first shifted right by n - 62):
    stochastic: floor(v / 2**n + u), u uniform in [0, 1) from 32 random bits (unbiased up to 2**-32);
    nearest: round half up; truncate: toward zero (the authors' engine).
    """
    v64 = np.asarray(v, dtype=np.int64)
    e = np.asarray(e, dtype=np.int64)
    left = np.clip(v64, -(1 << 21), 1 << 21) << np.clip(e, 0, 40)
    n = np.maximum(-e, 0)
    v64 = v64 >> np.maximum(n - 62, 0)
    n = np.minimum(n, 62)
    if mode == "stochastic":
        if rand is None:
            if np.any(e < 0):
                raise ValueError("stochastic rounding needs random bits")
            return left
        r = np.asarray(rand, dtype=np.uint32).astype(np.int64)
        u = np.where(n <= 32, r >> np.clip(32 - n, 0, 32), r << np.clip(n - 32, 0, 30))
        right = (v64 + u) >> n
    elif mode == "nearest":
        right = (v64 + ((np.int64(1) << n) >> 1)) >> n
    elif mode == "truncate":
        right = np.where(v64 >= 0, v64 >> n, -((-v64) >> n))
    else:
        raise ValueError(f"unknown rounding mode {mode!r}; choose one of {', '.join(ROUNDING_MODES)}")
    return np.where(e >= 0, left, right)


def saturate(v: np.ndarray, lo: int, hi: int) -> np.ndarray:
    # np.minimum/np.maximum: np.clip's Python-level dispatch costs more than the work on small tensors
    return np.minimum(np.maximum(np.asarray(v, dtype=np.int64), lo), hi)
