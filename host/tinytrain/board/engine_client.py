"""Host side of the training engine's messages: MODEL, TRAIN, INFER, PARAMS_GET/SET, PROFILE, CHECKPOINT."""

from __future__ import annotations

import hashlib
import struct
import time
from dataclasses import dataclass

import numpy as np

from tinytrain.board.link import BoardErrorReply, BoardFault, BoardNotAnswering, Link, LinkError
from tinytrain.board.messages import PROTOCOL_VERSION, BoardInfo, ErrorCode, MalformedReply, MessageType
from tinytrain.errors import TinytrainError
from tinytrain.ir.program import StepKind
from tinytrain.numerics.fixed_point import LR_ONE

MSG_MODEL, MSG_TRAIN, MSG_INFER = MessageType.MODEL, MessageType.TRAIN, MessageType.INFER
MSG_PARAMS_GET, MSG_PARAMS_SET, MSG_PROFILE = MessageType.PARAMS_GET, MessageType.PARAMS_SET, MessageType.PROFILE
MSG_CHECKPOINT = MessageType.CHECKPOINT
CHECKPOINT_TAKE, CHECKPOINT_STATUS, CHECKPOINT_CLEAR = 0, 1, 2
CHECKPOINT_BOOT = {0: "none", 1: "restored", 2: "foreign"}
NO_STREAM = 0xFFFFFFFF  # stream_base of a checkpoint no stream took (a pushed state)
# Seconds for requests that erase flash: a 256 KB STM32F746 sector takes up to 4 s (x32 parallelism),
# CLEAR erases two, and the state is programmed word by word after that.
FLASH_TIMEOUT = 30.0
DATA_FLASH_TIMEOUT = 10.0  # PARAMS_SET DATA staged in flash: 2 KB programmed word by word
TRAIN_TRIES = 3  # a TRAIN without a reply is sent again (the board applies a step number once)
LR_SCALE_MAX = 4 * LR_ONE  # the largest TRAIN lr_scale a board accepts (docs/protocol.md)
PARAMS_CHUNK = 2048  # state bytes per PARAMS_GET / PARAMS_SET DATA frame
RESTORE_BEGIN, RESTORE_DATA, RESTORE_COMMIT = 0, 1, 2
# Seconds a TRAIN or INFER may take on top of sending its frame: the first step of a session (nothing
# measured yet), then STEP_MARGIN x the slowest step seen, at least MIN_STEP_SECONDS.
FIRST_STEP_SECONDS = 20.0
MIN_STEP_SECONDS = 5.0
STEP_MARGIN = 5.0

STEP_KINDS = [k.value for k in StepKind]  # the firmware reports a step kind by its position (ir.program)


class EngineError(TinytrainError):
    """The board's model does not match what the host expects."""


class StepCountMismatch(EngineError):
    """The board's step counter is not where this session's TRAIN frames left it: the board was reset
    (or reflashed, or restored) between two frames, or another host trains it too."""


class BoardReset(StepCountMismatch):
    """The board's step counter fell behind the steps this session trained: it was reset (or reflashed)
    and restarted from its checkpoint (or from its power-on state). `steps` is its step counter now."""

    def __init__(self, message: str, steps: int) -> None:
        super().__init__(message)
        self.steps = steps


class TrainReplyLost(EngineError):
    """A TRAIN step got no reply, however often it was sent, from a board that still answers."""


class RestoreInterrupted(EngineError):
    """A PARAMS_SET restore stopped before its commit: the board still holds its previous state."""


def _string(buf: bytes, at: int) -> tuple[str, int]:
    n = buf[at]
    return buf[at + 1 : at + 1 + n].decode("utf-8", "replace"), at + 1 + n


