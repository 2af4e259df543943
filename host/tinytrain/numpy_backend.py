"""Executes a compiled training program with the NumPy reference kernels.

By default every buffer is a view into one byte array at the planned offset,
exactly as on the board, so a wrong memory plan corrupts results here too.
"""

from __future__ import annotations

import functools

import numpy as np

from . import fixed_point as fp
from . import kernels_ref as K
from .arena_plan import ArenaPlan, plan
from .ir import Conv2D, Dense
from .training_program import ParamSpec, Step, TrainingProgram

LR_ONE = 1 << 16  # lr_scale is Q16


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
    def __init__(self, program: TrainingProgram, use_arena: bool = True):
        self.program = program
        self.model = program.model
        self.weights = {op.name: op.weight.copy() for op in self.model.weighted_ops}
        self.biases = {op.name: op.bias.astype(np.int32).copy() for op in self.model.weighted_ops}
        self.ops = {op.name: op for op in self.model.ops}
        self.step_count = 0
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
            self._forward(s)
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
            if s.kind in ("conv", "dense", "add", "avgpool", "save_channels", "patch_stage"):
                self._forward(s)
                if s.kind in ("conv", "dense") and s.writes[0] == self.model.output:
                    logits = self.mem[self.model.output].reshape(-1).copy()
            else:
                getattr(self, f"_{s.kind}")(s)
        self.step_count += 1
        return logits

    def trainable_state(self) -> list[tuple[ParamSpec, np.ndarray]]:
        """The SRAM part of every trainable tensor, in the board's order (what PARAMS_GET returns)."""
        return [(p, self.sram_part(p)) for p in self.program.trainable_params]

    def sram_part(self, p: ParamSpec) -> np.ndarray:
        if p.kind == "bias":
            return self.biases[p.op]
        w = self.weights[p.op]
        op = self.ops[p.op]
        if isinstance(op, Dense):
            return w[:, : p.channels]
        if op.is_depthwise:
            return w[: p.channels]
        if op.kernel == (1, 1):
            return w[..., : p.channels]
        return w

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

    # ---------------------------------------------------------------- forward

    def _forward(self, s: Step) -> None:
        if s.kind == "save_channels":
            x = self.mem[s.reads[0]]
            k = s.attrs["channels"]
            self.mem[s.writes[0]] = x.reshape(-1)[:k] if len(self.program.buffers[s.writes[0]].shape) == 1 else x[..., :k]
            return
        if s.kind == "patch_stage":
            # Strips compute exactly the values of the whole tensors; only S leaves the stage.
            stage = s.attrs["stage"]
            values = {stage.input: self.mem[stage.input]}
            for name in stage.ops:
                values[self.ops[name].output] = self._compute(self.ops[name], values.__getitem__)[0]
            self.mem[stage.output] = values[stage.output]
            return
        y, mask = self._compute(self.ops[s.op], self.mem.__getitem__)
        self.mem[s.writes[0]] = y
        for b in s.writes[1:]:
            if self.program.buffers[b].role == "mask":
                self.mem[b] = mask

    def _compute(self, op, get) -> tuple[np.ndarray, np.ndarray]:
        c = self.program.consts[op.name]
        if isinstance(op, Conv2D):
            acc = K.conv_accumulate(get(op.input), c.zx, self.weights[op.name], self.biases[op.name], op.stride,
                                    op.groups, op.pad)
            return K.Requant(c.multiplier, c.shift, c.zy).apply(acc)
        if isinstance(op, Dense):
            acc = K.dense_accumulate(get(op.input), c.zx, self.weights[op.name], self.biases[op.name])
            return K.Requant(c.multiplier, c.shift, c.zy).apply(acc)
        if op.op_type == "add":
            return K.add_forward(get(op.inputs[0]), get(op.inputs[1]), c.add)
        if op.op_type == "avgpool":
            return K.Requant(c.multiplier, c.shift, c.zy).apply(K.avgpool_accumulate(get(op.input), c.zx))
        raise ValueError(op.op_type)

    # ---------------------------------------------------------------- backward

    def _set_grad(self, name: str, value: np.ndarray, e: int) -> None:
        self.mem[name] = value
        self.exps[name] = e

    def _mask(self, s: Step):
        m = s.attrs.get("mask")
        return None if m is None else self.mem[m]

    def _loss_grad(self, s: Step) -> None:
        logits = self.mem[s.reads[0]]
        g, e = K.loss_backward(logits, self.label, self.program.loss_table, self.lr_scale,
                               self.program.loss_scale_mult, s.attrs["bits"])
        self._set_grad(s.writes[0], g, e)

    def _requant_grad(self, s: Step) -> None:
        c = self.program.consts[s.op]
        g = self.mem[s.reads[0]]
        out, e = K.requant_backward(g, self.exps[s.reads[0]], self._mask(s), c.multiplier, c.shift, s.attrs["bits"])
        self._set_grad(s.writes[0], out, e)

    def _input_grad(self, s: Step) -> None:
        op = self.ops[s.op]
        g = self.mem[s.reads[0]]
        shape = self.model.tensors[op.input].shape
        if isinstance(op, Dense):
            gx = K.dense_backward_input(g, self.weights[op.name], shape)
        else:
            gx = K.conv_backward_input(g, self.weights[op.name], op.stride, op.groups, op.pad, shape)
        e = self.exps[s.reads[0]]
        if "bits" in s.attrs:  # written as normalized int16 mantissas
            gx, e = K.grad_sum([(gx, e)], s.attrs["bits"])
        self._set_grad(s.writes[0], gx, e)

    def _weight_gradient(self, s: Step) -> tuple[np.ndarray, int]:
        op = self.ops[s.op]
        c = self.program.consts[s.op]
        spec = self.program.param(op.name, "weight")
        g = self.mem[s.reads[0]]
        x = self.mem[s.reads[1]]
        if isinstance(op, Dense):
            gw = K.dense_weight_grad(g, x, c.zx, spec.channels)
        else:
            gw = K.conv_weight_grad(g, x, c.zx, op.kernel[0], op.stride, op.groups, op.pad, spec.channels)
        return gw, self.exps[s.reads[0]]

    def _apply_weight(self, op_name: str, gw: np.ndarray, e: int) -> None:
        op = self.ops[op_name]
        c = self.program.consts[op_name]
        spec = self.program.param(op_name, "weight")
        opt = self.program.options
        part = self.sram_part(spec)
        rand = fp.random_bits(opt.seed, self.step_count, spec.element_offset, part.size).reshape(part.shape)
        k = spec.channels
        mult, shift = c.w_coef
        if isinstance(op, Conv2D) and op.is_depthwise:
            region, r, mult, shift = part, rand, mult[:k], shift[:k]
        elif isinstance(op, Conv2D) and op.kernel != (1, 1):
            region, r = part[..., :k], rand[..., :k]
        else:
            region, r = part, rand
        region[...] = K.sgd_update(region, gw, e, mult, shift, opt.rounding, r, K.WMIN, K.WMAX)

    def _apply_bias(self, op_name: str, gb: np.ndarray, e: int) -> None:
        c = self.program.consts[op_name]
        spec = self.program.param(op_name, "bias")
        opt = self.program.options
        b = self.biases[op_name]
        rand = fp.random_bits(opt.seed, self.step_count, spec.element_offset, b.size)
        b[...] = K.sgd_update(b, gb, e, c.b_coef[0], c.b_coef[1], opt.rounding, rand, fp.INT32_MIN, fp.INT32_MAX)

    def _weight_update(self, s: Step) -> None:
        gw, e = self._weight_gradient(s)
        self._apply_weight(s.op, gw, e)

    def _bias_update(self, s: Step) -> None:
        self._apply_bias(s.op, K.bias_grad(self.mem[s.reads[0]]), self.exps[s.reads[0]])

    def _weight_grad(self, s: Step) -> None:
        gw, e = self._weight_gradient(s)
        self._set_grad(s.writes[0], gw, e)

    def _bias_grad(self, s: Step) -> None:
        self._set_grad(s.writes[0], K.bias_grad(self.mem[s.reads[0]]), self.exps[s.reads[0]])

    def _apply_weight_grad(self, s: Step) -> None:
        self._apply_weight(s.op, self.mem[s.reads[0]], self.exps[s.reads[0]])

    def _apply_bias_grad(self, s: Step) -> None:
        self._apply_bias(s.op, self.mem[s.reads[0]], self.exps[s.reads[0]])

    def _add_grad(self, s: Step) -> None:
        c = self.program.consts[s.op]
        g, e = self.mem[s.reads[0]], self.exps[s.reads[0]]
        mask = self._mask(s)
        results = []
        for out, (m, sh) in zip(s.attrs["outputs"], c.add_grad):
            if out:
                results.append((out, K.add_backward(g, e, mask, m, sh, s.attrs["bits"])))
        for out, (v, ev) in results:
            self._set_grad(out, v, ev)

    def _avgpool_grad(self, s: Step) -> None:
        c = self.program.consts[s.op]
        op = self.ops[s.op]
        m, sh = c.pool_grad
        v, e = K.avgpool_backward(self.mem[s.reads[0]], self.exps[s.reads[0]], self._mask(s), m, sh,
                                  s.attrs["bits"], self.model.tensors[op.input].shape)
        self._set_grad(s.writes[0], v, e)

    def _grad_sum(self, s: Step) -> None:
        parts = [(self.mem[p], self.exps[p]) for p in s.reads]
        v, e = K.grad_sum(parts, s.attrs["bits"])
        self._set_grad(s.writes[0], v, e)
