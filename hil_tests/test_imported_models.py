"""Imported models with general conv geometry on the emulated board: the shipped IMU model (k x 1
time kernels and depthwise convs, an input of width 1, int16 sensor counts) and, with TT_ALL_IMPORTED=1,
the Keras KWS test model (a 10x4 first conv, stride 2, TFLite's asymmetric SAME padding; skipped without
TensorFlow). Every training step must equal the NumPy reference. QEMU only (each builds and boots an
image of its own)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytrain.board.builds import build_firmware, project_root
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.link import Link
from tinytrain.compile.build_config import BuildConfig
from tinytrain.numerics.sensor_input import SensorScaling, sensor_to_int8
from tinytrain.reference.executor import NumpyBackend

ROOT = project_root()
sys.path.insert(0, str(ROOT / "host" / "tests"))


def kws_model() -> Path:
    from tflite_models import tflite_model  # the suite's cached test models (skips without TensorFlow)

    return tflite_model("keras_kws")


CASES = {
    "watch-imu": (lambda: ROOT / "models" / "watch-imu" / "model.ttm", "full"),
    "keras_kws": (kws_model, "last:4"),
}
# make test boots the IMU model only (each image costs a build); TT_ALL_IMPORTED=1 adds the KWS model.
NAMES = list(CASES) if os.environ.get("TT_ALL_IMPORTED") == "1" else ["watch-imu"]


@pytest.mark.parametrize("name", NAMES)
def test_imported_model_trains_identically_on_the_board(board, name):
    if board.kind != "qemu":
        pytest.skip("builds and boots an image of its own in QEMU")
    model, scheme = CASES[name][0](), CASES[name][1]
    options = {"TINYTRAIN_MODEL": str(model), "TINYTRAIN_SCHEME": scheme, "TINYTRAIN_LR": "0.02",
               "TINYTRAIN_CLASSES": "", "TINYTRAIN_NEW_HEAD": "0", "TINYTRAIN_BUDGET": ""}
    elf = build_firmware("qemu_m7", model_options=options, build_dir=ROOT / ".pio" / f"build-hil-{name}")
    compiled = BuildConfig(str(model), scheme, lr=0.02).compile()
    ref = NumpyBackend(compiled.program)
    model_ir = compiled.program.model
    shape = model_ir.input_spec.shape
    sensor = model_ir.metadata.get("sensor_to_input")
    rng = np.random.default_rng(7)
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        assert engine.model.hash == compiled.model_hash
        assert engine.params_get() == ref.state_bytes()
        for i in range(6):
            x = wire = rng.integers(-128, 128, size=shape).astype(np.int8)
            if sensor is not None:  # int16 counts, scaled on the board
                wire = rng.integers(-4000, 4000, size=shape).astype(np.int16)
                x = sensor_to_int8(wire, SensorScaling.from_json(sensor), model_ir.input_spec.qparams.zero_point)
            y = int(rng.integers(0, model_ir.num_classes))
            assert np.array_equal(engine.train(wire, y).logits, ref.train_step(x, y)), f"step {i}"
        assert engine.params_get() == ref.state_bytes()
        assert np.array_equal(engine.infer(wire).logits, ref.infer(x))
