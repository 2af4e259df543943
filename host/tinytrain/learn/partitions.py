"""Splits of a labelled dataset over the boards of a fleet, for federated experiments.

- `iid`: a seeded permutation cut into equal shares (sizes differ by at most one);
- `dirichlet` (non-IID, Hsu et al. 2019, "Measuring the effects of non-identical data distribution
  for federated visual classification"): for every class c, proportions p[c] ~ Dir(alpha, ..., alpha)
  over the boards; class c's samples (in a seeded order) are cut at the cumulative proportions.
  Small alpha gives each board a few dominant labels, large alpha tends to IID.

A draw that leaves a board without any training sample is drawn again (up to 100 times) from the
same generator, so a split is a pure function of (labels, boards, alpha, seed). The same
proportions also cut the held-out set (`split_like`), so each board's held-out samples follow its own
label distribution: that is what its local accuracy is measured on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinytrain.errors import TinytrainError

SPLITS = ("iid", "dirichlet")
REDRAWS = 100


@dataclass(frozen=True)
class Partition:
    """Which samples each board holds: indices into the dataset, in the order the board uses them."""

    shares: tuple[np.ndarray, ...]
    proportions: np.ndarray  # [classes, boards]: the fraction of each class every board holds

    def __len__(self) -> int:
        return len(self.shares)

    def label_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """[boards, classes] sample counts, for reports."""
        return np.stack([np.bincount(labels[s], minlength=num_classes) for s in self.shares]) if self.shares else \
            np.zeros((0, num_classes), dtype=np.int64)


def _cut(labels: np.ndarray, proportions: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    boards = proportions.shape[1]
    parts: list[list[np.ndarray]] = [[] for _ in range(boards)]
    for c in range(proportions.shape[0]):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        # Cut points from the cumulative proportions, rounded: every sample goes to exactly one board.
        cuts = np.rint(np.cumsum(proportions[c])[:-1] * len(idx)).astype(np.int64)
        for b, piece in enumerate(np.split(idx, cuts)):
            parts[b].append(piece)
    # Each board's samples in a seeded order, so that its classes are interleaved as it trains.
    return [rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts]


def partition(labels: np.ndarray, boards: int, split: str = "iid", alpha: float = 0.5, seed: int = 0,
              num_classes: int | None = None) -> Partition:
    """The samples of every board; one sentence for a split that cannot be made."""
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(num_classes if num_classes is not None else (labels.max() + 1 if labels.size else 0))
    if boards < 1:
        raise TinytrainError(f"a fleet needs at least one board, not {boards}.")
    if len(labels) < boards:
        raise TinytrainError(f"{len(labels)} samples cannot be split over {boards} boards.")
    rng = np.random.default_rng(seed)
    if split == "iid":
        order = rng.permutation(len(labels))
        shares = tuple(np.array_split(order, boards))
        return Partition(shares, np.full((num_classes, boards), 1.0 / boards))
    if split != "dirichlet":
        raise TinytrainError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}.")
    if not alpha > 0 or not np.isfinite(alpha):
        raise TinytrainError(f"the Dirichlet concentration alpha must be a number above 0, not {alpha}.")
    for _ in range(REDRAWS):
        p = rng.dirichlet(np.full(boards, float(alpha)), size=num_classes)
        shares = _cut(labels, p, rng)
        if all(len(s) for s in shares):
            return Partition(tuple(shares), p)
    raise TinytrainError(f"a Dirichlet split with alpha {alpha} left a board without samples in {REDRAWS} draws; "
                         f"use a larger alpha or fewer than {boards} boards.")


def split_like(labels: np.ndarray, proportions: np.ndarray, seed: int = 0) -> Partition:
    """Another dataset (the held-out samples) cut with the same per-class proportions."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([seed, 1])
    if proportions.shape[0] <= (labels.max() if labels.size else -1):
        raise TinytrainError(f"the held-out samples have labels up to {int(labels.max())} but the split covers "
                             f"{proportions.shape[0]} classes.")
    return Partition(tuple(_cut(labels, proportions, rng)), proportions)


def round_samples(share: np.ndarray, round_: int, per_round: int) -> np.ndarray:
    """The samples a board trains on in round `round_` (1-based): the next `per_round` of its share,
    going round its share again when it runs out (a share smaller than a round repeats within it)."""
    if len(share) == 0:
        raise TinytrainError("a board without samples cannot train.")
    start = (round_ - 1) * per_round
    return share[np.arange(start, start + per_round) % len(share)]
