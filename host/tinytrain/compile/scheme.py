"""Sparse-update schemes: which biases and which weight slices a training step updates.

Layer indices follow the authors' convention (../shared/anchors/sparse_schemes.json):
the model's convolutions and dense layers in forward order, the classifier last.
`n_bias_update` trains the biases of the last k layers; `manual_weight_idx[i]`
trains layer i's weights on the first `weight_update_ratio[i]` fraction of its
input channels (of its channels, for a depthwise conv); ratio 0 skips it. The
classifier's weights and bias are always trained.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model, WeightedNode

BUILTIN = ("classifier", "bias-only", "last:K", "full")


class SchemeError(TinytrainError):
    """A scheme that cannot be read or does not fit the model."""


@dataclass
class SparseScheme:
    name: str
    n_layers: int
    bias_layers: set[int] = field(default_factory=set)
    weight_ratios: dict[int, float] = field(default_factory=dict)

    def to_authors_json(self) -> dict:
        """The scheme in the authors' convention (n_bias_update counts from the end)."""
        lowest_bias = min(self.bias_layers, default=self.n_layers)
        idx = sorted(i for i in self.weight_ratios if i != self.n_layers - 1)
        return {
            "n_bias_update": self.n_layers - lowest_bias,
            "manual_weight_idx": idx,
            "weight_update_ratio": [self.weight_ratios[i] for i in idx],
        }

    def updated_channels(self, op: WeightedNode, index: int) -> int:
        """How many input channels (channels, for depthwise) of this layer's weights train."""
        ratio = self.weight_ratios.get(index, 0.0)
        if ratio <= 0:
            return 0
        n = op.update_channels
        return max(1, min(n, int(math.floor(n * ratio + 1e-9))))

    def describe(self) -> str:
        w = ", ".join(f"{i}:{r:g}" for i, r in sorted(self.weight_ratios.items()))
        return f"{self.name}: biases of {len(self.bias_layers)} layers, weights {{{w}}}"


def from_authors(name: str, entry: dict, n_layers: int) -> SparseScheme:
    try:
        nb = int(entry["n_bias_update"])
        idx = [int(i) for i in entry.get("manual_weight_idx", [])]
        ratios = [float(r) for r in entry.get("weight_update_ratio", [])]
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemeError(f"scheme {name} lacks n_bias_update/manual_weight_idx/weight_update_ratio ({exc}).") from exc
    if len(idx) != len(ratios):
        raise SchemeError(f"scheme {name} has {len(idx)} weight indices but {len(ratios)} ratios.")
    bad = [i for i in idx if not 0 <= i < n_layers]
    if bad or not 0 <= nb <= n_layers:
        raise SchemeError(f"scheme {name} names layers outside 0..{n_layers - 1} of this model ({bad or nb}).")
    if any(not 0 <= r <= 1 for r in ratios):
        raise SchemeError(f"scheme {name} has an update ratio outside [0, 1].")
    s = SparseScheme(name, n_layers, set(range(n_layers - nb, n_layers)))
    for i, r in zip(idx, ratios):
        if r > 0:
            s.weight_ratios[i] = r
    _always_train_classifier(s)
    return s


def _always_train_classifier(s: SparseScheme) -> None:
    s.bias_layers.add(s.n_layers - 1)
    s.weight_ratios[s.n_layers - 1] = 1.0


def builtin(spec: str, n_layers: int) -> SparseScheme:
    s = SparseScheme(spec, n_layers)
    if spec == "classifier":
        pass
    elif spec == "bias-only":
        s.bias_layers = set(range(n_layers))
    elif spec == "full":
        s.bias_layers = set(range(n_layers))
        s.weight_ratios = {i: 1.0 for i in range(n_layers)}
    elif m := re.fullmatch(r"last:(\d+)", spec):
        k = int(m.group(1))
        if not 1 <= k <= n_layers:
            raise SchemeError(f"last:K needs 1 <= K <= {n_layers} for this model, got {k}.")
        s.bias_layers = set(range(n_layers - k, n_layers))
        s.weight_ratios = {i: 1.0 for i in range(n_layers - k, n_layers)}
    else:
        raise SchemeError(f"unknown scheme {spec!r}; use a JSON file, FILE:model/budget, or one of {', '.join(BUILTIN)}.")
    _always_train_classifier(s)
    return s


def load(spec: str, model: Model, budget_bytes: int | None = None,
         auto: Callable[[Model, int | None], SparseScheme] | None = None) -> SparseScheme:
    """Resolves a scheme spec: a built-in name, a JSON file, FILE:model/budget, or `auto`, which
    `auto(model, budget_bytes)` resolves (the contribution search, tinytrain.learn.scheme_search)."""
    n = len(model.weighted_ops)
    if spec == "auto":
        if auto is None:
            raise SchemeError("--scheme auto is chosen by contribution analysis, which this command does not run; "
                              "run `tinytrain contrib` and pass its scheme.json.")
        return auto(model, budget_bytes)
    if spec in ("classifier", "bias-only", "full") or spec.startswith("last:"):
        return builtin(spec, n)
    path_part, _, key = spec.partition(":")
    path = Path(path_part)
    if not path.exists():
        raise SchemeError(f"scheme {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor an existing JSON file.")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SchemeError(f"scheme file {path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from exc
    entry = doc
    if key:
        for part in key.split("/"):
            if not isinstance(entry, dict) or part not in entry:
                choices = ", ".join(k for k in entry if not k.startswith("_")) if isinstance(entry, dict) else ""
                raise SchemeError(f"scheme file {path} has no entry {part!r} (choices: {choices}).")
            entry = entry[part]
    if not isinstance(entry, dict) or "n_bias_update" not in entry:
        raise SchemeError(f"{spec} is not a scheme; pick one entry with FILE:model/budget.")
    return from_authors(f"{path.stem}:{key}" if key else path.stem, entry, n)
