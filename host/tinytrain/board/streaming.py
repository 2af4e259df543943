"""Streaming labelled samples to a board (TRAIN) and measuring it (INFER), with progress bars."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tinytrain.board.engine_client import EngineClient, EngineError
from tinytrain.board.link import LinkError
from tinytrain.errors import TinytrainError
from tinytrain.learn.schedules import cross_entropy, lr_scales
from tinytrain.reference.executor import NumpyBackend


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

    @property
    def samples(self) -> int:
        return len(self.correct)

    def running_accuracy(self, window: int = 100) -> np.ndarray:
        c = np.asarray(self.correct, dtype=np.float64)
        k = np.ones(min(window, max(len(c), 1)))
        return np.convolve(c, k, mode="valid") / len(k) if len(c) else c


def stream(engine: EngineClient, xs: np.ndarray, ys: np.ndarray, logit_scale: float, epochs: int = 1,
           schedule: str = "constant", reference: NumpyBackend | None = None, progress: bool = True,
           desc: str = "train", wire: np.ndarray | None = None, unit: str = "sample",
           lr_factor: float = 1.0) -> StreamResult:
    """TRAIN frames for every sample (epochs times); with a reference, the same steps run in NumPy
    and the logits of every step are compared. xs are the int8 model inputs; wire, if given, what
    the frames carry instead (a sensor model's int16 counts, which the board scales to xs). A step
    the board did not take as expected (reset, lost reply, silence) stops the stream with the sample
    it happened at. lr_factor scales the build's learning rate for this stream (through each TRAIN's
    lr_scale, no rebuild); a loss that keeps growing is reported as a warning."""
    if epochs < 1:
        raise TinytrainError(f"the number of epochs must be at least 1, not {epochs}.")
    if len(xs) == 0:
        raise TinytrainError("there are no samples to train on.")
    n = len(xs) * epochs
    scales = scaled_lr(lr_scales(n, schedule), lr_factor)
    watch = DivergenceWatch(n_classes=max(2, int(np.max(ys)) + 1))
    res = StreamResult()
    t0 = time.monotonic()
    bar = tqdm(total=n, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)
    sent = xs if wire is None else wire
    i = 0
    for _ in range(epochs):
        for x, w, y in zip(xs, sent, ys):
            try:
                r = engine.train(w, int(y), int(scales[i]))
            except (EngineError, LinkError) as exc:
                bar.close()
                message = str(exc).rstrip(".")
                raise StreamStopped(f"{message[:1].lower()}{message[1:]}; the stream stopped at sample {i + 1} of "
                                    f"{n}.", exc, i) from None
            res.losses.append(cross_entropy(r.logits, int(y), logit_scale))
            if warning := watch.update(res.losses):
                tqdm.write(warning)
            res.correct.append(r.prediction == int(y))
            res.counts.append(r.count)
            if reference is not None:
                ref = reference.train_step(x, int(y), int(scales[i]))
                if res.mismatch is None and not np.array_equal(ref, r.logits):
                    res.mismatch = i
            i += 1
            bar.update(1)
            if i % 10 == 0 or i == n:
                recent = slice(max(0, i - 100), i)
                bar.set_postfix(loss=f"{np.mean(res.losses[recent]):.3f}", acc=f"{np.mean(res.correct[recent]):.3f}")
    bar.close()
    res.seconds = time.monotonic() - t0
    return res


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
    for i, x in enumerate(tqdm(xs, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True)):
        r = engine.infer(sent[i])
        preds.append(r.prediction)
        counts.append(r.count)
        if reference is not None and mismatch is None and not np.array_equal(reference.infer(x), r.logits):
            mismatch = i
    p = np.asarray(preds)
    return EvalResult(p, float(np.mean(p == np.asarray(ys))) if len(p) else 0.0, counts, mismatch)
