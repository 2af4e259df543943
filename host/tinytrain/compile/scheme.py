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

import numpy as np

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


SCHEME_KEYS = ("n_bias_update", "manual_weight_idx", "weight_update_ratio")


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def from_authors(name: str, entry: dict, n_layers: int) -> SparseScheme:
    """A scheme in the authors' convention, checked strictly: every key present, integers where
    integers belong (never truncated), each layer named once; nothing is filled in or guessed."""
    if not isinstance(entry, dict):
        raise SchemeError(f"scheme {name} is not a JSON object with {', '.join(SCHEME_KEYS)}.")
    missing = [k for k in SCHEME_KEYS if k not in entry]
    if missing:
        raise SchemeError(f"scheme {name} lacks {', '.join(missing)}; a scheme needs all of {', '.join(SCHEME_KEYS)}.")
    extra = sorted(k for k in entry if k not in SCHEME_KEYS and not str(k).startswith("_"))
    if extra:
        raise SchemeError(f"scheme {name} has unknown key(s) {', '.join(map(str, extra))}; only "
                          f"{', '.join(SCHEME_KEYS)} are read.")
    nb, idx, ratios = (entry[k] for k in SCHEME_KEYS)
    if isinstance(idx, tuple):
        idx = list(idx)
    if isinstance(ratios, tuple):
        ratios = list(ratios)
    if not _is_int(nb):
        raise SchemeError(f"scheme {name} has n_bias_update {nb!r}; it must be a whole number.")
    if not isinstance(idx, list) or not all(_is_int(i) for i in idx):
        raise SchemeError(f"scheme {name} has manual_weight_idx {idx!r}; it must be a list of whole layer numbers.")
    if not isinstance(ratios, list) or not all(_is_number(r) for r in ratios):
        raise SchemeError(f"scheme {name} has weight_update_ratio {ratios!r}; it must be a list of numbers.")
    nb, idx, ratios = int(nb), [int(i) for i in idx], [float(r) for r in ratios]
    if len(idx) != len(ratios):
        raise SchemeError(f"scheme {name} has {len(idx)} weight indices but {len(ratios)} ratios.")
    dup = sorted({i for i in idx if idx.count(i) > 1})
    if dup:
        raise SchemeError(f"scheme {name} names layer {dup[0]} more than once in manual_weight_idx.")
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
    if not path_part or not path.is_file():
        raise SchemeError(f"scheme {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor an existing JSON file.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemeError(f"scheme file {path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemeError(f"scheme file {path} cannot be read as UTF-8 text ({type(exc).__name__}).") from None
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
