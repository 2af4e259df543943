"""Contribution analysis and scheme search on a small synthetic model with tiny data (fast)."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest

from tinytrain.learn import contribution as C
from tinytrain.model import ttm as model_file
from tinytrain.learn import scheme_search
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.commands.cli import main
from tinytrain.compile.compiler import predict_peak_sram
from tinytrain.reference.executor import NumpyBackend
from tinytrain.compile.sram_budget import BudgetError
from tinytrain.model.synthetic import random_model
from tinytrain.ir.program import CompileOptions
from tinytrain.compile.autodiff import compile_program

TINY = dict(val_samples=10, fit_samples=6, seeds=(1, 2))


@pytest.fixture(scope="module")
def model():
    return random_model(5)


@pytest.fixture(scope="module")
def small():
    """Two blocks (8 weighted layers): quick to plan, for the searches."""
    return random_model(5, size=8, width=4, kernels=(3, 5))


def _dataset(path, model) -> str:
    """30 random labelled images of the model's input size."""
    rng = np.random.default_rng(0)
    h, w, c = model.input_spec.shape
    np.savez(path, images=rng.integers(0, 256, size=(30, h, w, c), dtype=np.uint8),
             labels=rng.integers(0, model.num_classes, size=30))
    return str(path)


@pytest.fixture()
def dataset(tmp_path, model):
    return _dataset(tmp_path / "tiny.npz", model)


@pytest.fixture()
def small_dataset(tmp_path, small):
    return _dataset(tmp_path / "small.npz", small)


def _random_contributions(model, seed=0) -> C.Contributions:
    """A plausible table without running anything: deltas grow toward the output, with noise."""
    rng = np.random.default_rng(seed)
    n = len(model.weighted_ops)
    bias = {k: C.Score({1: 0.5 + 0.01 * k + rng.normal(0, 0.01)}, 1.0) for k in range(1, n + 1)}
    bias[1] = C.Score({1: 0.5}, 1.0)
    k_ref = max(bias, key=lambda k: bias[k].mean)
    weights = {(i, r): C.Score({1: bias[k_ref].mean + 0.02 * (i + 1) * r + rng.normal(0, 0.01)}, 1.0)
               for i in range(n - 1) for r in C.effective_ratios(model, i)}
    return C.Contributions(n, {}, bias, k_ref, weights)


def test_prefix_cache_gives_the_numpy_backend_results(model):
    rng = np.random.default_rng(1)
    h, w, c = model.input_spec.shape
    x = rng.integers(-128, 128, size=(12, h, w, c)).astype(np.int8)
    y = rng.integers(0, model.num_classes, size=12)
    acts = C.all_activations(model, x)
    n = len(model.weighted_ops)
    for scheme in (C.bias_scheme(n, 1), C.bias_scheme(n, 4), C.weight_scheme(n, 3, 5, 0.5), C.weight_scheme(n, 2, 1, 1.0),
                   sparse_scheme.builtin("full", n)):
        program = compile_program(model, scheme, CompileOptions(seed=3))
        ref, fast = NumpyBackend(program), C.PrefixCachedBackend(program, acts)
        for i in range(8):
            assert np.array_equal(ref.train_step(x[i], int(y[i]), 50000), fast.train_row(i, int(y[i]), 50000))
        assert ref.state_bytes() == fast.state_bytes(), scheme.name
        for i in range(8, 12):
            assert np.array_equal(ref.infer(x[i]), fast.infer_row(i))
        rows = np.array([11, 3, 8, 0, 5])  # batched validation: the same logits, row by row
        assert np.array_equal(fast.infer_rows(rows), np.stack([ref.infer(x[i]) for i in rows])), scheme.name


def test_equal_channel_counts_share_a_key(model):
    n = len(model.weighted_ops)
    first = model.weighted_ops[0]  # 3 input channels: 1/8, 1/4 and 1/2 all train one
    assert first.in_channels == 3
    assert C.effective_ratios(model, 0) == [0.125, 1.0]
    assert C.scheme_key(model, C.weight_scheme(n, 2, 0, 0.125)) == C.scheme_key(model, C.weight_scheme(n, 2, 0, 0.25))


