"""The fp32 baseline: the dequantized network computes what the int8 one approximates, and training
touches exactly the parameters a scheme names."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model
from tinytrain.ir.program import CompileOptions
from tinytrain.model.synthetic import random_model
from tinytrain.reference.executor import NumpyBackend

torch = pytest.importorskip("torch")
from tinytrain.learn.float_finetune import FloatNet, finetune  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return random_model(3, size=12, classes=5, width=8)


def test_dequantized_network_tracks_the_int8_one(model):
    rng = np.random.default_rng(0)
    xs = rng.integers(-128, 128, size=(40, *model.input_spec.shape)).astype(np.int8)
    ref = NumpyBackend(compile_model(model, sparse_scheme.load("classifier", model), CompileOptions()).program,
                       use_arena=False)
    q = model.tensors[model.output].qparams
    int8 = np.array([(ref.infer(x).astype(np.float64) - q.zero_point) * q.scale for x in xs])
    with torch.no_grad():
        fp32 = FloatNet(model).forward(xs).numpy()
    spread = np.abs(int8).max()
    assert np.abs(fp32 - int8).max() < 0.15 * spread  # quantization noise only
    assert np.mean(fp32.argmax(1) == int8.argmax(1)) >= 0.8


def test_scheme_training_changes_only_its_parameters(model):
    rng = np.random.default_rng(1)
    xs = rng.integers(-128, 128, size=(6, *model.input_spec.shape)).astype(np.int8)
    ys = rng.integers(0, 5, 6)
    scheme = sparse_scheme.load("last:2", model)
    n = len(model.weighted_ops)
    net = FloatNet(model)
    start = {k: (w.detach().clone(), b.detach().clone()) for k, (w, b) in net.params.items()}
    trained = {id(p) for p, _ in net.trained(scheme)}
    for i, op in enumerate(model.weighted_ops):
        w, b = net.params[op.name]
        assert (id(w) in trained) == (i >= n - 2) and (id(b) in trained) == (i >= n - 2)
    out = finetune(model, xs, ys, scheme, 0.05, epochs=2, eval_xs=xs, eval_ys=ys)
    assert out["steps"] == 12 and 0.0 <= out["accuracy_after"] <= 1.0
    assert all(k in start for k in net.params)  # a fresh net inside finetune: the model is not modified
