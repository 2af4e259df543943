"""Federated averaging of the learned states of several boards, in the int8 layout.

A board's learned state (docs/protocol.md, PARAMS_GET) is `u32 step_count` followed by the SRAM part
of every trainable tensor in the compiler's order: int8 weights (scale s_w[c] per output channel c,
the part's first axis) and int32 biases (scale s_x * s_w[c]). Everything else of the model is frozen
and identical on every board, so only these bytes travel.

FedAvg of the dequantized values weighted by the boards' sample counts n_k, requantized to each
tensor's fixed scales:

    W = sum_k n_k (s q_k) / N,  q = round(W / s) = round(sum_k n_k q_k / N),  N = sum_k n_k

The scale of a tensor row is the same on every board (it is part of the frozen program), so the
requantized mean is exactly the weighted mean of the integers: this module computes it in integer
arithmetic (no floating-point error), with the unbiased stochastic rounding the boards' update uses
(docs/numerics.md): floor(mean + u), u = r / 2^32 with r the 32 random bits of the element from the
same counter-based PRNG, mix32(mix32(seed ^ step) + index), indexed by the element's PRNG counter
(ParamSpec.element_offset + position). The aggregation draws with its own seed
(program seed ^ AGGREGATION_SALT) and step = the round number, so it is reproducible, and no draw
repeats one a board made in a training step. Means of int8 values in [-127, 127] stay in range, means
of int32 biases stay in int32; frozen bytes of a partially trained tensor are equal on every board and
come out unchanged.

The step counter of the aggregated state is set by the caller (tinytrain.board.fleet: the fleet's
scheduled training steps so far).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.program import TrainingProgram
from tinytrain.numerics import fixed_point as fp

AGGREGATION_SALT = 0xFEDA5EED  # the aggregation's PRNG seed is the program's seed XOR this


@dataclass(frozen=True)
class StateTensor:
    """Where one trainable tensor's SRAM part sits in the state bytes, and its fixed scales."""

    op: str
    kind: str  # weight | bias
    shape: tuple[int, ...]  # of the SRAM part
    offset: int  # byte offset in the state (after the u32 step counter)
    element_offset: int  # first PRNG counter
    scales: np.ndarray  # float64, one per row (the SRAM part's first axis)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype("<i4" if self.kind == "bias" else "i1")

    @property
    def count(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.count * self.dtype.itemsize

    @property
    def limits(self) -> tuple[int, int]:
        return (fp.INT32_MIN, fp.INT32_MAX) if self.kind == "bias" else (-127, 127)


@dataclass(frozen=True)
class StateLayout:
    tensors: tuple[StateTensor, ...]
    seed: int  # the program's PRNG seed

    @property
    def nbytes(self) -> int:
        return 4 + sum(t.nbytes for t in self.tensors)

    def split(self, state: bytes) -> tuple[int, list[np.ndarray]]:
        """(step counter, every tensor's SRAM part as int64 arrays)."""
        if len(state) != self.nbytes:
            raise TinytrainError(f"a learned state of {len(state)} bytes does not fit this program's layout of "
                                 f"{self.nbytes} bytes.")
        step = int(np.frombuffer(state, dtype="<u4", count=1)[0])
        parts = [np.frombuffer(state, dtype=t.dtype, count=t.count, offset=4 + t.offset).reshape(t.shape)
                 .astype(np.int64) for t in self.tensors]
        return step, parts

    def join(self, step: int, parts: list[np.ndarray]) -> bytes:
        out = [np.array([step & 0xFFFFFFFF], dtype="<u4").tobytes()]
        for t, v in zip(self.tensors, parts, strict=True):
            lo, hi = t.limits
            if v.shape != t.shape or (v.size and (v.min() < lo or v.max() > hi)):
                raise ValueError(f"{t.op} {t.kind}: shape {v.shape} or values outside [{lo}, {hi}]")
            out.append(np.ascontiguousarray(v).astype(t.dtype).tobytes())
        return b"".join(out)

    def with_step(self, state: bytes, step: int) -> bytes:
        """The same state with another step counter."""
        if len(state) != self.nbytes:
            raise TinytrainError(f"a learned state of {len(state)} bytes does not fit this program's layout of "
                                 f"{self.nbytes} bytes.")
        return np.array([step & 0xFFFFFFFF], dtype="<u4").tobytes() + state[4:]

    def dequantize(self, state: bytes) -> list[np.ndarray]:
        """The real values of every trained tensor's SRAM part (integers times their row scales)."""
        _, parts = self.split(state)
        return [p.astype(np.float64) * t.scales.reshape((-1,) + (1,) * (p.ndim - 1))
                for t, p in zip(self.tensors, parts)]


def state_layout(program: TrainingProgram) -> StateLayout:
    """The layout of the learned state of a compiled program, with every tensor's fixed scales."""
    model = program.model
    ops = {op.name: op for op in model.weighted_ops}
    tensors, at = [], 0
    for p in program.trainable_params:
        node = ops[p.op]
        s_w = np.asarray(node.weight_scales, dtype=np.float64)
        rows = p.sram_shape[0]
        if p.kind == "bias":
            scales = model.tensors[node.input].qparams.scale * s_w[:rows]
        else:
            scales = s_w[:rows]
        t = StateTensor(p.op, p.kind, tuple(p.sram_shape), at, p.element_offset, scales)
        tensors.append(t)
        at += t.nbytes
    return StateLayout(tuple(tensors), int(program.options.seed))


def rounded_mean(values: list[np.ndarray], weights: list[int], rand: np.ndarray) -> np.ndarray:
    """floor(sum_k w_k v_k / W + r / 2^32) element by element, exactly: integers v_k (|v| < 2^31),
    positive integer weights (W = sum w_k < 2^31), r uint32. Unbiased: the result's expectation over
    uniform r is the mean itself, up to 2^-32."""
    w = [int(x) for x in weights]
    if not values or any(x < 1 for x in w):
        raise ValueError("rounded_mean needs at least one value and positive weights")
    total = sum(w)
    if total >= 1 << 31:
        raise ValueError("the weights add up to 2^31 or more")
    num = np.zeros(values[0].shape, dtype=np.int64)
    for v, k in zip(values, w):
        num += np.asarray(v, dtype=np.int64) * k  # |v| < 2^31, sum w < 2^31: below 2^62
    q = num // total  # floor
    rem = num - q * total  # in [0, total)
    r = np.asarray(rand, dtype=np.uint32).astype(np.int64).reshape(num.shape)
    # floor(q + rem/N + r/2^32) = q + [rem/N + r/2^32 >= 1] = q + [r N >= (N - rem) 2^32], all below 2^63.
    return q + (r * total >= (total - rem) << 32).astype(np.int64)


def federated_average(layout: StateLayout, states: list[bytes], weights: list[int], round_: int,
                      step: int) -> bytes:
    """The weighted FedAvg of the boards' states (weights: their sample counts) in the int8 layout,
    with step counter `step`; reproducible for the same states, weights and round."""
    if not states:
        raise TinytrainError("no board returned a learned state to aggregate.")
    if len(states) != len(weights):
        raise ValueError("one weight per state")
    split = [layout.split(s)[1] for s in states]
    seed = (layout.seed ^ AGGREGATION_SALT) & 0xFFFFFFFF
    out = []
    for i, t in enumerate(layout.tensors):
        rand = fp.random_bits(seed, round_, t.element_offset, t.count).reshape(t.shape)
        mean = rounded_mean([parts[i] for parts in split], weights, rand)
        lo, hi = t.limits
        out.append(np.clip(mean, lo, hi))
    return layout.join(step, out)
