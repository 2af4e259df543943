"""Fine-tuning runs through the engine's C code built for the host (tinytrain.board.host_runs) against
the NumPy reference: the same logits at every step, the same learned state, and the same accuracy and
loss of contribution runs, so both backends share one cache."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tinytrain.board import host_runs
from tinytrain.board.builds import project_root
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.autodiff import compile_program
from tinytrain.ir.program import CompileOptions
from tinytrain.learn import contribution as C
from tinytrain.learn.sample_input import model_samples
from tinytrain.model.loader import load_model
from tinytrain.model.synthetic import random_model
from tinytrain.reference.executor import NumpyBackend

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")

SHIPPED = project_root() / "models" / "fmnist-mbv2" / "model.ttm"


@pytest.fixture(scope="module")
def objects():
    return host_runs.engine_objects()


def _dataset(path, model, n=40) -> str:
    rng = np.random.default_rng(0)
    h, w, c = model.input_spec.shape
    np.savez(path, images=rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8),
             labels=rng.integers(0, model.num_classes, size=n))
    return str(path)


@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_run_library_steps_equal_the_reference(objects, rounding):
    """Every step's logits, the inferences and the learned state, for schemes that train partial
    pointwise and depthwise slices, the first conv and biases, on a synthetic model; the program
    itself and its host form (host_program) against the NumPy reference of the program."""
    model = random_model(5)
    n = len(model.weighted_ops)
    rng = np.random.default_rng(3)
    h, w, c = model.input_spec.shape
    x = rng.integers(-128, 128, size=(16, h, w, c)).astype(np.int8)
    y = rng.integers(0, model.num_classes, size=16)
    scales = rng.integers(1 << 14, 1 << 17, size=12)
    schemes = [C.bias_scheme(n, 3), C.weight_scheme(n, 2, 1, 0.5),
               sparse_scheme.from_authors("mixed", {"n_bias_update": 5, "manual_weight_idx": [0, 2, n - 3],
                                                    "weight_update_ratio": [1, 0.25, 0.125]}, n)]
    for scheme in schemes:
        program = compile_program(model, scheme, CompileOptions(lr=0.05, seed=7, rounding=rounding))
        rows = np.array([5, 0, 9, 3, 3, 11, 1, 2, 7, 8, 4, 6])
        val = np.array([12, 13, 14, 15, 0])
        ref = NumpyBackend(program)
        want = np.stack([ref.train_step(x[r], int(y[r]), int(s)) for r, s in zip(rows, scales)])
        want_val = np.stack([ref.infer(x[r]) for r in val])
        for form in (program, host_runs.host_program(program)):
            with host_runs.RunLibrary(form, objects) as lib:
                assert np.array_equal(lib.train(x, rows, y[rows], scales), want), scheme.name
                assert lib.state_bytes() == ref.state_bytes(), scheme.name
                assert np.array_equal(lib.infer(x, val), want_val), scheme.name


def test_measurer_backends_agree(tmp_path, objects):
    """Whole contribution runs (sample order, lr schedule, scoring) through both backends: identical
    accuracy and loss; and the C backend reuses the NumPy backend's cache."""
    model = random_model(5)
    n = len(model.weighted_ops)
    proto = C.Protocol(data=_dataset(tmp_path / "d.npz", model), val_samples=12, fit_samples=10, seeds=(1, 2))
    schemes = [C.bias_scheme(n, 1), C.bias_scheme(n, 4), C.weight_scheme(n, 4, 3, 0.5)]
    numpy_runs = C.Measurer(model, proto, tmp_path / "np", workers=1, progress=False).measure(schemes)
    c = C.Measurer(model, proto, tmp_path / "c", workers=2, progress=False, backend=host_runs.CRuns())
    c_runs = c.measure(schemes)
    assert c.runs_done == 6
    strip = lambda res: {k: {s: (r["accuracy"], r["loss"]) for s, r in v.items()} for k, v in res.items()}  # noqa: E731
    assert strip(c_runs) == strip(numpy_runs)
    assert {r["backend"] for v in c_runs.values() for r in v.values()} == {"c"}
    shared = C.Measurer(model, proto, tmp_path / "np", workers=1, progress=False, backend=host_runs.CRuns())
    assert strip(shared.measure(schemes)) == strip(numpy_runs) and shared.runs_done == 0


def test_shipped_model_runs_equal_numpy(tmp_path, objects):
    """A sample of the real analysis: the shipped model on MNIST digits, a bias run and a weight run
    on top of deep biases, a few steps each: the same logits of every step and validation sample,
    hence the same accuracy and loss."""
    model = load_model(str(SHIPPED))
    n = len(model.weighted_ops)
    proto = C.Protocol(fit_samples=6, val_samples=800, seeds=(2,))
    x, y = model_samples(proto.data, model)
    fit_rows = np.arange(len(y) - proto.val_samples)
    val_rows = np.arange(len(y) - proto.val_samples, len(y))[::40]  # 20 of them
    rows, scales = C.run_samples(proto, fit_rows, 2)
    used = np.unique(np.concatenate([rows, val_rows]))
    acts = C.all_activations(model, x[used])  # the frozen-prefix cache of the rows used
    index = {int(r): i for i, r in enumerate(used)}
    for scheme in (C.bias_scheme(n, 6), C.weight_scheme(n, 15, 4, 0.5)):
        program = C.run_program(model, proto, scheme.to_authors_json(), 2)
        with host_runs.RunLibrary(host_runs.host_program(program), objects) as lib:  # what CRuns runs
            got = lib.train(x, rows, y[rows], scales)
            got_val = lib.infer(x, val_rows)
            state = lib.state_bytes()
        ref = C.PrefixCachedBackend(program, acts)  # the NumPy path of the analysis
        want = np.stack([ref.train_row(index[int(r)], int(y[r]), int(s)) for r, s in zip(rows, scales)])
        want_val = ref.infer_rows(np.array([index[int(r)] for r in val_rows]))
        assert np.array_equal(got, want), scheme.name
        assert np.array_equal(got_val, want_val), scheme.name
        assert state == ref.state_bytes(), scheme.name
        assert C.score_logits(model, got_val, y[val_rows]) == C.score_logits(model, want_val, y[val_rows])


def test_backend_names():
    assert host_runs.backend("numpy").name == "numpy"
    assert host_runs.backend("c").name == "c"
    with pytest.raises(Exception, match="unknown backend"):
        host_runs.backend("fortran")
