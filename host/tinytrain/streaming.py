"""Streaming labelled samples to a board (TRAIN) and measuring it (INFER), with progress bars."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .engine_client import LR_ONE, EngineClient, EngineError
from .errors import TinytrainError
from .link import LinkError
from .numpy_backend import NumpyBackend

SCHEDULES = ("constant", "linear")


class StreamStopped(TinytrainError):
    """A TRAIN step failed mid-stream; `cause` says why, `done` how many steps the board took."""

    def __init__(self, message: str, cause: Exception, done: int) -> None:
        super().__init__(message)
        self.cause, self.done = cause, done


def lr_scales(n: int, schedule: str = "constant") -> np.ndarray:
    """Q16 learning-rate scale of each of n steps: constant 1, or decaying linearly to 0."""
    if schedule == "constant":
        return np.full(n, LR_ONE, dtype=np.int64)
    if schedule == "linear":
        return np.array([int(LR_ONE * (n - i) / n) for i in range(n)], dtype=np.int64)
    raise TinytrainError(f"unknown learning-rate schedule {schedule!r}; use {' or '.join(SCHEDULES)}.")


def cross_entropy(logits: np.ndarray, label: int, scale: float) -> float:
    z = logits.astype(np.float64) * scale
    z -= z.max()
    return float(np.log(np.exp(z).sum()) - z[label])


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
           desc: str = "train") -> StreamResult:
    """TRAIN frames for every sample (epochs times); with a reference, the same steps run in NumPy
    and the logits of every step are compared. A step the board did not take as expected (reset,
    lost reply, silence) stops the stream with the sample it happened at."""
    if epochs < 1:
        raise TinytrainError(f"the number of epochs must be at least 1, not {epochs}.")
    if len(xs) == 0:
        raise TinytrainError("there are no samples to train on.")
    n = len(xs) * epochs
    scales = lr_scales(n, schedule)
    res = StreamResult()
    t0 = time.monotonic()
    bar = tqdm(total=n, desc=desc, unit="sample", disable=not progress, dynamic_ncols=True)
    i = 0
    for _ in range(epochs):
        for x, y in zip(xs, ys):
            try:
                r = engine.train(x, int(y), int(scales[i]))
            except (EngineError, LinkError) as exc:
                bar.close()
                message = str(exc).rstrip(".")
                raise StreamStopped(f"{message[:1].lower()}{message[1:]}; the stream stopped at sample {i + 1} of "
                                    f"{n}.", exc, i) from None
            res.losses.append(cross_entropy(r.logits, int(y), logit_scale))
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
             progress: bool = True, desc: str = "eval") -> EvalResult:
    if len(xs) == 0:
        raise TinytrainError("there are no samples to evaluate on.")
    preds, counts = [], []
    mismatch = None
    for i, x in enumerate(tqdm(xs, desc=desc, unit="sample", disable=not progress, dynamic_ncols=True)):
        r = engine.infer(x)
        preds.append(r.prediction)
        counts.append(r.count)
        if reference is not None and mismatch is None and not np.array_equal(reference.infer(x), r.logits):
            mismatch = i
    p = np.asarray(preds)
    return EvalResult(p, float(np.mean(p == np.asarray(ys))) if len(p) else 0.0, counts, mismatch)
