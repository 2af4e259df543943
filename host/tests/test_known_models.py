"""The known-models table (model.known_models): a model file without metadata of its own (the paper's
.pkl files) gets its base learning rate from the table, keyed by the file's SHA-256."""

from __future__ import annotations

import hashlib
import json

import pytest

from tinytrain.compile import build_config
from tinytrain.compile.compiler import model_lr
from tinytrain.ir.program import CompileOptions
from tinytrain.model import known_models
from tinytrain.model.synthetic import random_model


@pytest.fixture
def fake_table(tmp_path, monkeypatch):
    """A table with one fake entry, in place of the package's."""
    model_file = tmp_path / "fake.pkl"
    model_file.write_bytes(b"not a real model")
    table = tmp_path / "known_models.json"
    known_models.remember(model_file, 0.0123, {"command": "test"}, table=table)
    monkeypatch.setattr(known_models, "TABLE", table)
    return hashlib.sha256(b"not a real model").hexdigest()


def test_model_lr_consults_the_table(fake_table) -> None:
    model = random_model()
    assert model_lr(model) == CompileOptions.lr  # no file hash: the default
    model.metadata["file_sha256"] = fake_table
    assert model_lr(model) == 0.0123
    entry = json.loads(known_models.TABLE.read_text())["models"][fake_table]
    assert entry["file"] == "fake.pkl" and entry["chosen_by"] == {"command": "test"}
    cfg = build_config.BuildConfig()
    assert cfg.options(model).lr == 0.0123  # a build with no lr typed takes it
    model.metadata["lr"] = 0.02  # the model's own metadata comes first
    assert model_lr(model) == 0.02
    model.metadata.pop("lr")
    model.metadata["file_sha256"] = "0" * 64
    assert model_lr(model) == CompileOptions.lr


def test_the_packages_table_is_well_formed() -> None:
    for sha, entry in known_models.known_models().items():
        assert len(sha) == 64 and int(sha, 16) >= 0
        assert entry["file"].endswith(".pkl") and 0 < entry["lr"] < 1
        assert entry["chosen_by"]["command"] == "tinytrain tune-lr"
