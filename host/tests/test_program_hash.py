"""The program hash (everything that decides what a board computes) and the state-layout hash
(what every byte of a learned state means): deterministic, and sensitive to exactly what they say."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import pytest

from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model, program_hash, state_bytes, state_layout_hash
from tinytrain.model.synthetic import random_model
from tinytrain.ir.program import CompileOptions


@pytest.fixture(scope="module")
def model():
    return random_model(11, size=16, classes=6, width=8)


def compiled(model, scheme="last:3", budget=None, **options):
    return compile_model(model, sparse_scheme.load(scheme, model), CompileOptions(**options), budget)


def test_the_same_program_has_the_same_hash_in_another_process(model):
    c = compiled(model)
    assert program_hash(c) == c.program_hash == compiled(model).program_hash
    assert len(c.program_hash) == 64 and int(c.program_hash, 16) >= 0
    code = ("from tinytrain.model.synthetic import random_model; from tinytrain.compile import scheme as sparse_scheme;"
            "from tinytrain.compile.compiler import compile_model; m = random_model(11, size=16, classes=6, width=8);"
            "print(compile_model(m, sparse_scheme.load('last:3', m)).program_hash)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "7"})
    assert out.stdout.strip() == c.program_hash


@pytest.mark.parametrize("change", [{"lr": 0.02}, {"rounding": "nearest"}, {"seed": 2}, {"qas": False},
                                    {"bias_lr": 0.01}, {"inplace_depthwise_grads": False}])
def test_every_compile_option_changes_the_program_hash_but_not_the_state_layout(model, change):
    base, other = compiled(model), compiled(model, **change)
    assert other.program_hash != base.program_hash
    assert other.state_hash == base.state_hash  # a state trained one way can be pushed into the other


def test_the_scheme_changes_both_hashes_even_at_the_same_state_size(model):
    a = compiled(model, scheme="last:3")
    layer = lambda i: sparse_scheme.from_authors(  # noqa: E731
        f"w{i}", {"n_bias_update": 1, "manual_weight_idx": [i], "weight_update_ratio": [1]}, len(model.weighted_ops))
    b = compile_model(model, layer(3))
    c = compile_model(model, layer(6))
    assert state_bytes(b.program) == state_bytes(c.program)
    assert b.state_hash != c.state_hash and b.program_hash != c.program_hash
    assert a.state_hash not in (b.state_hash, c.state_hash)


def test_the_model_changes_both_hashes(model):
    other = random_model(12, size=16, classes=6, width=8)
    assert compiled(other).program_hash != compiled(model).program_hash
    assert compiled(other).state_hash != compiled(model).state_hash


def test_state_hash_is_the_layout_alone(model):
    c = compiled(model)
    assert c.state_hash == state_layout_hash(c.program, c.model_hash)
    plain = compile_model(model, c.program.scheme, replace(CompileOptions(), patch=False))
    assert plain.state_hash == c.state_hash


def test_the_arena_can_stage_a_restore(model):
    """PARAMS_SET stages a whole state in the arena before it commits it."""
    c = compiled(model, scheme="full")
    assert c.arena_bytes >= state_bytes(c.program) == 4 + c.program.trainable_sram_bytes
    assert c.sram.arena_bytes == c.arena_bytes
