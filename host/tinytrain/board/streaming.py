"""Streaming labelled samples to a board (TRAIN) and measuring it (INFER), with progress bars.

A stream can have the board checkpoint its learned state every N steps (the board's flash, two slots,
docs/checkpoints.md) and resume after the board was reset: the board restarts from its newest
checkpoint, the stream asks for its step counter and goes on from the sample after that step, so no
sample is trained twice or skipped. Each checkpoint is tagged with the stream's id (a hash of the
samples, labels, epochs and schedule) and the step counter it started from, so that a later
`stream --resume` of the same samples knows where the board is in them."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from tinytrain.board.engine_client import NO_STREAM, BoardReset, EngineClient, EngineError
from tinytrain.board.link import BoardErrorReply, BoardFault, LinkError
from tinytrain.errors import TinytrainError
from tinytrain.learn.progress import progress as progress_bar, progress_iter
from tinytrain.learn.schedules import cross_entropy, lr_scales
from tinytrain.reference.executor import NumpyBackend

# Resets a stream survives without training a single step in between.
MAX_RESUMES_WITHOUT_PROGRESS = 5
RECONNECT_SECONDS = 60.0


def scaled_lr(scales: np.ndarray, factor: float) -> np.ndarray:
    """Per-step Q16 lr scales times a factor; one sentence when the board could not take them."""
    from tinytrain.board.engine_client import LR_SCALE_MAX

    if not factor > 0:
        raise TinytrainError("the learning rate must be a positive number.")
    out = np.rint(np.asarray(scales, dtype=np.float64) * factor).astype(np.int64)
    if out.size and out.max() > LR_SCALE_MAX:
        raise TinytrainError(f"a learning rate {factor:g} times the build's is more than a TRAIN frame can ask for "
                             f"(at most {LR_SCALE_MAX / 65536:g} times); rebuild with TINYTRAIN_LR.")
    return out


class DivergenceWatch:
    """Says once when a run's loss diverges: its recent mean well above where it started and above a
    guess (uniform over the classes) — usually a learning rate too high for the model."""

    def __init__(self, n_classes: int, window: int = 50):
        self.window, self.floor, self.warned = window, 2 * np.log(n_classes), False

    def update(self, losses: list[float]) -> str | None:
        n = len(losses)
        if self.warned or n < 2 * self.window or n % 10:
            return None
        first, recent = np.mean(losses[: self.window]), np.mean(losses[-self.window:])
        if not np.isfinite(recent) or (recent > max(1.5 * first, self.floor)):
            self.warned = True
            return (f"warning: the loss is diverging (mean {recent:.2f} over the last {self.window} steps, "
                    f"{first:.2f} over the first); the learning rate may be too high for this model — try "
                    f"`stream --lr` lower or `tinytrain tune-lr`.")
        return None


class StreamStopped(TinytrainError):
    """A TRAIN step failed mid-stream; `cause` says why, `done` how many steps the board took."""

    def __init__(self, message: str, cause: Exception, done: int) -> None:
        super().__init__(message)
        self.cause, self.done = cause, done


@dataclass
class StreamResult:
    losses: list[float] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)  # prediction before each update
    counts: list[int] = field(default_factory=list)  # instructions/cycles per training step
    seconds: float = 0.0
    mismatch: int | None = None  # first step whose logits differ from the reference
    start: int = 0  # the first sample this call trained (a resumed stream starts later)
    base: int = 0  # the board's step counter when the stream started
    resumes: int = 0  # resets the stream survived
    checkpoints: int = 0  # checkpoints it had the board take
    erases: int = 0  # flash sector erases those took

    @property
    def samples(self) -> int:
        return len(self.correct)

    def running_accuracy(self, window: int = 100) -> np.ndarray:
        c = np.asarray(self.correct, dtype=np.float64)
        k = np.ones(min(window, max(len(c), 1)))
        return np.convolve(c, k, mode="valid") / len(k) if len(c) else c


def stream_id(sent: np.ndarray, ys: np.ndarray, epochs: int, schedule: str) -> bytes:
    """What identifies a stream: its samples as sent, labels, epochs and schedule (32 bytes)."""
    h = hashlib.sha256(b"tinytrain stream v1")
    a = np.ascontiguousarray(sent)
    h.update(f"{a.dtype.str}{a.shape}|{epochs}|{schedule}|".encode())
    h.update(a.tobytes())
    h.update(np.ascontiguousarray(np.asarray(ys, dtype="<i8")).tobytes())
    return h.digest()


def _sentence(exc: Exception) -> str:
    message = str(exc).rstrip(".")
    if message[1:2].isupper():  # an acronym (TRAIN, INFO) keeps its case
        return message
    return f"{message[:1].lower()}{message[1:]}"


def stream(engine: EngineClient, xs: np.ndarray, ys: np.ndarray, logit_scale: float, epochs: int = 1,
           schedule: str = "constant", reference: NumpyBackend | None = None, progress: bool = True,
           desc: str = "train", wire: np.ndarray | None = None, unit: str = "sample",
           checkpoint_every: int | None = None, resume: bool = False,
           on_step: Callable[[int], None] | None = None, lr_factor: float = 1.0) -> StreamResult:
    """TRAIN frames for every sample (epochs times); with a reference, the same steps run in NumPy
    and the logits of every step are compared. xs are the int8 model inputs; wire, if given, what
    the frames carry instead (a sensor model's int16 counts, which the board scales to xs).

    checkpoint_every: the board checkpoints its state when the stream starts, after every N steps and
    at the end, and the stream survives resets of the board: it waits for the board to come back and
    goes on from the step it restored. resume: the stream starts where the board is in it (a previous
    run of the same samples that stopped; the board's newest checkpoint says where it started), and
    survives resets as well. Otherwise a step the board did not take as expected (a reset, silence)
    stops the stream with the sample it happened at.
    lr_factor scales the build's learning rate for this stream (through each TRAIN's lr_scale, no
    rebuild); a loss that keeps growing is reported as a warning.
    on_step(i) runs after sample i (0-based) was trained (tests inject faults there)."""
    if epochs < 1:
        raise TinytrainError(f"the number of epochs must be at least 1, not {epochs}.")
    if len(xs) == 0:
        raise TinytrainError("there are no samples to train on.")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise TinytrainError(f"checkpoints are taken every N steps with N at least 1, not {checkpoint_every}.")
    n = len(xs) * epochs
    scales = scaled_lr(lr_scales(n, schedule), lr_factor)
    watch = DivergenceWatch(n_classes=max(2, int(np.max(ys)) + 1))
    sent = xs if wire is None else wire
    sid = stream_id(sent, ys, epochs, schedule)
    res = StreamResult()
    t0 = time.monotonic()
    if checkpoint_every is not None and not engine.model.checkpoint_slot_bytes:
        raise TinytrainError("the board's firmware was built without checkpoints, so it cannot take any; "
                             "rebuild it with checkpoints = 1 or stream without --checkpoint-every.")
    res.base, i = _starting_point(engine, sid, n, resume)
    res.start = i
    # The reference's state at every checkpoint of this stream, to follow the board back after a reset.
    snapshots: dict[int, bytes] = {}
    resumes_here = 0
    last_checkpoint: int | None = None

    def checkpoint(at: int) -> None:
        if reference is not None:  # first: the board may restore this checkpoint even if its reply is lost
            snapshots[at] = reference.state_bytes()
        taken = engine.checkpoint(res.base, sid)
        res.checkpoints += 1
        res.erases = taken.erases_since_boot

    bar = progress_bar(n, desc, unit, disable=not progress, initial=i)
    try:
        while True:
            try:
                due = i == res.start or i % checkpoint_every == 0 or i == n if checkpoint_every else False
                if due and last_checkpoint != i:
                    checkpoint(i)
                    last_checkpoint = i
                if i == n:
                    break
                k = i % len(xs)
                r = engine.train(sent[k], int(ys[k]), int(scales[i]), step=res.base + i + 1)
            except (EngineError, LinkError) as exc:
                # A reset, or a line that went away: a resumed stream waits for the board and goes on.
                resumable = isinstance(exc, (BoardReset, LinkError)) and not isinstance(exc, (BoardFault,
                                                                                               BoardErrorReply))
                if not (resume or checkpoint_every is not None) or not resumable:
                    raise _stopped(exc, i, n, res, checkpoint_every) from None
                resumes_here += 1
                if resumes_here > MAX_RESUMES_WITHOUT_PROGRESS:
                    raise _stopped(exc, i, n, res, checkpoint_every) from None
                i = _resume(engine, res, i, n, reference, snapshots)
                del res.losses[i - res.start:], res.correct[i - res.start:], res.counts[i - res.start:]
                if res.mismatch is not None and res.mismatch >= i:
                    res.mismatch = None
                res.resumes += 1
                bar.reset_to(i)
                continue
            resumes_here = 0
            y = int(ys[k])
            res.losses.append(cross_entropy(r.logits, y, logit_scale))
            if warning := watch.update(res.losses):
                bar.write(warning)
            res.correct.append(r.prediction == y)
            res.counts.append(r.count)
            if reference is not None:
                ref = reference.train_step(xs[k], y, int(scales[i]))
                if res.mismatch is None and not np.array_equal(ref, r.logits):
                    res.mismatch = i
            i += 1
            bar.update(1)
            if i % 10 == 0 or i == n:
                recent = slice(max(0, len(res.losses) - 100), len(res.losses))
                bar.set_postfix(loss=f"{np.mean(res.losses[recent]):.3f}", acc=f"{np.mean(res.correct[recent]):.3f}")
            if on_step is not None:
                on_step(i - 1)
    finally:
        bar.close()
    res.seconds = time.monotonic() - t0
    return res


def _starting_point(engine: EngineClient, sid: bytes, n: int, resume: bool) -> tuple[int, int]:
    """(the board's step counter when the stream started, the first sample to train now)."""
    steps = engine.step_count()
    if not resume:
        return steps, 0
    status = engine.checkpoint_status() if engine.model.checkpoint_slot_bytes else None
    if status is None or not status.has_newest or status.newest_stream_id != sid or \
            status.newest_stream_base == NO_STREAM:
        raise TinytrainError("the board's newest checkpoint was not taken by a stream of these samples, labels, "
                             "epochs and schedule, so --resume cannot tell where it stopped; give the same "
                             "--data, --samples, --epochs and --schedule, or start without --resume.")
    base = status.newest_stream_base
    done = (steps - base) & 0xFFFFFFFF
    if done > n:
        raise TinytrainError(f"the board's step counter {steps} lies outside the stream that started at step "
                             f"{base} with {n} samples; start without --resume.")
    return base, done


def _resume(engine: EngineClient, res: StreamResult, i: int, n: int, reference: NumpyBackend | None,
            snapshots: dict[int, bytes]) -> int:
    """After a reset: waits for the board, and returns the sample to go on from (the board's step
    counter, as restored from its checkpoint, less the stream's start)."""
    try:
        engine.link.info(timeout=2.0)
    except LinkError:
        engine.reconnect(RECONNECT_SECONDS)
    steps = engine.step_count()
    done = (steps - res.base) & 0xFFFFFFFF
    if done > i + 1:
        raise TinytrainError(f"the board came back at step counter {steps}, ahead of this stream's step "
                             f"{res.base + i}; another host trains it too.")
    # done == i + 1: the line went away after the board applied sample i's step; sending it again gets
    # the reply the board kept (TRAIN is applied once per step number).
    done = min(done, i)
    if done < res.start and res.start:
        raise TinytrainError(f"the board came back at step counter {steps}, before this run of the stream "
                             f"started (step {res.base + res.start}): its checkpoint is older than the stream.")
    if steps < res.base:
        raise TinytrainError(f"the board came back at step counter {steps}, before the stream started at step "
                             f"{res.base}: it holds no checkpoint of this stream (use --checkpoint-every).")
    if reference is not None and done != i:
        if done not in snapshots:
            raise TinytrainError(f"the board came back at step counter {steps}, where this stream took no "
                                 "checkpoint; its learned state cannot be followed by the reference.")
        reference.load_state_bytes(snapshots[done])
        if engine.params_get() != snapshots[done]:
            raise TinytrainError(f"the board restored step {steps}, but its learned state differs from the "
                                 "checkpoint the stream took at that step.")
    return done


def _stopped(exc: Exception, i: int, n: int, res: StreamResult, checkpoint_every: int | None) -> StreamStopped:
    hint = ""
    if isinstance(exc, BoardReset) and exc.steps >= res.base + res.start and exc.steps > 0:
        hint = (f"; it restored step {exc.steps} (sample {exc.steps - res.base} of this stream), so run the "
                "stream again with --resume to go on from there")
    return StreamStopped(f"{_sentence(exc)}{hint}; the stream stopped at sample {i + 1} of {n}.", exc, i)


@dataclass
class EvalResult:
    predictions: np.ndarray
    accuracy: float
    counts: list[int]
    mismatch: int | None = None  # first sample whose logits differ from the reference


def evaluate(engine: EngineClient, xs: np.ndarray, ys: np.ndarray, reference: NumpyBackend | None = None,
             progress: bool = True, desc: str = "eval", wire: np.ndarray | None = None,
             unit: str = "sample") -> EvalResult:
    """INFER frames for every sample (wire: what they carry instead of xs, as for stream)."""
    if len(xs) == 0:
        raise TinytrainError("there are no samples to evaluate on.")
    preds, counts = [], []
    mismatch = None
    sent = xs if wire is None else wire
    for i, x in enumerate(progress_iter(xs, desc, unit, disable=not progress)):
        r = engine.infer(sent[i])
        preds.append(r.prediction)
        counts.append(r.count)
        if reference is not None and mismatch is None and not np.array_equal(reference.infer(x), r.logits):
            mismatch = i
    p = np.asarray(preds)
    return EvalResult(p, float(np.mean(p == np.asarray(ys))) if len(p) else 0.0, counts, mismatch)