def _numbers(results):
    return {k: {seed: (r["accuracy"], r["loss"]) for seed, r in v.items()} for k, v in results.items()}


def test_measurements_are_cached_and_resume(tmp_path, model, dataset):
    proto = C.Protocol(data=dataset, **TINY)
    n = len(model.weighted_ops)
    schemes = [C.bias_scheme(n, 1), C.bias_scheme(n, 3), C.weight_scheme(n, 3, 7, 0.5)]
    m1 = C.Measurer(model, proto, tmp_path, workers=2, progress=False)
    first = m1.measure(schemes)
    assert m1.runs_done == 6
    files = sorted((tmp_path / "runs").glob("*.json"))
    assert len(files) == 6
    # An interrupted analysis: one run never finished, another was cut while being written.
    files[0].unlink()
    files[1].write_text('{"accuracy": 0.')
    m2 = C.Measurer(model, proto, tmp_path, workers=2, progress=False)
    second = m2.measure(schemes)
    assert m2.runs_done == 2
    assert _numbers(second) == _numbers(first)  # deterministic: re-measured runs give the same numbers
    m3 = C.Measurer(model, proto, tmp_path, workers=1, progress=False)
    assert _numbers(m3.measure(schemes)) == _numbers(first) and m3.runs_done == 0
    # A different protocol does not reuse them.
    m4 = C.Measurer(model, C.Protocol(data=dataset, **{**TINY, "lr": 0.1}), tmp_path, workers=1, progress=False)
    m4.measure(schemes[:1])
    assert m4.runs_done == 2


def test_test_sets_are_refused(model):
    with pytest.raises(C.ContributionError, match="test set"):
        C.Measurer(model, C.Protocol(data="mnist:test"), "unused")


