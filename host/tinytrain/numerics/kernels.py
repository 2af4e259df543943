"""NumPy reference kernels: the numerical truth the C kernels must equal bit for bit.

Activations are HWC (batch 1). Integer dot products are evaluated with float64
BLAS, which is exact while every partial sum stays below 2**53; the bounds in
docs/numerics.md keep every sum far below that (int32 range), and `_exact`
checks it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinytrain.numerics import fixed_point as fp

QMIN, QMAX = -128, 127
WMIN, WMAX = -127, 127


def _exact(a: np.ndarray) -> np.ndarray:
    """float64 result of an integer product sum -> int64, checking it is exact."""
    r = np.rint(a)
    if r.size and np.abs(r).max() >= 2.0**31:
        raise OverflowError("an integer accumulation left the int32 range")
    return r.astype(np.int64)


Pads = tuple[int, int, int, int]  # zero-point padding (top, bottom, left, right)


def as_pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a stride or kernel given as one int or a pair."""
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def as_pads(pad: int | Pads) -> Pads:
    """(top, bottom, left, right) of a padding given as one int (all sides) or four."""
    return (int(pad),) * 4 if np.isscalar(pad) else tuple(int(p) for p in pad)


def pad_hwc(x: np.ndarray, pad: int | Pads, value: int = 0) -> np.ndarray:
    """Pads the H and W axes of [..., H, W, C]."""
    t, b, left, r = as_pads(pad)
    if not (t or b or left or r):
        return x
    return np.pad(x, ((0, 0),) * (x.ndim - 3) + ((t, b), (left, r), (0, 0)), constant_values=value)


def out_size(size: int, k: int, stride: int, pad: int, pad_after: int | None = None) -> int:
    return (size + pad + (pad if pad_after is None else pad_after) - k) // stride + 1


def out_hw(h: int, w: int, kernel: int | tuple[int, int], stride: int | tuple[int, int],
           pad: int | Pads) -> tuple[int, int]:
    (kh, kw), (sh, sw), (t, b, left, r) = as_pair(kernel), as_pair(stride), as_pads(pad)
    return out_size(h, kh, sh, t, b), out_size(w, kw, sw, left, r)


def _taps(xp: np.ndarray, kh: int, kw: int, oh: int, ow: int, stride: int | tuple[int, int]):
    """Yields (i, j, view) with view[..., y, x, c] = xp[..., y*sh + i, x*sw + j, c]."""
    sh, sw = as_pair(stride)
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[..., i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]


# ------------------------------------------------------------------ forward


