"""Reads an int8 `.tflite` file into plain, typed dataclasses.

Only the subset of TFLite that tinytrain can train is accepted (see SUPPORTED_OPS
and docs/tflite_ops.md); anything else is one sentence as a TinytrainError
subclass. The flatbuffer is read through the generated accessors of the PyPI
`tflite` schema package, never through hand-written offsets.

Shapes are TFLite's (NHWC with the batch axis, which must be 1). Padding amounts
are computed exactly as TFLite's ComputePaddingHeightWidth does: for SAME the
total padding is max((out - 1) * stride + k - in, 0), split with the odd pixel
at the bottom/right (so SAME with stride 2 is often asymmetric); VALID pads 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tflite
from tflite.utils import BUILTIN_OPCODE2NAME

from tinytrain.errors import TinytrainError


class TFLiteFormatError(TinytrainError):
    """The file is not a readable TFLite flatbuffer."""


class UnsupportedTFLiteError(TinytrainError):
    """A valid TFLite model that uses something tinytrain cannot import."""


SUPPORTED_OPS = (
    "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN",
    "RESHAPE", "PAD", "CONCATENATION", "SOFTMAX", "QUANTIZE", "DEQUANTIZE",
)
SUPPORTED_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")

_TENSOR_TYPES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_NUMPY_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
                "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "BOOL": np.bool_}
_ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
_PADDINGS = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
_OPTION_TYPES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}


# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Quantization:
    """real = scale[c] * (q - zero_point[c]); c runs along `quantized_dimension` when per-channel."""

    scale: np.ndarray  # float32 [n], as stored (TFLite computes multipliers from these float32 values)
    zero_point: np.ndarray  # int64 [n]
    quantized_dimension: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # TFLite's type name: "INT8", "INT32", "FLOAT32", ...
    quantization: Quantization | None
    data: np.ndarray | None  # constant contents (numpy, shaped), None for activations

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def scale(self) -> float:
        """The per-tensor scale (first entry) as a Python float of the stored float32."""
        return float(self.quantization.scale[0])

    @property
    def zero_point(self) -> int:
        return int(self.quantization.zero_point[0])


@dataclass(frozen=True)
class Padding:
    """Explicit padding amounts in pixels (TFLite pads with the input zero point)."""

    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True)
class Conv2DOptions:
    padding: str  # "SAME" | "VALID"
    stride_h: int
    stride_w: int
    dilation_h: int
    dilation_w: int
    activation: str


@dataclass(frozen=True)
class DepthwiseConv2DOptions:
    padding: str
    stride_h: int
    stride_w: int
    depth_multiplier: int
    dilation_h: int
    dilation_w: int
    activation: str


@dataclass(frozen=True)
class FullyConnectedOptions:
    activation: str
    keep_num_dims: bool
    weights_format: int  # 0 = DEFAULT (the only one accepted)


@dataclass(frozen=True)
class AddOptions:
    activation: str


@dataclass(frozen=True)
class Pool2DOptions:
    padding: str
    stride_h: int
    stride_w: int
    filter_h: int
    filter_w: int
    activation: str


@dataclass(frozen=True)
class MeanOptions:
    axis: tuple[int, ...]  # from the constant axis tensor, made non-negative
    keep_dims: bool


@dataclass(frozen=True)
class ReshapeOptions:
    new_shape: tuple[int, ...]  # the output tensor's shape


@dataclass(frozen=True)
class PadOptions:
    paddings: tuple[tuple[int, int], ...]  # (before, after) per axis, from the constant paddings tensor


@dataclass(frozen=True)
class ConcatenationOptions:
    axis: int  # non-negative
    activation: str


@dataclass(frozen=True)
class SoftmaxOptions:
    beta: float


OpOptions = (Conv2DOptions | DepthwiseConv2DOptions | FullyConnectedOptions | AddOptions | Pool2DOptions
             | MeanOptions | ReshapeOptions | PadOptions | ConcatenationOptions | SoftmaxOptions | None)


@dataclass(frozen=True)
class Operator:
    index: int
    op: str  # builtin code name, e.g. "CONV_2D"
    inputs: tuple[int, ...]  # tensor indices; -1 for an absent optional input (e.g. no bias)
    outputs: tuple[int, ...]
    options: OpOptions
    padding: Padding | None = None  # conv, depthwise conv and pools: explicit amounts


@dataclass(frozen=True)
class TFLiteModel:
    path: str
    version: int
    description: str
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    consumers: dict[int, tuple[int, ...]] = field(default_factory=dict, repr=False)  # tensor -> op indices

    @property
    def input(self) -> Tensor:
        return self.tensors[self.inputs[0]]

    @property
    def output(self) -> Tensor:
        return self.tensors[self.outputs[0]]

    def producer(self, tensor: int) -> Operator | None:
        for op in self.operators:
            if tensor in op.outputs:
                return op
        return None


# ---------------------------------------------------------------- padding


def output_size(size: int, k: int, stride: int, padding: str, dilation: int = 1) -> int:
    """TFLite's ComputeOutSize."""
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def same_valid_padding(size: int, k: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding of one axis as TFLite's ComputePaddingWithOffset: the odd pixel goes after."""
    eff = (k - 1) * dilation + 1
    out = output_size(size, k, stride, padding, dilation)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def compute_padding(in_h: int, in_w: int, kh: int, kw: int, stride_h: int, stride_w: int, padding: str) -> Padding:
    top, bottom = same_valid_padding(in_h, kh, stride_h, padding)
    left, right = same_valid_padding(in_w, kw, stride_w, padding)
    return Padding(top, bottom, left, right)


# ---------------------------------------------------------------- reading


def read_tflite(path: str | Path) -> TFLiteModel:
    """Reads and validates a .tflite file; raises TFLiteFormatError / UnsupportedTFLiteError (one sentence)."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as e:
        raise TFLiteFormatError(f"{path}: cannot read the file ({e.strerror or e}).") from None
    return parse_tflite(buf, str(path))


def parse_tflite(buf: bytes, name: str = "<bytes>") -> TFLiteModel:
    _check_header(buf, name)
    try:
        model = _decode(buf, name)
    except TinytrainError:
        raise
    except Exception as e:  # truncated or corrupted flatbuffer: the accessors index past the end
        detail = (str(e).splitlines() or [""])[0][:120]
        raise TFLiteFormatError(f"{name}: the TFLite flatbuffer is corrupt ({type(e).__name__}: {detail}).") from None
    _validate(model)
    return model


def _check_header(buf: bytes, name: str) -> None:
    if len(buf) == 0:
        raise TFLiteFormatError(f"{name}: the file is empty, not a TFLite model.")
    if buf[:4] == b"PK\x03\x04":
        raise TFLiteFormatError(f"{name}: this is a zip archive (a .ttm or Keras file?), not a TFLite flatbuffer.")
    if len(buf) < 8 or not tflite.Model.ModelBufferHasIdentifier(buf, 0):
        raise TFLiteFormatError(f"{name}: not a TFLite file (no 'TFL3' flatbuffer identifier at byte 4).")


def _decode(buf: bytes, name: str) -> TFLiteModel:
    m = tflite.Model.GetRootAs(buf, 0)
    version = m.Version()
    if version != 3:
        raise TFLiteFormatError(f"{name}: TFLite schema version {version} is not supported (expected 3).")
    if m.SubgraphsLength() != 1:
        raise UnsupportedTFLiteError(
            f"{name}: the model has {m.SubgraphsLength()} subgraphs; tinytrain imports single-subgraph models only.")
    g = m.Subgraphs(0)

    buffers = [_buffer_bytes(m.Buffers(i), buf, name) for i in range(m.BuffersLength())]
    tensors = tuple(_tensor(g.Tensors(i), i, buffers, name) for i in range(g.TensorsLength()))

    opcodes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == tflite.BuiltinOperator.CUSTOM:
            custom = oc.CustomCode()
            opcodes.append(f"CUSTOM({custom.decode() if custom else '?'})")
        else:
            opcodes.append(BUILTIN_OPCODE2NAME.get(code, f"UNKNOWN({code})"))

    operators = []
    for i in range(g.OperatorsLength()):
        o = g.Operators(i)
        op_name = opcodes[o.OpcodeIndex()]
        ins = tuple(int(o.Inputs(j)) for j in range(o.InputsLength()))
        outs = tuple(int(o.Outputs(j)) for j in range(o.OutputsLength()))
        if op_name not in SUPPORTED_OPS:
            raise UnsupportedTFLiteError(
                f"{name}: operator {i} is {op_name}, which tinytrain does not support "
                f"(supported: {', '.join(SUPPORTED_OPS)}).")
        options = _options(o, op_name, i, ins, outs, tensors, name)
        operators.append(Operator(i, op_name, ins, outs, options, _op_padding(op_name, options, ins, tensors)))

    inputs = tuple(int(g.Inputs(j)) for j in range(g.InputsLength()))
    outputs = tuple(int(g.Outputs(j)) for j in range(g.OutputsLength()))
    consumers: dict[int, list[int]] = {}
    for op in operators:
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(op.index)
    desc = m.Description()
    return TFLiteModel(name, version, desc.decode(errors="replace") if desc else "", tensors, tuple(operators),
                       inputs, outputs, {k: tuple(v) for k, v in consumers.items()})


def _buffer_bytes(b, buf: bytes, name: str) -> bytes | None:
    if b is None:
        return None
    if b.Offset() > 1:  # large models keep buffers after the flatbuffer (offset, size)
        start, size = int(b.Offset()), int(b.Size())
        if start + size > len(buf):
            raise TFLiteFormatError(f"{name}: a buffer lies past the end of the file.")
        return buf[start:start + size]
    if b.DataLength() == 0:
        return None
    return b.DataAsNumpy().tobytes()


def _tensor(t, index: int, buffers: list, name: str) -> Tensor:
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    dtype = _TENSOR_TYPES.get(t.Type(), f"TYPE{t.Type()}")
    tname = t.Name().decode(errors="replace") if t.Name() else f"tensor{index}"
    q = t.Quantization()
    quant = None
    if q is not None and q.ScaleLength() > 0:
        scale = q.ScaleAsNumpy().astype(np.float32)
        zp = q.ZeroPointAsNumpy().astype(np.int64) if q.ZeroPointLength() else np.zeros(scale.size, np.int64)
        quant = Quantization(scale, zp, int(q.QuantizedDimension()))
    data = None
    bi = t.Buffer()
    if bi >= len(buffers):
        raise TFLiteFormatError(f"{name}: tensor {index} names buffer {bi}, but the file has {len(buffers)} buffers.")
    raw = buffers[bi]
    if raw is not None:
        np_type = _NUMPY_TYPES.get(dtype)
        if np_type is None:
            raise UnsupportedTFLiteError(f"{name}: constant tensor {index} ({tname!r}) has type {dtype}, "
                                         "which tinytrain does not read.")
        count = int(np.prod(shape)) if shape else 1
        itemsize = np.dtype(np_type).itemsize
        if len(raw) != count * itemsize:
            raise TFLiteFormatError(f"{name}: tensor {index} ({tname!r}) of shape {list(shape)} and type {dtype} "
                                    f"has {len(raw)} bytes of data instead of {count * itemsize}.")
        data = np.frombuffer(raw, dtype=np.dtype(np_type).newbyteorder("<")).astype(np_type).reshape(shape)
    return Tensor(index, tname, shape, dtype, quant, data)


def _activation(code: int, where: str) -> str:
    act = _ACTIVATIONS.get(code, f"ACTIVATION{code}")
    if act not in SUPPORTED_ACTIVATIONS:
        raise UnsupportedTFLiteError(f"{where} has the fused activation {act} "
                                     f"(supported: {', '.join(SUPPORTED_ACTIVATIONS)}).")
    return act


def _opts(o, cls, expected: str, where: str):
    got = _OPTION_TYPES.get(o.BuiltinOptionsType(), "NONE")
    if got != expected:
        raise TFLiteFormatError(f"{where} has builtin options {got} instead of {expected}.")
    table = o.BuiltinOptions()
    opt = cls()
    opt.Init(table.Bytes, table.Pos)
    return opt


def _const_ints(tensors, idx: int, where: str, what: str) -> np.ndarray:
    if idx < 0 or tensors[idx].data is None:
        raise UnsupportedTFLiteError(f"{where}: its {what} must be a constant tensor.")
    return tensors[idx].data.astype(np.int64)


def _options(o, op: str, i: int, ins, outs, tensors, name: str) -> OpOptions:
    where = f"{name}: operator {i} ({op})"
    if op == "CONV_2D":
        x = _opts(o, tflite.Conv2DOptions, "Conv2DOptions", where)
        return Conv2DOptions(_PADDINGS.get(x.Padding(), "?"), x.StrideH(), x.StrideW(), x.DilationHFactor(),
                             x.DilationWFactor(), _activation(x.FusedActivationFunction(), where))
    if op == "DEPTHWISE_CONV_2D":
        x = _opts(o, tflite.DepthwiseConv2DOptions, "DepthwiseConv2DOptions", where)
        return DepthwiseConv2DOptions(_PADDINGS.get(x.Padding(), "?"), x.StrideH(), x.StrideW(), x.DepthMultiplier(),
                                      x.DilationHFactor(), x.DilationWFactor(),
                                      _activation(x.FusedActivationFunction(), where))
    if op == "FULLY_CONNECTED":
        x = _opts(o, tflite.FullyConnectedOptions, "FullyConnectedOptions", where)
        return FullyConnectedOptions(_activation(x.FusedActivationFunction(), where), bool(x.KeepNumDims()),
                                     int(x.WeightsFormat()))
    if op == "ADD":
        x = _opts(o, tflite.AddOptions, "AddOptions", where)
        return AddOptions(_activation(x.FusedActivationFunction(), where))
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        x = _opts(o, tflite.Pool2DOptions, "Pool2DOptions", where)
        return Pool2DOptions(_PADDINGS.get(x.Padding(), "?"), x.StrideH(), x.StrideW(), x.FilterHeight(),
                             x.FilterWidth(), _activation(x.FusedActivationFunction(), where))
    if op == "MEAN":
        keep = True
        if o.BuiltinOptionsType() == tflite.BuiltinOptions.ReducerOptions:
            keep = bool(_opts(o, tflite.ReducerOptions, "ReducerOptions", where).KeepDims())
        rank = len(tensors[ins[0]].shape)
        axis = tuple(sorted({int(a) % rank for a in _const_ints(tensors, ins[1], where, "axis").reshape(-1)}))
        return MeanOptions(axis, keep)
    if op == "RESHAPE":
        return ReshapeOptions(tensors[outs[0]].shape)
    if op == "PAD":
        p = _const_ints(tensors, ins[1], where, "paddings")
        return PadOptions(tuple((int(a), int(b)) for a, b in p.reshape(-1, 2)))
    if op == "CONCATENATION":
        x = _opts(o, tflite.ConcatenationOptions, "ConcatenationOptions", where)
        rank = len(tensors[outs[0]].shape)
        return ConcatenationOptions(int(x.Axis()) % max(rank, 1), _activation(x.FusedActivationFunction(), where))
    if op == "SOFTMAX":
        x = _opts(o, tflite.SoftmaxOptions, "SoftmaxOptions", where)
        return SoftmaxOptions(float(x.Beta()))
    return None  # QUANTIZE, DEQUANTIZE


def _op_padding(op: str, options, ins, tensors) -> Padding | None:
    if op not in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return None
    shape = tensors[ins[0]].shape
    if len(shape) != 4:
        return None  # reported by _validate
    if op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        kh, kw = options.filter_h, options.filter_w
    else:
        wshape = tensors[ins[1]].shape
        if len(wshape) != 4:
            return None
        kh, kw = wshape[1], wshape[2]
    if options.padding not in ("SAME", "VALID") or min(options.stride_h, options.stride_w) < 1:
        return None
    return compute_padding(shape[1], shape[2], kh, kw, options.stride_h, options.stride_w, options.padding)


# ---------------------------------------------------------------- validation


def _validate(m: TFLiteModel) -> None:
    name = m.path
    if len(m.inputs) != 1 or len(m.outputs) != 1:
        raise UnsupportedTFLiteError(f"{name}: the model has {len(m.inputs)} inputs and {len(m.outputs)} outputs; "
                                     "tinytrain imports models with exactly one of each.")
    if not m.operators:
        raise UnsupportedTFLiteError(f"{name}: the model has no operators.")
    produced = {t for op in m.operators for t in op.outputs}
    graph_in, graph_out = m.inputs[0], m.outputs[0]

    for t in m.tensors:
        where = f"{name}: tensor {t.index} ({t.name!r})"
        if t.is_constant or t.index not in produced and t.index != graph_in:
            continue
        if t.dtype == "INT8":
            if t.quantization is None:
                raise UnsupportedTFLiteError(f"{where} is int8 without quantization parameters.")
            if t.quantization.per_channel:
                raise UnsupportedTFLiteError(f"{where} is an activation with per-channel quantization.")
            continue
        edge_float = t.dtype == "FLOAT32" and (
            (t.index == graph_in and all(m.operators[c].op == "QUANTIZE" for c in m.consumers.get(t.index, ())))
            or (t.index == graph_out and m.producer(t.index).op == "DEQUANTIZE"))
        if not edge_float:
            kind = "a float" if t.dtype.startswith("FLOAT") else f"an {t.dtype.lower()}"
            raise UnsupportedTFLiteError(
                f"{where} is {kind} activation; tinytrain imports full-integer int8 models only "
                "(float allowed only at a QUANTIZE input or DEQUANTIZE output).")
        if t.index == graph_in and not m.consumers.get(t.index):
            raise UnsupportedTFLiteError(f"{where}: the graph input feeds no operator.")

    for i, op in enumerate(m.operators):
        if op.index != i:
            raise AssertionError("operator indices out of order")
        _validate_op(m, op)


def _t(m: TFLiteModel, idx: int) -> Tensor:
    return m.tensors[idx]


def _same_quant(m: TFLiteModel, op: Operator, where: str) -> None:
    a, b = _t(m, op.inputs[0]), _t(m, op.outputs[0])
    if a.scale != b.scale or a.zero_point != b.zero_point:
        raise UnsupportedTFLiteError(f"{where}: input quantization ({a.scale:g}, {a.zero_point}) differs from the "
                                     f"output's ({b.scale:g}, {b.zero_point}); TFLite does not requantize here.")


def _weights(m: TFLiteModel, op: Operator, where: str, qdim: int, channels: int) -> None:
    w = _t(m, op.inputs[1])
    if w.data is None or w.dtype != "INT8" or w.quantization is None:
        raise UnsupportedTFLiteError(f"{where}: its weights must be a constant int8 quantized tensor "
                                     f"(found {'a variable' if w.data is None else w.dtype} tensor {w.index}).")
    q = w.quantization
    if q.per_channel and (q.quantized_dimension != qdim or q.scale.size != channels):
        raise UnsupportedTFLiteError(f"{where}: its per-channel weight scales ({q.scale.size} along axis "
                                     f"{q.quantized_dimension}) do not match the {channels} output channels.")
    if np.any(q.zero_point != 0) and q.per_channel:
        raise UnsupportedTFLiteError(f"{where}: its per-channel weights are not symmetric (nonzero zero points).")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = _t(m, op.inputs[2])
        if b.data is None or b.dtype != "INT32" or b.data.size != channels:
            raise UnsupportedTFLiteError(f"{where}: its bias must be a constant int32 tensor of {channels} values.")


def _nhwc(m: TFLiteModel, idx: int, where: str, what: str = "input") -> tuple[int, int, int, int]:
    shape = _t(m, idx).shape
    if len(shape) != 4 or shape[0] != 1:
        raise UnsupportedTFLiteError(f"{where}: its {what} has shape {list(shape)}; expected [1, H, W, C].")
    return shape


def _validate_op(m: TFLiteModel, op: Operator) -> None:
    where = f"{m.path}: operator {op.index} ({op.op})"
    o = op.options
    for idx in op.inputs + op.outputs:
        if idx >= len(m.tensors):
            raise TFLiteFormatError(f"{where} names tensor {idx}, but the model has {len(m.tensors)} tensors.")
    if len(op.outputs) != 1:
        raise UnsupportedTFLiteError(f"{where} has {len(op.outputs)} outputs; expected 1.")
    x = _t(m, op.inputs[0])
    y = _t(m, op.outputs[0])

    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        _, h, w, c = _nhwc(m, op.inputs[0], where)
        _nhwc(m, op.outputs[0], where, "output")
        if o.padding not in ("SAME", "VALID"):
            raise UnsupportedTFLiteError(f"{where} has an unknown padding type.")
        if o.dilation_h != 1 or o.dilation_w != 1:
            raise UnsupportedTFLiteError(f"{where} has dilation ({o.dilation_h}, {o.dilation_w}); "
                                         "tinytrain supports dilation 1 only.")
        if o.stride_h < 1 or o.stride_w < 1:
            raise UnsupportedTFLiteError(f"{where} has stride ({o.stride_h}, {o.stride_w}).")
        wshape = _t(m, op.inputs[1]).shape
        if len(wshape) != 4:
            raise UnsupportedTFLiteError(f"{where}: its weights have shape {list(wshape)}; expected 4-D.")
        if op.op == "CONV_2D":
            if wshape[3] != c:
                raise UnsupportedTFLiteError(f"{where}: weights {list(wshape)} on {c} input channels "
                                             "(grouped convolution is not supported).")
            _weights(m, op, where, 0, wshape[0])
        else:
            if o.depth_multiplier != 1 and c != 1:
                raise UnsupportedTFLiteError(
                    f"{where} has depth multiplier {o.depth_multiplier} on {c} input channels; tinytrain supports "
                    "multiplier 1 (or any multiplier on 1 input channel, an ordinary conv).")
            if wshape[0] != 1 or wshape[3] != c * o.depth_multiplier:
                raise UnsupportedTFLiteError(f"{where}: depthwise weights {list(wshape)} do not match {c} channels "
                                             f"x multiplier {o.depth_multiplier}.")
            _weights(m, op, where, 3, wshape[3])
        oh = output_size(h, wshape[1], o.stride_h, o.padding)
        ow = output_size(w, wshape[2], o.stride_w, o.padding)
        if y.shape[1:3] != (oh, ow):
            raise TFLiteFormatError(f"{where}: output shape {list(y.shape)} but TFLite computes {oh}x{ow}.")
    elif op.op == "FULLY_CONNECTED":
        wshape = _t(m, op.inputs[1]).shape
        if len(wshape) != 2:
            raise UnsupportedTFLiteError(f"{where}: its weights have shape {list(wshape)}; expected [out, in].")
        if o.weights_format != 0:
            raise UnsupportedTFLiteError(f"{where} uses shuffled weights (format {o.weights_format}).")
        if int(np.prod(x.shape)) % wshape[1] != 0 or int(np.prod(x.shape)) // wshape[1] != 1:
            raise UnsupportedTFLiteError(f"{where}: input {list(x.shape)} is not one row of {wshape[1]} values "
                                         "(batch 1).")
        _weights(m, op, where, 0, wshape[0])
    elif op.op == "ADD":
        a, b = _t(m, op.inputs[0]), _t(m, op.inputs[1])
        if a.shape != b.shape:
            raise UnsupportedTFLiteError(f"{where} adds shapes {list(a.shape)} and {list(b.shape)}; "
                                         "broadcasting is not supported.")
        if a.is_constant or b.is_constant:
            raise UnsupportedTFLiteError(f"{where} adds a constant tensor; only activations are supported.")
    elif op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        _, h, w, _ = _nhwc(m, op.inputs[0], where)
        if o.padding not in ("SAME", "VALID") or min(o.stride_h, o.stride_w, o.filter_h, o.filter_w) < 1:
            raise UnsupportedTFLiteError(f"{where} has an invalid window, stride or padding.")
        _same_quant(m, op, where)
    elif op.op == "MEAN":
        _nhwc(m, op.inputs[0], where)
        if o.axis != (1, 2):
            raise UnsupportedTFLiteError(f"{where} reduces axes {list(o.axis)}; tinytrain supports MEAN over "
                                         "H and W (axes 1 and 2) only.")
    elif op.op == "RESHAPE":
        if int(np.prod(x.shape)) != int(np.prod(y.shape)):
            raise TFLiteFormatError(f"{where} reshapes {list(x.shape)} to {list(y.shape)}.")
        _same_quant(m, op, where)
    elif op.op == "PAD":
        if len(o.paddings) != len(x.shape) or (o.paddings and o.paddings[0] != (0, 0)):
            raise UnsupportedTFLiteError(f"{where} pads {list(o.paddings)}; the batch axis must not be padded.")
        if any(a < 0 or b < 0 for a, b in o.paddings):
            raise UnsupportedTFLiteError(f"{where} has negative padding.")
        _same_quant(m, op, where)
    elif op.op == "CONCATENATION":
        if o.axis != len(y.shape) - 1:
            raise UnsupportedTFLiteError(f"{where} concatenates along axis {o.axis}; tinytrain supports the "
                                         "channel (last) axis only.")
        for idx in op.inputs:
            t = _t(m, idx)
            if t.is_constant:
                raise UnsupportedTFLiteError(f"{where} concatenates a constant tensor.")
            if t.scale != y.scale or t.zero_point != y.zero_point:
                raise UnsupportedTFLiteError(
                    f"{where}: input tensor {idx} is quantized differently from the output; TFLite's int8 "
                    "CONCATENATION requires equal scales (converters insert a QUANTIZE to requantize).")
    elif op.op == "SOFTMAX":
        consumers = m.consumers.get(op.outputs[0], ())
        last = op.outputs[0] == m.outputs[0] or (
            len(consumers) == 1 and m.operators[consumers[0]].op == "DEQUANTIZE"
            and m.operators[consumers[0]].outputs[0] == m.outputs[0])
        if not last:
            raise UnsupportedTFLiteError(f"{where} is not the last operator; SOFTMAX is supported only on the output.")
    elif op.op == "QUANTIZE":
        if y.dtype != "INT8" or x.dtype not in ("FLOAT32", "INT8"):
            raise UnsupportedTFLiteError(f"{where} converts {x.dtype} to {y.dtype}; supported are float32 to int8 "
                                         "(at the input) and int8 to int8 (requantization).")
    elif op.op == "DEQUANTIZE":
        if x.dtype != "INT8" or op.outputs[0] != m.outputs[0]:
            raise UnsupportedTFLiteError(f"{where} is supported only as the int8-to-float32 output of the graph.")
