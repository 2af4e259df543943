"""tinytrain demo --task imu on the NumPy reference of the firmware's program: the summary has the keys
of demo.json plus the fp32 baselines and one entry per subject, and personalization helps."""

from __future__ import annotations

import json

import pytest

from tinytrain.commands.cli import main

DEMO_KEYS = ("accuracy_before", "accuracy_after", "train_samples", "peak_sram_bytes", "planned_peak_sram_bytes",
             "instructions_per_step", "seconds", "identical_to_reference")


def test_reference_only_demo_writes_the_summary(tmp_path):
    pytest.importorskip("seglearn")
    pytest.importorskip("torch")
    out = tmp_path / "demo-imu.json"
    assert main(["demo", "--task", "imu", "--reference-only", "--subjects", "3", "--imu-epochs", "1",
                 "--out", str(out)]) == 0
    s = json.loads(out.read_text())
    assert all(k in s for k in DEMO_KEYS + ("fp32_last_layers_accuracy", "fp32_full_accuracy", "subjects"))
    assert [r["subject"] for r in s["subjects"]] == [3] and s["train_samples"] == s["subjects"][0]["adapt_windows"]
    assert s["accuracy_after"] > s["accuracy_before"] and s["planned_peak_sram_bytes"] <= s["budget_bytes"] == 65536
    assert s["identical_to_reference"] is None and s["peak_sram_bytes"] is None  # nothing measured without a board
    assert out.with_suffix(".png").stat().st_size > 10_000
