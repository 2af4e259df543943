"""tflite_kernels_ref against TFLite Micro, bit for bit, on generated single-op int8 models.

Each case writes a one-op .tflite (tools/make_tflite_models.py), runs it in TFLite Micro's Python
interpreter (the oracle: it is what runs on the MCU) and compares the output bytes with the NumPy kernel:
0 differing bytes is the bar. LiteRT's reference resolver is run too; where it differs from TFLM
(FULLY_CONNECTED with one weight scale, docs/tflite_ops.md) the test records that it does rather than fail.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tinytrain.numerics import tflite_kernels as K
from tinytrain.model.tflite_reader import compute_padding, parse_tflite

import tflm_oracle as O
from tflite_models import maker as M

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SEEDS = 2  # inputs per case (each a separate invoke)


@pytest.fixture(scope="module", autouse=True)
def _need_tflm():
    O.require_tflm()


def run_both(model: bytes, inputs) -> tuple[np.ndarray, np.ndarray]:
    out = O.output_index(model)
    return O.run_tflm(model, inputs)[out], O.run_litert_ref(model, inputs)[out]


def check(model: bytes, inputs, ours: np.ndarray, litert_may_differ: bool = False) -> None:
    tflm, litert = run_both(model, inputs)
    ours = ours.reshape(tflm.shape)
    diff = int(np.count_nonzero(ours != tflm))
    assert diff == 0, f"{diff} of {tflm.size} output bytes differ from TFLite Micro"
    if not litert_may_differ:
        assert np.array_equal(litert, tflm), "LiteRT's reference kernels disagree with TFLite Micro"


def seed_of(*key) -> int:
    return zlib.crc32(repr(key).encode())


def rand_int8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def fit_out_quant(real: np.ndarray, rng, relu: bool) -> tuple[float, int]:
    """An output quantization a converter would pick for these real values (some saturation, like a
    calibrated model on unseen data)."""
    lo, hi = (0.0, float(real.max())) if relu else (float(real.min()), float(real.max()))
    hi = max(hi, lo + 1e-3) * rng.uniform(0.7, 1.0)
    lo = lo * rng.uniform(0.7, 1.0)
    scale = float(np.float32((hi - lo) / 255.0))
    zp = -128 if relu else int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


# ---------------------------------------------------------------- CONV_2D

CONV_CASES = [
    # (H, W, C), O, (KH, KW), (SH, SW), padding, activation, per-channel weights
    ((10, 10, 3), 8, (3, 3), (2, 2), "SAME", "RELU6", True),     # SAME stride 2: top 0 / bottom 1
    ((49, 10, 1), 16, (10, 4), (2, 2), "SAME", "RELU", True),    # KWS first layer: top 4 / bottom 5
    ((98, 1, 104), 8, (9, 1), (2, 1), "SAME", "RELU", True),     # W=1, many channels, stride (2, 1)
    ((128, 3, 1), 8, (9, 3), (2, 1), "VALID", "RELU6", True),    # 1-D sensor window
    ((7, 5, 4), 6, (3, 1), (1, 1), "SAME", "NONE", True),
    ((11, 13, 5), 7, (1, 1), (2, 2), "VALID", "NONE", True),     # pointwise, strided
    ((6, 6, 3), 4, (5, 5), (1, 1), "SAME", "RELU", False),       # one weight scale for all channels
    ((15, 1, 6), 5, (4, 1), (2, 1), "SAME", "RELU_N1_TO_1", True),
    ((8, 9, 16), 24, (1, 1), (1, 1), "VALID", "RELU6", True),
]


@pytest.mark.parametrize("x_shape,o,k,stride,padding,act,per_channel", CONV_CASES)
def test_conv2d_matches_tflm(x_shape, o, k, stride, padding, act, per_channel):
    rng = np.random.default_rng(seed_of((x_shape, o, k, stride)))
    qx = M.random_quant(rng, relu=False)
    w, ws = M.random_weights(rng, (o, *k, x_shape[2]), axis=0, per_channel=per_channel)
    b = M.random_bias(rng, o, qx[0], ws)
    pad = compute_padding(x_shape[0], x_shape[1], *k, *stride, padding)
    pads = (pad.top, pad.bottom, pad.left, pad.right)
    xs = [rand_int8(rng, (1, *x_shape)) for _ in range(SEEDS)]
    acc = _float_conv(xs[0], qx[1], w, b, stride, pads)
    real = acc * qx[0] * np.repeat(ws, o // ws.size)
    qy = fit_out_quant(real, rng, relu=act != "NONE")
    model = M.conv2d_model(x_shape, qx, w, ws, b, qy, stride, padding, act)
    stage = K.conv_output_stage(qx[0], np.repeat(ws, o // ws.size), qy[0], qy[1], act)
    for x in xs:
        check(model, x, K.conv2d(x, qx[1], w, b, stage, stride, pads))


def _float_conv(x, zx, w, b, stride, pads):
    xp = np.pad(x[0].astype(np.float64) - zx, ((pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    o, kh, kw, _ = w.shape
    oh = (xp.shape[0] - kh) // stride[0] + 1
    ow = (xp.shape[1] - kw) // stride[1] + 1
    out = np.zeros((oh, ow, o))
    for y in range(oh):
        for xx in range(ow):
            patch = xp[y * stride[0]: y * stride[0] + kh, xx * stride[1]: xx * stride[1] + kw]
            out[y, xx] = np.tensordot(w.astype(np.float64), patch, axes=([1, 2, 3], [0, 1, 2])) + b
    return out


# ---------------------------------------------------------------- DEPTHWISE_CONV_2D

DW_CASES = [
    # (H, W, C), (KH, KW), stride, padding, activation, multiplier
    ((9, 9, 8), (3, 3), (1, 1), "SAME", "RELU6", 1),
    ((10, 7, 16), (3, 3), (2, 2), "SAME", "RELU", 1),     # asymmetric SAME
    ((49, 1, 12), (9, 1), (2, 1), "SAME", "RELU", 1),     # depthwise 9x1
    ((12, 12, 5), (5, 5), (2, 2), "VALID", "NONE", 1),
    ((20, 10, 1), (3, 3), (1, 1), "SAME", "RELU", 8),     # multiplier 8 on 1 channel: an ordinary conv
    ((6, 6, 3), (3, 3), (1, 1), "SAME", "NONE", 2),       # multiplier 2 on 3 channels (kernel only)
]


@pytest.mark.parametrize("x_shape,k,stride,padding,act,mult", DW_CASES)
def test_depthwise_matches_tflm(x_shape, k, stride, padding, act, mult):
    rng = np.random.default_rng(seed_of((x_shape, k, stride, mult)))
    c = x_shape[2]
    qx = M.random_quant(rng)
    w, ws = M.random_weights(rng, (1, *k, c * mult), axis=3)
    b = M.random_bias(rng, c * mult, qx[0], ws)
    pad = compute_padding(x_shape[0], x_shape[1], *k, *stride, padding)
    pads = (pad.top, pad.bottom, pad.left, pad.right)
    xs = [rand_int8(rng, (1, *x_shape)) for _ in range(SEEDS)]
    real = (_float_dw(xs[0], qx[1], w, b, stride, pads, mult)) * qx[0] * ws
    qy = fit_out_quant(real, rng, relu=act != "NONE")
    model = M.depthwise_model(x_shape, qx, w, ws, b, qy, stride, padding, act, mult)
    stage = K.conv_output_stage(qx[0], ws, qy[0], qy[1], act)
    for x in xs:
        check(model, x, K.depthwise_conv2d(x, qx[1], w, b, stage, stride, pads, mult))


def _float_dw(x, zx, w, b, stride, pads, mult):
    xf = np.repeat(x[0].astype(np.float64) - zx, mult, axis=-1)
    xp = np.pad(xf, ((pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    _, kh, kw, oc = w.shape
    oh = (xp.shape[0] - kh) // stride[0] + 1
    ow = (xp.shape[1] - kw) // stride[1] + 1
    out = np.zeros((oh, ow, oc))
    for y in range(oh):
        for xx in range(ow):
            patch = xp[y * stride[0]: y * stride[0] + kh, xx * stride[1]: xx * stride[1] + kw]
            out[y, xx] = (patch * w[0]).sum(axis=(0, 1)) + b
    return out


# ---------------------------------------------------------------- FULLY_CONNECTED

FC_CASES = [
    # input shape, outputs, per-channel, activation
    ((1, 64), 10, False, "NONE"),
    ((1, 2048), 32, False, "RELU"),       # hidden layer 2048 -> 32
    ((1, 32), 4, False, "NONE"),
    ((1, 1, 1, 40), 12, True, "NONE"),
    ((1, 5, 5, 8), 7, False, "RELU6"),    # flatten of HWC
    ((1, 300), 24, True, "RELU"),
]


@pytest.mark.parametrize("x_shape,o,per_channel,act", FC_CASES)
def test_fully_connected_matches_tflm(x_shape, o, per_channel, act):
    rng = np.random.default_rng(seed_of((x_shape, o, per_channel)))
    k = int(np.prod(x_shape))
    qx = M.random_quant(rng)
    w, ws = M.random_weights(rng, (o, k), axis=0, per_channel=per_channel)
    b = M.random_bias(rng, o, qx[0], ws)
    xs = [rand_int8(rng, x_shape) for _ in range(4)]
    acc = (xs[0].reshape(1, k).astype(np.float64) - qx[1]) @ w.astype(np.float64).T + b
    qy = fit_out_quant(acc * qx[0] * ws, rng, relu=act != "NONE")
    model = M.fully_connected_model(x_shape, qx, w, ws, b, qy, act)
    stage = K.fc_output_stage(qx[0], ws, qy[0], qy[1], act)
    for x in xs:
        check(model, x, K.fully_connected(x.reshape(1, k), qx[1], w, b, stage), litert_may_differ=not per_channel)


def _single_rounding(x, m, shift):
    """TFLite's TFLITE_SINGLE_ROUNDING MultiplyByQuantizedMultiplier: one rounding, half up."""
    total = 31 - shift
    return (np.asarray(x, np.int64) * m + (1 << (total - 1))) >> total


