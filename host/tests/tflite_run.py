"""Runs a decoded TFLiteModel with tinytrain.numerics.tflite_kernels alone, SOFTMAX and the float edges
included: the whole model as the NumPy reference computes it, every tensor by index.

(test_tflite_reader.run_reference predates softmax_int8 and borrows TFLM's SOFTMAX output; this one
needs no oracle, so it can also run models the tests changed, e.g. a new head.)
"""

from __future__ import annotations

import numpy as np

from tinytrain.numerics import tflite_kernels as K


def run_model(m, x: np.ndarray) -> dict[int, np.ndarray]:
    """Every activation of `m` (a tflite_reader.TFLiteModel) on input `x`, keyed by tensor index."""
    vals: dict[int, np.ndarray] = {m.inputs[0]: np.asarray(x)}
    for op in m.operators:
        t = [m.tensors[i] if i >= 0 else None for i in op.inputs]
        y = m.tensors[op.outputs[0]]
        o = op.options
        xin = vals[op.inputs[0]]
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            w = t[1]
            bias = t[2].data.astype(np.int64) if len(t) > 2 and t[2] is not None else None
            n_out = w.data.shape[3] if op.op == "DEPTHWISE_CONV_2D" else w.data.shape[0]
            ws = np.broadcast_to(w.quantization.scale, (n_out,))
            if op.op == "FULLY_CONNECTED":
                stage = K.fc_output_stage(t[0].scale, ws, y.scale, y.zero_point, o.activation)
                out = K.fully_connected(xin.reshape(1, -1), t[0].zero_point, w.data, bias, stage,
                                        z_w=int(w.quantization.zero_point[0]))
            else:
                stage = K.conv_output_stage(t[0].scale, ws, y.scale, y.zero_point, o.activation)
                p = op.padding
                pads = (p.top, p.bottom, p.left, p.right)
                if op.op == "CONV_2D":
                    out = K.conv2d(xin, t[0].zero_point, w.data, bias, stage, (o.stride_h, o.stride_w), pads)
                else:
                    out = K.depthwise_conv2d(xin, t[0].zero_point, w.data, bias, stage, (o.stride_h, o.stride_w),
                                             pads, o.depth_multiplier)
        elif op.op == "ADD":
            p = K.add_params(t[0].scale, t[0].zero_point, t[1].scale, t[1].zero_point, y.scale, y.zero_point,
                             o.activation)
            out = K.add(xin, vals[op.inputs[1]], p)
        elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            fn = K.average_pool2d if op.op == "AVERAGE_POOL_2D" else K.max_pool2d
            p = op.padding
            out = fn(xin, (o.filter_h, o.filter_w), (o.stride_h, o.stride_w), (p.top, p.bottom, p.left, p.right),
                     *K.activation_range(o.activation, y.scale, y.zero_point))
        elif op.op == "MEAN":
            out = K.mean_hw(xin, t[0].zero_point, t[0].scale, y.scale, y.zero_point)
        elif op.op == "RESHAPE":
            out = K.reshape(xin, y.shape)
        elif op.op == "PAD":
            out = K.pad(xin, o.paddings[1:], t[0].zero_point)
        elif op.op == "CONCATENATION":
            out = K.concatenation([vals[i] for i in op.inputs], [(tt.scale, tt.zero_point) for tt in t],
                                  (y.scale, y.zero_point))
        elif op.op == "SOFTMAX":
            out = K.softmax_int8(xin, t[0].scale, t[0].zero_point, y.scale, y.zero_point, o.beta)
        elif op.op == "QUANTIZE":
            if t[0].dtype == "FLOAT32":
                out = K.quantize_input(xin, y.scale, y.zero_point)
            else:
                out = K.requantize(xin, t[0].scale, t[0].zero_point, y.scale, y.zero_point)
        elif op.op == "DEQUANTIZE":
            out = K.dequantize_output(xin, t[0].scale, t[0].zero_point)
        else:
            raise AssertionError(op.op)
        vals[op.outputs[0]] = np.asarray(out).reshape(y.shape)
    return vals


def model_input(m, rng: np.random.Generator) -> np.ndarray:
    """A random input for `m`: int8 over the whole range, or float32 around 0 for a float-input model."""
    t = m.input
    if t.dtype == "FLOAT32":
        return rng.normal(0.0, 1.0, t.shape).astype(np.float32)
    return rng.integers(-128, 128, size=t.shape).astype(np.int8)


def differing(a: np.ndarray, b: np.ndarray) -> int:
    """How many elements of two arrays differ in their bytes (float32 bit for bit: -0.0 differs from 0.0);
    all of them when the types or sizes differ."""
    a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    if a.dtype != b.dtype or a.size != b.size:
        return max(a.size, b.size, 1)
    va, vb = a.view(np.uint8).reshape(a.size, -1), b.view(np.uint8).reshape(b.size, -1)
    return int(np.count_nonzero((va != vb).any(axis=1)))
