"""Sensor samples: the integer scaling of int16 counts (NumPy spec, its C twin), the watch dataset,
and int16 samples on the wire of the host build of the firmware, against the NumPy reference."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinytrain.board.builds import build_host_firmware, project_root
from tinytrain.board.engine_client import EngineClient, EngineError
from tinytrain.board.framing import encode_frame
from tinytrain.board.host_board import HostBoard
from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import ErrorCode, ErrorReply, MessageType
from tinytrain.compile.build_config import BuildConfig
from tinytrain.learn import datasets as D
from tinytrain.model import ttm as model_file
from tinytrain.model.synthetic import random_model
from tinytrain.numerics.sensor_input import SensorScaling, SensorScalingError, sensor_to_int8
from tinytrain.reference.executor import NumpyBackend

FIRMWARE = project_root() / "firmware"


def scaling(channels: int, seed: int = 0) -> SensorScaling:
    rng = np.random.default_rng(seed)
    return SensorScaling.from_factors([f"ch{i}" for i in range(channels)], rng.integers(-3000, 3000, channels),
                                      10.0 ** rng.uniform(-4, 0, channels))


# ---------------------------------------------------------------- the specification


def test_integer_map_is_the_real_factor_rounded():
    s = scaling(6)
    assert all(2 ** 14 <= m < 2 ** 15 for m in s.multiplier)
    raw = np.random.default_rng(1).integers(-32768, 32768, (500, 6)).astype(np.int16)
    got = sensor_to_int8(raw, s, -3).astype(np.int64)
    real = -3 + (raw.astype(np.float64) - np.asarray(s.center)) * s.factor()
    want = np.clip(np.floor(real + 0.5), -128, 127)
    assert np.array_equal(got, want)
    # the float factor the map stands for is within 2^-14 (relative) of the one asked for
    s2 = SensorScaling.from_factors(["a"], [0], [0.0123])
    assert abs(s2.factor()[0] / 0.0123 - 1) < 2 ** -14


def test_extreme_counts_saturate_without_overflow():
    s = SensorScaling(("a", "b"), (32767, -32768), (2 ** 31 - 1, 2 ** 31 - 1), (1, 1))
    raw = np.array([[-32768, 32767], [32767, -32768]], np.int16)
    assert sensor_to_int8(raw, s, 0).tolist() == [[-128, 127], [0, 0]]


@pytest.mark.parametrize("bad", [dict(center=(40000,)), dict(multiplier=(0,)), dict(shift=(0,)), dict(shift=(63,)),
                                 dict(channels=("a", "b"))])
def test_out_of_range_scaling_is_refused(bad):
    fields = dict(channels=("a",), center=(0,), multiplier=(1 << 14,), shift=(20,)) | bad
    with pytest.raises(SensorScalingError):
        SensorScaling(**fields)


def test_json_round_trip():
    s = scaling(3)
    assert SensorScaling.from_json(s.to_json()) == s
    with pytest.raises(SensorScalingError):
        SensorScaling.from_json({"channels": ["a"]})


DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "engine/sensor_input.h"
const tt_sensor_input tt_sensor = {0u, 0, {0}, {0}, {0}};
int main(int argc, char **argv)
{
    tt_sensor_input s = {0};
    unsigned n, first;
    FILE *f = argc > 1 ? fopen(argv[1], "rb") : NULL;
    if (!f || fread(&s.channels, 2, 1, f) != 1 || fread(&s.zero_point, 4, 1, f) != 1) return 2;
    if (fread(s.center, 4, s.channels, f) != s.channels || fread(s.multiplier, 4, s.channels, f) != s.channels) return 2;
    if (fread(s.shift, 1, s.channels, f) != s.channels || fread(&n, 4, 1, f) != 1 || fread(&first, 4, 1, f) != 1) return 2;
    unsigned char *raw = malloc(2u * n + 1u);
    signed char *out = malloc(n + 1u);
    if (fread(raw, 2, n, f) != n) return 2;
    unsigned next = tt_sensor_to_int8(&s, raw, n, first, (int8_t *)out);
    fwrite(&next, 4, 1, stdout);
    fwrite(out, 1, n, stdout);
    free(raw);
    free(out);
    fclose(f);
    return 0;
}
"""


@pytest.fixture(scope="module")
def c_driver(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("sensor_c")
    (d / "driver.c").write_text(DRIVER)
    exe = d / "driver"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{FIRMWARE}", f"-I{FIRMWARE / 'engine'}", str(d / "driver.c"),
                    str(FIRMWARE / "engine" / "sensor_input.c"), "-o", str(exe)], check=True)
    return exe


@pytest.mark.parametrize("seed,channels,first", [(0, 6, 0), (1, 3, 2), (2, 16, 5), (3, 1, 0)])
def test_c_twin_equals_numpy(c_driver, tmp_path, seed, channels, first):
    rng = np.random.default_rng(seed)
    s = scaling(channels, seed)
    if seed == 2:  # the extremes of every field
        s = SensorScaling(s.channels, (32767, -32768) * 8, (2 ** 31 - 1, 1) * 8, (1, 62) * 8)
    zp = int(rng.integers(-128, 128))
    n = 37 * channels + 3
    raw = rng.integers(-32768, 32768, n).astype(np.int16)
    raw[:4] = [-32768, 32767, 0, -1]
    blob = (np.uint16(channels).tobytes() + np.int32(zp).tobytes() + np.asarray(s.center, "<i4").tobytes()
            + np.asarray(s.multiplier, "<i4").tobytes() + np.asarray(s.shift, np.uint8).tobytes()
            + np.uint32(n).tobytes() + np.uint32(first).tobytes() + raw.astype("<i2").tobytes())
    (tmp_path / "in.bin").write_bytes(blob)
    out = subprocess.run([str(c_driver), str(tmp_path / "in.bin")], capture_output=True, check=True).stdout
    ch = (np.arange(n) + first) % channels
    pad = np.zeros((n, channels), np.int16)
    pad[np.arange(n), ch] = raw
    want = sensor_to_int8(pad, s, zp)[np.arange(n), ch]
    assert int(np.frombuffer(out[:4], "<u4")[0]) == (first + n) % channels
    assert np.array_equal(np.frombuffer(out[4:], np.int8), want)