def _fc_on_biases(bias, s_in, s_w, s_out):
    """A per-tensor FC whose input sits at its zero point, so that every accumulator equals its bias."""
    o, k = bias.size, 8
    w = np.random.default_rng(0).integers(-127, 128, size=(o, k)).astype(np.int8)
    model = M.fully_connected_model((1, k), (s_in, 5), w, [s_w], bias.astype(np.int32), (s_out, 0))
    x = np.full((1, k), 5, np.int8)
    tflm, litert = run_both(model, x)
    ours = K.fully_connected(x, 5, w, bias, K.fc_output_stage(s_in, [s_w], s_out, 0))
    return ours.reshape(-1), tflm.reshape(-1), litert.reshape(-1)


def _float32_product_multiplier(s_in, s_w, s_out):
    return K.quantize_multiplier(float(np.float32(np.float32(s_in) * np.float32(s_w))) / float(np.float32(s_out)))


def test_fully_connected_per_tensor_multiplier_is_double_product():
    """TFLite's kernel_util.cc has an overload that multiplies s_in * s_w in float32 before the double
    division; TFLite Micro's per-tensor FULLY_CONNECTED (and LiteRT's) does not round that way but uses the
    double product, as per-channel weights do. Accumulators chosen where the two multipliers round
    differently decide it."""
    rng = np.random.default_rng(1)
    while True:
        s_in, s_w, s_out = (float(np.float32(v)) for v in (rng.uniform(0.01, 0.1), rng.uniform(1e-6, 1e-5),
                                                            rng.uniform(0.01, 0.1)))
        a = _float32_product_multiplier(s_in, s_w, s_out)
        d = tuple(int(v[0]) for v in K.conv_multipliers(s_in, s_w, s_out))
        if a[1] == d[1] and abs(a[0] - d[0]) >= 50:
            break
    real = a[0] * 2.0 ** (a[1] - 31)
    ties = np.round((np.arange(-119, 119) + 0.5) / real).astype(np.int64)  # accumulators near rounding ties
    acc = (ties[:, None] + np.arange(-300, 300)).reshape(-1)
    ra = K.fp.multiply_by_quantized_multiplier(acc, *a)
    rd = K.fp.multiply_by_quantized_multiplier(acc, *d)
    pick = acc[np.nonzero(ra != rd)[0]]
    assert pick.size >= 8
    bias = pick[np.linspace(0, pick.size - 1, 16).astype(int)]
    ours, tflm, _ = _fc_on_biases(bias, s_in, s_w, s_out)
    assert np.array_equal(ours, tflm)
    float32_product = np.clip(K.fp.multiply_by_quantized_multiplier(bias, *a), -128, 127)
    assert np.count_nonzero(float32_product != tflm) == bias.size


