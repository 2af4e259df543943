"""Softmax cross-entropy on the int8 logits: dL/dlogits times the step's learning-rate scale."""

from __future__ import annotations

from tinytrain.ir.program import Step
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Emitter, Executor, OpRule


class LossRule(OpRule):
    """LOSS_GRAD reads the logits and writes their gradient (program.loss_table and
    program.loss_scale_mult are its constants)."""

    def run(self, step: Step, ex: Executor) -> None:
        p = ex.program
        g, e = K.loss_backward(ex.mem[step.reads[0]], ex.label, p.loss_table, ex.lr_scale, p.loss_scale_mult,
                               step.attrs.bits)
        ex.set_grad(step.writes[0], g, e)

    def emit(self, step: Step, em: Emitter) -> str:
        m, sh = em.program.loss_scale_mult
        return (f"{em.exp(step.writes[0])} = tt_loss_grad({em.a8(step.reads[0])}, {em.model.num_classes}, label, "
                f"loss_table, lr_scale, {m}, {sh}, {step.attrs.bits}, {em.a16(step.writes[0])});")


RULE = LossRule()
