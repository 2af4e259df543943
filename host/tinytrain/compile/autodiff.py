"""Autodiff at compile time: a model + a sparse scheme -> one straight-line training step.

The walker visits the ops forward, then backward in reverse, and lets each op's rule
(tinytrain.ops) add its steps. Only what the scheme needs is derived: no input gradient below
the earliest trained layer, no weight gradient for frozen weights, weight gradients for only the
trained input-channel slice, masks only where a gradient passes a clamp, activations kept only
where a weight gradient reads them. With `reorder=True` (the default) every update runs right
after its gradient and the gradient never exists as a tensor; with `reorder=False` the weight and
bias gradients are materialized and applied at the end, the way a conventional framework does it
(only used to report the difference).
"""

from __future__ import annotations

from tinytrain import ops
from tinytrain.compile.scheme import SparseScheme
from tinytrain.ir.graph import Model, Node, WeightedNode
from tinytrain.ir.program import (
    GRAD_BITS,
    Buffer,
    CompileError,
    CompileOptions,
    GradAttrs,
    ParamSpec,
    Step,
    StepKind,
    TrainingProgram,
)
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K


def param_specs(model: Model, scheme: SparseScheme) -> list[ParamSpec]:
    """Every weight and bias of the model, trained or not, with the PRNG counters of the trained ones
    in layer order."""
    specs: list[ParamSpec] = []
    offset = 0
    for i, op in enumerate(model.weighted_ops):
        specs += ops.rule_for(op).params(op, i, scheme.updated_channels(op, i), i in scheme.bias_layers, offset)
        offset += sum(p.sram_elements for p in specs[-2:])
    return specs


def requires_grad(model: Model, params: list[ParamSpec]) -> dict[str, bool]:
    """Tensors whose gradient the training step needs (everything downstream of a trained op)."""
    trained = {p.op for p in params if p.trainable}
    rg: dict[str, bool] = {model.input: False}
    for op in model.ops:
        rg[op.output] = op.name in trained or any(rg[x] for x in op.inputs)
    return rg


def frozen_tensors(model: Model, scheme: SparseScheme) -> set[str]:
    return {t for t, g in requires_grad(model, param_specs(model, scheme)).items() if not g}


class ProgramBuilder:
    """The state of one compilation, offered to the op rules (tinytrain.ops.base.Builder)."""

    def __init__(self, model: Model, options: CompileOptions, params: list[ParamSpec], consts: dict):
        self.model = model
        self.options = options
        self.consts = consts
        self.pmap = {(p.op, p.kind): p for p in params}
        self.rg = requires_grad(model, params)
        self.buffers: dict[str, Buffer] = {}
        self.infer_steps: list[Step] = []
        self.train_steps: list[Step] = []
        self.deferred: list[Step] = []
        self.saved: dict[str, str] = {}
        self.consumers = model.consumers()
        self.grad_bits: dict[str, int] = {}
        self.grad_of: dict[str, str] = {}
        t = model.tensors
        self.pending = {name: sum(op.inputs.count(name) for op in self.consumers[name]) for name in t}
        self.consumer_counts = dict(self.pending)  # a gradient with several parts is summed from int32 parts
        self.parts: dict[str, list[str]] = {name: [] for name in t}

    def buf(self, name: str, dtype: str, shape: tuple[int, ...], role: str) -> str:
        self.buffers[name] = Buffer(name, dtype, tuple(int(s) for s in shape), role)
        return name

    def param(self, op: str, kind: str) -> ParamSpec:
        return self.pmap[(op, kind)]

    def requires_grad(self, tensor: str) -> bool:
        return self.rg[tensor]

    def mask_for(self, tensor: str) -> tuple[str, ...]:
        """The clamp mask of an op output a gradient will pass (created on first use)."""
        if not self.rg[tensor] or tensor == self.model.output:
            return ()
        name = f"{tensor}.mask"
        if name not in self.buffers:
            self.buf(name, "bits", self.model.tensors[tensor].shape, "mask")
        return (name,)

    def add_infer(self, step: Step) -> None:
        self.infer_steps.append(step)

    def add_train(self, step: Step) -> None:
        self.train_steps.append(step)

    def defer(self, step: Step) -> None:
        self.deferred.append(step)

    def grad(self, tensor: str) -> str:
        return self.grad_of[tensor]

    def consumer_count(self, tensor: str) -> int:
        return self.consumer_counts[tensor]

    def contribute(self, tensor: str, part: str) -> None:
        """One consumer's gradient of `tensor`; the last one completes it (summed when there are several)."""
        self.parts[tensor].append(part)
        self.pending[tensor] -= 1
        if self.pending[tensor] > 0:
            return
        ps = self.parts[tensor]
        if len(ps) == 1 and self.buffers[ps[0]].dtype == "int16":
            self.grad_of[tensor] = ps[0]
            return
        g = self.buf(f"{tensor}.grad", "int16", self.model.tensors[tensor].shape, "grad")
        self.grad_bits[g] = GRAD_BITS
        inplace = {g: ps[0]} if self.buffers[ps[0]].dtype == "int32" else {}
        self.add_train(Step(StepKind.GRAD_SUM, tensor, tuple(ps), (g,), GradAttrs(GRAD_BITS), inplace, rule=ops.GRAD_SUM))
        self.grad_of[tensor] = g


