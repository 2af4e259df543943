"""Importing int8 TFLite models: every test model's forward through the training engine's NumPy
reference equals TFLite Micro byte for byte, on every op's output; every one of them trains."""

from __future__ import annotations

import numpy as np
import pytest

from tflite_models import EDGE_MODELS, KERAS_MODELS, tflite_model
from tflm_oracle import run_tflm
from tinytrain.compile.autodiff import compile_program
from tinytrain.compile.compiler import compile_model
from tinytrain.compile.scheme import builtin
from tinytrain.model.tflite import import_tflite
from tinytrain.model.tflite_reader import read_tflite
from tinytrain.numerics import tflite_kernels as TK
from tinytrain.reference.executor import NumpyBackend

MODELS = EDGE_MODELS + KERAS_MODELS


def tflm_input(model, tm, x: np.ndarray) -> np.ndarray:
    """What TFLite Micro is fed for our int8 input x (a float model gets the values x stands for)."""
    meta = model.metadata["tflite"]["input"]
    if meta["dtype"] == "float32":
        q = meta["quantize"]
        return TK.dequantize(x, q["scale"], q["zero_point"]).reshape(tm.input.shape)
    return x.reshape(tm.input.shape)


@pytest.mark.parametrize("name", MODELS)
def test_every_op_output_equals_tflite_micro(name):
    path = tflite_model(name)
    model = import_tflite(path)
    tm = read_tflite(path)
    program = compile_program(model, builtin("classifier", len(model.weighted_ops)))  # (no stage: every tensor whole)
    be = NumpyBackend(program, use_arena=False)
    tensors = model.metadata["tflite"]["tensors"]
    rng = np.random.default_rng(3)
    for _ in range(3):
        x = rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8)
        ref = run_tflm(path, tflm_input(model, tm, x))
        be.infer(x)
        for op in model.ops:
            if op.output in tensors:  # (a Clamp's input has no TFLite tensor of its own)
                ours = np.asarray(be.mem[op.output]).reshape(-1)
                theirs = np.asarray(ref[tensors[op.output]]).reshape(-1)
                assert np.array_equal(ours, theirs), f"{op.name}: {int((ours != theirs).sum())} bytes differ"


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains(name):
    model = import_tflite(tflite_model(name))
    for scheme in ("full", "last:2"):
        be = NumpyBackend(compile_model(model, builtin(scheme, len(model.weighted_ops))).program)
        before = be.state_bytes()
        rng = np.random.default_rng(0)
        for i in range(2):
            be.train_step(rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8), i % model.num_classes)
        assert be.state_bytes() != before


@pytest.mark.parametrize("name,classes", [("keras_kws", 20), ("keras_kws_float_io", 12), ("edge_odd_sizes", 5),
                                          ("keras_mobilenet", 3), ("edge_stride2_pad", None)])
def test_exported_file_computes_what_was_learned(name, classes):
    """Fine-tune (a new head where `classes` is given), write the learned tensors back into the file:
    TFLite Micro's logits on the tuned file equal the reference's, byte for byte."""
    from tinytrain.model import head
    from tinytrain.model.tflite_export import export_tflite

    path = tflite_model(name)
    model = import_tflite(path)
    if classes:
        model = head.replace_head(model, classes, seed=1)
    be = NumpyBackend(compile_model(model, builtin("last:3", len(model.weighted_ops))).program)
    rng = np.random.default_rng(9)
    for i in range(4):
        be.train_step(rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8), i % model.num_classes)
    data = export_tflite(path, model, be.weights, be.biases)
    tm = read_tflite(path)
    logits = model.metadata["tflite"]["output"]["logits"]
    for _ in range(3):
        x = rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8)
        ref = run_tflm(data, tflm_input(model, tm, x))
        assert np.array_equal(np.asarray(ref[logits]).reshape(-1), be.infer(x))
