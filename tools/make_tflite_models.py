#!/usr/bin/env python3
"""Small int8 TFLite models for tinytrain's importer and kernel tests, made by the suite itself.

Two kinds:

* written directly with the `tflite` schema package's generated builders plus
  `flatbuffers` (no converter needed): single-op models for the bit-exact kernel
  tests (`*_model()` below) and a few multi-op edge cases (EDGE_MODELS);
* converted by TensorFlow's TFLite converter from small Keras models with full
  integer quantization (KERAS_MODELS; needs the `tools` extra).

Everything is seeded, so the same code gives the same bytes. Models are cached
under build/tflite-models/<hash of this file>/ so that tests do not reconvert.

    .venv/bin/python tools/make_tflite_models.py             # build all, print the folder
    .venv/bin/python tools/make_tflite_models.py --list      # what is built, with ops
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE_ROOT = ROOT / "build" / "tflite-models"
CODE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
CACHE_DIR = CACHE_ROOT / CODE_HASH

if importlib.util.find_spec("tinytrain") is None:  # run by a Python without the package installed
    sys.path.insert(0, str(ROOT / "host"))
# the writer lives in the package (the runtime writes models too); _schema is re-exported for the tests
from tinytrain.model.tflite_writer import ACTIVATION, PADDING, ModelWriter, _schema, options  # noqa: E402,F401


# ---------------------------------------------------------------- single-op models (kernel tests)


def out_size(size: int, k: int, stride: int, padding: str) -> int:
    return (size + stride - 1) // stride if padding == "SAME" else (size - k + stride) // stride


def bias_scales(s_x: float, s_w) -> np.ndarray:
    """Bias scale as converters write it: float32(s_x * s_w)."""
    return (np.float32(s_x) * np.asarray(s_w, np.float32)).astype(np.float32)


def conv2d_model(x_shape, qx, w, w_scales, bias, qy, stride=(1, 1), padding="SAME", activation="NONE") -> bytes:
    """One CONV_2D: x [1,H,W,C] int8 (scale, zp) -> y; w int8 [O,KH,KW,C], per-channel (or one) scale."""
    h, wd, _ = x_shape
    o, kh, kw, _ = w.shape
    mw = ModelWriter()
    x = mw.tensor([1, *x_shape], scale=qx[0], zero_point=qx[1], name="input")
    wt = mw.tensor(w.shape, data=w, scale=w_scales, zero_point=0, quantized_dimension=0, name="weights")
    bt = mw.tensor([o], "INT32", data=bias, scale=bias_scales(qx[0], w_scales), zero_point=0, name="bias")
    y = mw.tensor([1, out_size(h, kh, stride[0], padding), out_size(wd, kw, stride[1], padding), o],
                  scale=qy[0], zero_point=qy[1], name="output")
    mw.op("CONV_2D", [x, wt, bt], [y], options("Conv2DOptions", Padding=PADDING[padding], StrideH=stride[0],
                                               StrideW=stride[1], FusedActivationFunction=ACTIVATION[activation]))
    return mw.finish([x], [y])


def depthwise_model(x_shape, qx, w, w_scales, bias, qy, stride=(1, 1), padding="SAME", activation="NONE",
                    multiplier=1) -> bytes:
    """One DEPTHWISE_CONV_2D: w int8 [1,KH,KW,C*M], scales along axis 3."""
    h, wd, _ = x_shape
    _, kh, kw, oc = w.shape
    mw = ModelWriter()
    x = mw.tensor([1, *x_shape], scale=qx[0], zero_point=qx[1], name="input")
    wt = mw.tensor(w.shape, data=w, scale=w_scales, zero_point=0, quantized_dimension=3, name="weights")
    bt = mw.tensor([oc], "INT32", data=bias, scale=bias_scales(qx[0], w_scales), zero_point=0, name="bias")
    y = mw.tensor([1, out_size(h, kh, stride[0], padding), out_size(wd, kw, stride[1], padding), oc],
                  scale=qy[0], zero_point=qy[1], name="output")
    mw.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y],
          options("DepthwiseConv2DOptions", Padding=PADDING[padding], StrideH=stride[0], StrideW=stride[1],
                  DepthMultiplier=multiplier, FusedActivationFunction=ACTIVATION[activation]))
    return mw.finish([x], [y])


def fully_connected_model(x_shape, qx, w, w_scales, bias, qy, activation="NONE", keep_num_dims=False) -> bytes:
    """One FULLY_CONNECTED on an input of any shape (flattened): w int8 [O, K]."""
    o = w.shape[0]
    mw = ModelWriter()
    x = mw.tensor(x_shape, scale=qx[0], zero_point=qx[1], name="input")
    wt = mw.tensor(w.shape, data=w, scale=w_scales, zero_point=0, name="weights")
    bt = mw.tensor([o], "INT32", data=bias, scale=bias_scales(qx[0], w_scales), zero_point=0, name="bias")
    y_shape = [*x_shape[:-1], o] if keep_num_dims else [1, o]
    y = mw.tensor(y_shape, scale=qy[0], zero_point=qy[1], name="output")
    mw.op("FULLY_CONNECTED", [x, wt, bt], [y], options("FullyConnectedOptions",
                                                       FusedActivationFunction=ACTIVATION[activation],
                                                       KeepNumDims=keep_num_dims))
    return mw.finish([x], [y])


def add_model(shape, qa, qb, qy, activation="NONE") -> bytes:
    mw = ModelWriter()
    a = mw.tensor(shape, scale=qa[0], zero_point=qa[1], name="a")
    bb = mw.tensor(shape, scale=qb[0], zero_point=qb[1], name="b")
    y = mw.tensor(shape, scale=qy[0], zero_point=qy[1], name="output")
    mw.op("ADD", [a, bb], [y], options("AddOptions", FusedActivationFunction=ACTIVATION[activation]))
    return mw.finish([a, bb], [y])


def pool_model(kind: str, x_shape, q, filt, stride, padding="VALID", activation="NONE") -> bytes:
    """AVERAGE_POOL_2D or MAX_POOL_2D; input and output share (scale, zero point) as TFLite requires."""
    h, wd, c = x_shape
    mw = ModelWriter()
    x = mw.tensor([1, *x_shape], scale=q[0], zero_point=q[1], name="input")
    y = mw.tensor([1, out_size(h, filt[0], stride[0], padding), out_size(wd, filt[1], stride[1], padding), c],
                  scale=q[0], zero_point=q[1], name="output")
    mw.op(kind, [x], [y], options("Pool2DOptions", Padding=PADDING[padding], StrideH=stride[0], StrideW=stride[1],
                                  FilterHeight=filt[0], FilterWidth=filt[1],
                                  FusedActivationFunction=ACTIVATION[activation]))
    return mw.finish([x], [y])


def mean_model(x_shape, qx, qy, keep_dims=True) -> bytes:
    """MEAN over H and W (axes 1, 2)."""
    c = x_shape[-1]
    mw = ModelWriter()
    x = mw.tensor([1, *x_shape], scale=qx[0], zero_point=qx[1], name="input")
    ax = mw.tensor([2], "INT32", data=np.array([1, 2]), name="axis")
    y = mw.tensor([1, 1, 1, c] if keep_dims else [1, c], scale=qy[0], zero_point=qy[1], name="output")
    mw.op("MEAN", [x, ax], [y], options("ReducerOptions", KeepDims=keep_dims))
    return mw.finish([x], [y])


def pad_model(x_shape, q, paddings) -> bytes:
    """PAD of [1,H,W,C] with ((top, bottom), (left, right)) on H and W (and optionally channels)."""
    pads = [(0, 0), *paddings] + [(0, 0)] * (3 - len(paddings))
    mw = ModelWriter()
    x = mw.tensor([1, *x_shape], scale=q[0], zero_point=q[1], name="input")
    p = mw.tensor([4, 2], "INT32", data=np.array(pads), name="paddings")
    y = mw.tensor([s + a + b for s, (a, b) in zip([1, *x_shape], pads)], scale=q[0], zero_point=q[1], name="output")
    mw.op("PAD", [x, p], [y], options("PadOptions"))
    return mw.finish([x], [y])


def concat_model(shapes, qs, qy, activation="NONE") -> bytes:
    """CONCATENATION along channels of several [1,H,W,Ci] inputs. An input quantized unlike the output first
    goes through an int8->int8 QUANTIZE (what converters emit: TFLite's int8 CONCATENATION needs equal scales)."""
    mw = ModelWriter()
    ins, parts = [], []
    for i, (shape, q) in enumerate(zip(shapes, qs)):
        t = mw.tensor([1, *shape], scale=q[0], zero_point=q[1], name=f"in{i}")
        ins.append(t)
        if (np.float32(q[0]), q[1]) != (np.float32(qy[0]), qy[1]):
            r = mw.tensor([1, *shape], scale=qy[0], zero_point=qy[1], name=f"requant{i}")
            mw.op("QUANTIZE", [t], [r], options("QuantizeOptions"))
            t = r
        parts.append(t)
    c = sum(s[-1] for s in shapes)
    y = mw.tensor([1, *shapes[0][:-1], c], scale=qy[0], zero_point=qy[1], name="output")
    mw.op("CONCATENATION", parts, [y], options("ConcatenationOptions", Axis=3,
                                                FusedActivationFunction=ACTIVATION[activation]))
    return mw.finish(ins, [y])


def quantize_model(shape, q_in, q_out) -> bytes:
    """QUANTIZE: float32 -> int8 when q_in is None, else int8 -> int8 requantization."""
    mw = ModelWriter()
    if q_in is None:
        x = mw.tensor(shape, "FLOAT32", name="input")
    else:
        x = mw.tensor(shape, scale=q_in[0], zero_point=q_in[1], name="input")
    y = mw.tensor(shape, scale=q_out[0], zero_point=q_out[1], name="output")
    mw.op("QUANTIZE", [x], [y], options("QuantizeOptions"))
    return mw.finish([x], [y])


def dequantize_model(shape, q) -> bytes:
    mw = ModelWriter()
    x = mw.tensor(shape, scale=q[0], zero_point=q[1], name="input")
    y = mw.tensor(shape, "FLOAT32", name="output")
    mw.op("DEQUANTIZE", [x], [y], options("DequantizeOptions"))
    return mw.finish([x], [y])


def reshape_model(x_shape, new_shape, q) -> bytes:
    mw = ModelWriter()
    x = mw.tensor(x_shape, scale=q[0], zero_point=q[1], name="input")
    s = mw.tensor([len(new_shape)], "INT32", data=np.array(new_shape), name="shape")
    y = mw.tensor(new_shape, scale=q[0], zero_point=q[1], name="output")
    mw.op("RESHAPE", [x, s], [y])
    return mw.finish([x], [y])


# ---------------------------------------------------------------- random realistic parameters


def random_weights(rng: np.random.Generator, shape, axis: int = 0, per_channel: bool = True):
    """Symmetric int8 weights as a converter quantizes them: each channel's max |w| maps to 127."""
    real = rng.normal(0.0, 1.0, size=shape) * rng.uniform(0.02, 0.3, size=shape[axis]).reshape(
        [-1 if i == axis else 1 for i in range(len(shape))])
    red = tuple(i for i in range(len(shape)) if i != axis)
    amax = np.abs(real).max(axis=red) if per_channel else np.array([np.abs(real).max()])
    scales = (np.maximum(amax, 1e-8) / 127.0).astype(np.float32)
    sb = scales.reshape([-1 if i == axis else 1 for i in range(len(shape))]) if per_channel else scales[0]
    q = np.clip(np.round(real / sb), -127, 127).astype(np.int8)
    return q, scales


def random_bias(rng: np.random.Generator, n: int, s_x: float, s_w) -> np.ndarray:
    real = rng.normal(0.0, 0.1, size=n)
    return np.round(real / (np.float32(s_x) * np.asarray(s_w, np.float32))).astype(np.int32)


def random_quant(rng: np.random.Generator, relu: bool = False) -> tuple[float, int]:
    scale = float(np.float32(rng.uniform(0.005, 0.08)))
    return scale, (-128 if relu else int(rng.integers(-40, 41)))


# ---------------------------------------------------------------- multi-op edge-case models (no converter)


def _conv_layer(mw: ModelWriter, rng, x: int, x_shape, qx, o, k, stride, padding, act, qy, depthwise=False):
    h, w, c = x_shape
    if depthwise:
        wq, ws = random_weights(rng, (1, k[0], k[1], c), axis=3)
        o = c
    else:
        wq, ws = random_weights(rng, (o, k[0], k[1], c), axis=0)
    wt = mw.tensor(wq.shape, data=wq, scale=ws, zero_point=0, quantized_dimension=3 if depthwise else 0)
    bt = mw.tensor([o], "INT32", data=random_bias(rng, o, qx[0], ws), scale=bias_scales(qx[0], ws), zero_point=0)
    shape = (out_size(h, k[0], stride[0], padding), out_size(w, k[1], stride[1], padding), o)
    y = mw.tensor([1, *shape], scale=qy[0], zero_point=qy[1])
    if depthwise:
        mw.op("DEPTHWISE_CONV_2D", [x, wt, bt], [y], options(
            "DepthwiseConv2DOptions", Padding=PADDING[padding], StrideH=stride[0], StrideW=stride[1],
            DepthMultiplier=1, FusedActivationFunction=ACTIVATION[act]))
    else:
        mw.op("CONV_2D", [x, wt, bt], [y], options(
            "Conv2DOptions", Padding=PADDING[padding], StrideH=stride[0], StrideW=stride[1],
            FusedActivationFunction=ACTIVATION[act]))
    return y, shape


def _relu_q(rng) -> tuple[float, int]:
    return random_quant(rng, relu=True)


def edge_odd_sizes(seed: int = 1) -> bytes:
    """[14,7,3] input; SAME stride-2 3x3 conv (asymmetric padding: top 0 / bottom 1, left 1 / right 1), depthwise 3x3 stride 2
    on 7x4, ADD of two branches with ReLU, MAX_POOL 2x2 SAME, MEAN over the 2x1 map, per-tensor FC, softmax."""
    rng = np.random.default_rng(seed)
    mw = ModelWriter("edge: odd sizes, asymmetric SAME padding")
    qx = (1 / 255, -128)
    x = mw.tensor([1, 14, 7, 3], scale=qx[0], zero_point=qx[1], name="input")
    q1 = _relu_q(rng)
    t1, s1 = _conv_layer(mw, rng, x, (14, 7, 3), qx, 8, (3, 3), (2, 2), "SAME", "RELU6", q1)
    q2 = _relu_q(rng)
    t2, s2 = _conv_layer(mw, rng, t1, s1, q1, 8, (3, 3), (1, 1), "SAME", "RELU", q2, depthwise=True)
    q3 = random_quant(rng)
    t3, s3 = _conv_layer(mw, rng, t2, s2, q2, 8, (1, 1), (1, 1), "VALID", "NONE", q3)
    qa = _relu_q(rng)
    ta = mw.tensor([1, *s3], scale=qa[0], zero_point=qa[1])
    mw.op("ADD", [t3, t1], [ta], options("AddOptions", FusedActivationFunction=ACTIVATION["RELU"]))
    sp = (out_size(s3[0], 2, 2, "SAME"), out_size(s3[1], 2, 2, "SAME"), 8)
    tp = mw.tensor([1, *sp], scale=qa[0], zero_point=qa[1])
    mw.op("MAX_POOL_2D", [ta], [tp], options("Pool2DOptions", Padding=PADDING["SAME"], StrideH=2, StrideW=2,
                                             FilterHeight=2, FilterWidth=2))
    qm = random_quant(rng)
    axis = mw.tensor([2], "INT32", data=np.array([1, 2]))
    tm = mw.tensor([1, 8], scale=qm[0], zero_point=qm[1])
    mw.op("MEAN", [tp, axis], [tm], options("ReducerOptions", KeepDims=False))
    wq, ws = random_weights(rng, (5, 8), per_channel=False)
    wt = mw.tensor([5, 8], data=wq, scale=ws, zero_point=0)
    bt = mw.tensor([5], "INT32", data=random_bias(rng, 5, qm[0], ws), scale=bias_scales(qm[0], ws), zero_point=0)
    ql = random_quant(rng)
    tl = mw.tensor([1, 5], scale=ql[0], zero_point=ql[1], name="logits")
    mw.op("FULLY_CONNECTED", [tm, wt, bt], [tl], options("FullyConnectedOptions"))
    y = mw.tensor([1, 5], scale=1 / 256, zero_point=-128, name="probs")
    mw.op("SOFTMAX", [tl], [y], options("SoftmaxOptions", Beta=1.0))
    return mw.finish([x], [y])


def edge_mean_windows(seed: int = 2) -> bytes:
    """MEAN over 3x3 and 5x5 maps (non-power-of-two counts) in two branches joined by CONCATENATION."""
    rng = np.random.default_rng(seed)
    mw = ModelWriter("edge: MEAN over 3x3 and 5x5")
    qx = (0.03, 5)
    x = mw.tensor([1, 5, 5, 4], scale=qx[0], zero_point=qx[1], name="input")
    q1 = _relu_q(rng)
    t1, s1 = _conv_layer(mw, rng, x, (5, 5, 4), qx, 6, (3, 3), (1, 1), "VALID", "RELU", q1)  # 3x3x6
    qm = random_quant(rng)
    a1 = mw.tensor([2], "INT32", data=np.array([1, 2]))
    m1 = mw.tensor([1, 1, 1, 6], scale=qm[0], zero_point=qm[1])
    mw.op("MEAN", [t1, a1], [m1], options("ReducerOptions", KeepDims=True))
    a2 = mw.tensor([2], "INT32", data=np.array([1, 2]))
    m2 = mw.tensor([1, 1, 1, 4], scale=qm[0], zero_point=qm[1])
    t0, s0 = _conv_layer(mw, rng, x, (5, 5, 4), qx, 4, (1, 1), (1, 1), "VALID", "NONE", qx)  # 5x5x4, same q
    mw.op("MEAN", [t0, a2], [m2], options("ReducerOptions", KeepDims=True))
    cat = mw.tensor([1, 1, 1, 10], scale=qm[0], zero_point=qm[1])
    mw.op("CONCATENATION", [m1, m2], [cat], options("ConcatenationOptions", Axis=-1))
    flat = mw.tensor([1, 10], scale=qm[0], zero_point=qm[1])
    shp = mw.tensor([2], "INT32", data=np.array([1, 10]))
    mw.op("RESHAPE", [cat, shp], [flat])
    wq, ws = random_weights(rng, (3, 10), per_channel=True)
    wt = mw.tensor([3, 10], data=wq, scale=ws, zero_point=0)
    bt = mw.tensor([3], "INT32", data=random_bias(rng, 3, qm[0], ws), scale=bias_scales(qm[0], ws), zero_point=0)
    ql = random_quant(rng)
    y = mw.tensor([1, 3], scale=ql[0], zero_point=ql[1], name="logits")
    mw.op("FULLY_CONNECTED", [flat, wt, bt], [y], options("FullyConnectedOptions"))
    return mw.finish([x], [y])


def edge_stride2_pad(seed: int = 3) -> bytes:
    """[29,1,12] (W=1, many channels): PAD (0,1) then VALID stride-2 9x1 conv, SAME stride (2,1) 10x1 conv
    (top 4 / bottom 5), AVERAGE_POOL 3x1 SAME, FC hidden layer with ReLU, FC head, float in/out wrappers."""
    rng = np.random.default_rng(seed)
    mw = ModelWriter("edge: PAD + stride 2, kx1 kernels, float I/O")
    xf = mw.tensor([1, 29, 1, 12], "FLOAT32", name="input")
    qx = (0.05, -3)
    x = mw.tensor([1, 29, 1, 12], scale=qx[0], zero_point=qx[1], name="input_int8")
    mw.op("QUANTIZE", [xf], [x], options("QuantizeOptions"))
    pads = mw.tensor([4, 2], "INT32", data=np.array([[0, 0], [0, 1], [0, 0], [0, 0]]))
    xp = mw.tensor([1, 30, 1, 12], scale=qx[0], zero_point=qx[1])
    mw.op("PAD", [x, pads], [xp], options("PadOptions"))
    q1 = _relu_q(rng)
    t1, s1 = _conv_layer(mw, rng, xp, (30, 1, 12), qx, 16, (9, 1), (2, 1), "VALID", "RELU", q1)  # 11x1
    q2 = _relu_q(rng)
    t2, s2 = _conv_layer(mw, rng, t1, s1, q1, 16, (10, 1), (2, 1), "SAME", "RELU6", q2)  # 6x1
    sp = (out_size(s2[0], 3, 1, "SAME"), 1, 16)
    tp = mw.tensor([1, *sp], scale=q2[0], zero_point=q2[1])
    mw.op("AVERAGE_POOL_2D", [t2], [tp], options("Pool2DOptions", Padding=PADDING["SAME"], StrideH=1, StrideW=1,
                                                 FilterHeight=3, FilterWidth=1))
    n = sp[0] * 16
    flat = mw.tensor([1, n], scale=q2[0], zero_point=q2[1])
    shp = mw.tensor([2], "INT32", data=np.array([1, n]))
    mw.op("RESHAPE", [tp, shp], [flat])
    tcur, qcur = flat, q2
    for width, act in ((24, "RELU"), (4, "NONE")):
        wq, ws = random_weights(rng, (width, n), per_channel=False)
        wt = mw.tensor([width, n], data=wq, scale=ws, zero_point=0)
        bt = mw.tensor([width], "INT32", data=random_bias(rng, width, qcur[0], ws),
                       scale=bias_scales(qcur[0], ws), zero_point=0)
        qn = _relu_q(rng) if act == "RELU" else random_quant(rng)
        tn = mw.tensor([1, width], scale=qn[0], zero_point=qn[1])
        mw.op("FULLY_CONNECTED", [tcur, wt, bt], [tn], options("FullyConnectedOptions",
                                                               FusedActivationFunction=ACTIVATION[act]))
        tcur, qcur, n = tn, qn, width
    y = mw.tensor([1, 4], "FLOAT32", name="output")
    mw.op("DEQUANTIZE", [tcur], [y], options("DequantizeOptions"))
    return mw.finish([xf], [y])


EDGE_MODELS: dict[str, Callable[[], bytes]] = {
    "edge_odd_sizes": edge_odd_sizes,
    "edge_mean_windows": edge_mean_windows,
    "edge_stride2_pad": edge_stride2_pad,
}


# ---------------------------------------------------------------- Keras models, converted (tools extra)



def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf
    return keras, tf


def _randomize_batchnorm(model, rng: np.random.Generator) -> None:
    """Fresh BatchNormalization layers are identities; random statistics give a folded model realistic,
    unequal per-channel weight scales and biases."""
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            c = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c).astype(np.float32), rng.normal(0, 0.2, c).astype(np.float32),
                               rng.normal(0, 0.3, c).astype(np.float32), rng.uniform(0.3, 2.0, c).astype(np.float32)])


