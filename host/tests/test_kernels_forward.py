"""int8 forward kernels against a float simulation of the same quantized ops.

The float simulation computes each op from the same int8 inputs in float64:
y = clamp(round(real_multiplier * acc) + z_y), with an independent loop-based
convolution. TFLite's fixed-point requantization may differ from it by at most
one LSB (double rounding); the issue's bar is 1 LSB on 99.9% of outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinytrain.numerics import kernels as K
from tinytrain.compile import autodiff as tp
from tinytrain.ops import Add, Conv2D, Dense, GlobalAveragePool

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models" / "tiny-training"


def float_conv(x, zx, w, b, stride, groups, pad):
    h, wd, c = x.shape
    o, kh, kw, ig = w.shape
    oh, ow = K.out_size(h, kh, stride, pad), K.out_size(wd, kw, stride, pad)
    xp = np.pad(x.astype(np.float64) - zx, ((pad, pad), (pad, pad), (0, 0)))
    og = o // groups
    out = np.zeros((oh, ow, o))
    for y in range(oh):
        for xx in range(ow):
            patch = xp[y * stride : y * stride + kh, xx * stride : xx * stride + kw, :]
            for oc in range(o):
                g = oc // og
                out[y, xx, oc] = np.sum(patch[:, :, g * ig : (g + 1) * ig] * w[oc]) + b[oc]
    return out


def float_requant(acc, real_mult, zy):
    return np.clip(np.floor(acc * real_mult + 0.5) + zy, -128, 127)


def random_conv(rng, c, o, k, stride, groups, size):
    w = rng.integers(-127, 128, size=(o, k, k, c // groups)).astype(np.int8)
    b = rng.integers(-5000, 5000, size=o).astype(np.int32)
    x = rng.integers(-128, 128, size=(size, size, c)).astype(np.int8)
    return x, w, b


@pytest.mark.parametrize("c,o,k,stride,groups,size", [
    (3, 8, 3, 2, 1, 9), (8, 16, 1, 1, 1, 5), (12, 12, 3, 1, 12, 6), (12, 12, 5, 2, 12, 9),
    (16, 16, 7, 1, 16, 8), (16, 16, 7, 2, 16, 8), (8, 8, 3, 1, 2, 5), (4, 6, 5, 1, 1, 6),
])
def test_conv_matches_float_simulation(c, o, k, stride, groups, size):
    rng = np.random.default_rng(c * 100 + k * 10 + stride)
    x, w, b = random_conv(rng, c, o, k, stride, groups, size)
    zx, zy = -3, 5
    s_x, s_y = 0.02, 0.05
    s_w = rng.uniform(0.0005, 0.003, size=o)
    real = s_x * s_w / s_y
    from tinytrain.numerics import fixed_point as fp
    mult = [fp.quantize_multiplier(r) for r in real]
    acc = K.conv_accumulate(x, zx, w, b, stride, groups, k // 2)
    ref_acc = float_conv(x, zx, w, b, stride, groups, k // 2)
    assert np.array_equal(acc, ref_acc.astype(np.int64))
    y, mask = K.Requant(np.array([m for m, _ in mult]), np.array([s for _, s in mult]), zy).apply(acc)
    yf = float_requant(ref_acc, real, zy)
    assert np.abs(y.astype(np.int64) - yf).max() <= 1
    pre = np.floor(ref_acc * real + 0.5) + zy
    agree = mask == ((pre >= -128) & (pre <= 127))
    assert agree.mean() > 0.99


def test_add_and_pool_match_float_simulation():
    rng = np.random.default_rng(3)
    a = rng.integers(-128, 128, size=(6, 6, 8)).astype(np.int8)
    b = rng.integers(-128, 128, size=(6, 6, 8)).astype(np.int8)
    sa, za, sb, zb, so, zo = 0.05, 3, 0.08, -7, 0.11, 2
    y, _ = K.add_forward(a, b, K.make_add_params(sa, za, sb, zb, so, zo))
    af, bf = a.astype(np.float64), b.astype(np.float64)
    yf = np.clip(np.floor((sa * (af - za) + sb * (bf - zb)) / so + 0.5) + zo, -128, 127)
    assert np.abs(y.astype(np.int64) - yf).max() <= 1
    from tinytrain.numerics import fixed_point as fp
    m, s = fp.quantize_multiplier(0.05 / (0.07 * 36))
    yp, _ = K.Requant(np.array([m]), np.array([s]), -4).apply(K.avgpool_accumulate(a, za))
    pf = np.clip(np.floor((a.astype(np.float64) - za).mean(axis=(0, 1)) * 0.05 / 0.07 + 0.5) - 4, -128, 127)
    assert np.abs(yp.reshape(-1).astype(np.int64) - pf).max() <= 1


def _op_float_sim(model, op, values, consts):
    t = model.tensors
    if isinstance(op, Conv2D):
        x = values[op.input]
        zx, zy = t[op.input].qparams.zero_point, t[op.output].qparams.zero_point
        real = t[op.input].qparams.scale * op.weight_scales.astype(np.float64) / t[op.output].qparams.scale
        import torch  # the float oracle for big maps

        xt = torch.tensor(x.astype(np.float64) - zx).permute(2, 0, 1)[None]
        wt = torch.tensor(op.weight.astype(np.float64)).permute(0, 3, 1, 2)
        acc = torch.nn.functional.conv2d(xt, wt, stride=op.stride, padding=op.pad, groups=op.groups)[0]
        acc = acc.permute(1, 2, 0).numpy() + op.bias
        return float_requant(acc, real, zy)
    if isinstance(op, Dense):
        x = values[op.input].reshape(-1).astype(np.float64) - t[op.input].qparams.zero_point
        real = t[op.input].qparams.scale * op.weight_scales.astype(np.float64) / t[op.output].qparams.scale
        return float_requant(op.weight.astype(np.float64) @ x + op.bias, real, t[op.output].qparams.zero_point).reshape(1, 1, -1)
    if isinstance(op, Add):
        (a, b), y = (t[n].qparams for n in op.inputs), t[op.output].qparams
        va, vb = (values[n].astype(np.float64) for n in op.inputs)
        return np.clip(np.floor((a.scale * (va - a.zero_point) + b.scale * (vb - b.zero_point)) / y.scale + 0.5) + y.zero_point, -128, 127)
    if isinstance(op, GlobalAveragePool):
        x, y = t[op.input].qparams, t[op.output].qparams
        m = (values[op.input].astype(np.float64) - x.zero_point).mean(axis=(0, 1)) * x.scale / y.scale
        return np.clip(np.floor(m + 0.5) + y.zero_point, -128, 127).reshape(1, 1, -1)
    raise TypeError(op)


@pytest.mark.parametrize("name", ["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"])
def test_paper_model_ops_within_one_lsb(name):
    """Each op of the paper's models, fed the int8 tensors of a real photo, vs. its float simulation."""
    path = SHARED / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"the paper's models are not at {SHARED} (see ../shared/models/tiny-training/README.md)")
    pytest.importorskip("torch", reason="torch (a tools dependency, installed by `make test`) is the float oracle")
    from PIL import Image
    from skimage import data

    from tinytrain.model import tiny_training as import_tiny_training
    from tinytrain.compile.scheme import builtin

    model = import_tiny_training.load(path)
    prog = tp.compile_program(model, builtin("classifier", len(model.weighted_ops)))
    from tinytrain.reference.executor import NumpyBackend

    be = NumpyBackend(prog, use_arena=False)
    img = np.asarray(Image.fromarray(data.chelsea()).resize((128, 128), Image.BILINEAR))
    be.infer((img.astype(np.int16) - 128).astype(np.int8))
    values = be.mem.values
    total = within = 0
    for op in model.ops:
        ref = _op_float_sim(model, op, values, prog.consts)
        diff = np.abs(values[op.output].astype(np.int64) - ref)
        total += diff.size
        within += int((diff <= 1).sum())
    print(f"{name}: {within}/{total} outputs within 1 LSB of the float simulation")
    assert within / total >= 0.999, f"{within}/{total} outputs within 1 LSB"
