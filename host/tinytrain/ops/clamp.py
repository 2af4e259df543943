"""A fused activation that cuts into the int8 range (TFLite RELU/RELU6/RELU_N1_TO_1 whose bounds are
not the whole [-128, 127] of the output's quantization): y = clamp(x, lo, hi). Most fused
activations need no node: the output's quantization already ends where the activation does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.ir.program import Step, StepKind
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, ident
from tinytrain.ops.requantize import backward_through_multiplier, emit_through_multiplier, forward_mask, \
    run_through_multiplier

ONE = fp.quantize_multiplier(1.0)  # the gradient passes unscaled where the clamp is not active


@dataclass
class Clamp(UnaryNode):
    name: str
    input: str
    output: str
    low: int
    high: int

    op_type = "clamp"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return tuple(shapes[0])

    def check(self, model: Model) -> None:
        if not -128 <= self.low <= self.high <= 127:
            raise ModelError(f"clamp {self.name} has bounds [{self.low}, {self.high}] outside int8.")
        if model.tensors[self.input].qparams != model.tensors[self.output].qparams:
            raise ModelError(f"clamp {self.name} must keep its input's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "low": self.low, "high": self.high}

    @classmethod
    def from_json(cls, d: dict, array) -> "Clamp":
        return cls(d["name"], d["input"], d["output"], json_int(d["low"]), json_int(d["high"]))


class ClampRule(OpRule):
    node_type = Clamp
    forward_kind = StepKind.CLAMP

    forward_in_place = True

    def backward(self, node: Clamp, b: Builder) -> None:
        backward_through_multiplier(self, node, b, StepKind.CLAMP_GRAD)

    def compute(self, node: Clamp, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        return K.clamp_forward(get(node.input), node.low, node.high)

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        run_through_multiplier(step, ex, *ONE)

    def declare(self, node: Clamp, em: Emitter) -> None:
        if em.has_step(node.name, StepKind.CLAMP_GRAD):
            em.decl(f"static const int32_t {ident(node.name)}_m = {ONE[0]}, {ident(node.name)}_s = {ONE[1]};\n")

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        size = em.model.tensors[node.output].size
        if step.kind.is_forward:
            return (f"tt_clamp({em.a8(node.input)}, {size}, {node.low}, {node.high}, {em.a8(node.output)}, "
                    f"{em.mask(forward_mask(step, em))});")
        return emit_through_multiplier(step, em, size, f"&{ident(node.name)}_m", f"&{ident(node.name)}_s")


RULE = ClampRule()
