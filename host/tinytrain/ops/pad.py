"""PAD of H and W with the input's zero point (TFLite PAD, int8): the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.ir.program import GRAD_BITS, GradAttrs, Step, StepKind
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_geometry, ident


@dataclass
class Pad(UnaryNode):
    name: str
    input: str
    output: str
    padding: tuple[int, int, int, int]  # (top, bottom, left, right)

    op_type = "pad"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        t, b, left, r = self.padding
        return h + t + b, w + left + r, c

    def check(self, model: Model) -> None:
        if min(self.padding) < 0:
            raise ModelError(f"pad {self.name} has a negative padding {self.padding}.")
        if model.tensors[self.input].qparams != model.tensors[self.output].qparams:
            raise ModelError(f"pad {self.name} must keep its input's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "padding": list(self.padding)}

    @classmethod
    def from_json(cls, d: dict, array) -> "Pad":
        return cls(d["name"], d["input"], d["output"], tuple(json_int(v) for v in d["padding"]))


class PadRule(OpRule):
    """Forward: a copy into the middle of the output, the border set to the zero point. Backward:
    the middle of the gradient (it may overwrite it in place: rows move towards the start)."""

    node_type = Pad

    def forward(self, node: Pad, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):
            add(Step(StepKind.PAD, node.name, (node.input,), (y,), rule=self))

    def backward(self, node: Pad, b: Builder) -> None:
        if not b.requires_grad(node.input):
            return
        g = b.grad(node.output)
        gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
        b.grad_bits[gx] = GRAD_BITS
        b.add_train(Step(StepKind.PAD_GRAD, node.name, (g,), (gx,), GradAttrs(GRAD_BITS), {gx: g}, rule=self))
        b.contribute(node.input, gx)

    def compute(self, node: Pad, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        zx = ex.model.tensors[node.input].qparams.zero_point
        return K.pad_forward(get(node.input), node.padding, zx), None

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        g = step.reads[0]
        ex.set_grad(step.writes[0], K.pad_backward(ex.mem[g], ex.nodes[step.op].padding), ex.exps[g])

    def declare(self, node: Pad, em: Emitter) -> None:
        declare_geometry(node, em, (1, 1), (1, 1), node.padding)

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        n = ident(node.name)
        if step.kind.is_forward:
            zx = em.model.tensors[node.input].qparams.zero_point
            return f"tt_pad(&{n}_g, {em.a8(node.input)}, {zx}, {em.a8(node.output)});"
        g = step.reads[0]
        return (f"{em.exp(step.writes[0])} = {em.exp(g)};\n    "
                f"tt_pad_grad(&{n}_g, {em.a16(g)}, {em.a16(step.writes[0])});")


RULE = PadRule()
