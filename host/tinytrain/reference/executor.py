"""Executes a compiled training program with the NumPy reference kernels.

By default every buffer is a view into one byte array at the planned offset,
exactly as on the board, so a wrong memory plan corrupts results here too.
"""

from __future__ import annotations

import functools

import numpy as np

from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.compile.arena_plan import ArenaPlan, plan
from tinytrain.ir.program import ParamSpec, Step, TrainingProgram
from tinytrain.numerics.fixed_point import LR_ONE
from tinytrain.ops import rule_for as node_rule

__all__ = ["LR_ONE", "Memory", "NumpyBackend"]


@functools.cache
def _limits(dtype: str) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


class Memory:
    """Buffers by name; `arena` mode places them in one byte array at planned offsets."""

    def __init__(self, program: TrainingProgram, plans: dict[str, ArenaPlan] | None):
        self.program = program
        self.plans = plans
        self.values: dict[str, np.ndarray] = {}
        size = max((p.arena_bytes for p in plans.values()), default=0) if plans else 0
        self.arena = np.zeros(size, dtype=np.uint8)
        self.active: ArenaPlan | None = None

    def use(self, which: str) -> None:
        self.active = self.plans[which] if self.plans else None

    def _view(self, name: str) -> np.ndarray:
        b = self.program.buffers[name]
        off = self.active.offsets[name]
        raw = self.arena[off : off + b.nbytes]
        if b.dtype == "bits":
            return raw
        return raw.view(b.dtype).reshape(b.shape)

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        b = self.program.buffers[name]
        if self.active is None or name not in self.active.offsets:  # no arena, or a streamed input
            v = np.asarray(value)
            if b.dtype != "bits" and v.size:
                lo, hi = _limits(b.dtype)
                if v.min() < lo or v.max() > hi:
                    raise OverflowError(f"{name}: value out of {b.dtype} range")
            self.values[name] = np.array(v)
            return
        view = self._view(name)
        if b.dtype == "bits":
            view[:] = np.packbits(np.asarray(value, dtype=bool).reshape(-1), bitorder="little")
        else:
            lo, hi = _limits(b.dtype)
            v = np.asarray(value)
            if v.size and (v.min() < lo or v.max() > hi):
                raise OverflowError(f"{name}: value out of {b.dtype} range")
            view[...] = v.reshape(b.shape)

    def __getitem__(self, name: str) -> np.ndarray:
        b = self.program.buffers[name]
        if self.active is None or name not in self.active.offsets:
            return self.values[name]
        view = self._view(name)
        if b.dtype == "bits":
            return np.unpackbits(view, bitorder="little", count=b.elements).astype(bool).reshape(b.shape)
        return view.copy()


