"""Base learning rates of model files that cannot carry metadata of their own (the paper's .pkl
files), keyed by the SHA-256 of the file's bytes (known_models.json). Loading such a file records
that hash in the model's metadata (`file_sha256`); compile.compiler.model_lr takes the rate from
the model's metadata `lr` first, then from this table, then the default. Each entry says how its
rate was chosen (a `tinytrain tune-lr` run: data, scheme, steps, the validation accuracy)."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from tinytrain.ir.graph import Model

TABLE = Path(__file__).with_name("known_models.json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=None)
def _table(path: Path) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("models", {})


def known_models() -> dict:
    """sha256 -> {"file", "lr", "chosen_by"}."""
    return _table(TABLE)


def known_entry(model: Model) -> dict | None:
    """The table's entry for the file the model was loaded from (a .pkl or .tflite), if any."""
    sha = model.metadata.get("file_sha256") or model.metadata.get("tflite", {}).get("sha256")
    return known_models().get(sha) if isinstance(sha, str) else None


def known_lr(model: Model) -> float | None:
    entry = known_entry(model)
    lr = entry.get("lr") if entry else None
    return float(lr) if isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0 else None


def remember(path: str | Path, lr: float, chosen_by: dict, table: Path = TABLE) -> Path:
    """Store (or replace) the rate of the model file at `path` in the table (tinytrain tune-lr --write)."""
    doc = json.loads(table.read_text()) if table.is_file() else {}
    doc.setdefault("about", "Base learning rates of model files without metadata (the paper's .pkl files), keyed "
                            "by the SHA-256 of the file; chosen by `tinytrain tune-lr MODEL ... --write` "
                            "(model.known_models).")
    doc.setdefault("models", {})[file_sha256(path)] = {"file": Path(path).name, "lr": float(lr),
                                                       "chosen_by": chosen_by}
    table.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    _table.cache_clear()
    return table