@pytest.mark.parametrize("seed", [0])
def test_search_respects_the_budget(small, seed):
    model = small
    c = _random_contributions(model, seed)
    n = len(model.weighted_ops)
    lo = predict_peak_sram(model, sparse_scheme.builtin("classifier", n))
    hi = predict_peak_sram(model, sparse_scheme.builtin("full", n))
    planner = scheme_search.Planner(model, workers=2)
    for budget in (lo, lo + (hi - lo) // 5, (lo + hi) // 2, hi + 1000):
        r = scheme_search.search(model, c, budget, planner)
        for cand in [r.best] + r.local_optima:
            assert predict_peak_sram(model, cand.point.scheme(n)) == cand.peak_bytes <= budget
        for v in r.visited:
            assert v.peak_bytes == predict_peak_sram(model, v.point.scheme(n))
        fitting = [v for v in r.visited if v.peak_bytes <= budget]
        assert r.best.score >= max(v.score for v in fitting) - 1e-12  # no visited feasible point is better
    with pytest.raises(BudgetError, match="classifier alone"):
        scheme_search.search(model, c, lo - 1, planner)
    planner.close()


def test_search_beats_every_single_move(small):
    """The chosen point is a local optimum: no single change of depth or ratio that fits scores higher."""
    model = small
    c = _random_contributions(model, 2)
    n = len(model.weighted_ops)
    lo = predict_peak_sram(model, sparse_scheme.builtin("classifier", n))
    hi = predict_peak_sram(model, sparse_scheme.builtin("full", n))
    budget = (lo + hi) // 2
    r = scheme_search.search(model, c, budget)
    space = scheme_search.Space(model, c, scheme_search.Planner(model, workers=1))
    for _, q in space.neighbours(r.best.point, pairs=False):
        assert space.peak(q) > budget


def test_contrib_cli_writes_a_scheme_that_round_trips(tmp_path, small, small_dataset, capsys):
    model, dataset = small, small_dataset
    path = tmp_path / "m.ttm"
    model_file.save(model, path)
    n = len(model.weighted_ops)
    budget = (predict_peak_sram(model, sparse_scheme.builtin("classifier", n))
              + predict_peak_sram(model, sparse_scheme.builtin("full", n))) // 2
    out = tmp_path / "out"
    args = ["contrib", str(path), "--data", dataset, "--budget", str(budget), "--out", str(out), "--val-samples", "10",
            "--fit-samples", "6", "--seeds", "1,2", "--workers", "2", "--no-progress", "--verify", "2",
            "--verify-seeds", "1,2,3"]
    assert main(args) == 0
    assert "chose" in capsys.readouterr().out
    for f in ("scheme.json", "report.json", "report.md", "contributions.png", "search.png"):
        assert (out / f).stat().st_size > 0
    doc = json.loads((out / "scheme.json").read_text())
    assert set(doc) == {"n_bias_update", "manual_weight_idx", "weight_update_ratio"}
    scheme = sparse_scheme.from_authors("auto", doc, n)
    assert scheme.to_authors_json() == doc
    assert predict_peak_sram(model, scheme) <= budget
    loaded = sparse_scheme.load(str(out / "scheme.json"), model)
    assert C.scheme_key(model, loaded) == C.scheme_key(model, scheme)
    report = json.loads((out / "report.json").read_text())
    assert report["chosen"]["scheme"] == doc and report["chosen"]["peak_sram_bytes"] <= budget
    assert len(report["verified"]) == 2 and report["runs_measured"] > 0
    # A second run (another budget, same cache) measures nothing new.
    assert main(args[:5] + [str(budget + 2048)] + args[6:]) == 0
    assert json.loads((out / "report.json").read_text())["runs_measured"] == 0


def test_compile_scheme_auto_reuses_the_analysis(tmp_path, small, small_dataset, monkeypatch, capsys):
    model, dataset = small, small_dataset
    monkeypatch.setattr(scheme_search, "Protocol", functools.partial(C.Protocol, **TINY))
    path = tmp_path / "m.ttm"
    model_file.save(model, path)
    n = len(model.weighted_ops)
    budget = predict_peak_sram(model, sparse_scheme.builtin("full", n)) - 1024
    cache = tmp_path / "contrib"
    for i in range(2):
        assert main(["compile", str(path), "--scheme", "auto", "--budget", str(budget), "--contrib-data", dataset,
                     "--contrib-dir", str(cache), "--out", str(tmp_path / f"c{i}")]) == 0
        report = json.loads((cache / f"budget-{budget}" / "report.json").read_text())
        assert (report["runs_measured"] > 0) == (i == 0)
        compiled = json.loads((tmp_path / f"c{i}" / "report.json").read_text())
        assert compiled["scheme_json"] == report["chosen"]["scheme"]
        assert compiled["planned_peak_sram_bytes"] <= budget
    assert "auto scheme" in capsys.readouterr().out


def test_compile_scheme_auto_needs_a_budget(tmp_path, model, capsys):
    path = tmp_path / "m.ttm"
    model_file.save(model, path)
    assert main(["compile", str(path), "--scheme", "auto", "--out", str(tmp_path / "o")]) == 2
    assert "needs a memory budget" in capsys.readouterr().err


def test_verification_also_measures_lighter_schemes(small):
    """Besides the best local optima (which fill the budget), the search's optimum within a half, a
    quarter and an eighth of the budget is re-measured: training more is not always better."""
    model = small
    c = _random_contributions(model, 3)
    n = len(model.weighted_ops)
    lo = predict_peak_sram(model, sparse_scheme.builtin("classifier", n))
    hi = predict_peak_sram(model, sparse_scheme.builtin("full", n))
    budget = max(hi, 2 * lo + 512)  # the classifier alone fits in half of it, not in an eighth
    with scheme_search.Planner(model, workers=2) as planner:
        r = scheme_search.search(model, c, budget, planner)
        lighter = scheme_search.lighter_optima(model, c, budget, planner)
        assert 1 <= len(lighter) < len(scheme_search.VERIFY_LEVELS)
        for level, cand in zip(scheme_search.VERIFY_LEVELS, lighter):
            assert cand.peak_bytes <= budget // level
            assert cand.point == scheme_search.search(model, c, budget // level, planner).best.point
    cands = scheme_search.verification_candidates(r, 2, lighter)
    assert cands[:len(r.local_optima[:2])] == r.local_optima[:2]
    assert len({x.point for x in cands}) == len(cands)
    assert {x.point for x in lighter} <= {x.point for x in cands}
    assert min(x.peak_bytes for x in cands) < r.local_optima[0].peak_bytes
