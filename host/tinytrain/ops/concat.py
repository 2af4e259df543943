"""CONCATENATION along channels (TFLite, int8: the inputs share the output's scale and zero point):
the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Node, Shape
from tinytrain.ir.program import GRAD_BITS, InputsGradAttrs, Step, StepKind
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule


@dataclass
class Concat(Node):
    name: str
    inputs: tuple[str, ...]
    output: str

    op_type = "concat"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        if len({tuple(s[:2]) for s in shapes}) != 1:
            raise ModelError(f"concat {self.name} joins tensors of different heights or widths {shapes}.")
        return shapes[0][0], shapes[0][1], sum(s[2] for s in shapes)

    def check(self, model: Model) -> None:
        q = model.tensors[self.output].qparams
        if len(self.inputs) < 2 or any(model.tensors[t].qparams != q for t in self.inputs):
            raise ModelError(f"concat {self.name} needs at least two inputs with its output's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "inputs": list(self.inputs), "output": self.output}

    @classmethod
    def from_json(cls, d: dict, array) -> "Concat":
        return cls(d["name"], tuple(d["inputs"]), d["output"])


class ConcatRule(OpRule):
    """Forward: each input's channels copied to their place. Backward: each input's slice of the
    gradient's channels (same exponent)."""

    node_type = Concat

    def forward(self, node: Concat, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):
            add(Step(StepKind.CONCAT, node.name, tuple(node.inputs), (y,), rule=self))

    def backward(self, node: Concat, b: Builder) -> None:
        outs = []
        for j, name in enumerate(node.inputs):
            if b.requires_grad(name):
                ga = b.buf(f"{node.name}.g{j}", "int16", b.model.tensors[name].shape, "grad")
                b.grad_bits[ga] = GRAD_BITS
                outs.append(ga)
            else:
                outs.append("")
        b.add_train(Step(StepKind.CONCAT_GRAD, node.name, (b.grad(node.output),), tuple(o for o in outs if o),
                         InputsGradAttrs(GRAD_BITS, tuple(outs)), rule=self))
        for name, o in zip(node.inputs, outs):
            if o:
                b.contribute(name, o)

    def compute(self, node: Concat, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        return np.concatenate([get(t) for t in node.inputs], axis=-1).astype(np.int8), None

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        node = ex.nodes[step.op]
        g = step.reads[0]
        at = 0
        for name, out in zip(node.inputs, step.attrs.outputs):
            c = ex.model.tensors[name].shape[2]
            if out:
                ex.set_grad(out, ex.mem[g][..., at : at + c], ex.exps[g])
            at += c

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        h, w, ctot = em.model.tensors[node.output].shape
        lines, at = [], 0
        for j, name in enumerate(node.inputs):
            c = em.model.tensors[name].shape[2]
            if step.kind.is_forward:
                lines.append(f"tt_copy_channels({em.a8(name)}, {h * w}, {c}, {em.a8(node.output)}, {ctot}, {at});")
            elif step.attrs.outputs[j]:
                out, g = step.attrs.outputs[j], step.reads[0]
                lines.append(f"{em.exp(out)} = {em.exp(g)}; tt_slice_channels16({em.a16(g)}, {h * w}, {ctot}, {at}, "
                             f"{c}, {em.a16(out)});")
            at += c
        return "\n    ".join(lines)


RULE = ConcatRule()
