"""The gradient of a tensor read by several ops: the sum of its parts (int16 or int32 mantissas with
their own exponents), renormalized to int16."""

from __future__ import annotations

from tinytrain.ir.program import Step
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Emitter, Executor, OpRule


class GradSumRule(OpRule):
    def run(self, step: Step, ex: Executor) -> None:
        v, e = K.grad_sum([(ex.mem[p], ex.exps[p]) for p in step.reads], step.attrs.bits)
        ex.set_grad(step.writes[0], v, e)

    def emit(self, step: Step, em: Emitter) -> str:
        out = step.writes[0]
        n = em.program.buffers[out].elements
        parts = ", ".join(f"(const void *)(tt_arena + {em.offset(b)}u)" for b in step.reads)
        is32 = ", ".join("1" if em.program.buffers[b].dtype == "int32" else "0" for b in step.reads)
        exps = ", ".join(em.exp(b) for b in step.reads)
        k = len(step.reads)
        return (f"{{ const void *const parts[{k}] = {{{parts}}}; static const uint8_t is32[{k}] = {{{is32}}}; "
                f"const int32_t exps[{k}] = {{{exps}}};\n      {em.exp(out)} = tt_grad_sum(parts, is32, exps, {k}, {n}, "
                f"{step.attrs.bits}, {em.a16(out)}); }}")


RULE = GradSumRule()
