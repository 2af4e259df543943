"""int8 -> int8 QUANTIZE (a change of scale and zero point inside the graph, TFLite): the node and
its rule. y = clamp(MBQM(x - zx, s_x / s_y) + zy); the gradient is g * mask * s_x / s_y."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, Shape, UnaryNode
from tinytrain.ir.program import GRAD_BITS, CompileOptions, GradAttrs, Step, StepKind
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, ident


@dataclass
class Requantize(UnaryNode):
    name: str
    input: str
    output: str

    op_type = "requantize"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return tuple(shapes[0])

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output}

    @classmethod
    def from_json(cls, d: dict, array) -> "Requantize":
        return cls(d["name"], d["input"], d["output"])


@dataclass
class RequantizeConsts:
    zx: int
    zy: int
    multiplier: int  # s_x / s_y
    shift: int


class RequantizeRule(OpRule):
    node_type = Requantize
    forward_kind = StepKind.REQUANTIZE
    forward_in_place = True

    def consts(self, node: Requantize, model: Model, options: CompileOptions) -> RequantizeConsts:
        x, y = model.tensors[node.input].qparams, model.tensors[node.output].qparams
        return RequantizeConsts(x.zero_point, y.zero_point, *fp.quantize_multiplier(x.scale / y.scale))

    def backward(self, node: Requantize, b: Builder) -> None:
        backward_through_multiplier(self, node, b, StepKind.REQUANTIZE_GRAD)

    def compute(self, node: Requantize, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        c = ex.program.consts[node.name]
        return K.requantize_forward(get(node.input), c.zx, c.multiplier, c.shift, c.zy)

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        c = ex.program.consts[step.op]
        run_through_multiplier(step, ex, c.multiplier, c.shift)

    def declare(self, node: Requantize, em: Emitter) -> None:
        c = em.program.consts[node.name]
        em.decl(f"static const int32_t {ident(node.name)}_m = {c.multiplier}, {ident(node.name)}_s = {c.shift};\n")

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        n = ident(node.name)
        size = em.model.tensors[node.output].size
        if step.kind.is_forward:
            c = em.program.consts[node.name]
            return (f"tt_requantize({em.a8(node.input)}, {size}, {c.zx}, {n}_m, {n}_s, {c.zy}, {em.a8(node.output)}, "
                    f"{em.mask(forward_mask(step, em))});")
        return emit_through_multiplier(step, em, size, f"&{n}_m", f"&{n}_s")


def forward_mask(step: Step, em: Emitter) -> str | None:
    masks = [b for b in step.writes if em.program.buffers[b].role == "mask"]
    return masks[0] if masks else None


def backward_through_multiplier(rule: OpRule, node, b: Builder, kind: StepKind) -> None:
    """g * mask * M into a new gradient of the input (M: a per-tensor multiplier; it may overwrite g)."""
    if not b.requires_grad(node.input):
        return
    g = b.grad(node.output)
    mask = b.mask_for(node.output)
    mask = mask[0] if mask else None
    gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
    b.grad_bits[gx] = GRAD_BITS
    b.add_train(Step(kind, node.name, tuple(r for r in (g, mask) if r), (gx,), GradAttrs(GRAD_BITS, mask), {gx: g},
                     rule=rule))
    b.contribute(node.input, gx)


def run_through_multiplier(step: Step, ex: Executor, multiplier: int, shift: int) -> None:
    g = step.reads[0]
    v, e = K.requant_backward(ex.mem[g], ex.exps[g], ex.mask(step), np.array([multiplier]), np.array([shift]),
                              step.attrs.bits)
    ex.set_grad(step.writes[0], v, e)


def emit_through_multiplier(step: Step, em: Emitter, size: int, mult: str, shift: str) -> str:
    g, gx = step.reads[0], step.writes[0]
    return (f"{em.exp(gx)} = tt_requant_grad({em.a16(g)}, {em.exp(g)}, {em.mask(step.mask)}, {size}, 1, {mult}, "
            f"{shift}, 1, {step.attrs.bits}, {em.a16(gx)});")


RULE = RequantizeRule()