def compile_program(model: Model, scheme: SparseScheme, options: CompileOptions | None = None) -> TrainingProgram:
    options = options or CompileOptions()
    options.validate()
    model.validate()
    if scheme.n_layers != len(model.weighted_ops):
        raise CompileError(f"the scheme is for {scheme.n_layers} layers but the model has {len(model.weighted_ops)}.")
    rules = {op.name: ops.rule_for(op) for op in model.ops}
    if not isinstance(model.producer()[model.output], WeightedNode):
        raise CompileError("the model's output must be produced by its classifier (a dense or conv layer).")
    params = param_specs(model, scheme)
    consts = {op.name: rules[op.name].consts(op, model, options) for op in model.ops}
    b = ProgramBuilder(model, options, params, consts)
    t = model.tensors

    b.buf(model.input, "int8", t[model.input].shape, "input")
    stage_ops: set[str] = set()
    if options.stage is not None:
        from tinytrain.compile.staging import build_stage, candidate_cuts, stage_step

        cut, rows_per_strip = options.stage
        if cut not in candidate_cuts(model, {n for n, g in b.rg.items() if not g}):
            raise CompileError(f"ops 0..{cut} cannot be run as a streaming stage for this scheme.")
        stage_ops = {op.name for op in model.ops[: cut + 1]}
        stream = options.stream_input and all(c.name in stage_ops for c in b.consumers[model.input])
        stage = build_stage(model, model.ops[: cut + 1], rows_per_strip, stream_input=stream)
        if stream:
            b.buffers[model.input].role = "stream"
        step, scratch = stage_step(model, stage)
        b.buffers[scratch.name] = scratch
        b.buf(stage.output, "int8", t[stage.output].shape, "activation")
        b.add_infer(step)
        b.add_train(step)

    for op in model.ops:
        if op.name not in stage_ops:
            rules[op.name].forward(op, b)

    # ---- loss, then the backward of every op a gradient reaches, last op first
    logits_q = t[model.output].qparams
    gy = b.buf(f"{model.output}.grad", "int16", t[model.output].shape, "grad")
    b.grad_bits[gy] = GRAD_BITS
    b.add_train(Step(StepKind.LOSS_GRAD, model.output, (model.output,), (gy,), GradAttrs(GRAD_BITS), rule=ops.LOSS))
    b.grad_of[model.output] = gy
    for op in reversed(model.ops):
        if b.rg[op.output]:
            rules[op.name].backward(op, b)
    b.train_steps.extend(b.deferred)
    return TrainingProgram(model, scheme, options, b.buffers, b.train_steps, b.infer_steps, params, consts,
                           K.softmax_table(logits_q.scale), fp.quantize_multiplier(logits_q.scale), b.grad_bits)


def op_macs(model: Model, node: Node) -> int:
    return ops.rule_for(node).macs(node, model)
