"""tflite_writer: a TFLiteModel written back to .tflite.

Round trips: for every test model (tools/make_tflite_models.py: generated and Keras-converted),
read -> write -> read gives an equal TFLiteModel, writing again gives the same bytes, the rewritten file
runs in TFLite Micro with every tensor byte-identical to the original file's on random inputs, and LiteRT's
reference kernels give the same output for both files. New heads: FC weights [N, K] -> [N2, K] with a new
bias, and the tensors after the FC resized; TFLite Micro runs the file and equals tflite_kernels on the
new weights, tensor by tensor. Models that cannot be written are one sentence each.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest
import tflite

from tinytrain.errors import TinytrainError
from tinytrain.model.tflite_reader import (Conv2DOptions, Padding, Quantization, Tensor, TFLiteModel, parse_tflite,
                                           read_tflite)
from tinytrain.model.tflite_writer import (BUFFER_ALIGNMENT, ModelWriter, TFLiteWriteError, op_version,
                                           replace_tensors, serialize_tflite, with_operators, write_tflite)

import tflm_oracle as O
from tflite_models import EDGE_MODELS, KERAS_MODELS, tflite_model
from tflite_models import maker as M
from tflite_run import differing, model_input, run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MODELS = [*EDGE_MODELS, *KERAS_MODELS]


def assert_same_model(a: TFLiteModel, b: TFLiteModel) -> None:
    """Field by field, arrays by dtype, shape and bytes (the dataclasses hold NumPy arrays, so == cannot)."""
    assert (a.version, a.description, a.inputs, a.outputs) == (b.version, b.description, b.inputs, b.outputs)
    assert len(a.tensors) == len(b.tensors)
    for s, t in zip(a.tensors, b.tensors):
        where = f"tensor {s.index} ({s.name!r})"
        assert (s.index, s.name, s.shape, s.dtype) == (t.index, t.name, t.shape, t.dtype), where
        assert (s.quantization is None) == (t.quantization is None), where
        if s.quantization is not None:
            for f in ("scale", "zero_point"):
                x, y = getattr(s.quantization, f), getattr(t.quantization, f)
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), f"{where}: {f}"
            assert s.quantization.quantized_dimension == t.quantization.quantized_dimension, where
        assert (s.data is None) == (t.data is None), where
        if s.data is not None:
            assert (s.data.dtype, s.data.shape) == (t.data.dtype, t.data.shape), where
            assert s.data.tobytes() == t.data.tobytes(), where
    assert a.operators == b.operators
    assert a.consumers == b.consumers


@lru_cache(maxsize=None)
def original(name: str) -> tuple[bytes, TFLiteModel, bytes]:
    """(the file's bytes, what the reader decodes, what the writer writes from that)."""
    path = tflite_model(name)
    m = read_tflite(path)
    return path.read_bytes(), m, serialize_tflite(m)


def one_sentence(exc: BaseException) -> str:
    msg = str(exc)
    assert isinstance(exc, TinytrainError) and "\n" not in msg and msg.endswith("."), msg
    return msg


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", MODELS)
def test_read_write_read_gives_an_equal_model(name):
    _, m, data = original(name)
    back = parse_tflite(data, m.path)
    assert_same_model(m, back)
    assert serialize_tflite(back) == data  # a fixed point: nothing drifts on a second write


@pytest.mark.parametrize("name", MODELS)
def test_rewritten_file_runs_bit_identically(name):
    O.require_tflm()
    orig, m, data = original(name)
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(3):
        x = model_input(m, rng)
        want, got = O.run_tflm(orig, x), O.run_tflm(data, x)
        for op in m.operators:  # every activation, not only the output
            idx = op.outputs[0]
            assert differing(got[idx], want[idx]) == 0, f"{name}: operator {op.index} ({op.op}) output differs"
    out = m.outputs[0]
    assert differing(O.run_litert_ref(data, x)[out], O.run_litert_ref(orig, x)[out]) == 0


@pytest.mark.parametrize("name", MODELS)
def test_file_layout(name):
    orig, m, data = original(name)
    fm = tflite.Model.GetRootAs(data, 0)
    g = fm.Subgraphs(0)
    buffers = [fm.Buffers(i) for i in range(fm.BuffersLength())]
    assert buffers[0].DataLength() == 0  # the empty sentinel
    used = [g.Tensors(i).Buffer() for i in range(g.TensorsLength())]
    for t, b in zip(m.tensors, used):
        assert (t.data is not None) == (b != 0)
        if t.data is not None:
            tab = buffers[b]._tab  # where the data vector starts, as the generated Buffer.Data() finds it
            start = tab.Vector(tab.Offset(4))
            assert start % BUFFER_ALIGNMENT == 0, f"tensor {t.index}: data at byte {start}"
            assert data[start:start + t.data.nbytes] == t.data.astype(t.data.dtype.newbyteorder("<")).tobytes()
    assert len({b for b in used if b}) == sum(t.data is not None for t in m.tensors)  # one buffer per constant
    codes = [fm.OperatorCodes(i) for i in range(fm.OperatorCodesLength())]
    for oc in codes:
        assert oc.DeprecatedBuiltinCode() == oc.BuiltinCode() < 127
    written = {(oc.BuiltinCode(), oc.Version()) for oc in codes}
    assert written == {(getattr(tflite.BuiltinOperator, op.op), op_version(m, op)) for op in m.operators}
    assert fm.Description().decode() == m.description and g.Name() == b"main"
    if name in KERAS_MODELS:  # the versions TensorFlow's converter wrote
        om = tflite.Model.GetRootAs(orig, 0)
        assert written == {(om.OperatorCodes(i).BuiltinCode(), om.OperatorCodes(i).Version())
                           for i in range(om.OperatorCodesLength())}


def test_write_tflite_writes_a_file_that_reads_back(tmp_path):
    _, m, data = original("edge_mean_windows")
    path = write_tflite(m, tmp_path / "sub" / "model.tflite")
    assert path.read_bytes() == data
    assert_same_model(m, read_tflite(path))
    assert [p.name for p in path.parent.iterdir()] == ["model.tflite"]  # no temporary left behind


def less_common_forms() -> list[TFLiteModel]:
    """Single-op models with options the test models do not have."""
    rng = np.random.default_rng(5)
    w, ws = M.random_weights(rng, (6, 8), per_channel=False)
    keep = parse_tflite(M.fully_connected_model([1, 8], (0.05, 3), w, ws, np.arange(6), (0.1, -2),
                                                keep_num_dims=True), "fc_keep_num_dims")
    no_bias = with_operators(keep, [dataclasses.replace(keep.operators[0], inputs=keep.operators[0].inputs[:2])])

    mw = ModelWriter()
    x = mw.tensor([1, 2, 2, 3], scale=0.1, zero_point=4)
    y = mw.tensor([1, 12], scale=0.1, zero_point=4)
    mw.op("RESHAPE", [x], [y])
    reshape = parse_tflite(mw.finish([x], [y]), "reshape_without_shape_tensor")

    mw = ModelWriter()
    x = mw.tensor([1, 10], scale=0.2, zero_point=7)
    y = mw.tensor([1, 10], scale=1 / 256, zero_point=-128)
    mw.op("SOFTMAX", [x], [y], M.options("SoftmaxOptions", Beta=0.5))
    softmax = parse_tflite(mw.finish([x], [y]), "softmax_beta")

    wd, wds = M.random_weights(rng, (1, 3, 3, 8), axis=3)
    return [keep, no_bias, reshape, softmax, *(parse_tflite(b, n) for n, b in [
        ("depthwise_x8", M.depthwise_model((6, 6, 1), (0.1, 0), wd, wds, np.arange(8), (0.05, 3), stride=(2, 1),
                                           activation="RELU_N1_TO_1", multiplier=8)),
        ("max_pool_relu6", M.pool_model("MAX_POOL_2D", (7, 5, 3), (0.1, 2), (3, 2), (2, 2), "SAME", "RELU6")),
        ("requantize", M.quantize_model([1, 4, 4, 3], (0.1, 3), (0.07, -5))),
        ("mean_no_keep_dims", M.mean_model((3, 3, 4), (0.1, 1), (0.05, -2), keep_dims=False)),
        ("pad_channels", M.pad_model((5, 4, 3), (0.1, 2), ((1, 2), (0, 3), (1, 0)))),
    ])]


def test_less_common_forms_round_trip_and_run():
    """FC with keep_num_dims (version 5) and without a bias slot (6), RESHAPE without a shape tensor (the new
    shape goes into ReshapeOptions, which LiteRT reads), SOFTMAX with beta 0.5, depthwise multiplier 8 with
    RELU_N1_TO_1, SAME max pool with RELU6, int8 -> int8 QUANTIZE, MEAN without keep_dims, PAD of channels."""
    O.require_tflm()
    models = less_common_forms()
    assert [op_version(m, m.operators[0]) for m in models[:2]] == [5, 6]
    rng = np.random.default_rng(6)
    for model in models:
        data = serialize_tflite(model)
        assert_same_model(model, parse_tflite(data, model.path))
        xin = model_input(model, rng)
        want = run_model(model, xin)[model.outputs[0]]
        assert differing(O.run_tflm(data, xin)[model.outputs[0]], want) == 0, model.path
        assert O.run_litert_ref(data, xin)[model.outputs[0]].shape == want.shape, model.path


# ---------------------------------------------------------------- new heads


def new_head(m: TFLiteModel, classes: int, rng: np.random.Generator, per_channel: bool) -> TFLiteModel:
    """The last FULLY_CONNECTED with `classes` outputs: fresh int8 weights (per-channel or one scale) and an
    int32 bias (a new tensor when the FC had none), its output and the SOFTMAX / DEQUANTIZE after it
    resized to [1, classes]."""
    fc = [op for op in m.operators if op.op == "FULLY_CONNECTED"][-1]
    x, w = m.tensors[fc.inputs[0]], m.tensors[fc.inputs[1]]
    k = w.shape[1]
    wq, ws = M.random_weights(rng, (classes, k), per_channel=per_channel)
    bias = M.random_bias(rng, classes, x.scale, ws)
    zeros = np.zeros(ws.size, np.int64)
    changes: dict = {w.index: {"shape": (classes, k), "data": wq, "quantization": Quantization(ws, zeros, 0)}}
    b_q = Quantization(M.bias_scales(x.scale, ws), zeros.copy(), 0)
    inputs = fc.inputs
    if len(fc.inputs) > 2 and fc.inputs[2] >= 0:
        changes[fc.inputs[2]] = {"shape": (classes,), "data": bias, "quantization": b_q}
    else:
        b = len(m.tensors)
        changes[b] = Tensor(b, "new_head/bias", (classes,), "INT32", b_q, bias.astype(np.int32))
        inputs = (*fc.inputs[:2], b)
    t = fc.outputs[0]
    while True:
        changes[t] = {"shape": (1, classes)}
        nxt = [op for op in m.operators if t in op.inputs]
        if len(nxt) != 1 or nxt[0].op not in ("SOFTMAX", "DEQUANTIZE", "QUANTIZE"):
            break
        t = nxt[0].outputs[0]
    m2 = replace_tensors(m, changes)
    ops = [dataclasses.replace(op, inputs=inputs) if op.index == fc.index else op for op in m.operators]
    return with_operators(m2, ops)


@pytest.mark.parametrize("name,classes,per_channel", [
    ("edge_odd_sizes", 5, False),          # same shapes, new weight and bias buffers
    ("edge_odd_sizes", 9, False),          # FC with bias, 5 -> 9 classes, SOFTMAX after
    ("edge_mean_windows", 2, True),        # fewer classes, per-channel FC, the graph output
    ("edge_stride2_pad", 7, False),        # float output: DEQUANTIZE after the FC
    ("keras_kws_float_io", 20, True),      # no bias in the file (one is added), SOFTMAX then DEQUANTIZE
    ("keras_mobilenet", 16, True),
])
def test_new_head_runs_in_tflm_and_equals_the_reference(name, classes, per_channel):
    O.require_tflm()
    _, m, _ = original(name)
    rng = np.random.default_rng(classes)
    m2 = new_head(m, classes, rng, per_channel)
    data = serialize_tflite(m2)
    back = parse_tflite(data, name)
    assert_same_model(dataclasses.replace(m2, path=name), back)
    assert back.output.shape == (1, classes)
    compared = 0
    for _ in range(3):
        x = model_input(back, rng)
        tflm, ours = O.run_tflm(data, x), run_model(back, x)
        for op in back.operators:
            idx = op.outputs[0]
            assert differing(ours[idx], tflm[idx]) == 0, f"{name}: operator {op.index} ({op.op}) differs from TFLM"
            compared += ours[idx].size
        assert O.run_litert_ref(data, x)[back.outputs[0]].shape == (1, classes)
    assert compared > 0


# ---------------------------------------------------------------- what cannot be written: one sentence each


def _tensor(m: TFLiteModel, op_kind: str, k: int = 1, nth: int = 0) -> Tensor:
    op = [op for op in m.operators if op.op == op_kind][nth]
    return m.tensors[op.inputs[k]]


def expect_write_error(m: TFLiteModel, *words) -> str:
    with pytest.raises(TFLiteWriteError) as e:
        serialize_tflite(m, "bad.tflite")
    msg = one_sentence(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_a_head_half_changed_is_refused():
    _, m, _ = original("edge_odd_sizes")
    m2 = new_head(m, 9, np.random.default_rng(0), False)
    probs = m2.outputs[0]
    stale = replace_tensors(m2, {probs: {"shape": (1, 5)}})  # the SOFTMAX output left at 5 classes
    expect_write_error(stale, "SOFTMAX", "[1, 5]", "[1, 9]")
    logits = [op for op in m2.operators if op.op == "SOFTMAX"][0].inputs[0]
    stale = replace_tensors(m2, {logits: {"shape": (1, 5)}, probs: {"shape": (1, 5)}})
    expect_write_error(stale, "FULLY_CONNECTED", "[1, 9]")
    fc = [op for op in m2.operators if op.op == "FULLY_CONNECTED"][0]
    b = m2.tensors[fc.inputs[2]]
    stale = replace_tensors(m2, {b.index: {"shape": (5,), "data": b.data[:5],
                                           "quantization": Quantization(b.quantization.scale[:1],
                                                                        np.zeros(1, np.int64), 0)}})
    expect_write_error(stale, "bias", "9 values")


def test_bad_tensors_are_refused():
    _, m, _ = original("edge_mean_windows")
    w = _tensor(m, "FULLY_CONNECTED")
    expect_write_error(replace_tensors(m, {w.index: {"data": w.data.astype(np.int64) * 3}}), "do not fit", "INT8")
    expect_write_error(replace_tensors(m, {w.index: {"data": w.data[:, :5]}}), "holds 15 values instead of 30")
    q = w.quantization
    expect_write_error(replace_tensors(m, {w.index: {"quantization": Quantization(q.scale[:2], q.zero_point[:2], 0)}}),
                       "2 per-channel scales")
    expect_write_error(replace_tensors(m, {w.index: {"quantization": Quantization(q.scale, q.zero_point[:1], 0)}}),
                       "zero points")
    expect_write_error(replace_tensors(m, {w.index: {"dtype": "INT7"}}), "INT7")
    expect_write_error(replace_tensors(m, {w.index: {"index": 0}}), "numbered by position")
    with pytest.raises(TFLiteWriteError) as e:
        replace_tensors(m, {len(m.tensors) + 3: {"shape": (1,)}})
    one_sentence(e.value)


def test_bad_operators_are_refused():
    _, m, _ = original("edge_mean_windows")
    ops = list(m.operators)
    fc = next(op for op in ops if op.op == "FULLY_CONNECTED")

    def with_op(op, at=None):
        at = op.index if at is None else at
        return with_operators(m, [op if i == at else o for i, o in enumerate(ops)])

    expect_write_error(with_op(dataclasses.replace(fc, options=Conv2DOptions("SAME", 1, 1, 1, 1, "NONE"))),
                       "Conv2DOptions", "FullyConnectedOptions")
    expect_write_error(with_op(dataclasses.replace(fc, inputs=(fc.inputs[0], 99, fc.inputs[2]))), "tensor 99")
    expect_write_error(with_op(dataclasses.replace(fc, index=0), at=fc.index), "numbered by position")
    mean = next(op for op in ops if op.op == "MEAN")
    expect_write_error(with_op(dataclasses.replace(mean, options=dataclasses.replace(mean.options, axis=(1,)))),
                       "axes [1]", "[1, 2]")
    conv = next(op for op in ops if op.op == "CONV_2D")
    expect_write_error(with_op(dataclasses.replace(conv, padding=Padding(1, 1, 1, 1))), "explicit padding", "VALID")
    expect_write_error(with_op(dataclasses.replace(fc, options=dataclasses.replace(fc.options, activation="GELU"))),
                       "GELU")

    _, p, _ = original("edge_stride2_pad")
    pad = next(op for op in p.operators if op.op == "PAD")
    bad = dataclasses.replace(pad, options=dataclasses.replace(pad.options, paddings=((0, 0), (1, 1), (0, 0), (0, 0))))
    expect_write_error(with_operators(p, [bad if o.index == pad.index else o for o in p.operators]), "paddings")
    reshape = next(op for op in p.operators if op.op == "RESHAPE")
    shape_t = p.tensors[reshape.inputs[1]]
    expect_write_error(replace_tensors(p, {shape_t.index: {"data": shape_t.data[::-1].copy()}}), "shape tensor")


def test_unwritable_path_is_one_sentence(tmp_path):
    _, m, _ = original("edge_odd_sizes")
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(TFLiteWriteError) as e:
        write_tflite(m, blocker / "model.tflite")
    one_sentence(e.value)


def test_concatenation_of_mismatched_shapes_is_refused():
    mw = ModelWriter()
    x = mw.tensor([1, 2, 2, 3], scale=0.1, zero_point=0)
    r = mw.tensor([1, 2, 3, 2], scale=0.1, zero_point=0)
    mw.op("RESHAPE", [x], [r])
    y = mw.tensor([1, 2, 2, 5], scale=0.1, zero_point=0)
    mw.op("CONCATENATION", [x, r], [y], M.options("ConcatenationOptions", Axis=3))
    expect_write_error(parse_tflite(mw.finish([x], [y])), "CONCATENATION", "[1, 2, 3, 2]", "axis 3")
