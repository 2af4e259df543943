"""Requantizing residual add (TFLite int8 ADD): the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Node, Shape
from tinytrain.ir.program import GRAD_BITS, InputsGradAttrs, CompileOptions, Step, StepKind
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, ident


@dataclass
class Add(Node):
    name: str
    inputs: tuple[str, str]
    output: str

    op_type = "add"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        a, b = shapes
        if tuple(a) != tuple(b):
            raise ModelError(f"add {self.name} has mismatched shapes {a}, {b}.")
        return tuple(a)

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "inputs": list(self.inputs), "output": self.output}

    @classmethod
    def from_json(cls, d: dict, array) -> "Add":
        inputs = tuple(d["inputs"])
        if len(inputs) != 2:
            raise ModelError(f"add {d['name']} needs two inputs.")
        return cls(d["name"], inputs, d["output"])


@dataclass
class AddConsts:
    zy: int
    add: K.AddParams
    grad: tuple[tuple[int, int], tuple[int, int]]  # (multiplier, shift) of s_in / s_out, per input


class AddRule(OpRule):
    node_type = Add
    forward_kind = StepKind.ADD

    def stageable(self, node: Add) -> bool:
        return True

    def consts(self, node: Add, model: Model, options: CompileOptions) -> AddConsts:
        t = model.tensors
        a, b = (t[n].qparams for n in node.inputs)
        y = t[node.output].qparams
        return AddConsts(y.zero_point, K.make_add_params(a.scale, a.zero_point, b.scale, b.zero_point, y.scale, y.zero_point),
                         (fp.quantize_multiplier(a.scale / y.scale), fp.quantize_multiplier(b.scale / y.scale)))

    def backward(self, node: Add, b: Builder) -> None:
        g = b.grad(node.output)
        mask = b.mask_for(node.output)
        mask = mask[0] if mask else None
        outs = []
        for j, name in enumerate(node.inputs):
            if b.requires_grad(name):
                ga = b.buf(f"{node.name}.g{j}", "int16", b.model.tensors[name].shape, "grad")
                b.grad_bits[ga] = GRAD_BITS
                outs.append(ga)
            else:
                outs.append("")
        writes = tuple(o for o in outs if o)
        reads = tuple(r for r in (g, mask) if r)
        b.add_train(Step(StepKind.ADD_GRAD, node.name, reads, writes, InputsGradAttrs(GRAD_BITS, tuple(outs), mask),
                         {writes[0]: g}, rule=self))
        for name, o in zip(node.inputs, outs):
            if o:
                b.contribute(name, o)

    def compute(self, node: Add, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        return K.add_forward(get(node.inputs[0]), get(node.inputs[1]), ex.program.consts[node.name].add)

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        c = ex.program.consts[step.op]
        g, e = ex.mem[step.reads[0]], ex.exps[step.reads[0]]
        mask = ex.mask(step)
        results = [(out, K.add_backward(g, e, mask, m, sh, step.attrs.bits))
                   for out, (m, sh) in zip(step.attrs.outputs, c.grad) if out]
        for out, (v, ev) in results:
            ex.set_grad(out, v, ev)

    def declare(self, node: Add, em: Emitter) -> None:
        n = ident(node.name)
        a = em.program.consts[node.name].add
        em.decl(f"static const tt_add_params {n}_p = {{{a.left_shift}, {a.in1[0]}, {a.in1[1]}, {a.in1[2]}, "
                f"{a.in2[0]}, {a.in2[1]}, {a.in2[2]}, {a.out[0]}, {a.out[1]}, {a.out[2]}}};\n")
        for s in em.program.train_steps:
            if s.op == node.name and s.kind is StepKind.ADD_GRAD:
                for j, (m, sh) in enumerate(em.program.consts[node.name].grad):
                    if s.attrs.outputs[j]:
                        em.decl(f"static const int32_t {n}_gm{j} = {m}, {n}_gs{j} = {sh};\n")

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        n = ident(node.name)
        if step.kind.is_forward:
            masks = [b for b in step.writes if em.program.buffers[b].role == "mask"]
            return (f"tt_add({em.a8(node.inputs[0])}, {em.a8(node.inputs[1])}, {em.a8(node.output)}, "
                    f"{em.model.tensors[node.output].size}, &{n}_p, {em.mask(masks[0] if masks else None)});")
        h, w, ch = em.model.tensors[node.output].shape
        g = step.reads[0]
        lines = []
        outs = [(j, o) for j, o in enumerate(step.attrs.outputs) if o]
        # The output that may overwrite the incoming gradient is computed last.
        for j, o in sorted(outs, key=lambda jo: jo[1] == step.writes[0]):
            lines.append(f"{em.exp(o)} = tt_requant_grad({em.a16(g)}, {em.exp(g)}, {em.mask(step.mask)}, {h * w}, {ch}, "
                         f"&{n}_gm{j}, &{n}_gs{j}, 1, {step.attrs.bits}, {em.a16(o)});")
        return "\n    ".join(lines)

    def emit_rows(self, node: Add, em: Emitter, row: Callable[[str, int], str], rows: tuple[int, int],
                  rows_held: Callable[[str], int]) -> str:
        a, b = rows
        _, ow, cout = em.model.tensors[node.output].shape
        return (f"tt_add({row(node.inputs[0], a)}, {row(node.inputs[1], a)}, {row(node.output, a)}, "
                f"{(b - a) * ow * cout}, &{ident(node.name)}_p, NULL);")


RULE = AddRule()