def convert_int8(model, input_shape, seed: int, float_io: bool = False, samples: int = 32) -> bytes:
    """Full-integer quantization with TensorFlow's TFLite converter: int8 weights (per-channel convs) and
    activations calibrated on seeded random data; int8 input/output, or float32 I/O (QUANTIZE/DEQUANTIZE)."""
    _, tf = _keras()
    rng = np.random.default_rng(seed)
    calib = [rng.normal(0.0, 1.0, (1, *input_shape)).astype(np.float32) for _ in range(samples)]

    def representative():
        for x in calib:
            yield [x]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def keras_mobilenet(seed: int = 11, float_io: bool = False) -> bytes:
    """MobileNet-style CNN at 96x96x3: conv 3x3 s2, depthwise-separable blocks (ReLU6, one stride 2 and
    two residual ADDs), global average pooling (MEAN), dense head, softmax."""
    keras, _ = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers

    def bn_act(t, act=True):
        t = L.BatchNormalization()(t)
        return L.ReLU(6.0)(t) if act else t

    def ds_block(t, out, stride):
        y = bn_act(L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(t))
        y = bn_act(L.Conv2D(out, 1, use_bias=False)(y), act=False)
        if stride == 1 and t.shape[-1] == out:
            y = L.Add()([t, y])
        return y

    x = keras.Input((96, 96, 3), batch_size=1)
    t = bn_act(L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x))
    t = ds_block(t, 8, 1)        # residual
    t = ds_block(t, 16, 2)
    t = ds_block(t, 16, 1)       # residual
    t = ds_block(t, 24, 2)
    t = L.GlobalAveragePooling2D()(t)
    t = L.Dense(10)(t)
    y = L.Softmax()(t)
    model = keras.Model(x, y)
    _randomize_batchnorm(model, np.random.default_rng(seed))
    return convert_int8(model, (96, 96, 3), seed, float_io)


