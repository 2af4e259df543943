"""The forward graph of a real-quantized int8 model (batch 1, HWC activations).

Activations are int8 with one scale and zero point per tensor. Weights are int8,
symmetric, one scale per output channel. Biases are int32 with scale
input_scale * weight_scale[c]. BatchNorm is folded; ReLU/ReLU6 are folded into
the output quantization range (the clamp to [-128, 127]).

This module knows no op: each op kind defines its node class (a `Node`
subclass) in its own module under tinytrain.ops, next to its compile rules.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from tinytrain.errors import TinytrainError


class ModelError(TinytrainError):
    """A model that does not follow the IR's rules."""


@dataclass(frozen=True)
class QuantParams:
    scale: float
    zero_point: int

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return self.scale * (np.asarray(q, dtype=np.float64) - self.zero_point)


Shape = tuple[int, int, int]  # (H, W, C)


@dataclass
class TensorSpec:
    name: str
    shape: Shape
    qparams: QuantParams

    @property
    def size(self) -> int:
        h, w, c = self.shape
        return h * w * c


class Node:
    """One op of the graph. Subclasses (dataclasses in tinytrain.ops) have `name` and `output` fields
    and either an `input` field or an `inputs` field, and say what they compute through these methods."""

    op_type: ClassVar[str] = ""  # the name in a .ttm file
    name: str
    output: str
    inputs: tuple[str, ...]  # a field, or a property (UnaryNode)

    def output_shape(self, shapes: list[Shape]) -> Shape:
        """The output shape for these input shapes; raises ModelError when they do not fit the op."""
        raise NotImplementedError

    def check(self, model: "Model") -> None:
        """Dtypes and parameter shapes; raises ModelError with one clear sentence."""

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        """The node as a .ttm op entry (its arrays go into `arrays` under names the entry holds)."""
        raise NotImplementedError

    @classmethod
    def from_json(cls, d: dict, array) -> "Node":
        raise NotImplementedError


class UnaryNode(Node):
    """A node with one input (its `input` field)."""

    input: str

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.input,)


class WeightedNode(UnaryNode):
    """A node with int8 weights ([out, ...]), int32 biases and per-output-channel weight scales: the
    layers a sparse scheme trains (indexed in forward order)."""

    weight: np.ndarray
    bias: np.ndarray
    weight_scales: np.ndarray

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def in_channels(self) -> int:
        raise NotImplementedError

    @property
    def kind(self) -> str:
        """What the layer is, in reports (conv, pointwise, depthwise, dense)."""
        raise NotImplementedError

    @property
    def update_channels(self) -> int:
        """What a scheme's update ratio counts: the weights' input channels (their channels, for a
        depthwise conv, whose weight slice is a set of whole channels)."""
        return self.in_channels

    def _check_params(self) -> None:
        label = f"{self.kind} {self.name}"
        if not all(isinstance(a, np.ndarray) for a in (self.weight, self.bias, self.weight_scales)):
            raise ModelError(f"{label} has weights, biases or weight scales that are not arrays.")
        if self.weight.size == 0:
            raise ModelError(f"{label} has no weights.")
        if np.asarray(self.weight_scales).dtype.kind != "f":
            raise ModelError(f"{label} has weight scales that are not numbers.")
        if self.weight.dtype != np.int8 or self.bias.dtype != np.int32:
            raise ModelError(f"{label} needs int8 weights and int32 biases.")
        n = self.out_channels
        if self.bias.shape != (n,) or np.asarray(self.weight_scales).shape != (n,):
            raise ModelError(f"{label} needs {n} biases and {n} weight scales.")
        scales = np.asarray(self.weight_scales, dtype=np.float64)
        if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
            raise ModelError(f"{label} has a weight scale that is not a positive number.")

    def _params_to_json(self, d: dict, arrays: dict[str, np.ndarray]) -> dict:
        for key in ("weight", "bias", "weight_scales"):
            ref = f"{self.name}.{key}"
            arrays[ref] = getattr(self, key)
            d[key] = ref
        return d


@dataclass
class Model:
    name: str
    tensors: dict[str, TensorSpec]
    ops: list[Node]
    input: str
    output: str
    metadata: dict = field(default_factory=dict)

    @property
    def weighted_ops(self) -> list[WeightedNode]:
        """The layers with weights in forward order: the scheme's layer indices."""
        return [op for op in self.ops if isinstance(op, WeightedNode)]

    @property
    def num_classes(self) -> int:
        return self.tensors[self.output].shape[2]

    @property
    def input_spec(self) -> TensorSpec:
        return self.tensors[self.input]

    def op(self, name: str) -> Node:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def producer(self) -> dict[str, Node]:
        return {op.output: op for op in self.ops}

    def consumers(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {name: [] for name in self.tensors}
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
        names = set()
        for op in self.ops:
            if op.name in names:
                raise ModelError(f"two ops are named {op.name}.")
            names.add(op.name)
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
            op.check(self)
            expected = op.output_shape([self.tensors[t].shape for t in op.inputs])
            if tuple(self.tensors[op.output].shape) != tuple(expected):
                raise ModelError(f"op {op.name} writes a {self.tensors[op.output].shape} tensor but computes "
                                 f"{tuple(expected)}.")
        if self.output not in defined:
            raise ModelError(f"the model output {self.output} is never produced.")


def with_input_size(model: Model, height: int, width: int | None = None) -> Model:
    """The same model at another input resolution: every tensor shape is re-derived from the
    input through the ops (weights are resolution-independent up to the global pool)."""
    width = height if width is None else width
    new = copy.deepcopy(model)
    c = new.tensors[new.input].shape[2]
    new.tensors[new.input].shape = (height, width, c)
    for op in new.ops:
        try:
            shape = op.output_shape([new.tensors[t].shape for t in op.inputs])
        except ModelError as exc:
            raise ModelError(f"a {height}x{width} input does not fit op {op.name} ({exc})") from exc
        if min(shape) < 1:
            raise ModelError(f"a {height}x{width} input is too small for op {op.name}.")
        new.tensors[op.output].shape = shape
    new.metadata = dict(new.metadata, resolution=[height, width])
    new.validate()
    return new


def _check_tensor(t: TensorSpec) -> None:
    shape, qp = t.shape, t.qparams
    if (not isinstance(shape, tuple) or len(shape) != 3
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise ModelError(f"tensor {t.name} has shape {shape}; a tensor is H x W x C with every size at least 1.")
    if not (isinstance(qp.scale, float) and np.isfinite(qp.scale) and qp.scale > 0):
        raise ModelError(f"tensor {t.name} has scale {qp.scale}; a scale is a finite number above 0.")
    if not -128 <= qp.zero_point <= 127:
        raise ModelError(f"tensor {t.name} has zero point {qp.zero_point}, outside the int8 range.")


def json_int(v) -> int:
    """A whole number from a model file (not a float, string or bool that int() would quietly turn
    into one); ValueError otherwise."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{v!r} is not an integer")
    return int(v)


def conv_output_size(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1
