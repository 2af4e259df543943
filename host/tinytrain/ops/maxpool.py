"""2-D max pooling (TFLite MAX_POOL_2D): the node and its rule.

Forward: the max of a window's in-bounds elements (padding never wins); input and output share
scale and zero point, so nothing is requantized or clamped (a fused activation that cuts into the
int8 range is a Clamp node of its own). Backward: each window's gradient goes to its first maximal
element (taps in row-major order, as PyTorch picks it), overlapping windows add up; it reads the
input again to find them (no index map is kept).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinytrain.ir.program import GRAD_BITS, GradAttrs, Step, StepKind
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_geometry, ident
from tinytrain.ops.window import WindowNode


class MaxPool2D(WindowNode):
    """The max of a window's in-bounds elements."""

    op_type = "maxpool"
    what = "max pool"


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
