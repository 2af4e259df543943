"""Choosing a model's base learning rate: short fine-tuning runs of the board's exact arithmetic (the
NumPy reference, through the contribution analysis' measurer and its cache) at several learning
rates, scored on a validation slice of the training data (never a test set)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytrain.compile.scheme import SparseScheme
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.learn.contribution import Measurer, Protocol, scheme_key

DEFAULT_LRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


@dataclass
class SweepPoint:
    lr: float
    accuracy: float  # mean over seeds, on the validation slice
    loss: float  # mean validation loss
    per_seed: dict[int, float]


@dataclass
class Sweep:
    points: list[SweepPoint]
    chance: float  # 1 / classes

    @property
    def best(self) -> SweepPoint:
        """The most accurate; among those within a point of it, the one with the lowest loss (a rate on
        the edge of diverging scores well once and badly the next time)."""
        top = max(p.accuracy for p in self.points)
        close = [p for p in self.points if p.accuracy >= top - 0.01 and math.isfinite(p.loss)]
        return min(close or self.points, key=lambda p: (p.loss, -p.accuracy))

    def diverged(self, p: SweepPoint) -> bool:
        return p.accuracy <= self.chance * 1.5 or not math.isfinite(p.loss)


def sweep(model: Model, scheme: SparseScheme, protocol: Protocol, lrs: tuple[float, ...], cache_dir: Path,
          workers: int | None = None, progress: bool = True, backend=None) -> Sweep:
    if not lrs or any(not lr > 0 for lr in lrs):
        raise TinytrainError("learning rates to try must be positive numbers.")
    points = []
    for lr in lrs:
        proto = Protocol(**{**protocol.__dict__, "lr": float(lr)})
        m = Measurer(model, proto, cache_dir, workers, progress, backend)
        runs = m.measure([scheme], desc=f"lr {lr:g}")[scheme_key(model, scheme)]
        acc = {seed: r["accuracy"] for seed, r in runs.items()}
        loss = float(np.mean([r["loss"] for r in runs.values()]))
        points.append(SweepPoint(float(lr), float(np.mean(list(acc.values()))), loss, acc))
    return Sweep(points, 1.0 / model.num_classes)


def write_outputs(model: Model, scheme: SparseScheme, protocol: Protocol, s: Sweep, out_dir: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"model": model.name, "scheme": scheme.name, "data": protocol.data, "fit_samples": protocol.fit_samples,
           "val_samples": protocol.val_samples, "schedule": protocol.schedule, "seeds": list(protocol.seeds),
           "best_lr": s.best.lr,
           "points": [{"lr": p.lr, "accuracy": p.accuracy, "loss": p.loss, "per_seed": p.per_seed,
                       "diverged": s.diverged(p)} for p in s.points]}
    (out_dir / "tune_lr.json").write_text(json.dumps(doc, indent=1))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogx([p.lr for p in s.points], [100 * p.accuracy for p in s.points], "o-")
    ax.axhline(100 * s.chance, color="grey", ls=":", label="chance")
    ax.axvline(s.best.lr, color="k", ls="--", lw=0.8, label=f"chosen {s.best.lr:g}")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"{model.name} / {scheme.name}: {protocol.fit_samples} steps on {protocol.data}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "tune_lr.png", dpi=110)
    plt.close(fig)
    return doc
