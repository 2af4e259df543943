"""Compilation driver: model + scheme -> training program, memory plans, SRAM/flash prediction, report."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from tinytrain.compile import arena_plan
from tinytrain.compile.arena_plan import ArenaPlan
from tinytrain.compile.autodiff import compile_program, frozen_tensors
from tinytrain.compile.scheme import SparseScheme
from tinytrain.compile.sram_budget import FIRMWARE_BASE, BudgetError, SramEstimate, kb
from tinytrain.ir.graph import Model
from tinytrain.ir.program import CompileOptions, StepKind, TrainingProgram
from tinytrain.model import ttm as model_file
from tinytrain.model.known_models import known_lr

FIRMWARE_FLASH_BYTES = 24 * 1024  # code of the firmware without the model (measured, see sram_budget)
# A checkpoint slot is one 256 KB flash sector (STM32F746 sectors 6 and 7) less its header
# (firmware/app/checkpoint.h): the largest learned state a build with checkpoints can keep.
CHECKPOINT_SLOT_BYTES = 256 * 1024 - 256


@dataclass
class Compiled:
    program: TrainingProgram
    train_plan: ArenaPlan
    infer_plan: ArenaPlan
    plain_program: TrainingProgram
    plain_plan: ArenaPlan
    sram: SramEstimate
    sram_without_reordering: int
    flash_bytes: int
    model_hash: str
    checkpoints: bool = True  # the build keeps checkpoints in flash, where a restore is staged too

    @property
    def arena_bytes(self) -> int:
        return arena_bytes(self.train_plan, self.infer_plan, self.program, self.checkpoints)

    @cached_property
    def program_hash(self) -> str:
        return program_hash(self)

    @cached_property
    def state_hash(self) -> str:
        return state_layout_hash(self.program, self.model_hash)

    def report(self) -> dict:
        p = self.program
        return {
            "model": p.model.name,
            "model_hash": self.model_hash,
            "classes": p.model.num_classes,
            "input_shape": list(p.model.input_spec.shape),
            "scheme": p.scheme.name,
            "scheme_json": p.scheme.to_authors_json(),
            "options": {"lr": p.options.lr, "bias_lr": p.options.bias_lr, "qas": p.options.qas,
                        "rounding": p.options.rounding, "seed": p.options.seed},
            "arena_bytes": self.arena_bytes,
            "train_arena_bytes": self.train_plan.arena_bytes,
            "infer_arena_bytes": self.infer_plan.arena_bytes,
            "trainable_sram_bytes": p.trainable_sram_bytes,
            "runtime_state_bytes": self.sram.runtime_bytes,
            "firmware_static_bytes": self.sram.firmware_static_bytes,
            "stack_bytes": self.sram.stack_bytes,
            "planned_peak_sram_bytes": self.sram.total,
            "peak_without_reordering_bytes": self.sram_without_reordering,
            "peak_live_activation_bytes": self.train_plan.peak_live_bytes,
            "flash_bytes": self.flash_bytes,
            "checkpoints": self.checkpoints,
            "macs_forward": p.macs_forward,
            "macs_backward": p.macs_backward,
            "train_steps": len(p.train_steps),
            "trainable_tensors": [
                {"op": s.op, "layer": s.layer, "kind": s.kind, "shape": list(s.sram_shape), "channels": s.channels,
                 "bytes": s.sram_bytes}
                for s in p.trainable_params
            ],
        }


def state_bytes(program: TrainingProgram) -> int:
    """The learned state (PARAMS_GET/SET, a checkpoint): the u32 step counter and the SRAM part of every
    trainable tensor."""
    return 4 + program.trainable_sram_bytes


def arena_bytes(train: ArenaPlan, infer: ArenaPlan, program: TrainingProgram, checkpoints: bool) -> int:
    """The arena: the larger plan. A build with checkpoints stages a restore (PARAMS_SET) in the flash
    slot it commits to; one without stages it in the arena, which is then at least as large as the state."""
    return max(train.arena_bytes, infer.arena_bytes, 0 if checkpoints else state_bytes(program))


def check_checkpoint_slot(program: TrainingProgram) -> None:
    if state_bytes(program) > CHECKPOINT_SLOT_BYTES:
        raise BudgetError(f"the learned state of {kb(state_bytes(program))} does not fit a checkpoint slot of "
                          f"{kb(CHECKPOINT_SLOT_BYTES)}; build without checkpoints (checkpoints = 0).")


def model_lr(model: Model) -> float:
    """The model's base learning rate: its metadata's `lr` (chosen by `tinytrain tune-lr` and kept with
    the model), else the known-models table's rate for the file it came from (the paper's .pkl files,
    model.known_models), else CompileOptions' default. TRAIN's lr_scale multiplies it per step."""
    lr = model.metadata.get("lr")
    if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0:
        return float(lr)
    known = known_lr(model)
    return known if known is not None else CompileOptions.lr


def runtime_state_bytes(program: TrainingProgram) -> int:
    """What the generated code allocates besides arena and parameters (tt_model_gen.c): one u32
    counter per profiled step, the logits, the step counter; 8 bytes of alignment per object."""
    return 4 * (len(program.train_steps) + len(program.infer_steps)) + program.model.num_classes + 4 + 3 * 8


def flash_bytes(program: TrainingProgram) -> int:
    """Model data in flash: every weight and bias (trained ones as their .data image), per-channel
    multipliers/shifts and weight sums, update coefficients, the loss table; plus the firmware."""
    total = FIRMWARE_FLASH_BYTES + 256 * 4
    for op in program.model.weighted_ops:
        total += op.weight.size + 4 * op.out_channels * 4  # weights, bias, mult, shift, wsum
        if any(p.op == op.name and p.trainable for p in program.params):
            total += 8 * op.out_channels * 2  # weight and bias update coefficients
    return total


def _arena(program: TrainingProgram) -> int:
    model = program.model
    return max(arena_plan.plan(program.train_steps, program.buffers, model.input).arena_bytes,
               arena_plan.plan(program.infer_steps, program.buffers, model.input).arena_bytes)


def _strips(program: TrainingProgram) -> int:
    return sum(len(s.attrs.stage.strips) for s in program.train_steps if s.kind is StepKind.PATCH_STAGE)


def choose_stage(model: Model, scheme: SparseScheme, options: CompileOptions,
                 arena_limit: int | None = None) -> tuple[int, int] | None:
    """The streaming stage (last op index, rows per strip), or None for none. Without a limit: the
    one that minimizes the arena (fewer, taller strips win ties: fewer kernel calls). With an arena
    limit (from a budget): among those within it, the one with the fewest strips, i.e. the fewest
    short kernel calls on row bands (whole tensors are what the kernels run fastest on)."""
    from tinytrain.compile.staging import candidate_cuts

    base = replace(options, stage=None, patch=False)
    plain = compile_program(model, scheme, base)
    best_arena = _arena(plain)
    best = None
    feasible = [(0, best_arena, None)] if arena_limit is not None and best_arena <= arena_limit else []
    for cut in candidate_cuts(model, frozen_tensors(model, scheme)):
        rows = model.tensors[model.ops[cut].output].shape[0]
        for per_strip in (4, 2, 1):
            if per_strip >= rows:
                continue
            program = compile_program(model, scheme, replace(base, stage=(cut, per_strip)))
            arena = _arena(program)
            if arena_limit is not None and arena <= arena_limit:
                feasible.append((_strips(program), arena, (cut, per_strip)))
            if arena < best_arena * 0.99:
                best_arena, best = arena, (cut, per_strip)
    if feasible:
        return min(feasible, key=lambda f: (f[0], f[1]))[2]
    return best


def choose_wide_input_grads(model: Model, scheme: SparseScheme, options: CompileOptions,
                            arena_limit: int | None = None) -> frozenset[str]:
    """Input gradients written as int16 take two passes (max, then write); the int32 form takes one
    pass but twice the memory. Keep int32 wherever the arena stays within `arena_limit` (default:
    wherever it does not grow at all), largest layers first."""
    program = compile_program(model, scheme, options)
    candidates = sorted((s for s in program.train_steps if s.kind is StepKind.INPUT_GRAD and s.attrs.bits is not None),
                        key=lambda s: -s.macs)
    wide: frozenset[str] = frozenset()
    limit = max(_arena(program), arena_limit or 0)
    for step in candidates:
        trial = wide | {step.op}
        if _arena(compile_program(model, scheme, replace(options, wide_input_grads=trial))) <= limit:
            wide = trial
    return wide


def resolve_stage(model: Model, scheme: SparseScheme, options: CompileOptions,
                  budget_bytes: int | None = None) -> CompileOptions:
    """Fills in what the compiler chooses itself: the streaming front and the int32 input gradients.
    Without a budget both minimize memory; with one, memory the budget allows is spent on speed
    (the stage with the fewest strips that fits, then int32 gradients while the plan still fits)."""
    limit = None
    if budget_bytes is not None:
        program = compile_program(model, scheme, replace(options, stage=None, patch=False))
        limit = (budget_bytes - program.trainable_sram_bytes - runtime_state_bytes(program)
                 - FIRMWARE_BASE["static_bytes"] - FIRMWARE_BASE["stack_bytes"])
    if options.stage is None and options.patch:
        options = replace(options, stage=choose_stage(model, scheme, options, limit))
    options = replace(options, patch=False)
    if not options.wide_input_grads:
        options = replace(options, wide_input_grads=choose_wide_input_grads(model, scheme, options, limit))
    return options


def predict_peak_sram(model: Model, scheme: SparseScheme, options: CompileOptions | None = None,
                      checkpoints: bool = True) -> int:
    """Planned peak SRAM of the reordered program (the real memory plan, without the report's extras)."""
    program = compile_program(model, scheme, resolve_stage(model, scheme, options or CompileOptions()))
    train = arena_plan.plan(program.train_steps, program.buffers, model.input)
    infer = arena_plan.plan(program.infer_steps, program.buffers, model.input)
    return (arena_bytes(train, infer, program, checkpoints) + program.trainable_sram_bytes
            + runtime_state_bytes(program)
            + FIRMWARE_BASE["static_bytes"] + FIRMWARE_BASE["stack_bytes"])


def compile_model(model: Model, scheme: SparseScheme, options: CompileOptions | None = None,
                  budget_bytes: int | None = None, checkpoints: bool = True) -> Compiled:
    """checkpoints: the firmware keeps checkpoints in flash (and stages restores there, not in the arena)."""
    options = resolve_stage(model, scheme, options or CompileOptions(), budget_bytes)
    program = compile_program(model, scheme, options)
    if checkpoints:
        check_checkpoint_slot(program)
    return plan_program(program, budget_bytes, checkpoints)


def plan_program(program: TrainingProgram, budget_bytes: int | None = None, checkpoints: bool = True) -> Compiled:
    """The memory plans and SRAM figures of a program compiled with exactly its options (compile_model
    first lets the compiler choose the streaming stage and the int32 input gradients; this takes the
    program as it is, e.g. the one the contribution analysis' NumPy runs execute)."""
    model, scheme, options = program.model, program.scheme, program.options
    plain = compile_program(model, scheme, replace(options, reorder=False))
    train = arena_plan.plan(program.train_steps, program.buffers, model.input)
    infer = arena_plan.plan(program.infer_steps, program.buffers, model.input)
    plain_plan = arena_plan.plan(plain.train_steps, plain.buffers, model.input)
    runtime = runtime_state_bytes(program)
    sram = SramEstimate(arena_bytes(train, infer, program, checkpoints), program.trainable_sram_bytes, runtime,
                        FIRMWARE_BASE["static_bytes"], FIRMWARE_BASE["stack_bytes"])
    without = (arena_bytes(plain_plan, infer, program, checkpoints) + program.trainable_sram_bytes + runtime
               + FIRMWARE_BASE["static_bytes"] + FIRMWARE_BASE["stack_bytes"])
    compiled = Compiled(program, train, infer, plain, plain_plan, sram, without, flash_bytes(program),
                        model_file.model_hash(model), checkpoints)
    if budget_bytes is not None and sram.total > budget_bytes:
        raise BudgetError(_over_budget(compiled, budget_bytes))
    return compiled


def _over_budget(c: Compiled, budget: int) -> str:
    plan = c.train_plan if c.train_plan.arena_bytes >= c.infer_plan.arena_bytes else c.infer_plan
    steps = c.program.train_steps if plan is c.train_plan else c.program.infer_steps
    peak = int(np.argmax(plan.live_bytes_per_step)) - 1
    live = sorted(((plan.sizes[b], b) for b, (s, e) in plan.lifetimes.items() if s <= peak <= e), reverse=True)[:2]
    step_name = steps[peak].op if peak >= 0 else "input"
    biggest = sorted(c.program.trainable_params, key=lambda p: -p.sram_bytes)[:2]
    arena = f"the arena {kb(c.arena_bytes)} (at {step_name}: " + ", ".join(f"{b} {kb(n)}" for n, b in live) + ")"
    if c.arena_bytes > max(c.train_plan.arena_bytes, c.infer_plan.arena_bytes):
        arena = f"the arena {kb(c.arena_bytes)} (sized to stage a restore of the learned state)"
    parts = [arena,
             f"trainable tensors {kb(c.program.trainable_sram_bytes)} ("
             + ", ".join(f"{p.op}.{p.kind} {kb(p.sram_bytes)}" for p in biggest) + ")"]
    return (f"the planned peak SRAM {kb(c.sram.total)} exceeds the {kb(budget)} budget; the largest contributors are "
            + " and ".join(parts) + ".")


def write_outputs(c: Compiled, out_dir: Path, budget_bytes: int | None = None) -> dict:
    from tinytrain.compile.memory_plot import plot_memory

    out_dir.mkdir(parents=True, exist_ok=True)
    report = c.report()
    report["budget_bytes"] = budget_bytes
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    plot_memory(c, out_dir / "memory_plan.png")
    (out_dir / "program.txt").write_text(describe_program(c))
    return report


def describe_program(c: Compiled) -> str:
    lines = [f"# {c.program.model.name} / {c.program.scheme.name}: {len(c.program.train_steps)} training steps",
             f"# offset:size of every buffer; arena {c.train_plan.arena_bytes} B"]
    for i, s in enumerate(c.program.train_steps):
        bufs = " ".join(f"{b}@{c.train_plan.offsets[b]}:{c.train_plan.sizes[b]}" for b in s.writes)
        reads = " ".join(s.reads)
        lines.append(f"{i:4d} {s.kind:16s} {s.op or '':10s} reads {reads} -> {bufs}")
    return "\n".join(lines) + "\n"


def layer_table(model: Model) -> list[dict]:
    rows = []
    for i, op in enumerate(model.weighted_ops):
        rows.append({"layer": i, "op": op.name, "kind": op.kind, "weights": int(op.weight.size),
                     "out_shape": list(model.tensors[op.output].shape)})
    return rows


# ---------------------------------------------------------------- program and state-layout hashes

PROGRAM_HASH_VERSION = 1


def _canonical(obj):
    """A JSON-able, deterministic form of compiler data (dataclasses, arrays, sets, dicts, numbers)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [type(obj).__name__, {f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                                     if not f.name.startswith("_") and f.compare}]
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        return ["ndarray", a.dtype.newbyteorder("<").str, list(a.shape), a.astype(a.dtype.newbyteorder("<")).tobytes().hex()]
    if obj is None or isinstance(obj, (bool, np.bool_, str)):
        return obj if not isinstance(obj, np.bool_) else bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj).hex()
    if isinstance(obj, dict):
        items = [(_canonical(k), _canonical(v)) for k, v in obj.items()]
        return ["dict", sorted(([k, v] for k, v in items), key=lambda kv: json.dumps(kv[0]))]
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return ["set", sorted((_canonical(v) for v in obj), key=json.dumps)]
    raise TypeError(f"no canonical form for {type(obj).__name__}")


def _sha256_json(doc) -> str:
    return hashlib.sha256(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()).hexdigest()


def state_layout(program: TrainingProgram, model_hash: str) -> dict:
    """What decides the meaning of every byte of the learned state (PARAMS_GET/SET, pulled files): the
    model, and the trainable tensors' order, shapes, SRAM parts and PRNG offsets (i.e. the scheme)."""
    return {"version": 1, "model_hash": model_hash, "header": "u32 step_count",
            "tensors": [[p.op, p.layer, p.kind, list(p.shape), p.channels, list(p.sram_shape), p.element_offset]
                        for p in program.trainable_params]}


def state_layout_hash(program: TrainingProgram, model_hash: str) -> str:
    """Hex SHA-256 of state_layout: a state saved under one hash is meaningful only under the same."""
    return _sha256_json(state_layout(program, model_hash))


def program_hash(c: Compiled) -> str:
    """Hex SHA-256 of a canonical description of everything that decides what a board built from `c`
    computes and how its memory is laid out: the model hash, the scheme, the compile options, the
    ordered steps (kinds, reads, writes, attributes), buffers, planned offsets, the trained-state
    layout and the layer constants. Equal hashes: the same program (deterministic across runs)."""
    p = c.program
    scheme = {"n_layers": p.scheme.n_layers, "bias_layers": sorted(p.scheme.bias_layers),
              "weight_ratios": sorted([i, float(r).hex()] for i, r in p.scheme.weight_ratios.items())}
    plan = lambda a: {"offsets": _canonical(a.offsets), "sizes": _canonical(a.sizes), "arena_bytes": a.arena_bytes}  # noqa: E731
    doc = {
        "version": PROGRAM_HASH_VERSION,
        "model_hash": c.model_hash,
        "scheme": scheme,
        "options": _canonical(p.options),
        "buffers": _canonical(p.buffers),
        "train_steps": _canonical(p.train_steps),
        "infer_steps": _canonical(p.infer_steps),
        "train_plan": plan(c.train_plan),
        "infer_plan": plan(c.infer_plan),
        "arena_bytes": c.arena_bytes,
        "checkpoints": c.checkpoints,
        "state_layout": state_layout(p, c.model_hash),
        "consts": _canonical(p.consts),
        "loss_table": _canonical(p.loss_table),
        "loss_scale_mult": _canonical(p.loss_scale_mult),
        "grad_bits": _canonical(p.grad_bits),
    }
    return _sha256_json(doc)
