"""Streaming execution of the frozen front of a network, row band by row band.

The first layers of a vision model hold the largest activations (e.g. 64x64x48
= 192 KB in MobileNetV2-w0.35 at 128x128) but are frozen: nothing in the
backward pass reads them. A *stage* is a prefix of those ops ending in one
tensor S. It runs in strips, each producing the next band of rows of S. Every
intermediate tensor keeps only a sliding window of rows: a strip computes the
next few rows of one op, pulled by what its consumer is about to compute, and
afterwards the rows no later strip needs are dropped (the rest move to the
front of the window). Nothing is computed twice (unlike MCUNetV2's overlapping patches), and
no intermediate tensor of the stage ever exists whole: the stage needs the model
input, S, and one window per intermediate tensor.

Results are bit-identical to the whole-tensor computation (each value is the
same integer function of the same inputs), so the NumPy reference computes the
stage ops whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinytrain import ops
from tinytrain.ir.graph import Model
from tinytrain.ir.program import Buffer, StageAttrs, Step, StepKind
from tinytrain.ops.base import Emitter, Executor, OpRule


@dataclass
class StripOp:
    op: str
    out_rows: tuple[int, int]  # new rows [a, b) of the op's output computed in this strip


@dataclass
class Strip:
    rows: tuple[int, int]  # rows of the output of the strip's op
    ops: list[StripOp]
    base: dict[str, int]  # first row held at the start of each intermediate window during this strip
    shifts: list[tuple[str, int, int]] = field(default_factory=list)  # after the strip: (tensor, drop rows, keep rows)


@dataclass
class PatchStage:
    ops: list[str]
    input: str
    output: str
    strips: list[Strip]
    windows: dict[str, tuple[int, int]]  # tensor -> (scratch offset, capacity in rows)
    row_bytes: dict[str, int]
    scratch_bytes: int
    macs: int
    stream_input: bool = False  # the input's rows are received during the stage (a window, not a tensor)

    @property
    def base_macs(self) -> int:
        return self.macs

    @property
    def overhead(self) -> float:
        return 0.0


def _input_rows(op, model: Model, out_rows: tuple[int, int]) -> tuple[int, int]:
    return ops.rule_for(op).input_rows(op, model, out_rows)


def build_stage(model: Model, stage_ops: list, rows_per_strip: int, stream_input: bool = False) -> PatchStage:
    """The streaming schedule of `ops` (a prefix of the model's forward ops ending in one tensor).

    Rows are pulled: to compute its next chunk of at most `rows_per_strip` rows, an op first has its
    inputs computed just far enough (recursively, in chunks of the same size), and after each chunk
    every input drops the rows that no consumer's remaining output rows read. So a window holds
    about a kernel's height plus a chunk, however deep the stage is (computing each op's whole
    demand at once would make the early windows as tall as the stage's receptive field).

    With `stream_input` the model input is a window too: its rows are received from the serial line
    when the first op pulls them (a strip whose op is the input's name), so the sample never exists
    whole on the board."""
    out = stage_ops[-1].output
    inp = stage_ops[0].inputs[0]
    producer = {op.output: op for op in stage_ops}
    windowed = ([inp] if stream_input else []) + [op.output for op in stage_ops if op.output != out]
    consumers = {t: [op for op in stage_ops if t in op.inputs] for t in windowed}
    row_bytes = {t: model.tensors[t].shape[1] * model.tensors[t].shape[2] for t in [inp] + windowed + [out]}
    height = {t: model.tensors[t].shape[0] for t in [inp] + windowed + [out]}
    done = {t: 0 for t in windowed + [out]}  # rows [0, done) computed so far
    base = {t: 0 for t in windowed}  # first row held in the window
    capacity = {t: 0 for t in windowed}
    strips: list[Strip] = []

    def drop(x: str, strip: Strip) -> None:
        keep_from = done[x]
        for c in consumers[x]:
            if done[c.output] < height[c.output]:
                keep_from = min(keep_from, _input_rows(c, model, (done[c.output], done[c.output] + 1))[0])
        if keep_from > base[x]:
            strip.shifts.append((x, keep_from - base[x], done[x] - keep_from))
            base[x] = keep_from

    def produce(t: str, upto: int) -> None:
        op = producer.get(t)
        while op is None and done[t] < upto:  # the streamed input: receive the next rows
            lo, hi = done[t], min(done[t] + rows_per_strip, height[t])
            strips.append(Strip((lo, hi), [StripOp(t, (lo, hi))], dict(base)))
            done[t] = hi
            capacity[t] = max(capacity[t], hi - base[t])
        while done[t] < upto:
            lo = done[t]
            hi = min(lo + rows_per_strip, height[t])
            reads = _input_rows(op, model, (lo, hi))
            for x in op.inputs:
                if x in base:
                    produce(x, reads[1])
                    if base[x] > reads[0]:
                        raise AssertionError(f"stage schedule reads rows of {x} it does not hold")
            strip = Strip((lo, hi), [StripOp(op.name, (lo, hi))], dict(base))
            done[t] = hi
            if t in capacity:
                capacity[t] = max(capacity[t], hi - base[t])
            for x in dict.fromkeys(op.inputs):
                if x in base:
                    drop(x, strip)
            strips.append(strip)

    produce(out, height[out])
    windows, offset = {}, 0
    for t in windowed:
        windows[t] = (offset, capacity[t])
        offset += (capacity[t] * row_bytes[t] + 7) // 8 * 8
    macs = sum(ops.rule_for(op).row_macs(op, model) * model.tensors[op.output].shape[0] for op in stage_ops)
    return PatchStage([op.name for op in stage_ops], inp, out, strips, windows, row_bytes, offset, macs, stream_input)


def candidate_cuts(model: Model, frozen: set[str]) -> list[int]:
    """Indices i such that ops[:i+1] can form a stage: row-local ops (their rule is stageable) whose
    outputs need no backward, with exactly one tensor (ops[i].output) used after them."""
    cuts = []
    nodes = model.ops
    consumers = model.consumers()
    position = {op.name: i for i, op in enumerate(nodes)}
    for i, op in enumerate(nodes):
        if not ops.rule_for(op).stageable(op) or op.output not in frozen:
            break
        if op.output == model.output:
            break
        escaping = {o.output for o in nodes[: i + 1]
                    if any(position[c.name] > i for c in consumers[o.output])}
        if escaping == {op.output} and model.tensors[op.output].shape[0] > 1:
            cuts.append(i)
    return cuts


class StageRule(OpRule):
    """Runs a stage: in NumPy the ops compute their whole tensors (exactly the values the strips
    compute); in C, per strip, one kernel call per op on its new rows, then the windows drop the
    rows no later strip needs."""

    def run(self, step: Step, ex: Executor) -> None:
        stage = step.attrs.stage
        values = {stage.input: ex.mem[stage.input]}
        for name in stage.ops:
            node = ex.nodes[name]
            values[node.output] = ops.rule_for(node).compute(node, values.__getitem__, ex)[0]
        ex.mem[stage.output] = values[stage.output]

    def emit(self, step: Step, em: Emitter) -> str:
        stage = step.attrs.stage
        scratch = em.offset(step.writes[1])
        t = em.model.tensors
        lines = []
        done = {name: 0 for name in stage.windows}
        for strip in stage.strips:
            def row(tensor: str, r: int, strip=strip) -> str:
                if tensor not in stage.windows:
                    return f"((int8_t *)(tt_arena + {em.offset(tensor) + r * stage.row_bytes[tensor]}u))"
                off = scratch + stage.windows[tensor][0] + (r - strip.base[tensor]) * stage.row_bytes[tensor]
                return f"((int8_t *)(tt_arena + {off}u))"

            def rows_held(tensor: str) -> int:
                return done[tensor] if tensor in done else t[tensor].shape[0]

            lines.append(f"/* {strip.ops[0].op}: rows {strip.rows[0]}..{strip.rows[1] - 1} */")
            for so in strip.ops:
                a, b = so.out_rows
                if so.op == stage.input:  # the next rows of the sample, straight from the serial line
                    lines.append(f"if ((rc = tt_input_read({row(stage.input, a)}, "
                                 f"{(b - a) * stage.row_bytes[stage.input]}u)) != 0) return rc;")
                    done[stage.input] = b
                    continue
                node = em.node(so.op)
                lines.append(ops.rule_for(node).emit_rows(node, em, row, (a, b), rows_held))
                if node.output in done:
                    done[node.output] = b
            for tensor, drop, keep in strip.shifts:
                if keep:
                    off = scratch + stage.windows[tensor][0]
                    rb = stage.row_bytes[tensor]
                    lines.append(f"memmove(tt_arena + {off}u, tt_arena + {off + drop * rb}u, {keep * rb}u);")
        if stage.stream_input:  # the payload's CRC: nothing has changed yet if the sample was corrupted
            lines.append("if ((rc = tt_input_end()) != 0) return rc;")
        return "\n    ".join(lines)


STAGE = StageRule()


def kernel_scratch_offset(stage: PatchStage) -> int:
    """Where the kernels' scratch starts in the stage's buffer: after the windows, 8-byte aligned."""
    return (stage.scratch_bytes + 7) // 8 * 8


def kernel_scratch_bytes(model: Model, stage: PatchStage) -> int:
    """The largest scratch a kernel of the stage needs (one kernel runs at a time)."""
    nodes = {op.name: op for op in model.ops}
    return max((ops.rule_for(nodes[n]).rows_scratch_bytes(nodes[n], model) for n in stage.ops), default=0)


def stage_step(model: Model, stage: PatchStage) -> tuple[Step, Buffer]:
    """The stage's step and its one buffer: the row windows, then the kernels' scratch."""
    size = kernel_scratch_offset(stage) + kernel_scratch_bytes(model, stage)
    scratch = Buffer(f"{stage.output}.stage_windows", "int8", (max(size, 1),), "activation")
    step = Step(StepKind.PATCH_STAGE, stage.output, (stage.input,), (stage.output, scratch.name),
                StageAttrs(stage), macs=stage.macs, rule=STAGE)
    return step, scratch
