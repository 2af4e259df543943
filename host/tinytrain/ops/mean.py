"""Global average pool (TFLite MEAN over H and W): the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode
from tinytrain.ir.program import GRAD_BITS, CompileOptions, GradAttrs, Step, StepKind
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, ident


@dataclass
class GlobalAveragePool(UnaryNode):
    """Mean over H and W, requantized to the output's parameters (TFLite MEAN)."""

    name: str
    input: str
    output: str
    rounding: str = "scale"  # the multiplier: "scale" = s_in / (s_out H W); "tflite" = TFLite MEAN's (see consts)

    op_type = "avgpool"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (_, _, c), = shapes
        return 1, 1, c

    def check(self, model: Model) -> None:
        if self.rounding not in ("scale", "tflite"):
            raise ModelError(f"pool {self.name} has an unknown rounding {self.rounding!r} (scale or tflite).")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        d = {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output}
        if self.rounding != "scale":  # files written before TFLite's MEAN have no such key
            d["rounding"] = self.rounding
        return d

    @classmethod
    def from_json(cls, d: dict, array) -> "GlobalAveragePool":
        return cls(d["name"], d["input"], d["output"], str(d.get("rounding", "scale")))


@dataclass
class PoolConsts:
    zx: int
    zy: int
    multiplier: np.ndarray  # [1]: s_in / (s_out * H * W)
    shift: np.ndarray


class MeanRule(OpRule):
    node_type = GlobalAveragePool
    forward_kind = StepKind.AVGPOOL

    def consts(self, node: GlobalAveragePool, model: Model, options: CompileOptions) -> PoolConsts:
        t = model.tensors
        x, y = t[node.input].qparams, t[node.output].qparams
        h, w, _ = t[node.input].shape
        if node.rounding == "tflite":  # equal to the other for power-of-two H W only
            m, s = K.mean_multiplier(x.scale, y.scale, h * w)
        else:
            m, s = fp.quantize_multiplier(x.scale / (y.scale * h * w))
        return PoolConsts(x.zero_point, y.zero_point, np.array([m], dtype=np.int64), np.array([s], dtype=np.int64))

    def backward(self, node: GlobalAveragePool, b: Builder) -> None:
        g = b.grad(node.output)
        mask = b.mask_for(node.output)
        mask = mask[0] if mask else None
        gx = b.buf(f"{node.name}.gx", "int16", b.model.tensors[node.input].shape, "grad")
        b.grad_bits[gx] = GRAD_BITS
        b.add_train(Step(StepKind.AVGPOOL_GRAD, node.name, tuple(r for r in (g, mask) if r), (gx,),
                         GradAttrs(GRAD_BITS, mask), rule=self))
        b.contribute(node.input, gx)

    def compute(self, node: GlobalAveragePool, get: Callable[[str], np.ndarray],
                ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        c = ex.program.consts[node.name]
        return K.Requant(c.multiplier, c.shift, c.zy).apply(K.avgpool_accumulate(get(node.input), c.zx))

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            return super().run(step, ex)
        c = ex.program.consts[step.op]
        v, e = K.avgpool_backward(ex.mem[step.reads[0]], ex.exps[step.reads[0]], ex.mask(step), int(c.multiplier[0]),
                                  int(c.shift[0]), step.attrs.bits, ex.model.tensors[ex.nodes[step.op].input].shape)
        ex.set_grad(step.writes[0], v, e)

    def declare(self, node: GlobalAveragePool, em: Emitter) -> None:
        if em.has_step(node.name, StepKind.AVGPOOL_GRAD):
            c = em.program.consts[node.name]
            n = ident(node.name)
            em.decl(f"static const int32_t {n}_pm = {int(c.multiplier[0])}, {n}_ps = {int(c.shift[0])};\n")

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        c = em.program.consts[node.name]
        h, w, ch = em.model.tensors[node.input].shape
        if step.kind.is_forward:
            masks = [b for b in step.writes if em.program.buffers[b].role == "mask"]
            return (f"tt_avgpool({em.a8(node.input)}, {h * w}, {ch}, {em.a8(node.output)}, {int(c.multiplier[0])}, "
                    f"{int(c.shift[0])}, {c.zx}, {c.zy}, {em.mask(masks[0] if masks else None)});")
        n = ident(node.name)
        g, gx = step.reads[0], step.writes[0]
        return (f"{em.exp(gx)} = tt_requant_grad({em.a16(g)}, {em.exp(g)}, {em.mask(step.mask)}, 1, {ch}, &{n}_pm, "
                f"&{n}_ps, 1, {step.attrs.bits}, {em.a16(gx)});\n    tt_broadcast_rows({em.a16(gx)}, {h * w}, {ch}, "
                f"{em.a16(gx)});")


RULE = MeanRule()
