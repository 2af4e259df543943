"""The forward graph of a real-quantized int8 model (batch 1, HWC activations).

Activations are int8 with one scale and zero point per tensor. Weights are int8,
symmetric, one scale per output channel, laid out [out, kh, kw, in/groups]
(depthwise: [channels, kh, kw, 1]). Biases are int32 with scale
input_scale * weight_scale[c]. BatchNorm is folded; ReLU/ReLU6 are folded into
the output quantization range (the clamp to [-128, 127]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from .errors import TinytrainError


class ModelError(TinytrainError):
    """A model that does not follow the IR's rules."""


@dataclass(frozen=True)
class QuantParams:
    scale: float
    zero_point: int

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(q, dtype=np.float64) - self.zero_point)


@dataclass
class TensorSpec:
    name: str
    shape: tuple[int, int, int]  # (H, W, C)
    qparams: QuantParams

    @property
    def size(self) -> int:
        h, w, c = self.shape
        return h * w * c


@dataclass
class Conv2D:
    """conv2d with symmetric zero-point padding (PyTorch style), any groups."""

    name: str
    input: str
    output: str
    weight: np.ndarray  # int8 [O, KH, KW, I/groups]
    bias: np.ndarray  # int32 [O]
    weight_scales: np.ndarray  # float32 [O]
    stride: int = 1
    groups: int = 1
    padding: int | None = None  # None = kernel // 2 ("same" for odd kernels, stride 1)

    op_type = "conv2d"

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[1]), int(self.weight.shape[2])

    @property
    def pad(self) -> int:
        return self.kernel[0] // 2 if self.padding is None else self.padding

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[3]) * self.groups

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.groups == 1 and self.stride == 1 and self.pad == 0

    @property
    def kind(self) -> str:
        if self.is_depthwise:
            return "depthwise"
        if self.is_pointwise:
            return "pointwise"
        return "conv"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass
class Dense:
    """Fully connected layer (the classifier): flattens its (H, W, C) input in HWC order."""

    name: str
    input: str
    output: str
    weight: np.ndarray  # int8 [N, K]
    bias: np.ndarray  # int32 [N]
    weight_scales: np.ndarray  # float32 [N]

    op_type = "dense"
    kind = "dense"
    groups = 1

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


@dataclass
class Add:
    """Requantizing residual add (TFLite int8 ADD)."""

    name: str
    inputs: tuple[str, str]
    output: str

    op_type = "add"
    kind = "add"


@dataclass
class GlobalAveragePool:
    """Mean over H and W, requantized to the output's parameters (TFLite MEAN)."""

    name: str
    input: str
    output: str

    op_type = "avgpool"
    kind = "avgpool"

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


Op = Union[Conv2D, Dense, Add, GlobalAveragePool]
WeightedOp = Union[Conv2D, Dense]


@dataclass
class Model:
    name: str
    tensors: dict[str, TensorSpec]
    ops: list[Op]
    input: str
    output: str
    metadata: dict = field(default_factory=dict)

    @property
    def weighted_ops(self) -> list[WeightedOp]:
        """Convolutions and dense layers in forward order: the scheme's layer indices."""
        return [op for op in self.ops if isinstance(op, (Conv2D, Dense))]

    @property
    def num_classes(self) -> int:
        return self.tensors[self.output].shape[2]

    @property
    def input_spec(self) -> TensorSpec:
        return self.tensors[self.input]

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def producer(self) -> dict[str, Op]:
        return {op.output: op for op in self.ops}

    def consumers(self) -> dict[str, list[Op]]:
        out: dict[str, list[Op]] = {name: [] for name in self.tensors}
        for op in self.ops:
            for t in op.inputs:
                out[t].append(op)
        return out

    def validate(self) -> None:
        """Checks shapes, dtypes, values and ordering; raises ModelError with one clear sentence."""
        for t in self.tensors.values():
            _check_tensor(t)
        if self.input not in self.tensors:
            raise ModelError(f"the model input {self.input} is not one of its tensors.")
        defined = {self.input}
        for op in self.ops:
            _check_op_values(op)
            for t in op.inputs:
                if t not in self.tensors:
                    raise ModelError(f"op {op.name} reads unknown tensor {t}.")
                if t not in defined:
                    raise ModelError(f"op {op.name} reads {t} before it is produced.")
            if op.output not in self.tensors:
                raise ModelError(f"op {op.name} writes unknown tensor {op.output}.")
            if op.output in defined:
                raise ModelError(f"tensor {op.output} is produced twice.")
            defined.add(op.output)
            _check_op_shapes(self, op)
        if self.output not in defined:
            raise ModelError(f"the model output {self.output} is never produced.")


