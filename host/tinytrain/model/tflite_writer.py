"""Writes a TFLiteModel (the dataclasses tflite_reader produces) back to .tflite bytes.

Two levels, both on the `tflite` package's generated builders plus `flatbuffers` (no hand-made
offsets):

* `ModelWriter` collects tensors, buffers and operators and writes one-subgraph TFLite flatbuffer
  bytes; tools/make_tflite_models.py writes the suite's test models with it;
* `serialize_tflite` / `write_tflite` write a whole `TFLiteModel`, e.g. one whose weights or head a
  training run changed (`replace_tensors`).

What the file holds is exactly what the reader decodes: tensors (shape, type, name, per-tensor or
per-channel quantization with its quantized dimension, constant data in its own buffer, 16-byte
aligned), operators with their builtin options, operator codes (builtin_code and the
deprecated_builtin_code that older readers use below 127, the version TFLite's op_version.cc assigns),
graph inputs/outputs and the description. What the dataclasses do not carry is not written: the
converter's metadata and signature defs, shape signatures, buffer sharing between identical
constants. Before bytes are returned they are read back with `parse_tflite`, and every operator's
output shape is checked against what its inputs give (TFLite Micro does not resize tensors: a head
with more classes must change the FC output and every tensor after it). A model that cannot be
written is one sentence (`TFLiteWriteError`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

from tinytrain.errors import TinytrainError
from tinytrain.model.tflite_reader import (
    AddOptions, ConcatenationOptions, Conv2DOptions, DepthwiseConv2DOptions, FullyConnectedOptions, MeanOptions,
    Operator, PadOptions, Pool2DOptions, ReshapeOptions, SoftmaxOptions, Tensor, TFLiteModel, compute_padding,
    output_size, parse_tflite)


class TFLiteWriteError(TinytrainError):
    """A TFLiteModel that cannot be written as a valid .tflite file."""


BUFFER_ALIGNMENT = 16  # constant data starts at a multiple of 16 bytes from the file's start, as converters do

PADDING = {"SAME": 0, "VALID": 1}
ACTIVATION = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}

_NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
       "FLOAT32": np.float32, "FLOAT16": np.float16, "FLOAT64": np.float64, "BOOL": np.bool_}
_TENSOR_TYPES = {k for k in vars(tflite.TensorType) if not k.startswith("_")}


def _schema(name: str):
    """The generated module tflite.<name> (the package's __init__ shadows module names with classes)."""
    return importlib.import_module(f"tflite.{name}")


def _enum(enum_module: str, member: str) -> int:
    return getattr(getattr(_schema(enum_module), enum_module), member)


def options(table: str, **fields) -> tuple[str, Callable]:
    """A builtin-options table from the generated builders: options("Conv2DOptions", StrideH=2, ...).
    A list, tuple or array value becomes an int32 vector (ReshapeOptions' NewShape)."""
    def build(b: flatbuffers.Builder) -> int:
        mod = _schema(table)
        vectors = {k: b.CreateNumpyVector(np.asarray(v, np.int32)) for k, v in fields.items()
                   if isinstance(v, (list, tuple, np.ndarray))}
        getattr(mod, "Start")(b)
        for k, v in fields.items():
            getattr(mod, f"Add{k}")(b, vectors.get(k, v))
        return getattr(mod, "End")(b)
    return table, build


class ModelWriter:
    """Collects tensors, buffers and operators, then writes one-subgraph TFLite flatbuffer bytes."""

    def __init__(self, description: str = "tinytrain generated test model") -> None:
        self.description = description
        self.tensors: list[dict] = []
        self.buffers: list[bytes | None] = [None]  # buffer 0 is the empty sentinel
        self.opcodes: list[int] = []
        self.versions: dict[int, int] = {}  # builtin code -> the highest version any of its operators needs
        self.ops: list[tuple[int, list[int], list[int], tuple[str, Callable] | None]] = []

    def tensor(self, shape, dtype: str = "INT8", scale=None, zero_point=None, quantized_dimension: int = 0,
               data=None, name: str | None = None) -> int:
        buf = 0
        if data is not None:
            arr = np.ascontiguousarray(np.asarray(data).astype(_NP[dtype]).reshape(shape))
            self.buffers.append(arr.astype(arr.dtype.newbyteorder("<")).tobytes())
            buf = len(self.buffers) - 1
        if scale is not None:
            scale = np.atleast_1d(np.asarray(scale, dtype=np.float32))
            zp = np.zeros(scale.size, np.int64) if zero_point is None else np.atleast_1d(
                np.asarray(zero_point, dtype=np.int64))
            if zp.size == 1 and scale.size > 1:
                zp = np.repeat(zp, scale.size)
            scale = (scale, zp, quantized_dimension)
        self.tensors.append({"shape": [int(s) for s in shape], "dtype": dtype, "quant": scale, "buffer": buf,
                             "name": name or f"t{len(self.tensors)}"})
        return len(self.tensors) - 1

    def op(self, name: str, inputs: list[int], outputs: list[int], opts: tuple[str, Callable] | None = None,
           version: int = 1) -> None:
        code = _enum("BuiltinOperator", name)
        if code not in self.opcodes:
            self.opcodes.append(code)
        self.versions[code] = max(self.versions.get(code, 1), version)
        self.ops.append((self.opcodes.index(code), list(inputs), list(outputs), opts))

    # ---------------------------------------------------------------- serialization

    @staticmethod
    def _vec(b: flatbuffers.Builder, arr: np.ndarray) -> int:
        return b.CreateNumpyVector(np.ascontiguousarray(arr))

    @staticmethod
    def _table_vec(b: flatbuffers.Builder, offsets: list[int]) -> int:
        b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            b.PrependUOffsetTRelative(off)
        return b.EndVector()

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        b = flatbuffers.Builder(1024)
        Buf, T, QP, OC, Op, SG, M = (_schema(n) for n in
                                     ("Buffer", "Tensor", "QuantizationParameters", "OperatorCode", "Operator",
                                      "SubGraph", "Model"))
        buf_offs = []
        for data in self.buffers:
            vec = None
            if data:
                # a ubyte vector whose first byte is BUFFER_ALIGNMENT-aligned (the builder pads the file to
                # its largest alignment, so this holds from the file's start too)
                b.StartVector(1, len(data), BUFFER_ALIGNMENT)
                b.head -= len(data)
                b.Bytes[b.head:b.head + len(data)] = data
                vec = b.EndVector()
            Buf.Start(b)
            if vec is not None:
                Buf.AddData(b, vec)
            buf_offs.append(Buf.End(b))

        t_offs = []
        for t in self.tensors:
            name = b.CreateString(t["name"])
            shape = self._vec(b, np.array(t["shape"], np.int32))
            q_off = None
            if t["quant"] is not None:
                scale, zp, qdim = t["quant"]
                s_vec, z_vec = self._vec(b, scale.astype(np.float32)), self._vec(b, zp.astype(np.int64))
                QP.Start(b)
                QP.AddScale(b, s_vec)
                QP.AddZeroPoint(b, z_vec)
                QP.AddQuantizedDimension(b, qdim)
                q_off = QP.End(b)
            T.Start(b)
            T.AddShape(b, shape)
            T.AddType(b, _enum("TensorType", t["dtype"]))
            T.AddBuffer(b, t["buffer"])
            T.AddName(b, name)
            if q_off is not None:
                T.AddQuantization(b, q_off)
            t_offs.append(T.End(b))

        oc_offs = []
        for code in self.opcodes:
            OC.Start(b)
            # readers before schema 3a look only at the deprecated int8 field; codes from 127 on say
            # PLACEHOLDER_FOR_GREATER_OP_CODES (127) there
            OC.AddDeprecatedBuiltinCode(b, min(code, tflite.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES))
            OC.AddBuiltinCode(b, code)
            OC.AddVersion(b, self.versions.get(code, 1))
            oc_offs.append(OC.End(b))

        op_offs = []
        for idx, ins, outs, opts in self.ops:
            i_vec = self._vec(b, np.array(ins, np.int32))
            o_vec = self._vec(b, np.array(outs, np.int32))
            opt_off = opts[1](b) if opts else None
            Op.Start(b)
            Op.AddOpcodeIndex(b, idx)
            Op.AddInputs(b, i_vec)
            Op.AddOutputs(b, o_vec)
            if opts:
                Op.AddBuiltinOptionsType(b, _enum("BuiltinOptions", opts[0]))
                Op.AddBuiltinOptions(b, opt_off)
            op_offs.append(Op.End(b))

        tensors_vec = self._table_vec(b, t_offs)
        ops_vec = self._table_vec(b, op_offs)
        in_vec = self._vec(b, np.array(inputs, np.int32))
        out_vec = self._vec(b, np.array(outputs, np.int32))
        sg_name = b.CreateString("main")
        SG.Start(b)
        SG.AddTensors(b, tensors_vec)
        SG.AddInputs(b, in_vec)
        SG.AddOutputs(b, out_vec)
        SG.AddOperators(b, ops_vec)
        SG.AddName(b, sg_name)
        sg = SG.End(b)

        oc_vec = self._table_vec(b, oc_offs)
        sg_vec = self._table_vec(b, [sg])
        buf_vec = self._table_vec(b, buf_offs)
        desc = b.CreateString(self.description)
        M.Start(b)
        M.AddVersion(b, 3)
        M.AddOperatorCodes(b, oc_vec)
        M.AddSubgraphs(b, sg_vec)
        M.AddDescription(b, desc)
        M.AddBuffers(b, buf_vec)
        b.Finish(M.End(b), file_identifier=b"TFL3")
        return bytes(b.Output())


# ---------------------------------------------------------------- a whole TFLiteModel


def op_version(model: TFLiteModel, op: Operator) -> int:
    """The operator-code version TFLite's op_version.cc (GetBuiltinOperatorVersion) gives this operator,
    for the types tinytrain reads (what TensorFlow's converter writes for full-int8 models)."""
    t = model.tensors
    x = t[op.inputs[0]].dtype
    y = t[op.outputs[0]].dtype
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return 3 if x == t[op.inputs[1]].dtype == y == "INT8" else 1
    if op.op == "FULLY_CONNECTED":
        if len(op.inputs) == 2:
            return 6  # no bias slot at all (an absent bias written as -1 is still 3 inputs)
        if op.options.keep_num_dims:
            return 5
        return 4 if x == t[op.inputs[1]].dtype == y == "INT8" else 1
    if op.op == "PAD" and len(t[op.inputs[0]].shape) > 4:
        return 4
    if op.op in ("ADD", "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "PAD", "CONCATENATION", "SOFTMAX", "DEQUANTIZE"):
        return 2 if x == "INT8" else 1
    if op.op == "QUANTIZE":
        return 2 if y == "INT16" else 1
    return 1  # RESHAPE


_OPTION_CLASSES = {
    "CONV_2D": Conv2DOptions, "DEPTHWISE_CONV_2D": DepthwiseConv2DOptions, "FULLY_CONNECTED": FullyConnectedOptions,
    "ADD": AddOptions, "AVERAGE_POOL_2D": Pool2DOptions, "MAX_POOL_2D": Pool2DOptions, "MEAN": MeanOptions,
    "RESHAPE": ReshapeOptions, "PAD": PadOptions, "CONCATENATION": ConcatenationOptions,
    "SOFTMAX": SoftmaxOptions, "QUANTIZE": type(None), "DEQUANTIZE": type(None),
}


def _act(code: str, where: str) -> int:
    if code not in ACTIVATION:
        raise TFLiteWriteError(f"{where} has the fused activation {code!r}, which has no TFLite code here.")
    return ACTIVATION[code]


def _pad(code: str, where: str) -> int:
    if code not in PADDING:
        raise TFLiteWriteError(f"{where} has padding {code!r}; TFLite knows SAME and VALID.")
    return PADDING[code]


def _builtin_options(op: Operator, where: str) -> tuple[str, Callable] | None:
    """The builtin-options table of one operator, field by field from its dataclass."""
    o = op.options
    if op.op == "CONV_2D":
        return options("Conv2DOptions", Padding=_pad(o.padding, where), StrideW=o.stride_w, StrideH=o.stride_h,
                       FusedActivationFunction=_act(o.activation, where), DilationWFactor=o.dilation_w,
                       DilationHFactor=o.dilation_h)
    if op.op == "DEPTHWISE_CONV_2D":
        return options("DepthwiseConv2DOptions", Padding=_pad(o.padding, where), StrideW=o.stride_w,
                       StrideH=o.stride_h, DepthMultiplier=o.depth_multiplier,
                       FusedActivationFunction=_act(o.activation, where), DilationWFactor=o.dilation_w,
                       DilationHFactor=o.dilation_h)
    if op.op == "FULLY_CONNECTED":
        return options("FullyConnectedOptions", FusedActivationFunction=_act(o.activation, where),
                       WeightsFormat=o.weights_format, KeepNumDims=bool(o.keep_num_dims))
    if op.op == "ADD":
        return options("AddOptions", FusedActivationFunction=_act(o.activation, where))
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return options("Pool2DOptions", Padding=_pad(o.padding, where), StrideW=o.stride_w, StrideH=o.stride_h,
                       FilterWidth=o.filter_w, FilterHeight=o.filter_h,
                       FusedActivationFunction=_act(o.activation, where))
    if op.op == "MEAN":
        return options("ReducerOptions", KeepDims=bool(o.keep_dims))
    if op.op == "RESHAPE":
        # with a shape tensor (what converters write) no options table; without one, runtimes that resize
        # (LiteRT) read the new shape from the options
        return None if len(op.inputs) > 1 and op.inputs[1] >= 0 else options("ReshapeOptions",
                                                                               NewShape=list(o.new_shape))
    if op.op == "PAD":
        return options("PadOptions")
    if op.op == "CONCATENATION":
        return options("ConcatenationOptions", Axis=o.axis, FusedActivationFunction=_act(o.activation, where))
    if op.op == "SOFTMAX":
        return options("SoftmaxOptions", Beta=float(o.beta))
    return None  # QUANTIZE, DEQUANTIZE: converters write no options table


def _shape(s) -> str:
    return f"[{', '.join(str(int(d)) for d in s)}]"


def _check_tensor(t: Tensor, i: int, name: str) -> None:
    where = f"{name}: tensor {i} ({t.name!r})"
    if t.index != i:
        raise TFLiteWriteError(f"{where} says it is tensor {t.index}; tensors must be numbered by position.")
    if t.dtype not in _TENSOR_TYPES:
        raise TFLiteWriteError(f"{where} has type {t.dtype!r}, which is not a TFLite tensor type.")
    if any(int(d) < 0 for d in t.shape):
        raise TFLiteWriteError(f"{where} has shape {_shape(t.shape)} with a negative dimension.")
    q = t.quantization
    if q is not None:
        n = np.asarray(q.scale).size
        if n == 0 or np.asarray(q.zero_point).size != n:
            raise TFLiteWriteError(f"{where} has {n} quantization scales and {np.asarray(q.zero_point).size} "
                                   "zero points; they must be equally many, at least one.")
        if n > 1 and not (0 <= q.quantized_dimension < len(t.shape) and t.shape[q.quantized_dimension] == n):
            raise TFLiteWriteError(f"{where} of shape {_shape(t.shape)} has {n} per-channel scales along axis "
                                   f"{q.quantized_dimension}; that axis must have {n} entries.")
    if t.data is not None:
        if t.dtype not in _NP:
            raise TFLiteWriteError(f"{where} holds constant data of type {t.dtype}, which tinytrain does not write.")
        arr = np.asarray(t.data)
        count = int(np.prod(t.shape)) if t.shape else 1
        if arr.size != count:
            raise TFLiteWriteError(f"{where} of shape {_shape(t.shape)} holds {arr.size} values instead of "
                                   f"{count}.")
        cast = arr.astype(_NP[t.dtype])
        if np.issubdtype(cast.dtype, np.integer) and not np.array_equal(cast, arr):
            raise TFLiteWriteError(f"{where} holds values that do not fit its type {t.dtype}.")


def _const_values(model: TFLiteModel, idx: int) -> np.ndarray | None:
    if idx < 0 or idx >= len(model.tensors) or model.tensors[idx].data is None:
        return None
    return np.asarray(model.tensors[idx].data).astype(np.int64)


def _check_operator(model: TFLiteModel, op: Operator, i: int, name: str) -> None:
    where = f"{name}: operator {i} ({op.op})"
    if op.index != i:
        raise TFLiteWriteError(f"{where} says it is operator {op.index}; operators must be numbered by position.")
    if op.op not in _OPTION_CLASSES:
        raise TFLiteWriteError(f"{where} is not an operator tinytrain writes ({', '.join(_OPTION_CLASSES)}).")
    n = len(model.tensors)
    if not op.inputs or not op.outputs:
        raise TFLiteWriteError(f"{where} has {len(op.inputs)} inputs and {len(op.outputs)} outputs.")
    for k, idx in enumerate(op.inputs + op.outputs):
        if not (0 <= idx < n or (idx == -1 and 0 < k < len(op.inputs))):
            raise TFLiteWriteError(f"{where} names tensor {idx}, but the model has {n} tensors.")
    if not isinstance(op.options, _OPTION_CLASSES[op.op]):
        want = _OPTION_CLASSES[op.op].__name__
        raise TFLiteWriteError(f"{where} has options of type {type(op.options).__name__} instead of "
                               f"{'none' if want == 'NoneType' else want}.")
    o = op.options
    # options the reader derives from tensors must agree with them, or the file would read back differently
    if op.op == "MEAN":
        axis = _const_values(model, op.inputs[1]) if len(op.inputs) > 1 else None
        rank = len(model.tensors[op.inputs[0]].shape)
        got = None if axis is None else tuple(sorted({int(a) % max(rank, 1) for a in axis.reshape(-1)}))
        if got != tuple(o.axis):
            raise TFLiteWriteError(f"{where} has options for axes {list(o.axis)} but its axis tensor holds "
                                   f"{'nothing constant' if got is None else list(got)}.")
    elif op.op == "PAD":
        p = _const_values(model, op.inputs[1]) if len(op.inputs) > 1 else None
        got = None if p is None or p.size % 2 else tuple((int(a), int(b)) for a, b in p.reshape(-1, 2))
        if got != tuple(tuple(ab) for ab in o.paddings):
            raise TFLiteWriteError(f"{where} has options for paddings {list(o.paddings)} but its paddings tensor "
                                   f"holds {'nothing constant' if got is None else list(got)}.")
    elif op.op == "RESHAPE":
        y = model.tensors[op.outputs[0]].shape
        if tuple(o.new_shape) != tuple(y):
            raise TFLiteWriteError(f"{where} has options for shape {_shape(o.new_shape)} but its output tensor "
                                   f"has shape {_shape(y)}.")
        s = _const_values(model, op.inputs[1]) if len(op.inputs) > 1 else None
        if s is not None:
            want = s.reshape(-1).copy()
            if np.count_nonzero(want == -1) == 1 and np.prod(want[want != -1]) > 0:
                want[want == -1] = int(np.prod(y)) // int(np.prod(want[want != -1]))
            if tuple(int(v) for v in want) != tuple(y):
                raise TFLiteWriteError(f"{where}: its shape tensor holds {_shape(s.reshape(-1))} but its output "
                                       f"tensor has shape {_shape(y)}.")
    if op.padding is not None and op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
        xs = model.tensors[op.inputs[0]].shape
        if op.op.endswith("POOL_2D"):
            kh, kw = o.filter_h, o.filter_w
        else:
            ws = model.tensors[op.inputs[1]].shape
            kh, kw = (ws[1], ws[2]) if len(ws) == 4 else (0, 0)
        if len(xs) == 4 and min(o.stride_h, o.stride_w) >= 1 and o.padding in PADDING and kh:
            want = compute_padding(xs[1], xs[2], kh, kw, o.stride_h, o.stride_w, o.padding)
            if op.padding != want:
                raise TFLiteWriteError(
                    f"{where} has explicit padding {dataclasses.astuple(op.padding)} but a TFLite file stores only "
                    f"{o.padding}, which gives {dataclasses.astuple(want)} here.")


def _expected_output_shape(m: TFLiteModel, op: Operator) -> tuple[int, ...] | None:
    """The output shape the operator's inputs and options give (TFLite Micro never resizes outputs: it
    trusts the file). None where the shape is free (RESHAPE keeps the element count: the reader checks)."""
    x = m.tensors[op.inputs[0]].shape
    o = op.options
    if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        w = m.tensors[op.inputs[1]].shape
        oc = w[0] if op.op == "CONV_2D" else w[3]
        return (x[0], output_size(x[1], w[1], o.stride_h, o.padding, o.dilation_h),
                output_size(x[2], w[2], o.stride_w, o.padding, o.dilation_w), oc)
    if op.op in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        return (x[0], output_size(x[1], o.filter_h, o.stride_h, o.padding),
                output_size(x[2], o.filter_w, o.stride_w, o.padding), x[3])
    if op.op == "FULLY_CONNECTED":
        rows, k = m.tensors[op.inputs[1]].shape
        return (*x[:-1], rows) if o.keep_num_dims else (int(np.prod(x)) // k, rows)
    if op.op == "MEAN":
        if o.keep_dims:
            return tuple(1 if i in o.axis else d for i, d in enumerate(x))
        return tuple(d for i, d in enumerate(x) if i not in o.axis)
    if op.op == "PAD":
        return tuple(d + a + b for d, (a, b) in zip(x, o.paddings))
    if op.op == "CONCATENATION":
        shapes = [m.tensors[i].shape for i in op.inputs]
        for s in shapes:
            if len(s) != len(x) or any(s[d] != x[d] for d in range(len(x)) if d != o.axis):
                raise TFLiteWriteError(f"{m.path}: operator {op.index} (CONCATENATION) joins shapes {_shape(x)} "
                                       f"and {_shape(s)}, which differ outside axis {o.axis}.")
        return tuple(sum(s[d] for s in shapes) if d == o.axis else x[d] for d in range(len(x)))
    if op.op in ("ADD", "SOFTMAX", "QUANTIZE", "DEQUANTIZE"):
        return tuple(x)
    return None


def _check_output_shapes(m: TFLiteModel, name: str) -> None:
    for op in m.operators:
        want = _expected_output_shape(m, op)
        y = m.tensors[op.outputs[0]]
        if want is not None and tuple(y.shape) != tuple(want):
            raise TFLiteWriteError(
                f"{name}: operator {op.index} ({op.op}): its output tensor {y.index} ({y.name!r}) has shape "
                f"{_shape(y.shape)} but its inputs give {_shape(want)}.")


def serialize_tflite(model: TFLiteModel, name: str | None = None) -> bytes:
    """The .tflite bytes of `model`; reading them with parse_tflite gives an equal TFLiteModel (up to
    `path`). `name` (default model.path) only labels error messages. Raises TFLiteWriteError."""
    name = name or model.path or "<model>"
    for i, t in enumerate(model.tensors):
        _check_tensor(t, i, name)
    if not model.operators:
        raise TFLiteWriteError(f"{name}: the model has no operators.")
    for i, op in enumerate(model.operators):
        _check_operator(model, op, i, name)
    for what, idxs in (("input", model.inputs), ("output", model.outputs)):
        for idx in idxs:
            if not 0 <= idx < len(model.tensors):
                raise TFLiteWriteError(f"{name}: graph {what} {idx} is not one of the {len(model.tensors)} tensors.")

    mw = ModelWriter(model.description)
    for t in model.tensors:
        q = t.quantization
        mw.tensor(t.shape, t.dtype, scale=None if q is None else q.scale, zero_point=None if q is None else
                  q.zero_point, quantized_dimension=0 if q is None else int(q.quantized_dimension),
                  data=t.data, name=t.name)
    for i, op in enumerate(model.operators):
        mw.op(op.op, list(op.inputs), list(op.outputs), _builtin_options(op, f"{name}: operator {i} ({op.op})"),
              version=op_version(model, op))
    data = mw.finish(list(model.inputs), list(model.outputs))

    try:  # what tinytrain writes, it must be able to read
        back = parse_tflite(data, name)
    except TinytrainError as e:
        raise TFLiteWriteError(str(e)) from None
    _check_output_shapes(back, name)
    return data


def write_tflite(model: TFLiteModel, path: str | Path) -> Path:
    """Writes `model` to `path` (atomically: a reader never sees half a file). Raises TFLiteWriteError."""
    path = Path(path)
    data = serialize_tflite(model, str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as e:
        raise TFLiteWriteError(f"{path}: cannot write the file ({e.strerror or e}).") from None
    return path


def replace_tensors(model: TFLiteModel, changes: Mapping[int, Mapping | Tensor]) -> TFLiteModel:
    """A copy of `model` with some tensors changed: {index: Tensor} or {index: {field: value}}, e.g.
    {w: {"data": new_w, "shape": new_w.shape, "quantization": q}}; an index equal to the tensor count
    appends a tensor. The consumers map is recomputed; the model is not checked (serialize_tflite does)."""
    tensors = list(model.tensors)
    for idx in sorted(changes):
        ch = changes[idx]
        if idx == len(tensors) and isinstance(ch, Tensor):
            tensors.append(ch)
        elif 0 <= idx < len(tensors):
            tensors[idx] = ch if isinstance(ch, Tensor) else dataclasses.replace(tensors[idx], **ch)
        else:
            raise TFLiteWriteError(f"tensor {idx} does not exist (the model has {len(tensors)} tensors).")
    return with_operators(dataclasses.replace(model, tensors=tuple(tensors)), model.operators)


def with_operators(model: TFLiteModel, operators) -> TFLiteModel:
    """A copy of `model` with these operators and its consumers map recomputed from them."""
    consumers: dict[int, list[int]] = {}
    for op in operators:
        for t in op.inputs:
            if t >= 0:
                consumers.setdefault(t, []).append(op.index)
    return dataclasses.replace(model, operators=tuple(operators),
                               consumers={k: tuple(v) for k, v in consumers.items()})
