"""The compiled training step: pruning, memory plan, and equivalences of its executions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytrain.compile import arena_plan
from tinytrain.model import ttm as model_file
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.reference.executor import NumpyBackend
from tinytrain.model.synthetic import random_model
from tinytrain.ir.program import Buffer, CompileOptions, Step, StepKind
from tinytrain.compile.autodiff import compile_program

SCHEMES = Path(__file__).resolve().parents[3] / "shared" / "anchors" / "sparse_schemes.json"


def samples(model, n, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, size=(n,) + model.input_spec.shape).astype(np.int8)
    ys = rng.integers(0, model.num_classes, size=n)
    return xs, ys


def run(program, n=6, use_arena=True, seed=0):
    be = NumpyBackend(program, use_arena=use_arena)
    xs, ys = samples(program.model, n, seed)
    logits = [be.train_step(x, int(y)) for x, y in zip(xs, ys)]
    return be, logits


def state_bytes(be):
    return [v.tobytes() for _, v in be.trainable_state()]


@pytest.mark.parametrize("scheme", ["classifier", "bias-only", "last:3", "full", "mixed"])
def test_arena_execution_equals_unplanned_execution(scheme):
    m = random_model(1)
    s = _mixed(m) if scheme == "mixed" else sparse_scheme.load(scheme, m)
    prog = compile_program(m, s)
    a, la = run(prog, use_arena=True)
    b, lb = run(prog, use_arena=False)
    assert state_bytes(a) == state_bytes(b)
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))


def _mixed(m):
    n = len(m.weighted_ops)
    return sparse_scheme.from_authors("mixed", {"n_bias_update": 6, "manual_weight_idx": [n - 5, n - 4, n - 3, 1],
                                                "weight_update_ratio": [0.5, 0.25, 1, 0.5]}, n)


@pytest.mark.parametrize("rounding", ["stochastic", "nearest", "truncate"])
def test_reordering_changes_memory_not_results(rounding):
    m = random_model(2)
    s = _mixed(m)
    fused = compile_program(m, s, CompileOptions(rounding=rounding, reorder=True))
    plain = compile_program(m, s, CompileOptions(rounding=rounding, reorder=False))
    a, _ = run(fused)
    b, _ = run(plain)
    assert state_bytes(a) == state_bytes(b)
    pa = arena_plan.plan(fused.train_steps, fused.buffers, m.input)
    pb = arena_plan.plan(plain.train_steps, plain.buffers, m.input)
    assert pa.peak_live_bytes < pb.peak_live_bytes


@pytest.mark.parametrize("reorder", [True, False])
def test_in_place_depthwise_input_gradients_change_memory_not_results(reorder):
    """Stride-1 depthwise input gradients with frozen weights overwrite their dL/dacc: the bias
    update moves before them, nothing else changes."""
    m = random_model(21, size=40, classes=4, width=8)
    s = sparse_scheme.load("bias-only", m)
    base = compile_program(m, s, CompileOptions(inplace_depthwise_grads=False, reorder=reorder))
    inplace = compile_program(m, s, CompileOptions(inplace_depthwise_grads=True, reorder=reorder))
    steps = [st for st in inplace.train_steps if st.kind == "input_grad" and st.attrs.ring is not None]
    assert steps and all(st.inplace for st in steps)
    for st in steps:
        i = inplace.train_steps.index(st)
        assert not any(st.reads[0] in later.reads for later in inplace.train_steps[i + 1:])
    a, la = run(base)
    b, lb = run(inplace)
    assert state_bytes(a) == state_bytes(b)
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    pa = arena_plan.plan(base.train_steps, base.buffers, m.input)
    pb = arena_plan.plan(inplace.train_steps, inplace.buffers, m.input)
    pb.check()
    assert pb.arena_bytes < pa.arena_bytes


def test_training_changes_exactly_the_trainable_slices():
    m = random_model(3)
    s = _mixed(m)
    prog = compile_program(m, s)
    be, _ = run(prog, n=4)
    for op in m.weighted_ops:
        w0, w1 = op.weight, be.weights[op.name]
        spec = prog.param(op.name, "weight")
        k = spec.channels
        if not spec.trainable:
            assert np.array_equal(w0, w1), op.name
        elif op.kind == "depthwise":
            assert np.array_equal(w0[k:], w1[k:]) and not np.array_equal(w0[:k], w1[:k])
        else:
            assert np.array_equal(w0[..., k:], w1[..., k:]) and not np.array_equal(w0[..., :k], w1[..., :k])
        if not prog.param(op.name, "bias").trainable:
            assert np.array_equal(op.bias, be.biases[op.name])


def test_pruned_backward():
    m = random_model(4)
    prog = compile_program(m, sparse_scheme.load("classifier", m))
    kinds = [s.kind for s in prog.train_steps]
    assert "input_grad" not in kinds and kinds.count("weight_update") == 1
    assert not any(b.role == "mask" for b in prog.buffers.values())
    last3 = compile_program(m, sparse_scheme.load("last:3", m))
    grads = [s.op for s in last3.train_steps if s.kind == "input_grad"]
    wops = [op.name for op in m.weighted_ops]
    assert set(grads) == set(wops[-2:])  # the lowest trained layer needs no input gradient


def test_same_seed_same_result_other_seed_differs():
    m = random_model(5)
    s = sparse_scheme.load("last:4", m)
    a, _ = run(compile_program(m, s, CompileOptions(seed=3)))
    b, _ = run(compile_program(m, s, CompileOptions(seed=3)))
    c, _ = run(compile_program(m, s, CompileOptions(seed=4)))
    assert state_bytes(a) == state_bytes(b) != state_bytes(c)


def test_training_learns_a_fixed_mapping():
    m = random_model(6, classes=3)
    # Random images give nearly identical pooled features, so memorizing them needs deep layers.
    prog = compile_program(m, sparse_scheme.load("full", m), CompileOptions(lr=0.02))
    be = NumpyBackend(prog)
    xs, ys = samples(m, 6, seed=9)
    ys = np.arange(6) % 3
    before = np.mean([be.predict(x) == y for x, y in zip(xs, ys)])
    for _ in range(20):
        for x, y in zip(xs, ys):
            be.train_step(x, int(y))
    after = np.mean([be.predict(x) == y for x, y in zip(xs, ys)])
    assert after == 1.0 and after > before


def test_model_file_round_trip(tmp_path):
    m = random_model(7)
    p = tmp_path / "m.ttm"
    model_file.save(m, p)
    m2 = model_file.load(p)
    assert model_file.model_hash(m) == model_file.model_hash(m2)
    for a, b in zip(m.weighted_ops, m2.weighted_ops):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
    (tmp_path / "bad.ttm").write_bytes(b"not a zip")
    with pytest.raises(model_file.ModelFileError, match="not a readable"):
        model_file.load(tmp_path / "bad.ttm")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 30), st.integers(0, 10), st.booleans()),
                min_size=1, max_size=40))
def test_plan_never_overlaps_live_buffers(specs):
    buffers = {"in": Buffer("in", "int8", (100,), "input")}
    steps = []
    for i, (size, start, length, inplace) in enumerate(specs):
        name = f"b{i}"
        buffers[name] = Buffer(name, "int8", (size,), "activation")
        steps.append((start, start + length, name, inplace))
    # Turn the random intervals into a step list: writes at start, one read at end.
    n = max(e for _, e, _, _ in steps) + 1
    program: list[Step] = [Step(StepKind.BIAS_UPDATE, None, (), ()) for _ in range(n)]  # any kind: only reads/writes matter
    for s, e, name, inplace in steps:
        program[s].writes += (name,)
        if e > s:
            program[e].reads += (name,)
    program[0].reads += ("in",)
    for i, (s, e, name, inplace) in enumerate(steps):
        if inplace and program[s].reads:
            program[s].inplace[name] = program[s].reads[0]
    p = arena_plan.plan(program, buffers, "in")
    p.check()
    assert p.arena_bytes >= max(b.nbytes for b in buffers.values())


def test_compiles_every_authors_scheme():
    if not SCHEMES.exists():
        pytest.skip(f"{SCHEMES} is absent")
    from tinytrain.model import head
    from tinytrain.model import tiny_training as import_tiny_training

    root = SCHEMES.parent.parent / "models" / "tiny-training"
    doc = json.loads(SCHEMES.read_text())
    for name in (k for k in doc if not k.startswith("_")):
        path = root / f"{name}.pkl"
        if not path.exists():
            pytest.skip(f"{path} is absent")
        m = head.replace_head(import_tiny_training.load(path), 10)
        for budget in doc[name]:
            prog = compile_program(m, sparse_scheme.load(f"{SCHEMES}:{name}/{budget}", m))
            arena_plan.plan(prog.train_steps, prog.buffers, m.input).check()


def test_scheme_errors_are_one_sentence():
    m = random_model(8)
    with pytest.raises(sparse_scheme.SchemeError, match="unknown scheme|neither"):
        sparse_scheme.load("everything", m)
    with pytest.raises(sparse_scheme.SchemeError, match="last:K"):
        sparse_scheme.load("last:99", m)


def test_residual_gradients_are_summed_from_int32_parts():
    """A tensor read by two ops gets its gradient as the int32 sum of both parts, rounded once;
    only single-consumer gradients are written directly as int16."""
    m = random_model(9)
    prog = compile_program(m, sparse_scheme.load("full", m))
    consumers = m.consumers()
    for s in prog.train_steps:
        if s.kind == "input_grad":
            x = m.op(s.op).inputs[0]
            assert (s.attrs.bits is not None) == (len(consumers[x]) == 1), s.op
    sums = [s for s in prog.train_steps if s.kind == "grad_sum" and len(s.reads) == 2]
    assert sums and all(prog.buffers[r].dtype == "int32" or prog.buffers[r].role == "grad" for s in sums for r in s.reads)
