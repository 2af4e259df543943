"""tflite_reader on the suite's own models and on bad input.

Whole models: every model of tools/make_tflite_models.py is read, then run op by op with
tflite_kernels_ref from what the reader decoded (weights, scales, padding amounts, options), and every
intermediate int8 tensor is compared with TFLite Micro's (kPreserveAllTensors): 0 differing bytes.
Bad input: each is one sentence as a TinytrainError subclass.
"""

from __future__ import annotations

import zipfile

import flatbuffers
import numpy as np
import pytest

from tinytrain.numerics import tflite_kernels as K
from tinytrain.errors import TinytrainError
from tinytrain.model.tflite_reader import (SUPPORTED_OPS, Padding, TFLiteFormatError, UnsupportedTFLiteError,
                                     compute_padding, parse_tflite, read_tflite)

import tflm_oracle as O
from tflite_models import EDGE_MODELS, KERAS_MODELS, tflite_model
from tflite_models import maker as M

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# ---------------------------------------------------------------- whole models against TFLite Micro


def run_reference(m, x: np.ndarray, tflm: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Runs the decoded model with tflite_kernels_ref. SOFTMAX has no reference kernel here (training uses
    its own loss on the logits): its output is taken from TFLM so the graph can go on."""
    vals: dict[int, np.ndarray] = {m.inputs[0]: x}
    for op in m.operators:
        t = [m.tensors[i] if i >= 0 else None for i in op.inputs]
        y = m.tensors[op.outputs[0]]
        o = op.options
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            xin, w = vals[op.inputs[0]], t[1]
            bias = t[2].data.astype(np.int64) if len(t) > 2 and t[2] is not None else None
            n_out = w.data.shape[0] if op.op != "DEPTHWISE_CONV_2D" else w.data.shape[3]
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
            out = K.add(vals[op.inputs[0]], vals[op.inputs[1]], p)
        elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            fn = K.average_pool2d if op.op == "AVERAGE_POOL_2D" else K.max_pool2d
            p = op.padding
            out = fn(vals[op.inputs[0]], (o.filter_h, o.filter_w), (o.stride_h, o.stride_w),
                     (p.top, p.bottom, p.left, p.right), *K.activation_range(o.activation, y.scale, y.zero_point))
        elif op.op == "MEAN":
            out = K.mean_hw(vals[op.inputs[0]], t[0].zero_point, t[0].scale, y.scale, y.zero_point)
        elif op.op == "RESHAPE":
            out = K.reshape(vals[op.inputs[0]], y.shape)
        elif op.op == "PAD":
            out = K.pad(vals[op.inputs[0]], o.paddings[1:], t[0].zero_point)
        elif op.op == "CONCATENATION":
            out = K.concatenation([vals[i] for i in op.inputs], [(tt.scale, tt.zero_point) for tt in t],
                                  (y.scale, y.zero_point))
        elif op.op == "QUANTIZE":
            if t[0].dtype == "FLOAT32":
                out = K.quantize(vals[op.inputs[0]], y.scale, y.zero_point)
            else:
                out = K.requantize(vals[op.inputs[0]], t[0].scale, t[0].zero_point, y.scale, y.zero_point)
        elif op.op == "DEQUANTIZE":
            out = K.dequantize(vals[op.inputs[0]], t[0].scale, t[0].zero_point)
        elif op.op == "SOFTMAX":
            out = tflm[op.outputs[0]]
        else:
            raise AssertionError(op.op)
        vals[op.outputs[0]] = np.asarray(out).reshape(y.shape)
    return vals


def model_input(m, rng) -> np.ndarray:
    t = m.input
    if t.dtype == "FLOAT32":
        return rng.normal(0.0, 1.0, t.shape).astype(np.float32)
    return rng.integers(-128, 128, size=t.shape).astype(np.int8)


@pytest.mark.parametrize("name", [*EDGE_MODELS, *KERAS_MODELS])
def test_whole_model_matches_tflm_tensor_by_tensor(name):
    O.require_tflm()
    path = tflite_model(name)
    m = read_tflite(path)
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(2):
        x = model_input(m, rng)
        tflm = O.run_tflm(path, x)
        ours = run_reference(m, x, tflm)
        compared = 0
        for op in m.operators:
            idx = op.outputs[0]
            want = tflm[idx].reshape(ours[idx].shape)
            if op.op == "DEQUANTIZE":
                assert np.array_equal(ours[idx].view(np.int32), want.view(np.int32)), f"operator {op.index}"
                continue
            diff = int(np.count_nonzero(ours[idx] != want))
            assert diff == 0, f"{name}: operator {op.index} ({op.op}): {diff} of {want.size} bytes differ from TFLM"
            compared += want.size
        assert compared > 0


def test_keras_kws_is_decoded_as_converted():
    m = read_tflite(tflite_model("keras_kws"))
    conv = m.operators[0]
    assert conv.op == "CONV_2D" and conv.options.stride_h == conv.options.stride_w == 2
    assert m.tensors[conv.inputs[1]].shape == (16, 10, 4, 1)
    assert conv.padding == Padding(top=4, bottom=5, left=1, right=1)  # SAME, stride 2 on 49 x 10
    w = m.tensors[conv.inputs[1]].quantization
    assert w.per_channel and w.quantized_dimension == 0 and w.scale.size == 16 and not w.zero_point.any()
    assert m.tensors[conv.inputs[2]].data.dtype == np.int32
    fcs = [op for op in m.operators if op.op == "FULLY_CONNECTED"]
    assert [op.options.activation for op in fcs] == ["RELU", "RELU", "NONE"]
    assert m.tensors[fcs[0].outputs[0]].zero_point == -128  # fused ReLU: zero point at the bottom
    assert m.input.dtype == "INT8" and m.input.shape == (1, 49, 10, 1)
    assert m.operators[-1].op == "SOFTMAX"


def test_float_io_model_has_quantize_and_dequantize_edges():
    m = read_tflite(tflite_model("keras_kws_float_io"))
    assert m.input.dtype == "FLOAT32" and m.output.dtype == "FLOAT32"
    assert m.operators[0].op == "QUANTIZE" and m.operators[-1].op == "DEQUANTIZE"


def test_edge_models_have_the_padding_they_claim():
    m = parse_tflite(M.edge_odd_sizes(), "odd")
    assert m.operators[0].padding == Padding(0, 1, 1, 1)      # 14 x 7, 3x3, stride 2, SAME
    m = parse_tflite(M.edge_stride2_pad(), "pad")
    convs = [op for op in m.operators if op.op == "CONV_2D"]
    assert convs[1].padding == Padding(4, 5, 0, 0)            # 11 rows, 10x1 kernel, stride (2, 1), SAME
    assert [op.options.paddings for op in m.operators if op.op == "PAD"] == [((0, 0), (0, 1), (0, 0), (0, 0))]


@pytest.mark.parametrize("size,k,stride,padding,expect", [
    (49, 10, 2, "SAME", (4, 5)), (11, 4, 2, "SAME", (1, 2)), (10, 4, 2, "SAME", (1, 1)), (96, 3, 2, "SAME", (0, 1)),
    (97, 3, 2, "SAME", (1, 1)), (7, 3, 1, "SAME", (1, 1)), (98, 9, 1, "SAME", (4, 4)), (9, 3, 2, "VALID", (0, 0)),
    (1, 3, 1, "SAME", (1, 1)), (5, 1, 2, "SAME", (0, 0)),
])
def test_padding_as_tflite_computes_it(size, k, stride, padding, expect):
    p = compute_padding(size, 1, k, 1, stride, 1, padding)
    assert (p.top, p.bottom) == expect


# ---------------------------------------------------------------- bad input: one sentence each


def one_sentence(exc: TinytrainError) -> str:
    msg = str(exc)
    assert "\n" not in msg and msg.endswith("."), msg
    return msg


def expect_error(data: bytes, cls, *words):
    with pytest.raises(cls) as e:
        parse_tflite(data, "bad.tflite")
    msg = one_sentence(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_not_tflite_files(tmp_path):
    rng = np.random.default_rng(0)
    expect_error(b"", TFLiteFormatError, "empty")
    expect_error(rng.integers(0, 256, 5000).astype(np.uint8).tobytes(), TFLiteFormatError, "not a TFLite")
    zpath = tmp_path / "model.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("model.json", "{}")
    expect_error(zpath.read_bytes(), TFLiteFormatError, "zip")
    expect_error(b"\x00\x00\x00\x00TFL3", TFLiteFormatError)
    good = M.edge_odd_sizes()
    for cut in (16, 200, len(good) // 2):
        with pytest.raises(TinytrainError) as e:
            parse_tflite(good[:cut], "cut.tflite")
        one_sentence(e.value)
    with pytest.raises(TFLiteFormatError) as e:
        read_tflite(tmp_path / "missing.tflite")
    one_sentence(e.value)


def test_corrupted_bytes_never_traceback():
    good = bytearray(M.edge_mean_windows())
    rng = np.random.default_rng(1)
    for _ in range(1000):
        bad = bytearray(good)
        for i in rng.integers(8, len(bad), 4):
            bad[i] = int(rng.integers(0, 256))
        try:
            parse_tflite(bytes(bad), "flipped.tflite")
        except TinytrainError as e:
            one_sentence(e)


def _two_subgraphs() -> bytes:
    sg_mod, model_mod, buf_mod = (M._schema(n) for n in ("SubGraph", "Model", "Buffer"))
    b = flatbuffers.Builder(256)
    sgs = []
    for _ in range(2):
        sg_mod.Start(b)
        sgs.append(sg_mod.End(b))
    buf_mod.Start(b)
    buf0 = buf_mod.End(b)
    sg_vec = M.ModelWriter._table_vec(b, sgs)
    buf_vec = M.ModelWriter._table_vec(b, [buf0])
    model_mod.Start(b)
    model_mod.AddVersion(b, 3)
    model_mod.AddSubgraphs(b, sg_vec)
    model_mod.AddBuffers(b, buf_vec)
    b.Finish(model_mod.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_several_subgraphs():
    expect_error(_two_subgraphs(), UnsupportedTFLiteError, "2 subgraphs")


def test_two_inputs():
    expect_error(M.add_model([1, 4, 4, 2], (0.1, 0), (0.1, 0), (0.2, 0)), UnsupportedTFLiteError, "2 inputs")


def _conv(dtype="INT8", dilation=1, act="NONE"):
    mw = M.ModelWriter()
    q = {} if dtype == "FLOAT32" else {"scale": 0.1, "zero_point": 0}
    wq = {} if dtype == "FLOAT32" else {"scale": [0.01] * 4, "zero_point": 0}
    x = mw.tensor([1, 8, 8, 3], dtype, **q)
    w = mw.tensor([4, 3, 3, 3], dtype if dtype == "FLOAT32" else "INT8", data=np.ones((4, 3, 3, 3)), **wq)
    y = mw.tensor([1, 8, 8, 4], dtype, **q)
    mw.op("CONV_2D", [x, w, -1], [y], M.options("Conv2DOptions", Padding=0, StrideH=1, StrideW=1,
                                                  DilationHFactor=dilation, DilationWFactor=dilation,
                                                  FusedActivationFunction=M.ACTIVATION[act]))
    return mw.finish([x], [y])


def test_float_and_uint8_models():
    expect_error(_conv("FLOAT32"), UnsupportedTFLiteError, "float", "int8")
    expect_error(_conv("UINT8"), UnsupportedTFLiteError, "uint8")


def test_unsupported_op_is_named_with_its_index_and_the_list():
    mw = M.ModelWriter()
    x = mw.tensor([1, 4], scale=0.1, zero_point=0)
    h = mw.tensor([1, 4], scale=0.1, zero_point=0)
    y = mw.tensor([1, 4], scale=1 / 128, zero_point=0)
    mw.op("RESHAPE", [x], [h])
    mw.op("TANH", [h], [y])
    msg = expect_error(mw.finish([x], [y]), UnsupportedTFLiteError, "operator 1 is TANH")
    assert all(op in msg for op in SUPPORTED_OPS)


def test_unsupported_options():
    expect_error(_conv(dilation=2), UnsupportedTFLiteError, "dilation")
    expect_error(_conv(act="TANH"), UnsupportedTFLiteError, "TANH")
    rng = np.random.default_rng(0)
    w, ws = M.random_weights(rng, (1, 3, 3, 6), axis=3)
    dw = M.depthwise_model((6, 6, 3), (0.1, 0), w, ws, np.zeros(6, np.int32), (0.1, 0), multiplier=2)
    expect_error(dw, UnsupportedTFLiteError, "depth multiplier 2", "3 input channels")
    w, ws = M.random_weights(rng, (1, 3, 3, 8), axis=3)
    ok = M.depthwise_model((6, 6, 1), (0.1, 0), w, ws, np.zeros(8, np.int32), (0.1, 0), multiplier=8)
    assert parse_tflite(ok).operators[0].options.depth_multiplier == 8


def test_mean_over_channels_and_softmax_in_the_middle():
    mw = M.ModelWriter()
    x = mw.tensor([1, 4, 4, 3], scale=0.1, zero_point=0)
    ax = mw.tensor([1], "INT32", data=np.array([3]))
    y = mw.tensor([1, 4, 4, 1], scale=0.1, zero_point=0)
    mw.op("MEAN", [x, ax], [y], M.options("ReducerOptions", KeepDims=True))
    expect_error(mw.finish([x], [y]), UnsupportedTFLiteError, "axes [3]")

    mw = M.ModelWriter()
    x = mw.tensor([1, 4], scale=0.1, zero_point=0)
    s = mw.tensor([1, 4], scale=1 / 256, zero_point=-128)
    y = mw.tensor([1, 4], scale=1 / 256, zero_point=-128)
    shp = mw.tensor([2], "INT32", data=np.array([1, 4]))
    mw.op("SOFTMAX", [x], [s], M.options("SoftmaxOptions", Beta=1.0))
    mw.op("RESHAPE", [s, shp], [y])
    expect_error(mw.finish([x], [y]), UnsupportedTFLiteError, "SOFTMAX", "last")


def test_concatenation_of_differently_quantized_inputs_is_refused():
    mw = M.ModelWriter()
    x = mw.tensor([1, 2, 2, 3], scale=0.1, zero_point=0)
    a = mw.tensor([1, 2, 2, 3], scale=0.2, zero_point=0)
    mw.op("QUANTIZE", [x], [a], M.options("QuantizeOptions"))
    y = mw.tensor([1, 2, 2, 6], scale=0.1, zero_point=0)
    mw.op("CONCATENATION", [x, a], [y], M.options("ConcatenationOptions", Axis=3))
    expect_error(mw.finish([x], [y]), UnsupportedTFLiteError, "CONCATENATION", "QUANTIZE")
