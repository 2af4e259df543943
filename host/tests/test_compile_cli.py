"""The compile and predict commands as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tinytrain.model import ttm as model_file
from tinytrain.commands.cli import main
from tinytrain.compile.sram_budget import parse_bytes
from tinytrain.model.synthetic import random_model

SHARED = Path(__file__).resolve().parents[3] / "shared"


def test_parse_bytes():
    assert parse_bytes("256KB") == 262144
    assert parse_bytes("1MB") == 1 << 20
    assert parse_bytes("1000") == 1000
    assert parse_bytes("0.5 kb") == 512
    with pytest.raises(Exception, match="cannot read"):
        parse_bytes("lots")


def test_compile_writes_report_and_plot(tmp_path, capsys):
    m = random_model(3)
    path = tmp_path / "m.ttm"
    model_file.save(m, path)
    out = tmp_path / "out"
    assert main(["compile", str(path), "--scheme", "last:4", "--budget", "256KB", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    for key in ("arena_bytes", "trainable_sram_bytes", "planned_peak_sram_bytes", "flash_bytes", "macs_forward",
                "macs_backward", "peak_without_reordering_bytes", "scheme"):
        assert key in report
    assert report["planned_peak_sram_bytes"] > report["arena_bytes"] + report["trainable_sram_bytes"]
    assert report["peak_without_reordering_bytes"] >= report["planned_peak_sram_bytes"]
    assert (out / "memory_plan.png").stat().st_size > 10_000
    assert "planned peak SRAM" in capsys.readouterr().out


def test_unmet_budget_is_one_sentence_naming_contributors(tmp_path, capsys):
    m = random_model(3)
    path = tmp_path / "m.ttm"
    model_file.save(m, path)
    assert main(["compile", str(path), "--scheme", "full", "--budget", "4KB", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.endswith(".")
    assert "exceeds the 4.0 KB budget" in err and "arena" in err and "trainable tensors" in err


def test_new_head_replaces_classifier(tmp_path):
    m = random_model(4, classes=5)
    path = tmp_path / "m.ttm"
    model_file.save(m, path)
    out = tmp_path / "o"
    assert main(["compile", str(path), "--classes", "7", "--out", str(out)]) == 0
    assert json.loads((out / "report.json").read_text())["classes"] == 7


@pytest.mark.parametrize("name", ["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"])
def test_predict_chelsea_is_a_cat(name, tmp_path, capsys):
    path = SHARED / "models" / "tiny-training" / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"the paper's models are not at {path.parent}")
    from PIL import Image
    from skimage import data

    img = tmp_path / "chelsea.png"
    Image.fromarray(data.chelsea()).save(img)
    assert main(["predict", str(path), str(img)]) == 0
    lines = capsys.readouterr().out.splitlines()
    top1 = int(lines[1].split()[0])
    assert 281 <= top1 <= 285, lines


def test_compile_every_authors_scheme_through_the_cli(tmp_path):
    schemes = SHARED / "anchors" / "sparse_schemes.json"
    model = SHARED / "models" / "tiny-training" / "mcunet-5fps.pkl"
    if not (schemes.exists() and model.exists()):
        pytest.skip("the shared anchors or models are absent")
    out = tmp_path / "o"
    assert main(["compile", str(model), "--classes", "10", "--scheme", f"{schemes}:mcunet-5fps/49kb", "--out",
                 str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["scheme_json"]["n_bias_update"] == 20
    assert np.isclose(r["macs_forward"], 22_455_104, rtol=0.01)
