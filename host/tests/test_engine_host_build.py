"""The whole generated training step, built for the host (ASan, UBSan, arena write checks),
against the NumPy reference: 50 steps must leave the trained tensors identical byte for byte."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from tinytrain.model import ttm as model_file
from tinytrain.board.builds import build_host_firmware, project_root
from tinytrain.compile.build_config import BuildConfig
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.host_board import HostBoard
from tinytrain.board.framing import encode_frame
from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import ErrorCode, ErrorReply, MessageType
from tinytrain.reference.executor import NumpyBackend
from tinytrain.model.synthetic import random_model
from tinytrain.numerics.sensor_input import SensorScaling, sensor_to_int8
from tflite_models import EDGE_MODELS, KERAS_MODELS, tflite_model

SHIPPED = project_root() / "models" / "fmnist-mbv2" / "model.ttm"


@pytest.fixture(scope="module")
def synthetic_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "synthetic.ttm"
    model_file.save(random_model(11, size=16, classes=6, width=8), path)
    return path


def mixed_scheme(tmp_path: Path, n_layers: int) -> str:
    """Partial pointwise and depthwise slices, the full first conv, biases of the last 7 layers."""
    path = tmp_path / "scheme.json"
    path.write_text(json.dumps({"n_bias_update": 7, "manual_weight_idx": [0, 1, 2, n_layers - 4, n_layers - 3],
                                "weight_update_ratio": [0.5, 0.25, 0.5, 1, 0.125]}))
    return str(path)


def run_against_reference(cfg: BuildConfig, steps: int = 50, seed: int = 0) -> None:
    exe = build_host_firmware(cfg)
    compiled = cfg.compile()
    ref = NumpyBackend(compiled.program)
    model = compiled.program.model
    rng = np.random.default_rng(seed)
    with HostBoard(exe) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        assert engine.model.hash == compiled.model_hash
        assert engine.params_get() == ref.state_bytes()
        sensor = model.metadata.get("sensor_to_input")
        for i in range(steps):
            x = rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8)
            wire = x
            if sensor is not None:  # the board takes int16 counts and scales them as the reference does
                wire = rng.integers(-4000, 4000, size=model.input_spec.shape).astype(np.int16)
                x = sensor_to_int8(wire, SensorScaling.from_json(sensor), model.input_spec.qparams.zero_point)
            y = int(rng.integers(0, model.num_classes))
            lr_scale = int(rng.integers(1 << 14, 1 << 17))
            got = engine.train(wire, y, lr_scale)
            want = ref.train_step(x, y, lr_scale)
            assert np.array_equal(got.logits, want), f"step {i}"
            assert got.step_count == i + 1
        assert engine.params_get() == ref.state_bytes()
        assert np.array_equal(engine.infer(wire).logits, ref.infer(x))
    assert host.sanitizer_report() is None, host.sanitizer_report()


@pytest.mark.parametrize("rounding", ["stochastic", "nearest", "truncate"])
def test_mixed_scheme_matches_reference(synthetic_model, tmp_path, rounding):
    n = len(model_file.load(synthetic_model).weighted_ops)
    run_against_reference(BuildConfig(str(synthetic_model), mixed_scheme(tmp_path, n), rounding=rounding, seed=7))


@pytest.mark.parametrize("scheme", ["full", "bias-only", "classifier"])
def test_builtin_schemes_match_reference(synthetic_model, scheme):
    run_against_reference(BuildConfig(str(synthetic_model), scheme, classes=4, lr=0.02, qas=scheme != "full"), steps=20)


def test_streaming_front_and_in_place_depthwise_match_reference(tmp_path):
    """A larger input makes the compiler stream the frozen front and run depthwise convs in place."""
    path = tmp_path / "wide.ttm"
    model_file.save(random_model(21, size=40, classes=4, width=8), path)
    cfg = BuildConfig(str(path), "last:2", lr=0.02)
    program = cfg.compile().program
    assert any(s.kind == "patch_stage" for s in program.train_steps)
    assert any(getattr(s.attrs, "ring", None) for s in program.train_steps)
    run_against_reference(cfg, steps=20)


def test_streamed_sample_refusals_change_nothing(tmp_path):
    """With a streamed input the step runs while the sample arrives: a corrupted sample, a sample
    that stops midway, a bad label and a short sample must all leave the learned state as it was,
    and the next good steps still match the reference."""
    path = tmp_path / "wide.ttm"
    model_file.save(random_model(21, size=40, classes=4, width=8), path)
    cfg = BuildConfig(str(path), "last:2", lr=0.02)
    compiled = cfg.compile()
    assert compiled.program.buffers[compiled.program.model.input].role == "stream"
    ref = NumpyBackend(compiled.program)
    rng = np.random.default_rng(3)
    xs = rng.integers(-128, 128, size=(4, *compiled.program.model.input_spec.shape)).astype(np.int8)
    with HostBoard(build_host_firmware(cfg)) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        assert engine.model.input_streamed
        before = engine.params_get()
        prefix = bytes([1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0])
        for flip in (20, len(xs[0].tobytes()) + 4):  # early in the sample, in its last row
            seq = link.next_seq()
            frame = bytearray(encode_frame(MessageType.TRAIN, seq, prefix + xs[0].tobytes()))
            frame[10 + flip] ^= 0x40
            link.send_raw(bytes(frame))
            reply = link.receive(seq, timeout=5.0)
            assert reply is not None and reply.type == MessageType.ERROR
            assert ErrorReply.parse(reply.payload).code == ErrorCode.BAD_CRC
        seq = link.next_seq()  # a frame that stops midway is dropped after the idle timeout
        link.send_raw(encode_frame(MessageType.TRAIN, seq, prefix + xs[0].tobytes())[:200])
        assert link.receive(seq, timeout=2.5) is None
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT|label"):
            engine.train(xs[0], engine.model.classes)
        with pytest.raises(BoardErrorReply, match="BAD_LENGTH|length"):
            link.request(MessageType.TRAIN, prefix + xs[0].tobytes()[:-1], retry=0)
        assert engine.params_get() == before
        for i in range(4):
            got = engine.train(xs[i], i % 4)
            assert np.array_equal(got.logits, ref.train_step(xs[i], i % 4)), i
            assert np.array_equal(engine.infer(xs[i]).logits, ref.infer(xs[i]))
        assert engine.params_get() == ref.state_bytes()
    assert host.sanitizer_report() is None, host.sanitizer_report()


def test_shipped_model_matches_reference():
    if not SHIPPED.exists():
        pytest.skip(f"{SHIPPED} is not built yet")
    run_against_reference(BuildConfig(str(SHIPPED), "last:6", classes=10, new_head=True), steps=50)


def test_bad_requests_change_nothing(synthetic_model):
    cfg = BuildConfig(str(synthetic_model), "last:3")
    with HostBoard(build_host_firmware(cfg)) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        before = engine.params_get()
        x = np.zeros(engine.model.input_bytes, dtype=np.int8)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT|label"):
            engine.train(x, engine.model.classes)
        with pytest.raises(BoardErrorReply, match="BAD_LENGTH|length"):
            link.request(0x11, b"\x00" * 8 + x.tobytes()[:-1], retry=0)
        assert engine.params_get() == before
        # A state pushed back is read back identically, step counter included.
        state = bytearray(before)
        state[0] = 42
        engine.params_set(bytes(state))
        assert engine.params_get() == bytes(state)
    assert host.sanitizer_report() is None


# Imported TFLite models (general conv geometry, pooling, padding, concatenation, clamps): every model and
# scheme with TT_ALL_IMPORTED=1 (the whole matrix, ~6 min); by default the ones that between them cover
# every op kind and geometry.
ALL_IMPORTED = os.environ.get("TT_ALL_IMPORTED") == "1"
IMPORTED = [(m, s) for m in (*EDGE_MODELS, *KERAS_MODELS) for s in ("full", "last:3")] if ALL_IMPORTED else [
    ("keras_kws", "full"), ("keras_sensor", "full"), ("edge_odd_sizes", "last:3")]


@pytest.mark.parametrize("name,scheme", IMPORTED)
def test_imported_tflite_model_matches_reference(name, scheme):
    run_against_reference(BuildConfig(str(tflite_model(name)), scheme, lr=0.02), steps=5)


@pytest.mark.skipif(not ALL_IMPORTED, reason="the IMU model runs in QEMU (hil_tests/test_imported_models.py); "
                    "TT_ALL_IMPORTED=1 runs it here too")
def test_watch_imu_matches_reference():
    run_against_reference(BuildConfig(str(project_root() / "models" / "watch-imu" / "model.ttm"),
                                      str(project_root() / "models" / "watch-imu" / "scheme.json")), steps=5)


@pytest.mark.parametrize("source", ["28x28x1", "50x61x3"])
def test_image_source_matches_reference(tmp_path, source):
    """A model built with an image source takes the source's pixels: the board makes its input
    (gray/RGB, bilinear resize, pixel table) in the streamed front, as the reference does."""
    path = tmp_path / "wide.ttm"
    model_file.save(random_model(21, size=40, classes=4, width=8), path)
    cfg = BuildConfig(str(path), "last:2", lr=0.02, source=source)
    compiled = cfg.compile()
    h, w, c = (int(v) for v in source.split("x"))
    assert compiled.program.model.input_spec.shape == (h, w, c)
    assert any(n.op_type == "image_resize" for n in compiled.program.model.ops)
    ref = NumpyBackend(compiled.program)
    rng = np.random.default_rng(5)
    with HostBoard(build_host_firmware(cfg)) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        for i in range(8):
            pixels = rng.integers(0, 256, size=(h, w, c)).astype(np.uint8).view(np.int8)
            got = engine.train(pixels, i % 4)
            assert np.array_equal(got.logits, ref.train_step(pixels, i % 4)), f"step {i}"
        assert engine.params_get() == ref.state_bytes()
        assert np.array_equal(engine.infer(pixels).logits, ref.infer(pixels))
    assert host.sanitizer_report() is None, host.sanitizer_report()
