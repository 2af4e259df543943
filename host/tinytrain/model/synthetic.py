"""Small random int8 models with every op kind, for tests and smoke runs of the toolchain.

Weights are random; every output's quantization range is calibrated on random
inputs (ReLU6 outputs on [0, max], linear ones on [min, max]) so that
activations use the int8 range the way a real quantized model does.
"""

from __future__ import annotations

import numpy as np

from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops import Add, Conv2D, Dense, GlobalAveragePool
from tinytrain.ir.graph import Model, QuantParams, TensorSpec, conv_output_size


def _calibrated(real: np.ndarray, relu: bool) -> QuantParams:
    hi = float(np.percentile(real, 99.9))
    if relu:
        hi = max(hi, 1e-3)
        return QuantParams(hi / 255, -128)
    lo = float(np.percentile(real, 0.1))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-3) / 255
    return QuantParams(scale, int(np.clip(round(-128 - lo / scale), -128, 127)))


def random_model(seed: int = 0, size: int = 12, in_channels: int = 3, classes: int = 5, width: int = 8,
                 kernels: tuple[int, ...] = (3, 5, 7), calibration: int = 8) -> Model:
    """first conv (3x3 s2) -> inverted-residual blocks (pw, dw kxk, pw, residual add) -> pool -> dense."""
    rng = np.random.default_rng(seed)
    tensors: dict[str, TensorSpec] = {}
    ops = []
    values: dict[str, np.ndarray] = {}  # int8 calibration activations [N, H, W, C]
    n_weighted = 0

    def quantize(name: str, real: np.ndarray, relu: bool) -> str:
        qp = _calibrated(real, relu)
        q = np.clip(np.rint(real / qp.scale) + qp.zero_point, -128, 127).astype(np.int8)
        tensors[name] = TensorSpec(name, real.shape[1:], qp)
        values[name] = q
        return name

    def weighted(x: str, out_c: int, k: int, stride: int, groups: int, relu: bool, dense: bool = False) -> str:
        nonlocal n_weighted
        qx = tensors[x].qparams
        c = tensors[x].shape[2]
        fan_in = k * k * c // groups if not dense else tensors[x].size
        wf = rng.normal(0, np.sqrt(2.0 / fan_in), size=(out_c, fan_in) if dense else (out_c, k, k, c // groups))
        w_scales = np.abs(wf.reshape(out_c, -1)).max(axis=1) / 127
        w = np.clip(np.rint(wf / w_scales.reshape((-1,) + (1,) * (wf.ndim - 1))), -127, 127).astype(np.int8)
        bf = rng.normal(0, 0.1, size=out_c)
        bias = np.rint(bf / (qx.scale * w_scales)).astype(np.int32)
        if dense:
            acc = np.stack([K.dense_accumulate(v, qx.zero_point, w, bias) for v in values[x]])
        else:
            acc = np.stack([K.conv_accumulate(v, qx.zero_point, w, bias, stride, groups, k // 2) for v in values[x]])
        real = acc * (qx.scale * w_scales)
        if relu:
            real = np.clip(real, 0, 6)
        y = quantize(f"t{n_weighted}", real, relu)
        name = f"conv{n_weighted}"
        n_weighted += 1
        if dense:
            ops.append(Dense(name, x, y, w, bias, w_scales.astype(np.float32)))
        else:
            ops.append(Conv2D(name, x, y, w, bias, w_scales.astype(np.float32), stride, groups, k // 2))
        # Re-run with the real kernels so calibration values are exactly what the model computes.
        qy = tensors[y].qparams
        mult = [fp.quantize_multiplier(qx.scale * s / qy.scale) for s in w_scales]
        rq = K.Requant(np.array([m for m, _ in mult]), np.array([s for _, s in mult]), qy.zero_point)
        values[y] = np.stack([rq.apply(a)[0] for a in acc])
        return y

    pixels = rng.integers(0, 256, size=(calibration, size, size, in_channels))
    x = quantize("input", pixels / 255.0, relu=False)
    tensors["input"] = TensorSpec("input", (size, size, in_channels), QuantParams(1 / 255, -128))
    values["input"] = (pixels - 128).astype(np.int8)
    x = weighted(x, width, 3, 2, 1, True)
    for i, k in enumerate(kernels):
        block_in = x
        c = tensors[x].shape[2]
        h = weighted(x, c * 3, 1, 1, 1, True)
        h = weighted(h, c * 3, k, 2 if i == 1 else 1, c * 3, True)
        h = weighted(h, c, 1, 1, 1, False)
        if tensors[h].shape == tensors[block_in].shape:
            qa, qb = tensors[h].qparams, tensors[block_in].qparams
            real = qa.dequantize(values[h]) + qb.dequantize(values[block_in])
            y = quantize(f"res{i}", real, relu=False)
            qy = tensors[y].qparams
            params = K.make_add_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, qy.scale, qy.zero_point)
            values[y] = np.stack([K.add_forward(a, b, params)[0] for a, b in zip(values[h], values[block_in])])
            ops.append(Add(f"add{i}", (h, block_in), y))
            h = y
        x = h
    qx = tensors[x].qparams
    real = qx.dequantize(values[x]).mean(axis=(1, 2), keepdims=True)
    pooled = quantize("pooled", real, relu=False)
    hw = tensors[x].shape[0] * tensors[x].shape[1]
    qp = tensors[pooled].qparams
    m, s = fp.quantize_multiplier(qx.scale / (qp.scale * hw))
    values[pooled] = np.stack([K.Requant(np.array([m]), np.array([s]), qp.zero_point)
                               .apply(K.avgpool_accumulate(v, qx.zero_point))[0] for v in values[x]])
    ops.append(GlobalAveragePool("pool", x, pooled))
    y = weighted(pooled, classes, 1, 1, 1, False, dense=True)
    tensors["logits"] = TensorSpec("logits", (1, 1, classes), QuantParams(tensors[y].qparams.scale * 2, 0))
    ops[-1].output = "logits"
    del tensors[y]
    model = Model(f"synthetic-{seed}", tensors, ops, "input", "logits", {"pixel_to_real": [1 / 255, 0.0]})
    model.validate()
    return model