def test_fully_connected_litert_rounds_once_tflm_twice():
    """Where LiteRT's reference and TFLM disagree: LiteRT's FULLY_CONNECTED requantizes with single rounding
    (half up), TFLM with gemmlowp's double rounding (SRDHM, then half away from zero). We follow TFLM,
    which runs on the MCU. Accumulators at negative ties expose the difference."""
    s_in, s_w, s_out = 0.05606395, 0.0009554173, 0.022974364
    (m,), (e,) = K.conv_multipliers(s_in, s_w, s_out)
    acc = np.arange(-60000, 60000, dtype=np.int64)
    twice = K.fp.multiply_by_quantized_multiplier(acc, m, e)
    once = _single_rounding(acc, m, e)
    bias = acc[np.nonzero((twice != once) & (np.abs(twice) < 127))[0]][:: 7][:16]
    assert bias.size == 16
    ours, tflm, litert = _fc_on_biases(bias, s_in, s_w, s_out)
    assert np.array_equal(ours, tflm)
    assert np.array_equal(litert, np.clip(_single_rounding(bias, m, e), -128, 127))
    assert np.count_nonzero(litert != tflm) == bias.size


# ---------------------------------------------------------------- ADD

ADD_CASES = [
    ((1, 7, 5, 12), "NONE", False),
    ((1, 4, 4, 8), "RELU", False),
    ((1, 1, 1, 30), "RELU6", True),        # equal input scales
    ((1, 20, 20, 16), "NONE", False),
]


