"""2-D max pooling (TFLite MAX_POOL_2D): the node and its rule.

Forward: the max of a window's in-bounds elements (padding never wins); input and output share
scale and zero point, so nothing is requantized or clamped (a fused activation that cuts into the
int8 range is a Clamp node of its own). Backward: each window's gradient goes to its first maximal
element (taps in row-major order, as PyTorch picks it), overlapping windows add up; it reads the
input again to find them (no index map is kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.ir.program import GRAD_BITS, GradAttrs, Step, StepKind
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_geometry, ident


@dataclass
class MaxPool2D(UnaryNode):
    name: str
    input: str
    output: str
    kernel: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # (top, bottom, left, right), never part of a max

    op_type = "maxpool"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        oh, ow = K.out_hw(h, w, self.kernel, self.stride, self.padding)
        return oh, ow, c

    def check(self, model: Model) -> None:
        (kh, kw), (t, b, left, r) = self.kernel, self.padding
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0 or max(t, b) >= kh or max(left, r) >= kw:
            raise ModelError(f"max pool {self.name} has an invalid window {self.kernel}, stride {self.stride} or "
                             f"padding {self.padding}.")
        if model.tensors[self.input].qparams != model.tensors[self.output].qparams:
            raise ModelError(f"max pool {self.name} must keep its input's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def from_json(cls, d: dict, array) -> "MaxPool2D":
        return cls(d["name"], d["input"], d["output"], tuple(json_int(v) for v in d["kernel"]),
                   tuple(json_int(v) for v in d["stride"]), tuple(json_int(v) for v in d["padding"]))


class MaxPoolRule(OpRule):
    node_type = MaxPool2D
    forward_kind = StepKind.MAXPOOL

    def forward(self, node: MaxPool2D, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):  # no clamp, so no mask
            add(Step(StepKind.MAXPOOL, node.name, (node.input,), (y,), rule=self))

    def backward(self, node: MaxPool2D, b: Builder) -> None:
        if not b.requires_grad(node.input):
            return
        gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
        b.grad_bits[gx] = GRAD_BITS
        b.add_train(Step(StepKind.MAXPOOL_GRAD, node.name, (b.grad(node.output), node.input), (gx,),
                         GradAttrs(GRAD_BITS), rule=self))
        b.contribute(node.input, gx)

    def compute(self, node: MaxPool2D, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        return K.maxpool_forward(get(node.input), node.kernel, node.stride, node.padding), None

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        node = ex.nodes[step.op]
        g, x = step.reads
        v, e = K.maxpool_backward(ex.mem[g], ex.exps[g], ex.mem[x], node.kernel, node.stride, node.padding,
                                  step.attrs.bits)
        ex.set_grad(step.writes[0], v, e)

    def declare(self, node: MaxPool2D, em: Emitter) -> None:
        declare_geometry(node, em, node.kernel, node.stride, node.padding)

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        g = f"&{ident(node.name)}_g"
        if step.kind.is_forward:
            return f"tt_maxpool({g}, {em.a8(node.input)}, {em.a8(node.output)});"
        gy, x = step.reads
        return (f"{em.exp(step.writes[0])} = tt_maxpool_grad({g}, {em.a16(gy)}, {em.exp(gy)}, {em.a8(x)}, "
                f"{step.attrs.bits}, {em.a16(step.writes[0])});")


RULE = MaxPoolRule()