# ---------------------------------------------------------------- the watch data


@pytest.fixture(scope="module")
def watch():
    pytest.importorskip("seglearn")
    return {spec: D.load_dataset(spec) for spec in ("watch:train", "watch:heldout", "watch:subject=3:adapt",
                                                     "watch:subject=3:test", "watch:subject=3")}


def test_watch_sets_are_windows_of_int16_counts(watch):
    train, held = watch["watch:train"], watch["watch:heldout"]
    assert train.images.shape[1:] == (D.WATCH_WINDOW, 1, 6) and train.images.dtype == np.int16 and train.is_sensor
    assert set(np.unique(train.groups)) == set(D.WATCH_SUBJECTS) - set(D.WATCH_HELDOUT)
    assert set(np.unique(held.groups)) == set(D.WATCH_HELDOUT)
    assert len(train) + len(held) == 4677  # 2 s windows, 50 % overlap (tflite.md's count)
    assert train.class_names == D.WATCH_CLASSES and np.bincount(train.labels).min() > 300
    # counts of the virtual sensor: accelerometer near 1 g = 4096 counts at rest
    g = np.linalg.norm(train.images[..., :3].astype(np.float64) * D.WATCH_LSB[0], axis=-1)
    assert 0.9 < np.median(g) < 1.2


def test_watch_adapt_and_test_halves_are_disjoint_and_cover_every_class(watch):
    adapt, test, whole = watch["watch:subject=3:adapt"], watch["watch:subject=3:test"], watch["watch:subject=3"]
    a = {w.tobytes() for w in adapt.images}
    t = {w.tobytes() for w in test.images}
    assert not a & t and len(a) + len(t) <= len(whole) + 14  # each half of each of 14 recordings
    assert set(adapt.labels) == set(test.labels) == set(range(7))


def test_watch_spec_errors():
    with pytest.raises(D.DatasetError, match="subjects 1..10"):
        D.load_dataset("watch:subject=11")
    with pytest.raises(D.DatasetError, match="watch sets"):
        D.load_dataset("watch:everything")


# ---------------------------------------------------------------- int16 samples on the wire


def sensor_model(tmp_path: Path, size: int, seed: int) -> tuple[Path, SensorScaling]:
    model = random_model(seed, size=size, classes=4, width=8)
    s = scaling(model.input_spec.shape[2], seed)
    model.metadata["sensor_to_input"] = s.to_json()
    path = tmp_path / f"sensor{size}.ttm"
    model_file.save(model, path)
    return path, s


# The whole sample in the arena (nothing frozen to stream), and a streamed front that pulls it row by row.
@pytest.mark.parametrize("size,scheme,streamed", [(16, "full", False), (40, "last:2", True)])
def test_int16_samples_train_like_the_reference(tmp_path, size, scheme, streamed):
    path, s = sensor_model(tmp_path, size, 5)
    cfg = BuildConfig(str(path), scheme, lr=0.02)
    compiled = cfg.compile()
    model = compiled.program.model
    assert (compiled.program.buffers[model.input].role == "stream") == streamed
    ref = NumpyBackend(compiled.program)
    rng = np.random.default_rng(size)
    raw = rng.integers(-20000, 20000, size=(12, *model.input_spec.shape)).astype(np.int16)
    xs = sensor_to_int8(raw, s, model.input_spec.qparams.zero_point)
    with HostBoard(build_host_firmware(cfg)) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        assert engine.model.sensor_samples and engine.model.sample_bytes == 2 * model.input_spec.size
        with pytest.raises(EngineError, match="int16"):
            engine.train(xs[0], 0)
        for i in range(10):
            y = int(rng.integers(0, 4))
            assert np.array_equal(engine.train(raw[i], y).logits, ref.train_step(xs[i], y)), f"step {i}"
        assert engine.params_get() == ref.state_bytes()
        before = engine.params_get()
        prefix = bytes([1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0])
        seq = link.next_seq()  # a corrupted sample changes nothing
        frame = bytearray(encode_frame(MessageType.TRAIN, seq, prefix + raw[10].astype("<i2").tobytes()))
        frame[10 + 12 + 5] ^= 0x10
        link.send_raw(bytes(frame))
        reply = link.receive(seq, timeout=5.0)
        assert reply is not None and ErrorReply.parse(reply.payload).code == ErrorCode.BAD_CRC
        with pytest.raises(BoardErrorReply, match="BAD_LENGTH|length"):  # an int8-sized sample
            link.request(MessageType.TRAIN, prefix + xs[10].tobytes(), retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT|label"):
            engine.train(raw[10], 4)
        assert engine.params_get() == before
        for x8, x16 in zip(xs[10:], raw[10:]):
            assert np.array_equal(engine.infer(x16).logits, ref.infer(x8))
    assert host.sanitizer_report() is None, host.sanitizer_report()