@pytest.mark.parametrize("shape,act,same", ADD_CASES)
def test_add_matches_tflm(shape, act, same):
    rng = np.random.default_rng(seed_of((shape, act)))
    qa = M.random_quant(rng)
    qb = qa if same else M.random_quant(rng)
    qy = (float(np.float32((qa[0] + qb[0]) * rng.uniform(0.6, 1.1))), -128 if act != "NONE" else
          int(rng.integers(-20, 20)))
    model = M.add_model(shape, qa, qb, qy, act)
    p = K.add_params(qa[0], qa[1], qb[0], qb[1], qy[0], qy[1], act)
    for _ in range(SEEDS):
        a, b = rand_int8(rng, shape), rand_int8(rng, shape)
        check(model, [a, b], K.add(a, b, p))


# ---------------------------------------------------------------- pooling

POOL_CASES = [
    # kind, (H, W, C), filter, stride, padding, activation
    ("AVERAGE_POOL_2D", (9, 9, 8), (3, 3), (2, 2), "SAME", "NONE"),
    ("AVERAGE_POOL_2D", (5, 5, 3), (3, 3), (1, 1), "SAME", "NONE"),     # edge windows of 4 and 6
    ("AVERAGE_POOL_2D", (128, 3, 4), (128, 3), (1, 1), "VALID", "NONE"),  # [128, 3] window (global)
    ("AVERAGE_POOL_2D", (98, 1, 16), (3, 1), (2, 1), "SAME", "RELU"),
    ("AVERAGE_POOL_2D", (7, 7, 4), (7, 7), (1, 1), "VALID", "NONE"),
    ("AVERAGE_POOL_2D", (6, 5, 3), (2, 2), (2, 2), "VALID", "RELU6"),
    ("AVERAGE_POOL_2D", (10, 10, 2), (4, 4), (3, 3), "SAME", "NONE"),   # padding 1/2 on both axes
    ("MAX_POOL_2D", (9, 9, 8), (3, 3), (2, 2), "VALID", "NONE"),
    ("MAX_POOL_2D", (49, 10, 8), (3, 1), (1, 1), "SAME", "NONE"),
    ("MAX_POOL_2D", (7, 5, 3), (2, 2), (2, 2), "SAME", "RELU"),
    ("MAX_POOL_2D", (25, 5, 16), (2, 2), (2, 2), "SAME", "NONE"),
]


