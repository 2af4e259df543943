"""RESHAPE: the same bytes under another shape (row-major HWC): the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.ir.program import GRAD_BITS, GradAttrs, Step, StepKind
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule


@dataclass
class Reshape(UnaryNode):
    name: str
    input: str
    output: str
    shape: tuple[int, int, int]

    op_type = "reshape"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        if h * w * c != int(np.prod(self.shape)):
            raise ModelError(f"reshape {self.name} cannot turn {h}x{w}x{c} into {self.shape}.")
        return tuple(self.shape)

    def check(self, model: Model) -> None:
        if model.tensors[self.input].qparams != model.tensors[self.output].qparams:
            raise ModelError(f"reshape {self.name} must keep its input's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "shape": list(self.shape)}

    @classmethod
    def from_json(cls, d: dict, array) -> "Reshape":
        return cls(d["name"], d["input"], d["output"], tuple(json_int(v) for v in d["shape"]))


class ReshapeRule(OpRule):
    """A copy, forward and backward; in place when the input dies there (then no byte moves)."""

    node_type = Reshape

    def forward(self, node: Reshape, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):
            add(Step(StepKind.RESHAPE, node.name, (node.input,), (y,), inplace={y: node.input}, rule=self))

    def backward(self, node: Reshape, b: Builder) -> None:
        if not b.requires_grad(node.input):
            return
        g = b.grad(node.output)
        gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
        b.grad_bits[gx] = GRAD_BITS
        b.add_train(Step(StepKind.RESHAPE_GRAD, node.name, (g,), (gx,), GradAttrs(GRAD_BITS), {gx: g}, rule=self))
        b.contribute(node.input, gx)

    def compute(self, node: Reshape, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        x = get(node.input)
        return x.reshape(*x.shape[:-3], *node.shape), None

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        g = step.reads[0]
        ex.set_grad(step.writes[0], ex.mem[g].reshape(ex.program.buffers[step.writes[0]].shape), ex.exps[g])

    def emit(self, step: Step, em: Emitter) -> str:
        x, y = step.reads[0], step.writes[0]
        n = em.program.buffers[y].nbytes
        copy = "" if em.offset(x) == em.offset(y) else f"memmove(tt_arena + {em.offset(y)}u, tt_arena + {em.offset(x)}u, {n}u);"
        if step.kind.is_forward:
            return copy or "/* in place */"
        return f"{em.exp(y)} = {em.exp(x)}; {copy}"


RULE = ReshapeRule()
