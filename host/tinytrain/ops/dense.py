"""Fully connected layer: the node and its rule (its kernels are the pointwise ones on one position)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, WeightedNode
from tinytrain.ir.program import Step, StepKind
from tinytrain.numerics import kernels as K
import tinytrain.ops.scratch as scratch
from tinytrain.ops.base import Emitter, Executor, geometry_fields, ident
from tinytrain.ops.weighted import WeightedRule, input_grad_call


@dataclass
class Dense(WeightedNode):
    """Fully connected layer: flattens its (H, W, C) input in HWC order; weights [N, K]."""

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
    def in_channels(self) -> int:
        return int(self.weight.shape[1])

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        if h * w * c != self.in_channels:
            raise ModelError(f"dense {self.name} cannot take a {h}x{w}x{c} input (it needs {self.in_channels} values).")
        return 1, 1, self.out_channels

    def check(self, model: Model) -> None:
        if self.weight.ndim != 2:
            raise ModelError(f"dense {self.name} needs weights [out, in].")
        self._check_params()

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return self._params_to_json({"type": self.op_type, "name": self.name, "input": self.input,
                                     "output": self.output}, arrays)

    @classmethod
    def from_json(cls, d: dict, array) -> "Dense":
        return cls(d["name"], d["input"], d["output"], array(d["weight"]), array(d["bias"]), array(d["weight_scales"]))


class DenseRule(WeightedRule):
    node_type = Dense
    forward_kind = StepKind.DENSE

    def macs(self, node: Dense, model: Model) -> int:
        return node.out_channels * node.in_channels

    def weight_layout(self, node: Dense, channels: int) -> tuple[int | None, int | None]:
        return 1, None  # the trained inputs [N][k] in SRAM, the rest [N][K-k] in flash

    def saved_shape(self, node: Dense, x_shape: tuple[int, int, int], k: int) -> tuple[int, tuple[int, ...]]:
        return x_shape[0] * x_shape[1] * x_shape[2], (k,)

    def input_grad_fan(self, node: Dense) -> int:
        return node.out_channels

    def weight_grad_macs(self, node: Dense, model: Model, k: int) -> int:
        return node.out_channels * k

    def uses_weight_sums(self, node: Dense) -> bool:
        return True

    def compute(self, node: Dense, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        c = ex.program.consts[node.name]
        acc = K.dense_accumulate(get(node.input), c.zx, ex.weights[node.name], ex.biases[node.name])
        return K.Requant(c.multiplier, c.shift, c.zy).apply(acc)

    def input_grad(self, node: Dense, g: np.ndarray, ex: Executor) -> np.ndarray:
        return K.dense_backward_input(g, ex.weights[node.name], ex.model.tensors[node.input].shape)

    def weight_grad(self, node: Dense, g: np.ndarray, x: np.ndarray, zx: int, k: int) -> np.ndarray:
        return K.dense_weight_grad(g, x, zx, k)

    def geometry(self, node: Dense, model: Model) -> dict[str, int]:
        return geometry_fields(1, 1, node.in_channels, 1, 1, node.out_channels)  # one position of K inputs

    def scratch_bytes(self, node: Dense, model: Model, step: Step) -> int:
        if step.kind is StepKind.WEIGHT_UPDATE:
            return scratch.weight_update_pointwise(self.geometry(node, model))  # one position: none
        size = scratch.conv_pointwise if step.kind.is_forward else scratch.input_grad_pointwise
        return size(self.geometry(node, model))

    def emit_forward(self, node: Dense, step: Step, em: Emitter, mask: str) -> str:
        n = ident(node.name)
        return (f"tt_conv_pointwise(&{n}_g, &{n}_l, {em.a8(node.input)}, {em.a8(node.output)}, {mask}, "
                f"{em.scratch()});")

    def emit_input_grad(self, node: Dense, step: Step, em: Emitter) -> str:
        return input_grad_call(step, em, "tt_input_grad_pointwise")

    def weight_update_kernel(self, node: Dense) -> str:
        return "tt_weight_update_pointwise"

    def saved_channels(self, node: Dense, em: Emitter, xs: str) -> int:
        return em.program.buffers[xs].elements  # the flat input (or its saved prefix)


RULE = DenseRule()