def with_input_size(model: Model, height: int, width: int | None = None) -> Model:
    """The same model at another input resolution: every tensor shape is re-derived from the
    input through the ops (weights are resolution-independent up to the global pool)."""
    import copy

    width = height if width is None else width
    new = copy.deepcopy(model)
    c = new.tensors[new.input].shape[2]
    new.tensors[new.input].shape = (height, width, c)
    for op in new.ops:
        if isinstance(op, Conv2D):
            h, w, _ = new.tensors[op.input].shape
            k = op.kernel[0]
            shape = (conv_output_size(h, k, op.stride, op.pad), conv_output_size(w, k, op.stride, op.pad),
                     op.out_channels)
        elif isinstance(op, Add):
            shape = new.tensors[op.inputs[0]].shape
        elif isinstance(op, GlobalAveragePool):
            shape = (1, 1, new.tensors[op.input].shape[2])
        else:
            if new.tensors[op.input].size != op.in_channels:
                raise ModelError(f"dense {op.name} cannot take a {height}x{width} input (it needs a pooled input).")
            shape = (1, 1, op.out_channels)
        if min(shape) < 1:
            raise ModelError(f"a {height}x{width} input is too small for op {op.name}.")
        new.tensors[op.output].shape = shape
    new.metadata = dict(new.metadata, resolution=[height, width])
    new.validate()
    return new


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def _check_tensor(t: TensorSpec) -> None:
    shape, qp = t.shape, t.qparams
    if (not isinstance(shape, tuple) or len(shape) != 3
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise ModelError(f"tensor {t.name} has shape {shape}; a tensor is H x W x C with every size at least 1.")
    if not (isinstance(qp.scale, float) and np.isfinite(qp.scale) and qp.scale > 0):
        raise ModelError(f"tensor {t.name} has scale {qp.scale}; a scale is a finite number above 0.")
    if not -128 <= qp.zero_point <= 127:
        raise ModelError(f"tensor {t.name} has zero point {qp.zero_point}, outside the int8 range.")


def _check_op_values(op: Op) -> None:
    """Weights, biases and scales of a weighted op are arrays of the right rank, sizes and values."""
    if not isinstance(op, (Conv2D, Dense)):
        return
    arrays = (op.weight, op.bias, op.weight_scales)
    if not all(isinstance(a, np.ndarray) for a in arrays):
        raise ModelError(f"op {op.name} has weights, biases or weight scales that are not arrays.")
    rank = 4 if isinstance(op, Conv2D) else 2
    if op.weight.ndim != rank or op.weight.size == 0:
        raise ModelError(f"op {op.name} has weights of shape {op.weight.shape}; it needs {rank} non-empty dimensions.")
    n = op.weight.shape[0]
    if op.bias.shape != (n,) or op.weight_scales.shape != (n,):
        raise ModelError(f"op {op.name} has {n} output channels but biases {op.bias.shape} and weight scales "
                         f"{op.weight_scales.shape}.")
    if op.weight_scales.dtype.kind != "f" or not (np.isfinite(op.weight_scales).all() and (op.weight_scales > 0).all()):
        raise ModelError(f"op {op.name} has weight scales that are not finite numbers above 0.")
    if isinstance(op, Conv2D):
        for what, v, low in (("stride", op.stride, 1), ("groups", op.groups, 1), ("padding", op.pad, 0)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ModelError(f"conv {op.name} has {what} {v!r}; it must be an integer of at least {low}.")


def _check_op_shapes(model: Model, op: Op) -> None:
    t = model.tensors
    if isinstance(op, Conv2D):
        h, w, c = t[op.input].shape
        oh, ow, oc = t[op.output].shape
        kh, kw = op.kernel
        if op.weight.dtype != np.int8 or op.bias.dtype != np.int32:
            raise ModelError(f"conv {op.name} needs int8 weights and int32 biases.")
        if c != op.in_channels or oc != op.out_channels or c % op.groups or oc % op.groups:
            raise ModelError(f"conv {op.name} has channels {c}->{oc} but weights {op.weight.shape} with groups {op.groups}.")
        if kh != kw:
            raise ModelError(f"conv {op.name} has a non-square kernel {kh}x{kw}, which is not supported.")
        exp = (conv_output_size(h, kh, op.stride, op.pad), conv_output_size(w, kw, op.stride, op.pad))
        if (oh, ow) != exp:
            raise ModelError(f"conv {op.name} maps {h}x{w} to {oh}x{ow}, expected {exp[0]}x{exp[1]}.")
    elif isinstance(op, Dense):
        if t[op.input].size != op.in_channels or t[op.output].shape != (1, 1, op.out_channels):
            raise ModelError(f"dense {op.name} has weights {op.weight.shape} for input {t[op.input].shape}.")
        if op.weight.dtype != np.int8 or op.bias.dtype != np.int32:
            raise ModelError(f"dense {op.name} needs int8 weights and int32 biases.")
    elif isinstance(op, Add):
        a, b = (t[n].shape for n in op.inputs)
        if a != b or a != t[op.output].shape:
            raise ModelError(f"add {op.name} has mismatched shapes {a}, {b} -> {t[op.output].shape}.")
    elif isinstance(op, GlobalAveragePool):
        if t[op.output].shape != (1, 1, t[op.input].shape[2]):
            raise ModelError(f"pool {op.name} must map HxWxC to 1x1xC.")