@dataclass
class BoardModel:
    hash: str
    program_hash: str  # compiler.program_hash of the program the board was built from
    state_hash: str  # compiler.state_layout_hash: the layout of its learned state
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
    checkpoint_boot: str = "none"  # v3: what the board found at boot: none, restored, foreign
    restored_step_count: int = 0  # the restored checkpoint's step counter (restored only)
    restored_sequence: int = 0
    checkpoint_slot_bytes: int = 0  # learned state a checkpoint slot holds; 0: the build has no checkpoints

    @property
    def sample_bytes(self) -> int:
        """Bytes of one sample on the wire: int8 inputs, or int16 counts for a sensor model."""
        return self.input_bytes * (2 if self.sensor_samples else 1)

    @classmethod
    def parse(cls, p: bytes) -> "BoardModel":
        try:
            hashes = [p[i : i + 32].hex() for i in (0, 32, 64)]
            classes, ih, iw, ic, ib, arena, trainable, planned, state, n_params, n_train, n_infer = struct.unpack_from(
                "<HHHHIIIIIHHH", p, 96)
            name, at = _string(p, 96 + 34)
            scheme, at = _string(p, at)
            flags = p[at]
            boot, restored_steps, restored_seq, slot_bytes = struct.unpack_from("<BIII", p, at + 1)
        except (struct.error, IndexError):
            raise MalformedReply(f"The board sent a truncated MODEL reply ({len(p)} bytes).") from None
        if len(p) != at + 14:
            raise MalformedReply(f"The board sent {len(p) - at - 14} unexpected extra bytes in its MODEL reply.")
        return cls(*hashes, classes, (ih, iw, ic), ib, arena, trainable, planned, state, n_params, n_train, n_infer,
                   name, scheme, bool(flags & 1), bool(flags & 2), CHECKPOINT_BOOT.get(boot, str(boot)),
                   restored_steps, restored_seq, slot_bytes)


@dataclass
class StepResult:
    prediction: int
    logits: np.ndarray  # int8 of the forward pass (before the update, for TRAIN)
    count: int  # instructions (QEMU), cycles (board) or ns (host build)
    step_count: int | None = None  # TRAIN: training steps taken so far


@dataclass
class CheckpointStatus:
    boot: str  # what the board found when it started: none, restored, foreign
    restored_step_count: int
    restored_sequence: int
    has_newest: bool  # the board holds a checkpoint of its build (restored, taken or pushed since)
    newest_slot: int
    newest_sequence: int
    newest_step_count: int
    newest_stream_base: int  # the step counter when the stream that took it started (NO_STREAM: a push)
    newest_stream_id: bytes
    slot_bytes: int  # 0: no checkpoints
    persistent: bool  # False: QEMU or the host build started without a file (lost when they stop)
    erases_since_boot: int
    slot_erases: tuple[int, int]

    @classmethod
    def parse(cls, p: bytes) -> "CheckpointStatus":
        try:
            op, boot, r_steps, r_seq, has, slot, seq, steps, base = struct.unpack_from("<BBIIBBIII", p, 0)
            stream_id = p[24:56]
            slot_bytes, persistent, erases, e0, e1 = struct.unpack_from("<IBIII", p, 56)
        except struct.error:
            raise MalformedReply(f"The board sent a truncated CHECKPOINT STATUS reply ({len(p)} bytes).") from None
        if op != CHECKPOINT_STATUS or len(p) != 73:
            raise MalformedReply(f"The board sent a CHECKPOINT STATUS reply of {len(p)} bytes for operation {op}.")
        return cls(CHECKPOINT_BOOT.get(boot, str(boot)), r_steps, r_seq, bool(has), slot, seq, steps, base,
                   bytes(stream_id), slot_bytes, bool(persistent), erases, (e0, e1))


@dataclass
class CheckpointTaken:
    step_count: int
    sequence: int
    slot: int
    erases_since_boot: int


@dataclass
class ProfileRow:
    op: str
    kind: str
    macs: int
    count: int