@pytest.mark.parametrize("kind,x_shape,filt,stride,padding,act", POOL_CASES)
def test_pool_matches_tflm(kind, x_shape, filt, stride, padding, act):
    rng = np.random.default_rng(seed_of((kind, x_shape, filt, stride)))
    q = M.random_quant(rng, relu=False)
    pad = compute_padding(x_shape[0], x_shape[1], *filt, *stride, padding)
    pads = (pad.top, pad.bottom, pad.left, pad.right)
    lo, hi = K.activation_range(act, *q)
    model = M.pool_model(kind, x_shape, q, filt, stride, padding, act)
    fn = K.average_pool2d if kind == "AVERAGE_POOL_2D" else K.max_pool2d
    for _ in range(SEEDS):
        x = rand_int8(rng, (1, *x_shape))
        check(model, x, fn(x, filt, stride, pads, lo, hi))


def test_average_pool_divides_by_valid_count():
    """A 3x3 SAME window at a corner holds 4 elements: TFLite divides by 4, not 9."""
    x = np.full((1, 3, 3, 1), 100, np.int8)
    y = K.average_pool2d(x, (3, 3), (1, 1), (1, 1, 1, 1))
    assert (y == 100).all()
    model = M.pool_model("AVERAGE_POOL_2D", (3, 3, 1), (0.1, 0), (3, 3), (1, 1), "SAME")
    check(model, x, y)


# ---------------------------------------------------------------- MEAN

MEAN_CASES = [(3, 3, 16), (5, 5, 8), (4, 4, 8), (42, 42, 4), (7, 1, 12), (1, 1, 5), (6, 10, 3), (3, 3, 64)]


@pytest.mark.parametrize("x_shape", MEAN_CASES)
@pytest.mark.parametrize("keep_dims", [True, False])
def test_mean_matches_tflm(x_shape, keep_dims):
    rng = np.random.default_rng(seed_of(x_shape))
    qx = M.random_quant(rng)
    qy = (float(np.float32(qx[0] * rng.uniform(0.3, 1.2))), int(rng.integers(-30, 30)))
    model = M.mean_model(x_shape, qx, qy, keep_dims)
    for _ in range(SEEDS):
        x = rand_int8(rng, (1, *x_shape))
        check(model, x, K.mean_hw(x, qx[1], qx[0], qy[0], qy[1]))


def test_mean_differs_from_plain_requantization_for_3x3():
    """The multiplier/shift trick is not 'sum, then requantize by s_in / (n s_out)' when n is no power of 2."""
    rng = np.random.default_rng(3)
    differs = 0
    for _ in range(50):
        qx = M.random_quant(rng)
        qy = (float(np.float32(qx[0] * rng.uniform(0.3, 1.2))), 0)
        x = rand_int8(rng, (1, 3, 3, 64))
        ours = K.mean_hw(x, qx[1], qx[0], qy[0], qy[1])
        m, e = K.quantize_multiplier(float(np.float32(qx[0])) / (9 * float(np.float32(qy[0]))))
        acc = (x.astype(np.int64) - qx[1]).sum(axis=(1, 2), keepdims=True)
        plain = np.clip(K.fp.multiply_by_quantized_multiplier(acc, m, e) + qy[1], -128, 127)
        differs += int(np.count_nonzero(plain != ours))
    assert differs > 0


# ---------------------------------------------------------------- PAD, CONCATENATION, RESHAPE

PAD_CASES = [
    ((5, 5, 3), ((0, 1), (0, 1))),
    ((7, 1, 4), ((2, 3), (0, 0))),
    ((4, 6, 2), ((1, 1), (2, 0), (0, 3))),   # channels too
]


@pytest.mark.parametrize("x_shape,paddings", PAD_CASES)
def test_pad_matches_tflm(x_shape, paddings):
    rng = np.random.default_rng(len(x_shape) + sum(map(sum, paddings)))
    q = M.random_quant(rng)
    model = M.pad_model(x_shape, q, paddings)
    x = rand_int8(rng, (1, *x_shape))
    check(model, x, K.pad(x, paddings, q[1]))


CONCAT_CASES = [
    ([(4, 4, 3), (4, 4, 5)], False),
    ([(6, 1, 8), (6, 1, 8), (6, 1, 2)], False),
    ([(4, 4, 3), (4, 4, 5)], True),          # second input requantized by an int8 QUANTIZE first
    ([(3, 5, 7), (3, 5, 1), (3, 5, 4)], True),
]


