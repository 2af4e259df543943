"""Patch-based execution of the frozen front of a network (MCUNetV2-style), by row strips.

The first layers of a vision model hold the largest activations (e.g. 64x64x48
= 192 KB in MobileNetV2-w0.35 at 128x128) but are frozen: nothing in the
backward pass reads them. A *stage* is a prefix of those ops that ends in one
tensor S; it is computed strip by strip (a band of rows of S at a time), each
strip computing only the rows of every intermediate tensor it needs (with the
halo its kernels read), in a small scratch area. The model input and S exist
whole; no intermediate tensor of the stage ever does. Overlapping halos are
recomputed, which costs some MACs; the search below trades that against memory.

Results are bit-identical to the whole-tensor computation (every output value
is the same integer function of the same inputs), so the NumPy reference simply
computes the stage ops whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .arena_plan import plan
from .ir import Add, Conv2D, Model
from .training_program import Buffer, Step


@dataclass
class StripOp:
    op: str
    out_rows: tuple[int, int]  # rows [a, b) of the op's output computed in this strip


@dataclass
class Strip:
    rows: tuple[int, int]  # rows of S
    ops: list[StripOp]
    held: dict[str, tuple[int, int]]  # rows [r0, r1) of each tensor held in this strip (input and S: whole)
    offsets: dict[str, int] = field(default_factory=dict)  # scratch offsets of intermediate strip buffers
    scratch_bytes: int = 0


@dataclass
class PatchStage:
    ops: list[str]
    input: str
    output: str
    strips: list[Strip]
    macs: int  # with recomputed halos
    base_macs: int  # the same ops computed whole

    @property
    def scratch_bytes(self) -> int:
        return max(s.scratch_bytes for s in self.strips)

    @property
    def overhead(self) -> float:
        return self.macs / self.base_macs - 1.0 if self.base_macs else 0.0


def _row_bytes(model: Model, t: str) -> int:
    _, w, c = model.tensors[t].shape
    return w * c


def _input_rows(op, model: Model, out_rows: tuple[int, int]) -> tuple[int, int]:
    a, b = out_rows
    h_in = model.tensors[op.inputs[0]].shape[0]
    if isinstance(op, Conv2D):
        k, s, p = op.kernel[0], op.stride, op.pad
        return max(0, a * s - p), min(h_in, (b - 1) * s - p + k)
    return a, b  # add


def _op_row_macs(model: Model, op) -> int:
    if isinstance(op, Conv2D):
        _, ow, oc = model.tensors[op.output].shape
        return ow * oc * op.kernel[0] * op.kernel[1] * (op.in_channels // op.groups)
    return 0


def build_stage(model: Model, ops: list, strips: int) -> PatchStage:
    """The strip schedule of `ops` (a prefix of the model's forward ops ending in one tensor)."""
    out = ops[-1].output
    h_s = model.tensors[out].shape[0]
    bounds = [round(i * h_s / strips) for i in range(strips + 1)]
    produced = {op.output: op for op in ops}
    result: list[Strip] = []
    macs = 0
    for a, b in zip(bounds, bounds[1:]):
        if b <= a:
            continue
        need: dict[str, tuple[int, int]] = {out: (a, b)}
        for op in reversed(ops):
            rows = need.get(op.output)
            if rows is None:
                continue
            lo, hi = _input_rows(op, model, rows)
            for t in op.inputs:
                if t in need:
                    need[t] = (min(need[t][0], lo), max(need[t][1], hi))
                else:
                    need[t] = (lo, hi)
        strip_ops = [StripOp(op.name, need[op.output]) for op in ops if op.output in need]
        macs += sum(_op_row_macs(model, op) * (need[op.output][1] - need[op.output][0]) for op in ops
                    if op.output in need)
        held = dict(need)
        strip = Strip((a, b), strip_ops, held)
        _plan_scratch(model, strip, produced, out)
        result.append(strip)
    base = sum(_op_row_macs(model, op) * model.tensors[op.output].shape[0] for op in ops)
    return PatchStage([op.name for op in ops], ops[0].inputs[0], out, result, macs, base)


def _plan_scratch(model: Model, strip: Strip, produced: dict, out: str) -> None:
    """Offsets of the strip's intermediate buffers in the scratch area (the same planner as the arena)."""
    buffers: dict[str, Buffer] = {}
    steps: list[Step] = []
    by_name = {op.name: op for op in produced.values()}
    for so in strip.ops:
        op = by_name[so.op]
        reads = tuple(t for t in op.inputs if t in produced)
        writes = (op.output,) if op.output != out else ()
        for t in writes:
            r0, r1 = strip.held[t]
            buffers[t] = Buffer(t, "int8", (r1 - r0, _row_bytes(model, t)), "activation")
        steps.append(Step("strip", op.name, reads, writes))
    if not buffers:
        return
    p = plan(steps, buffers, None)
    strip.offsets = dict(p.offsets)
    strip.scratch_bytes = p.arena_bytes


def candidate_cuts(model: Model, frozen: set[str]) -> list[int]:
    """Indices i such that ops[:i+1] can form a stage: local ops (conv, add) whose outputs need no
    backward, with exactly one tensor (ops[i].output) used after them."""
    cuts = []
    ops = model.ops
    consumers = model.consumers()
    position = {op.name: i for i, op in enumerate(ops)}
    for i, op in enumerate(ops):
        if not isinstance(op, (Conv2D, Add)) or op.output not in frozen:
            break
        if op.output == model.output:
            break
        escaping = {o.output for o in ops[: i + 1]
                    if any(position[c.name] > i for c in consumers[o.output])}
        if escaping == {op.output} and model.tensors[op.output].shape[0] > 1:
            cuts.append(i)
    return cuts


def stage_step(model: Model, stage: PatchStage) -> tuple[Step, Buffer]:
    scratch = Buffer(f"{stage.output}.stage_scratch", "int8", (max(stage.scratch_bytes, 1),), "activation")
    step = Step("patch_stage", stage.output, (stage.input,), (stage.output, scratch.name),
                {"stage": stage}, macs=stage.macs)
    return step, scratch
