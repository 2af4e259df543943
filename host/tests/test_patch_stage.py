"""The streaming stage and in-place depthwise: memory layouts that must not change any result."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.compile import arena_plan
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model
from tinytrain.reference.executor import NumpyBackend
from tinytrain.compile.staging import build_stage, candidate_cuts
from tinytrain.model.synthetic import random_model
from tinytrain.ir.program import CompileOptions
from tinytrain.compile.autodiff import compile_program, frozen_tensors


@pytest.fixture(scope="module")
def model():
    return random_model(21, size=40, classes=4, width=8)


def run(program, n=4):
    be = NumpyBackend(program)
    rng = np.random.default_rng(0)
    logits = []
    for i in range(n):
        x = rng.integers(-128, 128, size=program.model.input_spec.shape).astype(np.int8)
        logits.append(be.train_step(x, i % program.model.num_classes))
    return logits, be.state_bytes(), be.infer(x)


def test_every_stage_gives_the_same_results(model):
    scheme = sparse_scheme.load("last:4", model)
    base = run(compile_program(model, scheme, CompileOptions(patch=False)))
    cuts = candidate_cuts(model, frozen_tensors(model, scheme))
    assert len(cuts) >= 3
    for cut in cuts:
        for rows in (1, 2, 3):
            got = run(compile_program(model, scheme, CompileOptions(stage=(cut, rows), patch=False)))
            assert all(np.array_equal(a, b) for a, b in zip(base[0], got[0])), (cut, rows)
            assert base[1] == got[1] and np.array_equal(base[2], got[2]), (cut, rows)


def test_stage_computes_every_row_once_and_never_reads_dropped_rows(model):
    frozen = frozen_tensors(model, sparse_scheme.load("last:3", model))
    for cut in candidate_cuts(model, frozen):
        ops = model.ops[: cut + 1]
        stage = build_stage(model, ops, 2)
        for op in ops:
            rows = [r for s in stage.strips for so in s.ops if so.op == op.name for r in range(*so.out_rows)]
            assert rows == list(range(model.tensors[op.output].shape[0])), op.name
        assert all(cap >= 1 for _, cap in stage.windows.values())


def test_stage_shrinks_the_arena(model):
    scheme = sparse_scheme.load("last:3", model)
    plain = compile_model(model, scheme, CompileOptions(patch=False))
    best = compile_model(model, scheme)
    assert best.arena_bytes < plain.arena_bytes
    assert any(s.kind == "patch_stage" for s in best.program.train_steps)
    best.train_plan.check()


def test_stride_one_depthwise_runs_in_place_unless_its_input_is_needed(model):
    frozen_dw = compile_model(model, sparse_scheme.load("last:2", model), CompileOptions(patch=False))
    inplace = [s for s in frozen_dw.program.train_steps if getattr(s.attrs, "ring", None)]
    assert {s.op for s in inplace} == {"conv2", "conv8"}
    assert all(frozen_dw.train_plan.offsets[s.reads[0]] == frozen_dw.train_plan.offsets[s.writes[0]] for s in inplace)
    trained_dw = compile_model(model, sparse_scheme.load("last:3", model), CompileOptions(patch=False))
    assert "conv8" not in {s.op for s in trained_dw.program.train_steps if getattr(s.attrs, "ring", None)}  # its input is saved


def test_unfrozen_ops_cannot_be_staged(model):
    scheme = sparse_scheme.load("full", model)
    assert candidate_cuts(model, frozen_tensors(model, scheme)) == []
    with pytest.raises(Exception, match="cannot be run as a streaming stage"):
        compile_program(model, scheme, CompileOptions(stage=(2, 1), patch=False))


def test_plan_check_accepts_in_place_pairs(model):
    p = compile_program(model, sparse_scheme.load("classifier", model), CompileOptions(patch=False))
    plan = arena_plan.plan(p.train_steps, p.buffers, model.input)
    plan.check()


def test_memory_plot_divides_forward_and_backward_after_the_stage(model, tmp_path):
    """The plot's divider sits after the last forward step; a streamed stage is one of them."""
    from tinytrain.compile.compiler import write_outputs
    from tinytrain.compile.memory_plot import forward_steps
    from tinytrain.ir.program import StepKind

    scheme = sparse_scheme.load("last:3", model)
    cut = candidate_cuts(model, frozen_tensors(model, scheme))[0]
    compiled = compile_model(model, scheme, CompileOptions(stage=(cut, 2), patch=False))
    steps = compiled.program.train_steps
    assert steps[0].kind is StepKind.PATCH_STAGE
    first_backward = next(i for i, s in enumerate(steps) if s.kind is StepKind.LOSS_GRAD)
    assert forward_steps(steps) == first_backward
    write_outputs(compiled, tmp_path)
    assert (tmp_path / "memory_plan.png").stat().st_size > 10_000