def keras_kws(seed: int = 12, float_io: bool = False) -> bytes:
    """Keyword-spotting-like model on [49, 10, 1] (MFCC frames): 10x4 conv stride 2 (SAME: top 4 /
    bottom 5), depthwise-separable block, MAX_POOL, flatten, hidden FULLY_CONNECTED layers with ReLU."""
    keras, _ = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input((49, 10, 1), batch_size=1)
    t = L.Conv2D(16, (10, 4), strides=2, padding="same", activation="relu")(x)
    t = L.DepthwiseConv2D(3, padding="same", activation="relu")(t)
    t = L.Conv2D(24, 1, activation="relu")(t)
    t = L.MaxPooling2D((2, 2))(t)
    t = L.Flatten()(t)
    t = L.Dense(32, activation="relu")(t)
    t = L.Dense(16, activation="relu")(t)
    t = L.Dense(12)(t)
    y = L.Softmax()(t)
    return convert_int8(keras.Model(x, y), (49, 10, 1), seed, float_io)


def keras_sensor(seed: int = 13, float_io: bool = False) -> bytes:
    """1-D sensor model on [128, 3, 1] (128 steps x 3 axes): 9x1 conv stride (2, 1), two kx1 branches
    joined by CONCATENATION, PAD then VALID stride-2 conv, AVERAGE_POOL 2x1, dense head."""
    keras, _ = _keras()
    keras.utils.set_random_seed(seed)
    L = keras.layers
    x = keras.Input((128, 3, 1), batch_size=1)
    t = L.Conv2D(8, (9, 1), strides=(2, 1), padding="same", activation="relu")(x)
    a = L.Conv2D(8, (3, 1), padding="same", activation="relu")(t)
    b = L.Conv2D(4, (5, 1), padding="same", activation="relu")(t)
    t = L.Concatenate(axis=-1)([a, b])
    t = L.ZeroPadding2D(((0, 1), (0, 0)))(t)
    t = L.Conv2D(16, (4, 3), strides=(2, 1), padding="valid", activation="relu")(t)
    t = L.AveragePooling2D((2, 1))(t)
    t = L.Flatten()(t)
    t = L.Dense(6)(t)
    y = L.Softmax()(t)
    return convert_int8(keras.Model(x, y), (128, 3, 1), seed, float_io)