class EngineClient:
    """Typed engine requests over a Link; checks sample sizes before anything is sent.

    It follows the board's step counter: every TRAIN reply must report exactly one step more than
    the last (else StepCountMismatch), and a TRAIN that gets no reply is diagnosed (the board gone
    silent, the reply lost after the step was applied, or the frame lost before it was)."""

    def __init__(self, link: Link, train_timeout: float | None = None):
        self.link = link
        self.train_timeout = train_timeout  # fixed seconds per TRAIN/INFER; None: adapt to the board
        self._info: BoardInfo | None = None
        self._model: BoardModel | None = None
        self._steps: int | None = None  # the board's step counter as this client last saw it
        self._slowest = 0.0  # longest TRAIN/INFER exchange so far, seconds

    @property
    def info(self) -> BoardInfo:
        if self._info is None:
            info = self.link.info()
            if info.protocol_version != PROTOCOL_VERSION:
                raise EngineError(f"the board at {self.link.url} speaks serial protocol v{info.protocol_version} but "
                                  f"this tinytrain speaks v{PROTOCOL_VERSION}; rebuild and reflash its firmware.")
            self._info = info
        return self._info

    @property
    def model(self) -> BoardModel:
        if self._model is None:
            _ = self.info
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

    def _logits(self, p: bytes, at: int, n: int, what: str) -> tuple[int, np.ndarray]:
        if n != self.model.classes or len(p) != at + n:
            raise MalformedReply(f"The board sent a {what} reply with {n} logits in {len(p)} bytes for a model of "
                                 f"{self.model.classes} classes.")
        logits = np.frombuffer(p, dtype=np.int8, count=n, offset=at).copy()
        return int(np.argmax(logits)), logits

    def _checked_prediction(self, pred: int, argmax: int, what: str) -> int:
        # The board's argmax and the host's must agree: a prediction is never reported truncated.
        if pred != argmax:
            raise MalformedReply(f"The board's {what} reply predicts class {pred} but its logits peak at class "
                                 f"{argmax}; is it running firmware of an older protocol?")
        return pred

    def step_timeout(self, frame_bytes: int) -> float:
        """Seconds to wait for a TRAIN/INFER reply: sending the frame, plus the step itself."""
        if self.train_timeout is not None:
            return self.train_timeout
        step = FIRST_STEP_SECONDS if not self._slowest else max(MIN_STEP_SECONDS, STEP_MARGIN * self._slowest)
        return self.link.transfer_seconds(frame_bytes) + step

    def _credit(self) -> int:
        """A streamed sample on a board with a receive ring goes out only as far as it asks."""
        return self.info.rx_ring_bytes if self.model.input_streamed else 0

    def step_count(self) -> int:
        """The board's step counter (the first 4 bytes of its learned state)."""
        p = self.link.request(MSG_PARAMS_GET, struct.pack("<II", 0, 4))
        if len(p) != 12:
            raise MalformedReply(f"The board sent a PARAMS_GET reply of {len(p)} bytes for 4 bytes of state.")
        (steps,) = struct.unpack_from("<I", p, 8)
        self._steps = steps
        return steps

    def train(self, x: np.ndarray, label: int, lr_scale: int = LR_ONE, step: int | None = None) -> StepResult:
        """One training step, applied exactly once: the TRAIN frame carries the step number it makes (by
        default the board's step counter + 1), so a frame sent again after a lost reply gets the stored
        reply of the step instead of a second update. A board whose counter fell behind raises BoardReset."""
        if not 0 <= label <= 0xFFFF:
            raise EngineError(f"label {label} does not fit TRAIN's 16-bit label field.")
        if not 0 <= lr_scale <= LR_SCALE_MAX:
            raise EngineError(f"a learning-rate scale of {lr_scale / LR_ONE:g} is outside the range 0..4 the board "
                              "accepts.")
        if step is None:
            before = self.step_count() if self._steps is None else self._steps
        else:
            before = (step - 1) & 0xFFFFFFFF
        step = (before + 1) & 0xFFFFFFFF
        payload = struct.pack("<HHII", label, 0, lr_scale, step) + self._sample(x)
        timeout = self.step_timeout(len(payload) + 14)
        t0 = time.monotonic()
        try:
            p = self.link.request(MSG_TRAIN, payload, timeout=timeout, retry=TRAIN_TRIES - 1, credit=self._credit())
        except BoardNotAnswering:
            raise self._lost_train(before, timeout) from None
        except BoardErrorReply as exc:
            if exc.reply.code == ErrorCode.BAD_STATE and exc.reply.request_type == MSG_TRAIN:
                self._steps = exc.reply.detail
                raise self._mismatch(before, exc.reply.detail) from None
            raise
        self._slowest = max(self._slowest, time.monotonic() - t0)
        if len(p) < 16:
            raise MalformedReply(f"The board sent a truncated TRAIN reply ({len(p)} bytes).")
        pred, n, steps, count = struct.unpack_from("<HHIQ", p, 0)
        argmax, logits = self._logits(p, 16, n, "TRAIN")
        if steps != step:
            self._steps = None
            raise self._mismatch(before, steps)
        self._steps = steps
        return StepResult(self._checked_prediction(pred, argmax, "TRAIN"), logits, count, steps)

    def _mismatch(self, before: int, now: int) -> StepCountMismatch:
        if now < before:
            return BoardReset(
                f"the board's step counter is {now} where this session left it at {before}: it was reset or "
                f"reflashed and restarted from {'its checkpoint of step ' + str(now) if now else 'its power-on state'}",
                now)
        if now == before:
            return StepCountMismatch(
                f"the board refused TRAIN step {before + 1} although its step counter is {now}; is another host "
                "training it too?")
        return StepCountMismatch(
            f"the board's step counter is {now} where this session left it at {before}: another host is "
            f"training it too, or a state was pushed to it meanwhile.")

    def _board_answers(self) -> bool:
        try:
            self.link.request(MessageType.INFO, timeout=2.0, retry=2)
            return True
        except BoardNotAnswering:
            return False

    def _lost_train(self, before: int, timeout: float) -> EngineError | LinkError:
        url = self.link.url
        if not self._board_answers():
            return BoardNotAnswering(
                f"The board at {url} stopped answering during TRAIN step {before + 1} (no reply within {timeout:.1f} "
                f"s in {TRAIN_TRIES} tries, nor to INFO since): it hung, lost power or was disconnected; once it is "
                "back, it continues from its last checkpoint (stream --resume).")
        try:
            now = self.step_count()
        except LinkError as exc:
            return exc
        if now < before:
            return self._mismatch(before, now)
        return TrainReplyLost(
            f"TRAIN step {before + 1} got no reply from the board at {url} in {TRAIN_TRIES} tries of "
            f"{timeout:.1f} s although the board answers (its step counter is {now}); check the serial line.")

    # ---------------------------------------------------------------- checkpoints

    def checkpoint_status(self) -> CheckpointStatus:
        return CheckpointStatus.parse(self.link.request(MSG_CHECKPOINT, bytes([CHECKPOINT_STATUS]), retry=2))

    def checkpoint(self, stream_base: int = NO_STREAM, stream_id: bytes = bytes(32)) -> CheckpointTaken:
        """Has the board write its learned state to the checkpoint slot that does not hold the newest
        checkpoint; tagged with the stream that asks (its start and its id), for stream --resume."""
        if len(stream_id) != 32:
            raise EngineError("a stream id has 32 bytes.")
        payload = struct.pack("<BI", CHECKPOINT_TAKE, stream_base & 0xFFFFFFFF) + stream_id
        p = self.link.request(MSG_CHECKPOINT, payload, timeout=FLASH_TIMEOUT, retry=1)
        try:
            op, steps, seq, slot, erases = struct.unpack("<BIIBI", p)
        except struct.error:
            raise MalformedReply(f"The board sent a CHECKPOINT reply of {len(p)} bytes.") from None
        return CheckpointTaken(steps, seq, slot, erases)

    def checkpoint_clear(self) -> int:
        """Erases both checkpoint slots; returns the board's sector erases since it started."""
        p = self.link.request(MSG_CHECKPOINT, bytes([CHECKPOINT_CLEAR]), timeout=FLASH_TIMEOUT, retry=1)
        if len(p) != 5:
            raise MalformedReply(f"The board sent a CHECKPOINT CLEAR reply of {len(p)} bytes.")
        return struct.unpack_from("<I", p, 1)[0]

    def reconnect(self, timeout: float = 30.0) -> None:
        """After a reset: opens the line again, waits until the board answers and checks that it still
        runs the same program (its learned state is then whatever it restored)."""
        old = self._model
        self.link.reopen(timeout)
        self.link.wait_ready(timeout)
        self._info = self._model = None
        self._steps = None
        if old is not None and (self.model.hash, self.model.program_hash) != (old.hash, old.program_hash):
            raise EngineError(f"the board at {self.link.url} came back running another program "
                              f"({self.model.program_hash[:12]}, it ran {old.program_hash[:12]}); it was reflashed.")

    def infer(self, x: np.ndarray) -> StepResult:
        sample = self._sample(x)
        t0 = time.monotonic()
        p = self.link.request(MSG_INFER, sample, timeout=self.step_timeout(len(sample) + 14),
                              credit=self._credit())
        self._slowest = max(self._slowest, time.monotonic() - t0)
        if len(p) < 12:
            raise MalformedReply(f"The board sent a truncated INFER reply ({len(p)} bytes).")
        pred, n, count = struct.unpack_from("<HHQ", p, 0)
        argmax, logits = self._logits(p, 12, n, "INFER")
        return StepResult(self._checked_prediction(pred, argmax, "INFER"), logits, count)

    def params_get(self) -> bytes:
        """The learned state: u32 step counter, then every trainable tensor's SRAM bytes."""
        total = self.model.state_bytes
        out = bytearray()
        while len(out) < total:
            n = min(PARAMS_CHUNK, total - len(out))
            p = self.link.request(MSG_PARAMS_GET, struct.pack("<II", len(out), n))
            off, _ = struct.unpack_from("<II", p, 0)
            if off != len(out) or len(p) != 8 + n:
                raise EngineError("the board answered PARAMS_GET for another range.")
            out += p[8:]
        self._steps = struct.unpack_from("<I", out, 0)[0]
        return bytes(out)

    def params_set(self, state: bytes, state_hash: str | None = None) -> None:
        """Restores a learned state atomically: BEGIN (the state's layout hash and size), DATA chunks
        staged on the board, COMMIT with the SHA-256 of the whole state. Until the commit the board's
        own state is untouched, so an interrupted restore leaves it whole (RestoreInterrupted)."""
        if len(state) != self.model.state_bytes:
            raise EngineError(f"the saved state has {len(state)} bytes but the board's model needs "
                              f"{self.model.state_bytes}.")
        layout = bytes.fromhex(state_hash or self.model.state_hash)
        # BEGIN is refused (BAD_ARGUMENT) when the state was saved for another layout: nothing was staged.
        # BEGIN erases the checkpoint slot the state is staged in: seconds on a real board.
        self.link.request(MSG_PARAMS_SET, struct.pack("<B", RESTORE_BEGIN) + layout + struct.pack("<I", len(state)),
                          timeout=FLASH_TIMEOUT, retry=2)
        staged = 0
        # DATA programs flash when the board stages the state in a checkpoint slot: a stall of the board
        # (or of an emulator's host) is waited for rather than sent again early.
        data_timeout = DATA_FLASH_TIMEOUT if self.model.checkpoint_slot_bytes else None
        try:
            for off in range(0, len(state), PARAMS_CHUNK):
                # DATA is idempotent (the same bytes at the same offset), so it may be retried.
                chunk = state[off : off + PARAMS_CHUNK]
                self.link.request(MSG_PARAMS_SET, struct.pack("<BI", RESTORE_DATA, off) + chunk,
                                  timeout=data_timeout, retry=2)
                staged = off + len(chunk)
            commit = struct.pack("<B", RESTORE_COMMIT) + hashlib.sha256(state).digest()
            try:
                self.link.request(MSG_PARAMS_SET, commit, timeout=FLASH_TIMEOUT, retry=0)
            except BoardNotAnswering:
                # The commit may have happened with its reply lost: the board's state tells.
                try:
                    committed = self.params_get() == state
                except LinkError:
                    raise RestoreInterrupted(
                        "the board did not confirm the restore's commit and stopped answering; its learned state is "
                        "whole, either the previous or the restored one (pull it once it answers to see which)."
                    ) from None
                if not committed:
                    raise
        except BoardFault:
            raise
        except LinkError as exc:  # no answer, a refusal, or the line itself gone
            self._steps = None
            raise RestoreInterrupted(
                f"the restore stopped before its commit, with {staged} of {len(state)} bytes staged "
                f"({str(exc)[0].lower()}{str(exc)[1:].rstrip('.')}); the board still holds its previous learned "
                "state, whole.") from None
        self._steps = struct.unpack_from("<I", state, 0)[0]

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