class NumpyBackend:
    """Runs a program step by step: each step's rule (tinytrain.ops) computes it with the reference
    kernels (tinytrain.numerics); this class holds the state (buffers, gradient exponents, the
    parameters) and does what no op owns: the SGD update of a trained tensor's SRAM part."""

    def __init__(self, program: TrainingProgram, use_arena: bool = True):
        self.program = program
        self.model = program.model
        self.weights = {op.name: op.weight.copy() for op in self.model.weighted_ops}
        self.biases = {op.name: op.bias.astype(np.int32).copy() for op in self.model.weighted_ops}
        self.nodes = {op.name: op for op in self.model.ops}
        self.step_count = 0
        self.label, self.lr_scale = 0, LR_ONE
        self.plans = None
        if use_arena:
            self.plans = {
                "train": plan(program.train_steps, program.buffers, self.model.input),
                "infer": plan(program.infer_steps, program.buffers, self.model.input),
            }
        self.mem = Memory(program, self.plans)
        self.exps: dict[str, int] = {}

    # ---------------------------------------------------------------- public

    def infer(self, x: np.ndarray) -> np.ndarray:
        self.mem.use("infer")
        self.mem[self.model.input] = x
        for s in self.program.infer_steps:
            self.run_step(s)
        return self.mem[self.model.output].reshape(-1).copy()

    def train_step(self, x: np.ndarray, label: int, lr_scale: int = LR_ONE) -> np.ndarray:
        """One SGD step on one sample; returns the logits of the forward pass (before the update)."""
        if not 0 <= label < self.model.num_classes:
            raise ValueError(f"label {label} out of range")
        self.mem.use("train")
        self.mem[self.model.input] = x
        self.label, self.lr_scale = int(label), int(lr_scale)
        logits = None
        for s in self.program.train_steps:
            self.run_step(s)
            if s.kind.is_forward and self.model.output in s.writes:
                logits = self.mem[self.model.output].reshape(-1).copy()
        self.step_count += 1
        return logits

    def run_step(self, s: Step) -> None:
        s.rule.run(s, self)

    def trainable_state(self) -> list[tuple[ParamSpec, np.ndarray]]:
        """The SRAM part of every trainable tensor, in the board's order (what PARAMS_GET returns)."""
        return [(p, self.sram_part(p)) for p in self.program.trainable_params]

    def sram_part(self, p: ParamSpec) -> np.ndarray:
        """A view of the part of a trained tensor that lives in SRAM (p.sram_index of the whole)."""
        if p.kind == "bias":
            return self.biases[p.op]
        return self.weights[p.op][p.sram_index]

    def set_trainable_state(self, parts: list[np.ndarray], step_count: int) -> None:
        for p, v in zip(self.program.trainable_params, parts):
            self.sram_part(p)[...] = v
        self.step_count = step_count

    def state_bytes(self) -> bytes:
        """The learned state exactly as the board's PARAMS_GET returns it: u32 step counter
        (little-endian), then the SRAM part of every trainable tensor, row-major, little-endian."""
        parts = [np.uint32(self.step_count).astype("<u4").tobytes()]
        for p, v in self.trainable_state():
            parts.append(np.ascontiguousarray(v).astype("<i4" if p.kind == "bias" else "i1").tobytes())
        return b"".join(parts)

    def load_state_bytes(self, data: bytes) -> None:
        expected = 4 + sum(v.nbytes for _, v in self.trainable_state())
        if len(data) != expected:
            raise ValueError(f"state has {len(data)} bytes, this program needs {expected}")
        at = 4
        parts = []
        for p, v in self.trainable_state():
            dt = np.dtype("<i4" if p.kind == "bias" else "i1")
            n = v.size * dt.itemsize
            parts.append(np.frombuffer(data, dtype=dt, count=v.size, offset=at).reshape(v.shape).astype(v.dtype))
            at += n
        self.set_trainable_state(parts, int(np.frombuffer(data[:4], dtype="<u4")[0]))

    def predict(self, x: np.ndarray) -> int:
        return int(np.argmax(self.infer(x)))

    def compute(self, node, get) -> tuple[np.ndarray, np.ndarray]:
        """The forward values of one node from its inputs (`get(tensor)`)."""
        return node_rule(node).compute(node, get, self)

    # ---------------------------------------------------------------- for the rules (tinytrain.ops.base.Executor)

    def set_grad(self, name: str, value: np.ndarray, exponent: int) -> None:
        self.mem[name] = value
        self.exps[name] = exponent

    def mask(self, step: Step) -> np.ndarray | None:
        return None if step.mask is None else self.mem[step.mask]

    def apply_update(self, spec: ParamSpec, grad: np.ndarray, exponent: int) -> None:
        """SGD on the updated region of a trained tensor (spec.update_index of its SRAM part): one
        coefficient per output channel (the region's first axis), rounded by the program's mode with
        the element's counter-based random bits, saturated to int8 weights / int32 biases."""
        c = self.program.consts[spec.op]
        opt = self.program.options
        part = self.sram_part(spec)
        rand = fp.random_bits(opt.seed, self.step_count, spec.element_offset, part.size).reshape(part.shape)
        region, r = part[spec.update_index], rand[spec.update_index]
        mult, shift = c.w_coef if spec.kind == "weight" else c.b_coef
        rows = region.shape[0]
        lo, hi = (K.WMIN, K.WMAX) if spec.kind == "weight" else (fp.INT32_MIN, fp.INT32_MAX)
        region[...] = K.sgd_update(region, grad, exponent, mult[:rows], shift[:rows], opt.rounding, r, lo, hi)
