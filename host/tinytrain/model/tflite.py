"""Imports an int8 TFLite model (tflite_reader's parse) as a tinytrain graph.

Every supported TFLite op becomes the node that computes it bit for bit as TFLite Micro does
(docs/tflite_ops.md):

    CONV_2D                  Conv2D (any kernel, a stride per axis, TFLite's SAME/VALID padding)
    DEPTHWISE_CONV_2D        Conv2D with groups = channels (multiplier 1), or an ordinary Conv2D
                             (any multiplier on one input channel)
    FULLY_CONNECTED          Dense (per-tensor weight scales broadcast per channel); a 1x1 CONV_2D on a
                             1x1 input is one too
    ADD, CONCATENATION       Add, Concat
    AVERAGE_POOL_2D          AveragePool2D;  MAX_POOL_2D  MaxPool2D
    MEAN over H and W        GlobalAveragePool with TFLite's multiplier
    PAD                      Pad;  QUANTIZE int8 -> int8  Requantize
    RESHAPE                  nothing where it only flattens for a FULLY_CONNECTED or shapes the output,
                             else Reshape
    a fused activation       nothing when the output's quantization already ends where it does (the
                             usual case), else a Clamp node after the op

At the edges: a float input's QUANTIZE, a float output's DEQUANTIZE and a final SOFTMAX stay on
the host (model.metadata["tflite"] records them); training uses the logits before the SOFTMAX.
The metadata also maps each weighted node to its TFLite tensors, for `tinytrain export`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model, ModelError, QuantParams, TensorSpec
from tinytrain.model.tflite_reader import Operator, Tensor, TFLiteModel, read_tflite
from tinytrain.numerics.tflite_kernels import activation_range
from tinytrain.ops import (
    Add,
    AveragePool2D,
    Clamp,
    Concat,
    Conv2D,
    Dense,
    GlobalAveragePool,
    MaxPool2D,
    Pad,
    Requantize,
    Reshape,
)


class TFLiteImportError(TinytrainError):
    """A TFLite model the importer cannot express."""


def import_tflite(path: str | Path) -> Model:
    """The model of a .tflite file (read_tflite's one-sentence errors for files it refuses)."""
    path = Path(path)
    m = read_tflite(path)
    model = _Importer(m, path.stem).run()
    model.metadata["tflite"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return model


def hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A batch-1 TFLite activation shape as (H, W, C): [1,H,W,C]; [1,N] -> (1,1,N); [1,A,B] -> (A,B,1)."""
    if not shape or shape[0] != 1 or len(shape) > 4:
        raise TFLiteImportError(f"an activation has shape {list(shape)}; tinytrain needs batch 1 and at most 4 axes.")
    rest = tuple(int(s) for s in shape[1:])
    if len(rest) == 3:
        return rest
    if len(rest) == 2:
        return rest[0], rest[1], 1
    if len(rest) == 1:
        return 1, 1, rest[0]
    return 1, 1, 1


class _Importer:
    def __init__(self, m: TFLiteModel, name: str):
        self.m = m
        self.name = name
        self.tensors: dict[str, TensorSpec] = {}
        self.ops: list = []
        self.alias: dict[int, str] = {}  # TFLite tensor index -> IR tensor name
        self.meta: dict = {"file": Path(m.path).name, "params": {}, "input": None, "output": None, "softmax": None,
                           "tensors": {}}

    # ---------------------------------------------------------------- tensors

    def t(self, idx: int) -> Tensor:
        return self.m.tensors[idx]

    def name_of(self, idx: int) -> str:
        if idx in self.alias:
            return self.alias[idx]
        t = self.t(idx)
        name = f"t{idx}"
        if name not in self.tensors:
            self.tensors[name] = TensorSpec(name, hwc(t.shape), QuantParams(t.scale, t.zero_point))
            self.meta["tensors"][name] = idx
        return name

    def where(self, op: Operator) -> str:
        return f"{self.name}: operator {op.index} ({op.op})"

    def consumers(self, idx: int) -> list[Operator]:
        return [self.m.operators[i] for i in self.m.consumers.get(idx, ())]

    # ---------------------------------------------------------------- the walk

    def run(self) -> Model:
        m = self.m
        graph_in, graph_out = m.inputs[0], m.outputs[0]
        logits = self._logits(graph_out)
        skip = set()
        x = self.t(graph_in)
        if x.dtype == "FLOAT32":  # QUANTIZE at the input: the host quantizes, the model starts after it
            (q,) = self.consumers(graph_in)
            skip.add(q.index)
            self.meta["input"] = {"dtype": "float32", "scale": x.scale if x.quantization else None,
                                  "quantize": {"scale": self.t(q.outputs[0]).scale,
                                               "zero_point": self.t(q.outputs[0]).zero_point}}
            model_input = self.name_of(q.outputs[0])
        else:
            model_input = self.name_of(graph_in)
            self.meta["input"] = {"dtype": "int8"}
        for op in m.operators:
            if op.index in skip or op.index in self._edge_ops:
                continue
            getattr(self, f"_{op.op.lower()}")(op)
        output = self.name_of(logits)
        # Images mean 0..1 unless `tinytrain import --pixel-scale/--pixel-offset` says otherwise.
        model = Model(self.name, self.tensors, self.ops, model_input, output,
                      {"tflite": self.meta, "pixel_to_real": [1 / 255, 0.0]})
        try:
            model.validate()
        except ModelError as exc:
            raise TFLiteImportError(f"{self.name}: {exc}") from exc
        return model

    def _logits(self, graph_out: int) -> int:
        """The tensor training ends in: the graph output, before a DEQUANTIZE, a SOFTMAX and any RESHAPE
        that only reshapes the result (they run on the host)."""
        self._edge_ops: set[int] = set()
        idx = graph_out
        prod = self.m.producer(idx)
        if prod is not None and prod.op == "DEQUANTIZE":
            self._edge_ops.add(prod.index)
            self.meta["output"] = {"dtype": "float32"}
            idx = prod.inputs[0]
            prod = self.m.producer(idx)
        else:
            self.meta["output"] = {"dtype": "int8"}
        self.meta["output"]["tensor"] = idx  # the int8 output (after any SOFTMAX)
        if prod is not None and prod.op == "SOFTMAX":
            self._edge_ops.add(prod.index)
            y = self.t(idx)
            self.meta["softmax"] = {"beta": prod.options.beta, "scale": y.scale, "zero_point": y.zero_point}
            idx = prod.inputs[0]
            prod = self.m.producer(idx)
        while prod is not None and prod.op == "RESHAPE" and len(self.m.consumers.get(idx, ())) <= 1:
            self._edge_ops.add(prod.index)
            idx = prod.inputs[0]
            prod = self.m.producer(idx)
        if prod is None:
            raise TFLiteImportError(f"{self.name}: the output is not computed by any operator.")
        self.meta["output"]["logits"] = idx
        shape = hwc(self.t(idx).shape)
        if shape[:2] != (1, 1):
            raise TFLiteImportError(f"{self.name}: the output before any SOFTMAX is a {shape[0]}x{shape[1]}x{shape[2]} "
                                    f"tensor; tinytrain trains classifiers, whose logits are one vector.")
        return idx

    # ---------------------------------------------------------------- ops

    def _activation(self, op: Operator, node_output: str, activation: str) -> None:
        """Nothing when the fused activation's bounds are the int8 range of the output's quantization,
        else a Clamp on the node's result."""
        y = self.t(op.outputs[0])
        lo, hi = activation_range(activation, y.scale, y.zero_point)
        if (lo, hi) == (-128, 127):
            return
        pre = f"{node_output}.pre"
        spec = self.tensors.pop(node_output)
        self.tensors[pre] = TensorSpec(pre, spec.shape, spec.qparams)
        self.tensors[node_output] = spec
        self.ops[-1].output = pre
        self.ops.append(Clamp(f"clamp{op.index}", pre, node_output, lo, hi))

    def _weights(self, op: Operator, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """(bias int32 [channels], weight scales float32 [channels]) of a conv or dense op."""
        w = self.t(op.inputs[1])
        scales = np.asarray(w.quantization.scale, dtype=np.float32)
        if scales.size == 1:
            if int(w.quantization.zero_point[0]) != 0:
                raise TFLiteImportError(f"{self.where(op)}: its weights have zero point "
                                        f"{int(w.quantization.zero_point[0])}; tinytrain needs symmetric int8 weights.")
            scales = np.full(channels, scales[0], dtype=np.float32)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            bias = np.asarray(self.t(op.inputs[2]).data, dtype=np.int32).reshape(channels)
        else:
            bias = np.zeros(channels, dtype=np.int32)
        return bias, scales

    def _record(self, node, op: Operator, layout: str) -> None:
        self.meta["params"][node.name] = {"op": op.index, "weight": op.inputs[1],
                                          "bias": op.inputs[2] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None,
                                          "layout": layout}

    def _conv_2d(self, op: Operator) -> None:
        o = op.options
        w = np.asarray(self.t(op.inputs[1]).data, dtype=np.int8)  # [O, KH, KW, I]
        bias, scales = self._weights(op, w.shape[0])
        x, y = self.name_of(op.inputs[0]), self.name_of(op.outputs[0])
        p = op.padding
        if self._is_dense(op, w, x, y):
            node = Dense(f"fc{op.index}", x, y, w.reshape(w.shape[0], -1), bias, scales)
            self._record(node, op, "conv1x1")
        else:
            node = Conv2D(f"conv{op.index}", x, y, w, bias, scales, (o.stride_h, o.stride_w), 1,
                          (p.top, p.bottom, p.left, p.right))
            self._record(node, op, "conv")
        self.ops.append(node)
        self._activation(op, y, o.activation)

    def _is_dense(self, op: Operator, w: np.ndarray, x: str, y: str) -> bool:
        """A 1x1 conv on a 1x1 input is a dense layer (which a new head can replace)."""
        return w.shape[1:3] == (1, 1) and self.tensors[x].shape[:2] == (1, 1) and self.tensors[y].shape[:2] == (1, 1)

    def _depthwise_conv_2d(self, op: Operator) -> None:
        o = op.options
        w = np.asarray(self.t(op.inputs[1]).data, dtype=np.int8)  # [1, KH, KW, C * M]
        bias, scales = self._weights(op, w.shape[3])
        x, y = self.name_of(op.inputs[0]), self.name_of(op.outputs[0])
        p = op.padding
        cin = self.tensors[x].shape[2]
        groups = cin if o.depth_multiplier == 1 else 1  # M outputs of one input channel: an ordinary conv
        node = Conv2D(f"dw{op.index}" if groups > 1 else f"conv{op.index}", x, y, np.ascontiguousarray(
            w.transpose(3, 1, 2, 0)), bias, scales, (o.stride_h, o.stride_w), groups,
                      (p.top, p.bottom, p.left, p.right))
        self._record(node, op, "depthwise")
        self.ops.append(node)
        self._activation(op, y, o.activation)

    def _fully_connected(self, op: Operator) -> None:
        w = np.asarray(self.t(op.inputs[1]).data, dtype=np.int8)  # [N, K]
        bias, scales = self._weights(op, w.shape[0])
        x, y = self.name_of(op.inputs[0]), self.name_of(op.outputs[0])
        node = Dense(f"fc{op.index}", x, y, w, bias, scales)
        self._record(node, op, "fc")
        self.ops.append(node)
        self._activation(op, y, op.options.activation)

    def _add(self, op: Operator) -> None:
        a, b = (self.name_of(i) for i in op.inputs[:2])
        y = self.name_of(op.outputs[0])
        self.ops.append(Add(f"add{op.index}", (a, b), y))
        self._activation(op, y, op.options.activation)

    def _pool(self, op: Operator, cls) -> None:
        o, p = op.options, op.padding
        x, y = self.name_of(op.inputs[0]), self.name_of(op.outputs[0])
        prefix = "maxpool" if cls is MaxPool2D else "avgpool"
        self.ops.append(cls(f"{prefix}{op.index}", x, y, (o.filter_h, o.filter_w), (o.stride_h, o.stride_w),
                            (p.top, p.bottom, p.left, p.right)))
        self._activation(op, y, o.activation)

    def _max_pool_2d(self, op: Operator) -> None:
        self._pool(op, MaxPool2D)

    def _average_pool_2d(self, op: Operator) -> None:
        self._pool(op, AveragePool2D)

    def _mean(self, op: Operator) -> None:
        self.ops.append(GlobalAveragePool(f"mean{op.index}", self.name_of(op.inputs[0]), self.name_of(op.outputs[0]),
                                          "tflite"))

    def _pad(self, op: Operator) -> None:
        pads = op.options.paddings
        if len(pads) != 4 or pads[3] != (0, 0):
            raise TFLiteImportError(f"{self.where(op)} pads {list(pads)}; tinytrain pads height and width only.")
        (t, b), (left, r) = pads[1], pads[2]
        self.ops.append(Pad(f"pad{op.index}", self.name_of(op.inputs[0]), self.name_of(op.outputs[0]),
                            (t, b, left, r)))

    def _concatenation(self, op: Operator) -> None:
        y = self.name_of(op.outputs[0])
        self.ops.append(Concat(f"concat{op.index}", tuple(self.name_of(i) for i in op.inputs), y))
        self._activation(op, y, op.options.activation)

    def _quantize(self, op: Operator) -> None:  # int8 -> int8 inside the graph (the float input one is skipped)
        self.ops.append(Requantize(f"requant{op.index}", self.name_of(op.inputs[0]), self.name_of(op.outputs[0])))

    def _reshape(self, op: Operator) -> None:
        x = self.name_of(op.inputs[0])
        if all(c.op == "FULLY_CONNECTED" for c in self.consumers(op.outputs[0])):
            self.alias[op.outputs[0]] = x  # a dense layer flattens its input itself
            return
        y = self.name_of(op.outputs[0])
        self.ops.append(Reshape(f"reshape{op.index}", x, y, self.tensors[y].shape))

    def _softmax(self, op: Operator) -> None:
        raise TFLiteImportError(f"{self.where(op)} is not the last operator; SOFTMAX is supported only on the output.")

    def _dequantize(self, op: Operator) -> None:
        raise TFLiteImportError(f"{self.where(op)} is supported only as the output of the graph.")


# ---------------------------------------------------------------- the edges the host runs


def input_from_array(model: Model, a: np.ndarray) -> np.ndarray:
    """The model's int8 input from an array holding the input tensor (with or without the batch
    axis): int8 as it is, or float32 for a model whose TFLite input is float (quantized as TFLite's
    QUANTIZE does)."""
    a = np.asarray(a)
    shape = model.input_spec.shape
    meta = model.metadata.get("tflite", {}).get("input") or {"dtype": "int8"}
    if a.size != int(np.prod(shape)):
        raise TFLiteImportError(f"the input array has shape {list(a.shape)}; {model.name} takes "
                                f"{'x'.join(map(str, shape))} values.")
    if meta["dtype"] == "float32":
        if a.dtype.kind != "f":
            raise TFLiteImportError(f"{model.name} takes a float32 input tensor, not {a.dtype}.")
        from tinytrain.numerics.tflite_kernels import quantize

        q = meta["quantize"]
        return quantize(a.astype(np.float32), q["scale"], q["zero_point"]).reshape(shape)
    if a.dtype != np.int8:
        raise TFLiteImportError(f"{model.name} takes an int8 input tensor, not {a.dtype}.")
    return a.reshape(shape)


def outputs_from_logits(model: Model, logits: np.ndarray) -> dict:
    """What the model file's output tensor holds for these logits: the int8 output (after a final
    SOFTMAX, computed as TFLite Micro does), its scale and zero point, and the float values a
    DEQUANTIZE output gives."""
    from tinytrain.numerics import tflite_kernels as TK

    q = model.tensors[model.output].qparams
    meta = model.metadata.get("tflite", {})
    out, scale, zp = np.asarray(logits, np.int8).reshape(-1), q.scale, q.zero_point
    sm = meta.get("softmax")
    if sm:
        out = TK.softmax_int8(out, q.scale, q.zero_point, sm["scale"], sm["zero_point"], sm["beta"]).reshape(-1)
        scale, zp = sm["scale"], sm["zero_point"]
    result = {"output": out, "scale": scale, "zero_point": zp}
    if (meta.get("output") or {}).get("dtype") == "float32":
        result["output_float"] = TK.dequantize(out, scale, zp)
    return result
