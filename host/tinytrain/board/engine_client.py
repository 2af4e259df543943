"""Host side of the training engine's messages: MODEL, TRAIN, INFER, PARAMS_GET/SET, PROFILE."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.program import StepKind
from tinytrain.numerics.fixed_point import LR_ONE
from tinytrain.board.link import Link
from tinytrain.board.messages import MessageType

MSG_MODEL, MSG_TRAIN, MSG_INFER = MessageType.MODEL, MessageType.TRAIN, MessageType.INFER
MSG_PARAMS_GET, MSG_PARAMS_SET, MSG_PROFILE = MessageType.PARAMS_GET, MessageType.PARAMS_SET, MessageType.PROFILE

STEP_KINDS = [k.value for k in StepKind]  # the firmware reports a step kind by its position (ir.program)


class EngineError(TinytrainError):
    """The board's model does not match what the host expects."""


def _string(buf: bytes, at: int) -> tuple[str, int]:
    n = buf[at]
    return buf[at + 1 : at + 1 + n].decode("utf-8", "replace"), at + 1 + n


@dataclass
class BoardModel:
    hash: str
    classes: int
    input_shape: tuple[int, int, int]
    input_bytes: int
    arena_bytes: int
    trainable_bytes: int
    planned_peak_sram_bytes: int
    state_bytes: int
    n_params: int
    n_train_ops: int
    n_infer_ops: int
    name: str
    scheme: str
    input_streamed: bool = False  # the board computes while the sample arrives (flags bit 0)
    sensor_samples: bool = False  # samples are int16 sensor counts the board scales (flags bit 1)

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample on the wire: int8 inputs, or int16 counts for a sensor model."""
        return self.input_bytes * (2 if self.sensor_samples else 1)

    @classmethod
    def parse(cls, p: bytes) -> "BoardModel":
        h = p[:32].hex()
        classes, ih, iw, ic, ib, arena, trainable, planned, state, n_params, n_train, n_infer = struct.unpack_from(
            "<HHHHIIIIIHHH", p, 32)
        name, at = _string(p, 32 + 34)
        scheme, at = _string(p, at)
        flags = p[at] if at < len(p) else 0
        return cls(h, classes, (ih, iw, ic), ib, arena, trainable, planned, state, n_params, n_train, n_infer, name,
                   scheme, bool(flags & 1), bool(flags & 2))


@dataclass
class StepResult:
    prediction: int
    logits: np.ndarray  # int8 of the forward pass (before the update, for TRAIN)
    count: int  # instructions (QEMU), cycles (board) or ns (host build)
    step_count: int | None = None  # TRAIN: training steps taken so far


@dataclass
class ProfileRow:
    op: str
    kind: str
    macs: int
    count: int


class EngineClient:
    """Typed engine requests over a Link; checks sample sizes before anything is sent."""

    def __init__(self, link: Link, train_timeout: float = 60.0):
        self.link = link
        self.train_timeout = train_timeout
        self._model: BoardModel | None = None

    @property
    def model(self) -> BoardModel:
        if self._model is None:
            self._model = BoardModel.parse(self.link.request(MSG_MODEL))
        return self._model

    def _sample(self, x: np.ndarray) -> bytes:
        if self.model.sensor_samples:
            # A sensor model takes raw int16 counts (the board applies the model's scaling).
            if np.asarray(x).dtype != np.int16:
                raise EngineError(f"the board's model {self.model.name} takes int16 sensor counts, not "
                                  f"{np.asarray(x).dtype} samples.")
            x = np.ascontiguousarray(x, dtype="<i2")
        elif np.asarray(x).dtype == np.int16:
            raise EngineError(f"the board's model {self.model.name} takes int8 samples, not int16 sensor counts.")
        else:
            x = np.ascontiguousarray(x, dtype=np.int8)
        if x.size != self.model.input_bytes:
            raise EngineError(f"a sample of shape {x.shape} does not fit the board's model input "
                              f"{self.model.input_shape}.")
        return x.tobytes()

    @staticmethod
    def _logits(p: bytes, at: int, n: int) -> np.ndarray:
        return np.frombuffer(p, dtype=np.int8, count=n, offset=at).copy()

    def train(self, x: np.ndarray, label: int, lr_scale: int = LR_ONE) -> StepResult:
        payload = struct.pack("<HHI", label, 0, lr_scale) + self._sample(x)
        p = self.link.request(MSG_TRAIN, payload, timeout=self.train_timeout, retry=0)
        pred, _, n, steps, count = struct.unpack_from("<BBHIQ", p, 0)
        return StepResult(pred, self._logits(p, 16, n), count, steps)

    def infer(self, x: np.ndarray) -> StepResult:
        p = self.link.request(MSG_INFER, self._sample(x), timeout=self.train_timeout)
        pred, _, n, count = struct.unpack_from("<BBHQ", p, 0)
        return StepResult(pred, self._logits(p, 12, n), count)

    def params_get(self) -> bytes:
        """The learned state: u32 step counter, then every trainable tensor's SRAM bytes."""
        total = self.model.state_bytes
        out = bytearray()
        chunk = 2048
        while len(out) < total:
            n = min(chunk, total - len(out))
            p = self.link.request(MSG_PARAMS_GET, struct.pack("<II", len(out), n))
            off, _ = struct.unpack_from("<II", p, 0)
            if off != len(out):
                raise EngineError("the board answered PARAMS_GET for another offset.")
            out += p[8:]
        return bytes(out)

    def params_set(self, state: bytes) -> None:
        if len(state) != self.model.state_bytes:
            raise EngineError(f"the saved state has {len(state)} bytes but the board's model needs "
                              f"{self.model.state_bytes}.")
        chunk = 2048
        for off in range(0, len(state), chunk):
            self.link.request(MSG_PARAMS_SET, struct.pack("<I", off) + state[off : off + chunk], retry=0)

    def profile(self, program: str = "train") -> list[ProfileRow]:
        which = 0 if program == "train" else 1
        rows: list[ProfileRow] = []
        while True:
            p = self.link.request(MSG_PROFILE, struct.pack("<BH", which, len(rows)))
            total, first, n = struct.unpack_from("<HHH", p, 0)
            at = 6
            for _ in range(n):
                kind, macs, count = struct.unpack_from("<BII", p, at)
                name, at = _string(p, at + 9)
                op, _, _ = name.partition(" ")
                rows.append(ProfileRow(op, STEP_KINDS[kind] if kind < len(STEP_KINDS) else str(kind), macs, count))
            if len(rows) >= total or n == 0:
                return rows
