"""The pieces of a fleet that need no board: data splits (IID, Dirichlet over labels) and the
federated average of learned states in the int8 layout (exact, unbiased, reproducible, equal to
FedAvg of the dequantized values requantized to the tensors' fixed scales)."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.board.builds import default_build_config
from tinytrain.errors import TinytrainError
from tinytrain.learn.federated_average import federated_average, rounded_mean, state_layout
from tinytrain.learn.partitions import partition, round_samples, split_like
from tinytrain.learn.sample_input import model_samples
from tinytrain.reference.executor import NumpyBackend

LABELS = np.repeat(np.arange(10), 100)


def covers_once(shares, n):
    every = np.concatenate(shares)
    return len(every) == n and len(np.unique(every)) == n


def test_iid_split_is_equal_and_disjoint():
    p = partition(LABELS, 3, "iid", seed=1)
    assert covers_once(p.shares, len(LABELS))
    assert sorted(len(s) for s in p.shares) == [333, 333, 334]
    assert all(np.array_equal(a, b) for a, b in zip(p.shares, partition(LABELS, 3, "iid", seed=1).shares))
    assert not np.array_equal(p.shares[0], partition(LABELS, 3, "iid", seed=2).shares[0])


def test_dirichlet_split_is_reproducible_disjoint_and_skewed():
    p = partition(LABELS, 4, "dirichlet", alpha=0.5, seed=0, num_classes=10)
    assert covers_once(p.shares, len(LABELS))
    q = partition(LABELS, 4, "dirichlet", alpha=0.5, seed=0, num_classes=10)
    assert all(np.array_equal(a, b) for a, b in zip(p.shares, q.shares))
    counts = p.label_counts(LABELS, 10)
    assert counts.sum() == len(LABELS) and np.array_equal(counts.sum(axis=0), np.full(10, 100))
    # Small alpha: each board is dominated by a few labels; large alpha: close to uniform.
    top2 = lambda c: np.sort(c, axis=1)[:, -2:].sum(axis=1) / c.sum(axis=1)  # noqa: E731
    skewed = top2(partition(LABELS, 4, "dirichlet", alpha=0.1, seed=0, num_classes=10).label_counts(LABELS, 10))
    flat = top2(partition(LABELS, 4, "dirichlet", alpha=100.0, seed=0, num_classes=10).label_counts(LABELS, 10))
    assert skewed.mean() > 0.6 > 0.3 > flat.mean()
    assert np.allclose(p.proportions.sum(axis=1), 1.0)


def test_held_out_split_follows_the_boards_label_mix():
    p = partition(LABELS, 4, "dirichlet", alpha=0.5, seed=3, num_classes=10)
    test_labels = np.repeat(np.arange(10), 50)
    h = split_like(test_labels, p.proportions, seed=3)
    assert covers_once(h.shares, len(test_labels))
    train_mix = p.label_counts(LABELS, 10) / 100.0
    test_mix = h.label_counts(test_labels, 10) / 50.0
    assert np.abs(train_mix - test_mix).max() <= 0.03  # the same proportions, up to rounding of the cuts


def test_split_errors_are_sentences():
    with pytest.raises(TinytrainError, match="alpha"):
        partition(LABELS, 4, "dirichlet", alpha=0.0)
    with pytest.raises(TinytrainError, match="unknown split"):
        partition(LABELS, 4, "shards")
    with pytest.raises(TinytrainError, match="cannot be split"):
        partition(LABELS[:3], 4)


def test_round_samples_walk_the_share_and_wrap():
    share = np.arange(10) * 7
    assert np.array_equal(round_samples(share, 1, 4), share[:4])
    assert np.array_equal(round_samples(share, 3, 4), share[[8, 9, 0, 1]])
    assert np.array_equal(round_samples(share[:3], 1, 5), share[[0, 1, 2, 0, 1]])


# ---------------------------------------------------------------- rounded_mean


def test_rounded_mean_is_exact_when_the_mean_is_whole():
    a, b = np.array([-127, 5, 100]), np.array([-127, 1, 50])
    r = np.full(3, 0xFFFFFFFF, dtype=np.uint32)  # the largest u never rounds a whole mean up
    assert np.array_equal(rounded_mean([a, b], [1, 1], r), [-127, 3, 75])
    assert np.array_equal(rounded_mean([a, b], [1, 3], np.zeros(3, np.uint32)), [-127, 2, 62])  # floor of 62.5


def test_rounded_mean_is_unbiased_and_int32_safe():
    rng = np.random.default_rng(0)
    a = np.array([3, -3, 2**31 - 1, -(2**31), 0])
    b = np.array([4, -4, 2**31 - 2, -(2**31) + 1, 1])
    weights = [3, 1]
    want = (3 * a.astype(np.float64) + b) / 4
    draws = rng.integers(0, 2**32, size=(20000, 5), dtype=np.uint64).astype(np.uint32)
    got = np.mean([rounded_mean([a, b], weights, r) for r in draws], axis=0)
    assert np.all(np.abs(got - want) < 0.01), (got, want)
    lo = rounded_mean([a, b], weights, np.zeros(5, np.uint32))
    assert np.array_equal(lo, np.floor((3 * a + b) / 4).astype(np.int64))


# ---------------------------------------------------------------- states of the shipped build


@pytest.fixture(scope="module")
def shipped():
    compiled = default_build_config().compile()
    ref = NumpyBackend(compiled.program)
    x, y = model_samples("mnist:train", compiled.program.model, 24)
    states = [ref.state_bytes()]
    for k in range(2):
        ref.load_state_bytes(states[0])
        for i in range(12 * k, 12 * k + 12):
            ref.train_step(x[i], int(y[i]))
        states.append(ref.state_bytes())
    return compiled, state_layout(compiled.program), states


def test_layout_is_the_boards_state(shipped):
    compiled, layout, states = shipped
    assert [t.op for t in layout.tensors] == [p.op for p in compiled.program.trainable_params]
    assert layout.nbytes == len(states[0])
    assert layout.join(*layout.split(states[1])) == states[1]
    assert layout.with_step(states[1], 77)[4:] == states[1][4:]
    assert layout.split(layout.with_step(states[1], 77))[0] == 77
    with pytest.raises(TinytrainError, match="does not fit"):
        layout.split(states[1][:-1])


def test_average_is_reproducible_in_range_and_keeps_frozen_bytes(shipped):
    _, layout, states = shipped
    a = federated_average(layout, states[1:], [200, 100], round_=3, step=1234)
    assert a == federated_average(layout, states[1:], [200, 100], round_=3, step=1234)
    assert a != federated_average(layout, states[1:], [200, 100], round_=4, step=1234)  # another round, other draws
    step, parts = layout.split(a)
    assert step == 1234
    _, p1 = layout.split(states[1])
    _, p2 = layout.split(states[2])
    for t, v, u, w in zip(layout.tensors, parts, p1, p2):
        lo, hi = np.minimum(u, w), np.maximum(u, w)
        assert np.all((v >= lo) & (v <= hi)), t.op  # a mean lies between the values
        assert np.array_equal(v[u == w], u[u == w]), t.op  # equal on every board: unchanged (frozen slices too)
    assert federated_average(layout, [states[1]], [7], round_=1, step=states[1][0])[4:] == states[1][4:]


def test_average_equals_fedavg_of_dequantized_values_requantized(shipped):
    """FedAvg in real values (int times the tensor row's scale, weighted by sample counts), divided by
    the same scales: the integer mean is that, exactly (the floor of it with u = 0)."""
    _, layout, states = shipped
    weights = [150, 50]
    real = [layout.dequantize(s) for s in states[1:]]
    got = layout.split(federated_average(layout, states[1:], weights, round_=1, step=0))[1]
    for t, r1, r2, q in zip(layout.tensors, real[0], real[1], got):
        mean_real = (weights[0] * r1 + weights[1] * r2) / sum(weights)
        requant = mean_real / t.scales.reshape((-1,) + (1,) * (r1.ndim - 1))
        assert np.all(np.abs(q - requant) < 1 + 1e-6), t.op  # one of the two integers around the mean
        assert np.all((q == np.floor(requant + 1e-9)) | (q == np.ceil(requant - 1e-9))), t.op
    # Stochastic: over draws the rounding error averages out (here over every element of the weights).
    q = np.concatenate([g.ravel() for g, t in zip(got, layout.tensors) if t.kind == "weight"]).astype(np.float64)
    exact = np.concatenate([((weights[0] * a + weights[1] * b) / sum(weights)).ravel()
                            for a, b, t in zip(layout.split(states[1])[1], layout.split(states[2])[1], layout.tensors)
                            if t.kind == "weight"])
    frac = exact - np.floor(exact)
    assert abs(np.mean(q - exact)) < 0.01 and np.mean(frac > 0) > 0.1
