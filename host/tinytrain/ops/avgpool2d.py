"""2-D average pooling (TFLite AVERAGE_POOL_2D): the node and its rule.

Forward: the raw int8 values of a window's in-bounds elements summed and divided by their count,
rounded half away from zero (input and output share scale and zero point: nothing to requantize,
nothing to clamp). Backward: every in-bounds element of a window gets g / n.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinytrain.ir.program import GRAD_BITS, GradAttrs, Step, StepKind
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_geometry, ident
from tinytrain.ops.window import WindowNode


class AveragePool2D(WindowNode):
    """The mean of a window's in-bounds elements (padding is not counted)."""

    op_type = "avgpool2d"
    what = "average pool"


class AveragePoolRule(OpRule):
    node_type = AveragePool2D
    forward_kind = StepKind.AVGPOOL2D

    def forward(self, node: AveragePool2D, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):
            add(Step(StepKind.AVGPOOL2D, node.name, (node.input,), (y,), rule=self))

    def backward(self, node: AveragePool2D, b: Builder) -> None:
        if not b.requires_grad(node.input):
            return
        gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
        b.grad_bits[gx] = GRAD_BITS
        b.add_train(Step(StepKind.AVGPOOL2D_GRAD, node.name, (b.grad(node.output),), (gx,), GradAttrs(GRAD_BITS),
                         rule=self))
        b.contribute(node.input, gx)

    def compute(self, node: AveragePool2D, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        return K.avgpool2d_forward(get(node.input), node.kernel, node.stride, node.padding), None

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        node = ex.nodes[step.op]
        g = step.reads[0]
        v, e = K.avgpool2d_backward(ex.mem[g], ex.exps[g], ex.model.tensors[node.input].shape, node.kernel,
                                    node.stride, node.padding, step.attrs.bits)
        ex.set_grad(step.writes[0], v, e)

    def declare(self, node: AveragePool2D, em: Emitter) -> None:
        declare_geometry(node, em, node.kernel, node.stride, node.padding)
        if em.has_step(node.name, StepKind.AVGPOOL2D_GRAD):
            m, rsh, _ = K.pool_reciprocals(node.kernel)
            em.array("int32_t", f"{ident(node.name)}_rm", m)
            em.array("int32_t", f"{ident(node.name)}_rsh", rsh)

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        n = ident(node.name)
        if step.kind.is_forward:
            return f"tt_avgpool2d(&{n}_g, {em.a8(node.input)}, {em.a8(node.output)});"
        g = step.reads[0]
        eoff = K.pool_reciprocals(node.kernel)[2]
        return (f"{em.exp(step.writes[0])} = tt_avgpool2d_grad(&{n}_g, {em.a16(g)}, {em.exp(g)}, {n}_rm, {n}_rsh, "
                f"{eoff}, {step.attrs.bits}, {em.a16(step.writes[0])});")


RULE = AveragePoolRule()