@pytest.mark.parametrize("shapes,requant", CONCAT_CASES)
def test_concatenation_matches_tflm(shapes, requant):
    rng = np.random.default_rng(len(shapes) * 10 + requant)
    qy = M.random_quant(rng)
    qs = [qy] + [M.random_quant(rng) if requant else qy for _ in shapes[1:]]
    model = M.concat_model(shapes, qs, qy)
    xs = [rand_int8(rng, (1, *s)) for s in shapes]
    check(model, xs, K.concatenation(xs, qs, qy))


def test_reshape_matches_tflm():
    rng = np.random.default_rng(5)
    model = M.reshape_model([1, 3, 4, 5], [1, 60], (0.02, 3))
    x = rand_int8(rng, (1, 3, 4, 5))
    check(model, x, K.reshape(x, (1, 60)))


# ---------------------------------------------------------------- QUANTIZE / DEQUANTIZE


@pytest.mark.parametrize("scale,zp", [(1 / 255, -128), (0.0235, 3), (0.5, 0), (0.007874016, -1)])
def test_quantize_matches_tflm(scale, zp):
    rng = np.random.default_rng(int(scale * 1e4))
    f = (rng.normal(0, 1, (1, 20, 3, 4)) * 80 * scale).astype(np.float32)
    f.flat[:8] = np.float32(scale) * np.array([0.5, -0.5, 1.5, -1.5, 2.5, 200, -200, 0], np.float32)  # ties
    model = M.quantize_model([1, 20, 3, 4], None, (scale, zp))
    check(model, f, K.quantize(f, scale, zp))


@pytest.mark.parametrize("q_in,q_out", [((0.02, 3), (0.035, -10)), ((0.1, -128), (0.01, -128)),
                                        ((0.0123, 0), (0.0123, 7))])
def test_requantize_matches_tflm(q_in, q_out):
    rng = np.random.default_rng(11)
    x = rand_int8(rng, (1, 9, 9, 4))
    model = M.quantize_model([1, 9, 9, 4], q_in, q_out)
    check(model, x, K.requantize(x, *q_in, *q_out))


@pytest.mark.parametrize("scale,zp", [(1 / 256, -128), (0.0371, 17)])
def test_dequantize_matches_tflm(scale, zp):
    rng = np.random.default_rng(13)
    x = rand_int8(rng, (1, 10))
    model = M.dequantize_model([1, 10], (scale, zp))
    tflm, litert = run_both(model, x)
    ours = K.dequantize(x, scale, zp)
    assert np.array_equal(ours.view(np.int32), tflm.view(np.int32).reshape(ours.shape))
    assert np.array_equal(litert, tflm)


# ---------------------------------------------------------------- activation bounds


@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
def test_activation_bounds_clamp_like_tflm(act):
    """A 1x1 conv with identity-like weights whose pre-activation values cover all of int8."""
    c = 4
    w = np.zeros((c, 1, 1, c), np.int8)
    w[np.arange(c), 0, 0, np.arange(c)] = 127
    s_in, s_w = 0.05, 1 / 127
    qy = (float(np.float32(6.5 / 255)), -128 if act != "RELU_N1_TO_1" else -3)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 64, 1, c)
    model = M.conv2d_model((64, 1, c), (s_in, 0), w, [s_w] * c, np.zeros(c, np.int32), qy, (1, 1), "VALID", act)
    stage = K.conv_output_stage(s_in, [s_w] * c, qy[0], qy[1], act)
    check(model, x, K.conv2d(x, 0, w, np.zeros(c, np.int32), stage))


def test_quantize_multiplier_rounds_half_away_from_zero():
    # frac * 2**31 = 2**30 + 0.5 exactly: std::round goes up, Python's round() would go to even
    real = (2**30 + 0.5) / 2**31
    assert K.quantize_multiplier(real) == (2**30 + 1, 0)


def test_single_op_models_parse():
    model = M.conv2d_model((10, 10, 3), (0.02, 0), np.ones((4, 3, 3, 3), np.int8), [0.01] * 4,
                           np.zeros(4, np.int32), (0.05, -128), (2, 2), "SAME", "RELU")
    m = parse_tflite(model, "conv")
    assert m.operators[0].padding == compute_padding(10, 10, 3, 3, 2, 2, "SAME")
    assert (m.operators[0].padding.top, m.operators[0].padding.bottom) == (0, 1)
