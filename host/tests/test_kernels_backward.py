"""Every backward op against PyTorch autograd on the dequantized (integer-domain) values.

The reference differentiates the float version of each op w.r.t. the integer
values (straight-through rounding, masked clamp); our integer gradients,
scaled by 2**exponent, must agree up to the mantissa rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K

torch = pytest.importorskip("torch", reason="torch (a tools dependency, installed by `make test`) is the autograd oracle")


def close(ours: np.ndarray, ref: np.ndarray, rel: float = 2e-3) -> None:
    ref = np.asarray(ref, dtype=np.float64)
    scale = max(np.abs(ref).max(), 1e-300)
    err = np.abs(np.asarray(ours, dtype=np.float64) - ref).max()
    assert err <= rel * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def quantized_conv_case(rng, c, o, k, stride, groups, size):
    w = rng.integers(-127, 128, size=(o, k, k, c // groups)).astype(np.int8)
    b = rng.integers(-3000, 3000, size=o).astype(np.int32)
    x = rng.integers(-128, 128, size=(size, size, c)).astype(np.int8)
    real = rng.uniform(0.002, 0.02, size=o)
    mult = [fp.quantize_multiplier(r) for r in real]
    return x, w, b, real, np.array([m for m, _ in mult]), np.array([s for _, s in mult])


@pytest.mark.parametrize("c,o,k,stride,groups,size", [
    (3, 8, 3, 2, 1, 9), (16, 24, 1, 1, 1, 5), (12, 12, 3, 1, 12, 6), (12, 12, 3, 2, 12, 8),
    (16, 16, 5, 1, 16, 7), (16, 16, 5, 2, 16, 9), (8, 8, 7, 1, 8, 8), (8, 8, 7, 2, 8, 8), (6, 10, 3, 1, 1, 5),
])
def test_conv_backward_matches_autograd(c, o, k, stride, groups, size):
    rng = np.random.default_rng(c + 7 * k + stride)
    x, w, b, real, mult, shift = quantized_conv_case(rng, c, o, k, stride, groups, size)
    zx, zy, pad = -5, -20, k // 2
    acc = K.conv_accumulate(x, zx, w, b, stride, groups, pad)
    _, mask = K.Requant(mult, shift, zy).apply(acc)
    g = rng.integers(-30000, 30000, size=acc.shape)
    e = -20

    # reference: L = sum(G 2^e mask * (acc * M)) differentiated w.r.t. x, w, b
    xt = torch.tensor(x.astype(np.float64) - zx, requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    bt = torch.tensor(b.astype(np.float64), requires_grad=True)
    acc_t = torch.nn.functional.conv2d(xt.permute(2, 0, 1)[None], wt.permute(0, 3, 1, 2), stride=stride, padding=pad,
                                       groups=groups)[0].permute(1, 2, 0) + bt
    coef = torch.tensor(g * 2.0**e * mask) * torch.tensor(real)
    (acc_t * coef).sum().backward()

    bits = 14
    gacc, eacc = K.requant_backward(g, e, mask, mult, shift, bits)
    assert np.abs(gacc).max() < 2 ** (bits - 1) + 1
    close(gacc * 2.0**eacc, g * 2.0**e * mask * real)
    gx = K.conv_backward_input(gacc, w, stride, groups, pad, x.shape)
    close(gx * 2.0**eacc, xt.grad.numpy())
    kk = c if groups == 1 else o
    for k_part in (kk, max(1, kk // 4)):
        gw = K.conv_weight_grad(gacc, x, zx, k, stride, groups, pad, k_part)
        ref_w = wt.grad.numpy()
        ref_w = ref_w[..., :k_part] if groups == 1 else ref_w[:k_part]
        close(gw * 2.0**eacc, ref_w)
    close(K.bias_grad(gacc) * 2.0**eacc, bt.grad.numpy())


def test_dense_backward_matches_autograd():
    rng = np.random.default_rng(11)
    n, kdim = 10, 48
    w = rng.integers(-127, 128, size=(n, kdim)).astype(np.int8)
    b = rng.integers(-3000, 3000, size=n).astype(np.int32)
    x = rng.integers(-128, 128, size=(1, 1, kdim)).astype(np.int8)
    real = rng.uniform(0.002, 0.02, size=n)
    mult = np.array([fp.quantize_multiplier(r)[0] for r in real])
    shift = np.array([fp.quantize_multiplier(r)[1] for r in real])
    zx = 7
    g = rng.integers(-30000, 30000, size=(1, 1, n))
    xt = torch.tensor(x.reshape(-1).astype(np.float64) - zx, requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    bt = torch.tensor(b.astype(np.float64), requires_grad=True)
    ((wt @ xt + bt) * torch.tensor(g.reshape(-1) * 2.0**-10 * real)).sum().backward()
    gacc, e = K.requant_backward(g, -10, None, mult, shift, 16)
    close(K.dense_backward_input(gacc, w, x.shape).reshape(-1) * 2.0**e, xt.grad.numpy())
    close(K.dense_weight_grad(gacc, x, zx, kdim) * 2.0**e, wt.grad.numpy())
    close(K.dense_weight_grad(gacc, x, zx, 12) * 2.0**e, wt.grad.numpy()[:, :12])
    close(K.bias_grad(gacc) * 2.0**e, bt.grad.numpy())


def test_add_backward_matches_autograd():
    rng = np.random.default_rng(5)
    a = rng.integers(-128, 128, size=(4, 4, 6)).astype(np.int8)
    bb = rng.integers(-128, 128, size=(4, 4, 6)).astype(np.int8)
    sa, za, sb, zb, so, zo = 0.05, 3, 0.08, -7, 0.11, 2
    _, mask = K.add_forward(a, bb, K.make_add_params(sa, za, sb, zb, so, zo))
    g = rng.integers(-30000, 30000, size=a.shape)
    at = torch.tensor(a.astype(np.float64), requires_grad=True)
    bt = torch.tensor(bb.astype(np.float64), requires_grad=True)
    y = (sa * (at - za) + sb * (bt - zb)) / so + zo
    (y * torch.tensor(g * 2.0**-8 * mask)).sum().backward()
    for grad, s in ((at.grad, sa), (bt.grad, sb)):
        m, sh = fp.quantize_multiplier(s / so)
        v, e = K.add_backward(g, -8, mask, m, sh, 16)
        close(v * 2.0**e, grad.numpy())


def test_avgpool_backward_matches_autograd():
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, size=(4, 4, 6)).astype(np.int8)
    sx, zx, sy, zy = 0.05, -3, 0.02, 1
    m, sh = fp.quantize_multiplier(sx / (sy * 16))
    _, mask = K.Requant(np.array([m]), np.array([sh]), zy).apply(K.avgpool_accumulate(x, zx))
    g = rng.integers(-30000, 30000, size=(1, 1, 6))
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    y = (xt - zx).mean(dim=(0, 1)) * sx / sy + zy
    (y * torch.tensor(g.reshape(-1) * 2.0**-12 * mask.reshape(-1))).sum().backward()
    v, e = K.avgpool_backward(g, -12, mask, m, sh, 16, x.shape)
    close(v * 2.0**e, xt.grad.numpy())


@pytest.mark.parametrize("label,lr_scale", [(0, 65536), (3, 65536), (9, 13107), (5, 1 << 20)])
def test_loss_backward_matches_autograd(label, lr_scale):
    rng = np.random.default_rng(label)
    q = rng.integers(-128, 128, size=(1, 1, 10)).astype(np.int8)
    s = 0.17
    table = K.softmax_table(s)
    qt = torch.tensor(q.reshape(-1).astype(np.float64), requires_grad=True)
    loss = torch.nn.functional.cross_entropy((s * qt)[None], torch.tensor([label]))
    loss.backward()
    v, e = K.loss_backward(q, label, table, lr_scale, fp.quantize_multiplier(s), 16)
    # Q15 probabilities: absolute error up to ~2**-14 of the (<= 1) gradient
    close(v.reshape(-1) * 2.0**e, qt.grad.numpy() * lr_scale / 65536, rel=2e-3)


def test_qas_update_equals_fp32_sgd_step():
    """With QAS, w_int' * s_w == W - lr dL/dW up to the final int8 rounding."""
    rng = np.random.default_rng(9)
    o, kdim = 8, 32
    w = rng.integers(-100, 100, size=(o, kdim)).astype(np.int8)
    s_w = rng.uniform(0.001, 0.01, size=o)
    lr = 0.05
    g_int = rng.integers(-2**20, 2**20, size=(o, kdim))  # dL/dw_int mantissas
    e = -24
    coef = [fp.quantize_multiplier(lr / (s * s)) for s in s_w]
    new = K.sgd_update(w, g_int, e, np.array([c for c, _ in coef]), np.array([s for _, s in coef]), "nearest", None,
                       -127, 127)
    grad_real = g_int * 2.0**e / s_w[:, None]  # dL/dW = dL/dw_int / s_w
    expected = (w * s_w[:, None] - lr * grad_real) / s_w[:, None]
    inside = np.abs(expected) < 126
    assert np.abs(new[inside] - expected[inside]).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("c,o,kernel,stride,pads,groups,size", [
    (1, 6, (10, 4), (2, 2), (4, 5, 1, 2), 1, (49, 10)),     # KWS front: 10x4, SAME stride 2 (asymmetric)
    (4, 4, (9, 1), (2, 1), (3, 4, 0, 0), 4, (30, 1)),      # depthwise 9x1 on a W = 1 column
    (3, 5, (3, 1), (1, 1), (1, 1, 0, 0), 1, (16, 3)),      # 1-D sensor window
    (5, 7, (4, 3), (1, 2), (0, 0, 0, 0), 1, (11, 9)),      # VALID, stride per axis
    (6, 6, (3, 3), (2, 2), (0, 1, 0, 1), 6, (8, 8)),       # SAME stride 2 depthwise: pads only after
])
def test_general_conv_backward_matches_autograd(c, o, kernel, stride, pads, groups, size):
    """Non-square kernels, a stride per axis, asymmetric padding (TFLite's SAME)."""
    rng = np.random.default_rng(sum(kernel) + 10 * c)
    kh, kw = kernel
    w = rng.integers(-127, 128, size=(o, kh, kw, c // groups)).astype(np.int8)
    b = rng.integers(-3000, 3000, size=o).astype(np.int32)
    x = rng.integers(-128, 128, size=(*size, c)).astype(np.int8)
    zx = 3
    acc = K.conv_accumulate(x, zx, w, b, stride, groups, pads)
    t, bo, le, ri = pads
    xt = torch.tensor(x.astype(np.float64) - zx, requires_grad=True)
    wt = torch.tensor(w.astype(np.float64), requires_grad=True)
    xp = torch.nn.functional.pad(xt.permute(2, 0, 1)[None], (le, ri, t, bo))
    ref = torch.nn.functional.conv2d(xp, wt.permute(0, 3, 1, 2), stride=stride, groups=groups)[0].permute(1, 2, 0)
    assert np.array_equal(acc - b, ref.detach().numpy().round().astype(np.int64))
    g = rng.integers(-3000, 3000, size=acc.shape)
    (ref * torch.tensor(g.astype(np.float64))).sum().backward()
    assert np.array_equal(K.conv_backward_input(g, w, stride, groups, pads, x.shape), xt.grad.numpy().round())
    kk = c if groups == 1 else o
    gw = K.conv_weight_grad(g, x, zx, kernel, stride, groups, pads, kk)
    assert np.array_equal(gw, wt.grad.numpy().round())


@pytest.mark.parametrize("shape,kernel,stride,pads", [
    ((9, 9, 3), (3, 3), (2, 2), (0, 0, 0, 0)),     # overlapping windows
    ((8, 6, 4), (2, 2), (2, 2), (0, 0, 0, 0)),     # the common 2x2/2
    ((7, 1, 5), (3, 1), (1, 1), (1, 1, 0, 0)),     # 3x1 SAME on a column
    ((10, 7, 2), (3, 3), (2, 2), (1, 1, 1, 1)),    # padded
])
def test_pooling_backward_matches_autograd(shape, kernel, stride, pads):
    rng = np.random.default_rng(shape[0] + kernel[0])
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    x[0, 0, 0] = x[0, 1 % shape[1], 0]  # a tie: the first max takes the gradient
    t, bo, le, ri = pads
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    xin = xt.permute(2, 0, 1)[None]
    # max: padding never wins (pad with -inf); avg: padding is not counted (TFLite)
    mx = torch.nn.functional.max_pool2d(torch.nn.functional.pad(xin, (le, ri, t, bo), value=-1e9), kernel, stride)
    y = K.maxpool_forward(x, kernel, stride, pads)
    assert np.array_equal(y, mx[0].permute(1, 2, 0).detach().numpy())
    g = rng.integers(-20000, 20000, size=y.shape)
    e = -12
    (mx[0].permute(1, 2, 0) * torch.tensor(g * 2.0**e)).sum().backward()
    gx, ex = K.maxpool_backward(g, e, x, kernel, stride, pads, 16)
    close(gx * 2.0**ex, xt.grad.numpy())

    xt.grad = None
    s = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(xin, (le, ri, t, bo)), kernel, stride, divisor_override=1)
    n = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(torch.ones_like(xin), (le, ri, t, bo)), kernel, stride,
                                       divisor_override=1)
    ya = K.avgpool2d_forward(x, kernel, stride, pads)
    avg = (s / n)[0].permute(1, 2, 0)
    assert np.abs(ya - avg.detach().numpy()).max() <= 0.5 + 1e-9
    (avg * torch.tensor(g * 2.0**e)).sum().backward()
    gx, ex = K.avgpool2d_backward(g, e, x.shape, kernel, stride, pads, 16)
    close(gx * 2.0**ex, xt.grad.numpy())