@dataclass(frozen=True)
class Requant:
    """Per-output-channel (or per-tensor) TFLite requantization of an int32 accumulator."""

    multiplier: np.ndarray  # int64 [C] (or [1])
    shift: np.ndarray  # int64 [C] (or [1])
    zero_point: int

    def apply(self, acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Returns (int8 output, in-range mask of the pre-clamp value)."""
        pre = fp.multiply_by_quantized_multiplier(acc, self.multiplier, self.shift) + self.zero_point
        mask = (pre >= QMIN) & (pre <= QMAX)
        return np.minimum(np.maximum(pre, QMIN), QMAX).astype(np.int8), mask


def conv_accumulate(x: np.ndarray, zx: int, w: np.ndarray, bias: np.ndarray, stride: int | tuple[int, int],
                    groups: int, pad: int | Pads) -> np.ndarray:
    """int32 accumulators b + sum w * (x - zx) of a conv2d; x [H,W,C] int8 (or a batch [..., H,W,C]:
    each sample's result is the same, the float64 sums of integers being exact), w [O,KH,KW,I/g];
    stride (sh, sw) or one int; pad (top, bottom, left, right) or one int (pads count 0)."""
    *lead, h, wd, c = x.shape
    o, kh, kw, ig = w.shape
    sh, sw = as_pair(stride)
    oh, ow = out_hw(h, wd, (kh, kw), stride, pad)
    xp = pad_hwc(x.astype(np.float64) - zx, pad)
    wf = w.astype(np.float64)
    if groups == c and ig == 1 and o == c:  # depthwise
        acc = np.zeros((*lead, oh, ow, c))
        for i, j, v in _taps(xp, kh, kw, oh, ow, stride):
            acc += v * wf[:, i, j, 0]
    elif kh == kw == 1 and groups == 1:
        acc = xp[..., ::sh, ::sw, :][..., :oh, :ow, :].reshape(-1, c) @ wf[:, 0, 0, :].T
        acc = acc.reshape(*lead, oh, ow, o)
    else:
        og = o // groups
        acc = np.zeros((*lead, oh, ow, o))
        for i, j, v in _taps(xp, kh, kw, oh, ow, stride):
            for g in range(groups):
                acc[..., g * og : (g + 1) * og] += v[..., g * ig : (g + 1) * ig] @ wf[g * og : (g + 1) * og, i, j, :].T
    return _saturated_bias_add(_exact(acc), bias)


def conv_accumulate_rows(x: np.ndarray, zx: int, w: np.ndarray, bias: np.ndarray, stride: int, groups: int,
                         pad_top: int, pad_left: int, oh: int, ow: int) -> np.ndarray:
    """conv_accumulate on a band of rows: output (oy, ox) reads input rows oy*stride - pad_top + ky and
    columns ox*stride - pad_left + kx; rows/columns outside x are padding (what a patch stage's strip
    kernels compute, docs/numerics.md)."""
    h, wd, _ = x.shape
    _, kh, kw, _ = w.shape
    bottom = max(0, (oh - 1) * stride + kh - pad_top - h)
    right = max(0, (ow - 1) * stride + kw - pad_left - wd)
    xp = np.pad(x.astype(np.int16), ((pad_top, bottom), (pad_left, right), (0, 0)), constant_values=zx)
    full = conv_accumulate(xp.astype(np.int64).clip(-128, 127).astype(np.int8), zx, w, bias, stride, groups, 0)
    return full[:oh, :ow]


def _saturated_bias_add(acc: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """acc = sat32(bias + sum): biases of dead channels sit near -2**31 (ARM's QADD)."""
    return fp.saturate(acc + bias.astype(np.int64), fp.INT32_MIN, fp.INT32_MAX)


def dense_accumulate(x: np.ndarray, zx: int, w: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """x [1,1,C] (or a batch [..., 1,1,C]) -> [1,1,O] ([..., 1,1,O])."""
    lead = x.shape[:-3]
    xf = x.reshape(*lead, -1).astype(np.float64) - zx
    return _saturated_bias_add(_exact(xf @ w.astype(np.float64).T), bias).reshape(*lead, 1, 1, -1)


@dataclass(frozen=True)
class AddParams:
    """TFLite int8 ADD: both inputs rescaled to twice the larger scale with 20 bits of headroom."""

    left_shift: int
    in1: tuple[int, int, int]  # (zero point, multiplier, shift)
    in2: tuple[int, int, int]
    out: tuple[int, int, int]


def make_add_params(s1: float, z1: int, s2: float, z2: int, so: float, zo: int) -> AddParams:
    left_shift = 20
    twice_max = 2.0 * max(s1, s2)
    m1 = fp.quantize_multiplier(s1 / twice_max)
    m2 = fp.quantize_multiplier(s2 / twice_max)
    mo = fp.quantize_multiplier(twice_max / ((1 << left_shift) * so))
    return AddParams(left_shift, (z1, *m1), (z2, *m2), (zo, *mo))


def add_forward(a: np.ndarray, b: np.ndarray, p: AddParams) -> tuple[np.ndarray, np.ndarray]:
    def scaled(x: np.ndarray, zmq: tuple[int, int, int]) -> np.ndarray:
        z, m, s = zmq
        return fp.multiply_by_quantized_multiplier((x.astype(np.int64) - z) << p.left_shift, m, s)

    raw = scaled(a, p.in1) + scaled(b, p.in2)
    zo, mo, so = p.out
    pre = fp.multiply_by_quantized_multiplier(raw, mo, so) + zo
    mask = (pre >= QMIN) & (pre <= QMAX)
    return np.minimum(np.maximum(pre, QMIN), QMAX).astype(np.int8), mask


def avgpool_accumulate(x: np.ndarray, zx: int) -> np.ndarray:
    return (x.astype(np.int64) - zx).sum(axis=(-3, -2)).reshape(*x.shape[:-3], 1, 1, -1)


def mean_multiplier(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """TFLite's MEAN rescaling of a sum of n values: (m, e) = quantize_multiplier(s_in / s_out);
    k = min(floor(log2 n), 32, 31 + e); (m << k) // n with exponent e - k. The same as
    quantize_multiplier(s_in / (n s_out)) only when n is a power of two."""
    m, e = fp.quantize_multiplier(s_in / s_out)
    k = min(n.bit_length() - 1, 32, 31 + e)
    return (m << k) // n, e - k


def _window_counts(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pad: Pads) -> np.ndarray:
    """How many in-bounds elements each pooling window holds, [OH, OW, 1]."""
    oh, ow = out_hw(h, w, kernel, stride, pad)
    ones = pad_hwc(np.ones((h, w, 1), np.int64), pad)
    cnt = np.zeros((oh, ow, 1), np.int64)
    for _, _, v in _taps(ones, *kernel, oh, ow, stride):
        cnt += v[: oh, : ow]
    return cnt


def avgpool2d_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: Pads) -> np.ndarray:
    """AVERAGE_POOL_2D (TFLite int8): the raw values of a window's in-bounds elements summed and
    divided by their count n, rounded half away from zero; input and output share scale and zero
    point, so there is nothing to requantize and nothing to clamp."""
    *lead, h, w, c = x.shape
    oh, ow = out_hw(h, w, kernel, stride, pad)
    xp = pad_hwc(x.astype(np.int64), pad)
    acc = np.zeros((*lead, oh, ow, c), np.int64)
    for _, _, v in _taps(xp, *kernel, oh, ow, stride):
        acc += v
    n = _window_counts(h, w, kernel, stride, pad)
    return np.where(acc > 0, (acc + n // 2) // n, -((-acc + n // 2) // n)).astype(np.int8)


def _pool_taps(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int], pad: Pads):
    """Per tap (i, j): the output positions whose tap lands inside the input, and the input
    positions it reads: (oy, ox, iy, ix) index arrays."""
    oh, ow = out_hw(h, w, kernel, stride, pad)
    (sh, sw), (t, _, left, _) = stride, pad
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            iy, ix = oy * sh - t + i, ox * sw - left + j
            ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
            yield oy[ok], ox[ok], iy[ok], ix[ok]


def maxpool_forward(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], pad: Pads) -> np.ndarray:
    """MAX_POOL_2D (TFLite int8): the max of a window's in-bounds elements (padding never wins)."""
    *lead, h, w, c = x.shape
    oh, ow = out_hw(h, w, kernel, stride, pad)
    xp = pad_hwc(x.astype(np.int16), pad, np.iinfo(np.int16).min)
    out = np.full((*lead, oh, ow, c), np.iinfo(np.int16).min, np.int16)
    for _, _, v in _taps(xp, *kernel, oh, ow, stride):
        np.maximum(out, v, out=out)
    return out.astype(np.int8)


def maxpool_backward(g: np.ndarray, e: int, x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                     pad: Pads, bits: int) -> tuple[np.ndarray, int]:
    """dL/dx of a max pool: each window's gradient goes to its first maximal element (taps in
    row-major order, as PyTorch picks it); overlapping windows add up (int32), renormalized to `bits`."""
    h, w, c = x.shape
    oh, ow = out_hw(h, w, kernel, stride, pad)
    best = np.full((oh, ow, c), np.iinfo(np.int16).min, np.int16)
    where = np.zeros((oh, ow, c, 2), np.int64)  # (iy, ix) of the first max
    for oy, ox, iy, ix in _pool_taps(h, w, kernel, stride, pad):
        v = x[iy, ix].astype(np.int16)
        better = v > best[oy, ox]
        cur = best[oy, ox]
        best[oy, ox] = np.where(better, v, cur)
        loc = where[oy, ox]
        loc[..., 0] = np.where(better, iy[:, None], loc[..., 0])
        loc[..., 1] = np.where(better, ix[:, None], loc[..., 1])
        where[oy, ox] = loc
    gx = np.zeros((h, w, c), np.int64)
    ch = np.broadcast_to(np.arange(c), (oh, ow, c))
    np.add.at(gx, (where[..., 0], where[..., 1], ch), g.astype(np.int64))
    return fp.normalize(gx, e, bits)


def avgpool2d_backward(g: np.ndarray, e: int, in_shape: tuple[int, int, int], kernel: tuple[int, int],
                       stride: tuple[int, int], pad: Pads, bits: int) -> tuple[np.ndarray, int]:
    """dL/dx of an average pool: every in-bounds element of a window gets g / n (n its element count)
    as t = rshift_round(g m[n], rsh[n]) (pool_reciprocals), summed over windows in int64, renormalized
    to `bits` from the exponent e + shmax - 31."""
    h, w, c = in_shape
    n = _window_counts(h, w, kernel, stride, pad)[..., 0]
    m, rsh, eoff = pool_reciprocals(kernel)
    t = fp.rshift_round(g.astype(np.int64) * m[n][..., None], rsh[n][..., None])
    gx = np.zeros((h, w, c), np.int64)
    for oy, ox, iy, ix in _pool_taps(h, w, kernel, stride, pad):
        np.add.at(gx, (iy, ix), t[oy, ox])
    return fp.normalize(gx, e + eoff, bits)


def pool_reciprocals(kernel: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, int]:
    """1/n for every window count n = 0..kh*kw as multipliers with one common shift: (m[n], the right
    shift shmax - s[n], shmax - 31 to add to the exponent); n = 0 never occurs (m = 0)."""
    count = kernel[0] * kernel[1]
    q = [fp.quantize_multiplier(1.0 / k) if k else (0, 0) for k in range(count + 1)]
    shmax = max(s for _, s in q[1:])
    rsh = [shmax - s if k else 0 for k, (_, s) in enumerate(q)]
    return np.array([m for m, _ in q], np.int64), np.array(rsh, np.int64), shmax - 31


def requantize_forward(x: np.ndarray, zx: int, multiplier: int, shift: int, zy: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 -> int8 QUANTIZE: y = clamp(MBQM(x - zx, M) + zy), M = s_x / s_y; with its clamp mask."""
    return Requant(np.array([multiplier]), np.array([shift]), zy).apply(x.astype(np.int64) - zx)


def clamp_forward(x: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """A fused activation that cuts into the int8 range: y = clamp(x, lo, hi), and its mask."""
    return np.minimum(np.maximum(x, lo), hi).astype(np.int8), (x >= lo) & (x <= hi)


def pad_forward(x: np.ndarray, pad: Pads, value: int) -> np.ndarray:
    """PAD of H and W with the zero point (real 0)."""
    return pad_hwc(x, pad, value).astype(np.int8)


def pad_backward(g: np.ndarray, pad: Pads) -> np.ndarray:
    """dL/dx of a pad: the interior of dL/dy."""
    t, b, left, r = pad
    h, w = g.shape[-3] - t - b, g.shape[-2] - left - r
    return g[..., t : t + h, left : left + w, :]


# ------------------------------------------------------------------ loss


def softmax_table(logit_scale: float, frac_bits: int = 20) -> np.ndarray:
    """exp(-s*d) for d = 0..255 in Q`frac_bits`, computed once at compile time."""
    d = np.arange(256, dtype=np.float64)
    return np.rint(np.exp(-logit_scale * d) * (1 << frac_bits)).astype(np.uint32)


def softmax_q15(logits: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Integer softmax of int8 logits: floor(T[max-q] * 2**15 / sum T)."""
    q = logits.reshape(-1).astype(np.int64)
    e = table[(q.max() - q)].astype(np.int64)
    return (e << 15) // e.sum()


def loss_backward(logits: np.ndarray, label: int, table: np.ndarray, lr_scale: int,
                  scale_mult: tuple[int, int], bits: int) -> tuple[np.ndarray, int]:
    """dL/dq of softmax cross-entropy w.r.t. the int8 logits, times the learning-rate scale.

    lr_scale is Q16 (65536 = 1). scale_mult = quantize_multiplier(logit scale).
    The head's output clamp is passed straight through (docs/numerics.md).
    """
    p = softmax_q15(logits, table)
    g = p.copy()
    g[label] -= 1 << 15
    v, e = fp.normalize(g * np.int64(lr_scale), -31, 16)
    m0, sh = scale_mult
    g2, e2 = fp.normalize(v * np.int64(m0), e + sh - 31, bits)
    return g2.reshape(logits.shape), e2


# ------------------------------------------------------------------ backward


def requant_backward(g: np.ndarray, e: int, mask: np.ndarray | None, multiplier: np.ndarray, shift: np.ndarray,
                     bits: int) -> tuple[np.ndarray, int]:
    """Gradient through y = clamp(M * acc): dL/dacc = dL/dy * mask * M (per channel, last axis)."""
    gm = g.astype(np.int64) if mask is None else np.where(mask, g.astype(np.int64), 0)
    sh_max = int(shift.max())
    t = fp.rshift_round(gm * multiplier.astype(np.int64), sh_max - shift.astype(np.int64))
    return fp.normalize(t, e + sh_max - 31, bits)


def conv_backward_input(g: np.ndarray, w: np.ndarray, stride: int | tuple[int, int], groups: int,
                        pad: int | Pads, in_shape: tuple[int, int, int]) -> np.ndarray:
    """dL/dx (int32 range) of a conv2d: the transposed convolution of dL/dacc with w."""
    h, wd, c = in_shape
    oh, ow, o = g.shape
    _, kh, kw, ig = w.shape
    sh, sw = as_pair(stride)
    t, _, left, _ = as_pads(pad)
    gf = g.astype(np.float64)
    wf = w.astype(np.float64)
    gxp = np.zeros((t + sh * oh + kh, left + sw * ow + kw, c))
    depthwise = groups == c and ig == 1 and o == c
    og = o // groups
    for i in range(kh):
        for j in range(kw):
            view = gxp[i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :]
            if depthwise:
                view += gf * wf[:, i, j, 0]
            else:
                for gi in range(groups):
                    view[:, :, gi * ig : (gi + 1) * ig] += gf[:, :, gi * og : (gi + 1) * og] @ wf[gi * og : (gi + 1) * og, i, j, :]
    full = np.zeros((t + h + kh + sh, left + wd + kw + sw, c))
    full[: gxp.shape[0], : gxp.shape[1]] = gxp
    return _exact(full[t : t + h, left : left + wd, :])


def dense_backward_input(g: np.ndarray, w: np.ndarray, in_shape: tuple[int, int, int]) -> np.ndarray:
    return _exact(g.reshape(-1).astype(np.float64) @ w.astype(np.float64)).reshape(in_shape)


def conv_weight_grad(g: np.ndarray, x: np.ndarray, zx: int, kernel: int | tuple[int, int],
                     stride: int | tuple[int, int], groups: int, pad: int | Pads, k: int) -> np.ndarray:
    """dL/dw (int32 range) for the first k input channels (depthwise: the first k channels).

    x holds at least those k channels ([H, W, >=k]); returns [O, KH, KW, k] for a
    full conv and [k, KH, KW, 1] for a depthwise conv.
    """
    oh, ow, o = g.shape
    kh, kw = as_pair(kernel)
    t, _, left, _ = as_pads(pad)
    xk = x[:, :, :k].astype(np.float64) - zx
    # Padding after the input only needs to cover what the taps reach.
    xp = pad_hwc(xk, (t, max(0, (oh - 1) * as_pair(stride)[0] + kh - t - x.shape[0]),
                      left, max(0, (ow - 1) * as_pair(stride)[1] + kw - left - x.shape[1])))
    gf = g.astype(np.float64)
    if groups > 1:
        if groups != o:
            raise NotImplementedError("weight gradients of grouped (non-depthwise) convs")
        out = np.zeros((k, kh, kw, 1))
        for i, j, v in _taps(xp, kh, kw, oh, ow, stride):
            out[:, i, j, 0] = (v * gf[:, :, :k]).sum(axis=(0, 1))
        return _exact(out)
    out = np.zeros((o, kh, kw, k))
    g2 = gf.reshape(-1, o)
    for i, j, v in _taps(xp, kh, kw, oh, ow, stride):
        out[:, i, j, :] = g2.T @ v.reshape(-1, k)
    return _exact(out)


def dense_weight_grad(g: np.ndarray, x: np.ndarray, zx: int, k: int) -> np.ndarray:
    xf = x.reshape(-1)[:k].astype(np.int64) - zx
    return np.outer(g.reshape(-1).astype(np.int64), xf)


def bias_grad(g: np.ndarray) -> np.ndarray:
    return g.reshape(-1, g.shape[-1]).astype(np.int64).sum(axis=0)


def add_backward(g: np.ndarray, e: int, mask: np.ndarray, multiplier: int, shift: int,
                 bits: int) -> tuple[np.ndarray, int]:
    """Gradient of one input of a requantizing add: dL/dy * mask * s_in / s_out."""
    return requant_backward(g, e, mask, np.array([multiplier]), np.array([shift]), bits)


def avgpool_backward(g: np.ndarray, e: int, mask: np.ndarray, multiplier: int, shift: int, bits: int,
                     in_shape: tuple[int, int, int]) -> tuple[np.ndarray, int]:
    gc, e2 = requant_backward(g, e, mask, np.array([multiplier]), np.array([shift]), bits)
    return np.broadcast_to(gc.reshape(1, 1, -1), in_shape).copy(), e2


def grad_sum(parts: list[tuple[np.ndarray, int]], bits: int) -> tuple[np.ndarray, int]:
    """Sum of gradient contributions (int32-range mantissas), renormalized to `bits`.

    Common exponent e = max(min e_i, max e_i - 24): parts with a larger exponent
    are shifted left (at most 24 bits), the others rounded right; the sum is
    int64 (at most a few parts), then normalized.
    """
    exps = [e for _, e in parts]
    e = max(min(exps), max(exps) - 24)
    total = np.zeros(parts[0][0].shape, dtype=np.int64)
    for v, ev in parts:
        v64 = np.asarray(v, dtype=np.int64)
        total += v64 << (ev - e) if ev >= e else fp.rshift_round(v64, e - ev)
    return fp.normalize(total, e, bits)


# ------------------------------------------------------------------ update


def sgd_update(param: np.ndarray, grad: np.ndarray, e: int, coef_mult: np.ndarray, coef_shift: np.ndarray,
               mode: str, rand: np.ndarray | None, lo: int, hi: int) -> np.ndarray:
    """param - coef * grad * 2**e, rounded by `mode`, saturated to [lo, hi].

    coef is per output channel (axis 0): coef[c] = coef_mult[c] * 2**(coef_shift[c] - 31),
    i.e. lr / s_w**2 with QAS (lr / (s_x s_w)**2 for a bias), lr without.
    """
    c = param.shape[0]
    g = grad.reshape(c, -1).astype(np.int64)
    prod = -g * coef_mult.astype(np.int64)[:, None]
    exps = (e + coef_shift.astype(np.int64) - 31).reshape(c, 1)
    r = None if rand is None else np.asarray(rand).reshape(c, -1)
    new = param.reshape(c, -1).astype(np.int64) + fp.round_shift(prod, exps, mode, r)
    return fp.saturate(new, lo, hi).astype(param.dtype).reshape(param.shape)


# ------------------------------------------------------------------ image input on the board


def luma(rgb: np.ndarray) -> np.ndarray:
    """RGB -> gray as PIL's "L": (19595 R + 38470 G + 7471 B + 32768) >> 16, on uint8 [..., 3]."""
    v = rgb.astype(np.int64)
    return ((v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 32768) >> 16).astype(np.uint8)[..., None]


def resize_coords(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear sample positions with pixel centres aligned (as PIL), in Q8: for output index o the
    source position is ((2o + 1) size_in 256) // (2 size_out) - 128, clamped to [0, (size_in - 1) 256];
    returns (first source index, second source index, weight of the second in 0..255)."""
    o = np.arange(size_out, dtype=np.int64)
    f = np.clip((2 * o + 1) * size_in * 256 // (2 * size_out) - 128, 0, (size_in - 1) * 256)
    i0 = f >> 8
    return i0, np.minimum(i0 + 1, size_in - 1), f & 255


def image_resize(pixels: np.ndarray, out_hw: tuple[int, int], out_c: int, lut: np.ndarray) -> np.ndarray:
    """uint8 pixels [..., h, w, c] -> the model's int8 input [..., H, W, C]: RGB becomes gray first (luma)
    when C = 1, bilinear resize in Q8 ((p00 (256 - wx) + p01 wx) (256 - wy) + (p10 (256 - wx) + p11 wx) wy
    + 32768) >> 16 with resize_coords, gray repeated to RGB when C = 3, then the 256-entry table `lut`."""
    p = np.asarray(pixels, dtype=np.uint8)
    if p.shape[-1] == 3 and out_c == 1:
        p = luma(p)
    h, w = p.shape[-3], p.shape[-2]
    y0, y1, wy = resize_coords(h, out_hw[0])
    x0, x1, wx = resize_coords(w, out_hw[1])
    v = p.astype(np.int64)
    top = v[..., y0, :, :]
    bot = v[..., y1, :, :]
    wxc, wyc = wx[:, None], wy[:, None, None]
    row_top = top[..., :, x0, :] * (256 - wxc) + top[..., :, x1, :] * wxc
    row_bot = bot[..., :, x0, :] * (256 - wxc) + bot[..., :, x1, :] * wxc
    out = (row_top * (256 - wyc) + row_bot * wyc + 32768) >> 16
    if out.shape[-1] == 1 and out_c == 3:
        out = np.repeat(out, 3, axis=-1)
    return np.asarray(lut, dtype=np.int8)[out]