KERAS_MODELS: dict[str, Callable[[], bytes]] = {
    "keras_mobilenet": keras_mobilenet,
    "keras_kws": keras_kws,
    "keras_sensor": keras_sensor,
    "keras_kws_float_io": lambda: keras_kws(float_io=True),
}


# ---------------------------------------------------------------- cache


def converter_available() -> bool:
    """Whether TensorFlow is installed (found, not imported: importing it takes seconds)."""
    return importlib.util.find_spec("tensorflow") is not None


_CHECKED: set[Path] = set()  # edge models compared with a fresh build in this process


def model_path(name: str, cache_dir: Path = CACHE_DIR) -> Path:
    """The cached .tflite of one model, built (and written atomically) if missing. Edge models come from
    the package's ModelWriter, which can change while this file does not: they are rebuilt (milliseconds)
    once per process and rewritten when their bytes differ, so the cache key stays this file alone and a
    writer change does not reconvert the Keras models."""
    makers = {**EDGE_MODELS, **KERAS_MODELS}
    if name not in makers:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(makers)}")
    path = cache_dir / f"{name}.tflite"
    if name in EDGE_MODELS and path not in _CHECKED:
        data = makers[name]()
        if not path.exists() or path.read_bytes() != data:
            _write_cached(path, data)
        _CHECKED.add(path)
    elif not path.exists():
        _write_cached(path, makers[name]())
    return path


def _write_cached(path: Path, data: bytes) -> None:
    cache_dir = path.parent
    if cache_dir == CACHE_DIR and not cache_dir.exists() and CACHE_ROOT.is_dir():
        for stale in CACHE_ROOT.iterdir():  # models of older versions of this file
            if stale.is_dir() and len(stale.name) == len(CODE_HASH):
                shutil.rmtree(stale, ignore_errors=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=CACHE_DIR, help="folder (default: the cache folder)")
    ap.add_argument("--list", action="store_true", help="print each model's ops")
    ap.add_argument("names", nargs="*", help="models to build (default: all; Keras ones need TensorFlow)")
    args = ap.parse_args(argv)
    names = args.names or [*EDGE_MODELS, *(KERAS_MODELS if converter_available() else ())]
    for name in names:
        t0 = time.perf_counter()
        path = model_path(name, args.out)
        line = f"{path}  {path.stat().st_size:,} B  {time.perf_counter() - t0:.1f} s"
        if args.list:
            from tinytrain.model.tflite_reader import read_tflite
            line += "  " + " ".join(op.op for op in read_tflite(path).operators)
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