def test_data_movement_and_requantize_backward_match_autograd():
    """PAD, CONCATENATION, RESHAPE, int8 requantization and a fused-activation clamp, each through the
    op rule's NumPy step against autograd of the dequantized op."""
    from tinytrain.ir.graph import Model, QuantParams, TensorSpec
    from tinytrain.ops import Clamp, Concat, Dense, Pad, Requantize, Reshape
    from tinytrain.compile.autodiff import compile_program
    from tinytrain.compile.scheme import builtin
    from tinytrain.reference.executor import NumpyBackend

    rng = np.random.default_rng(5)
    q = QuantParams(0.05, 3)
    q2 = QuantParams(0.08, -7)
    t = {n: TensorSpec(n, s, qp) for n, s, qp in [
        ("in", (5, 4, 3), q), ("x", (5, 4, 3), q), ("p", (7, 5, 3), q), ("r", (7, 5, 3), q2), ("c", (7, 5, 3), q2),
        ("k", (7, 5, 6), q2), ("f", (1, 1, 210), q2), ("y", (1, 1, 4), QuantParams(0.1, 0))]}
    w = rng.integers(-127, 128, size=(4, 210)).astype(np.int8)
    from tinytrain.ops import Conv2D

    ops = [Conv2D("first", "in", "x", rng.integers(-127, 128, size=(3, 1, 1, 3)).astype(np.int8), np.zeros(3, np.int32),
                  np.full(3, 0.5, np.float32), 1, 1, 0),  # trained, so that the gradient reaches x
           Pad("pad", "x", "p", (1, 1, 0, 1)), Requantize("rq", "p", "r"), Clamp("cl", "r", "c", -60, 90),
           Concat("cat", ("c", "r"), "k"), Reshape("rs", "k", "f", (1, 1, 210)),
           Dense("fc", "f", "y", w, np.zeros(4, np.int32), np.full(4, 0.01, np.float32))]
    model = Model("m", t, ops, "in", "y")
    program = compile_program(model, builtin("full", 2))
    be = NumpyBackend(program, use_arena=False)
    be.train_step(rng.integers(-128, 128, size=(5, 4, 3)).astype(np.int8), 2)
    x = be.mem["x"]

    # The same graph in float on the integer-domain values of x (what our gradients are taken against).
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    p = torch.nn.functional.pad(xt.permute(2, 0, 1), (0, 1, 1, 1), value=float(q.zero_point)).permute(1, 2, 0)
    real_r = (p - q.zero_point) * q.scale / q2.scale + q2.zero_point  # requantized (before rounding)
    r_q = be.mem["r"].astype(np.float64)
    rmask = torch.tensor(((r_q > -128) | (real_r.detach().numpy() >= -128)) & ((r_q < 127) | (real_r.detach().numpy() <= 127)))
    r = torch.where(rmask, real_r, torch.tensor(r_q))
    c_mask = torch.tensor((r_q >= -60) & (r_q <= 90))
    c = torch.where(c_mask, r, torch.tensor(np.clip(r_q, -60, 90)))
    k = torch.cat([c, r], dim=-1).reshape(-1)
    acc = (k - q2.zero_point) @ torch.tensor(w.astype(np.float64)).T
    gy = be.mem["y.grad"].astype(np.float64) * 2.0 ** be.exps["y.grad"]  # (the fc update ran after its gradient)
    fc = program.consts["fc"]
    m = fc.multiplier.astype(np.float64) * 2.0 ** (fc.shift.astype(np.float64) - 31)
    (acc * torch.tensor(gy * m)).sum().backward()
    ours = be.mem["pad.gx"] * 2.0 ** be.exps["pad.gx"]
    close(ours, xt.grad.numpy(), rel=5e-3)
