"""Learning-rate schedules of a fine-tuning run and the loss it reports."""

from __future__ import annotations

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.numerics.fixed_point import LR_ONE

SCHEDULES = ("constant", "linear")


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
