"""What a flaky serial line and a hostile host do to the board, on the host build of the firmware
(ASan, UBSan, arena checks) behind a line that misbehaves on purpose (flaky_line.py): predictions
of more than 256 classes, a reset between TRAIN frames, a lost TRAIN reply or frame, a TRAIN with a
bit error, a state pushed across schemes or cut off midway, out-of-range TRAIN fields, builds of
another program, and the receive ring of a board whose UART drops bytes when it is full."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from tinytrain.model import ttm as model_file
from tinytrain.board.builds import build_host_firmware, default_build_config, project_root
from tinytrain.compile.build_config import BuildConfig
from tinytrain.commands.cli import main
from tinytrain.board.engine_client import LR_ONE, EngineClient, EngineError
from tinytrain.errors import TinytrainError
from tinytrain.board.framing import encode_frame
from tinytrain.board.host_board import HostBoard
from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import MessageType
from tinytrain.model.loader import load_model
from tinytrain.learn.sample_input import model_samples
from tinytrain.reference.executor import NumpyBackend
from tinytrain.board.streaming import evaluate, stream
from tinytrain.model.synthetic import random_model

from flaky_line import FlakyLine

# Stable paths, so that the host builds are reused between runs (build_host_firmware caches by configuration).
WORK = project_root() / "build" / "test-faults"
SHIPPED = project_root() / "models" / "fmnist-mbv2" / "model.ttm"
LR_SCALE_MAX = 4 * LR_ONE  # docs/protocol.md: TRAIN's lr_scale is at most 4.0
RING = ["-DTT_HOST_UART_RING=512u", "-DTT_HOST_UART_BYTES_PER_MS=256u"]  # a UART ring at ~2.5 Mbaud


def _scheme(layer: int) -> Path:
    """Biases of the classifier and the weights of one pointwise layer (conv3 and conv6 have the same size)."""
    path = WORK / f"scheme-conv{layer}.json"
    path.write_text(json.dumps({"n_bias_update": 1, "manual_weight_idx": [layer], "weight_update_ratio": [1]}))
    return path


@pytest.fixture(scope="module")
def model_path() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "synthetic.ttm"
    model_file.save(random_model(11, size=16, classes=6, width=8), path)
    return path


class Build:
    def __init__(self, cfg: BuildConfig, flags: list[str] | None = None) -> None:
        self.cfg = cfg
        self.exe = build_host_firmware(cfg, flags=flags or [])
        self.json = self.exe.parent / "generated" / "tinytrain.json"
        self.compiled = cfg.compile()


@pytest.fixture(scope="module")
def build_a(model_path) -> Build:
    return Build(BuildConfig(str(model_path), str(_scheme(3)), lr=0.02))


@pytest.fixture(scope="module")
def build_b(model_path) -> Build:
    return Build(BuildConfig(str(model_path), str(_scheme(6)), lr=0.02))


def samples(compiled, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    model = compiled.program.model
    rng = np.random.default_rng(seed)
    xs = rng.integers(-128, 128, size=(n, *model.input_spec.shape)).astype(np.int8)
    return xs, rng.integers(0, model.num_classes, size=n)


def logit_scale(compiled) -> float:
    model = compiled.program.model
    return model.tensors[model.output].qparams.scale


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("tinytrain: error: ") and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------- 1: predictions of 256 classes and more


def test_predictions_of_classes_above_255_are_not_truncated():
    """The shipped model with a fresh 300-class head, its classes 256..299 favoured by their biases
    so that the MNIST digits below spread over classes on both sides of 255."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "fmnist-300.ttm"
    model = load_model(SHIPPED, 300, new_head=True)
    model.ops[-1].bias[256:] += 5000
    model_file.save(model, path)
    build = Build(BuildConfig(str(path), "last:2"))
    ref = NumpyBackend(build.compiled.program)
    xs, _ = model_samples("mnist:train", build.compiled.program.model, 60)
    want = np.array([int(np.argmax(ref.infer(x))) for x in xs])
    assert (want > 255).sum() >= 10 and (want <= 255).sum() >= 10, want
    with HostBoard(build.exe) as host, Link(host.url) as link:
        engine = EngineClient(link)
        got = np.array([engine.infer(x).prediction for x in xs])
        assert np.array_equal(got, want), np.nonzero(got != want)
        assert evaluate(engine, xs, want, progress=False).accuracy == 1.0  # what eval/stream report
        r = engine.train(xs[0], 299)
        assert r.prediction == int(np.argmax(ref.train_step(xs[0], 299)))
    assert host.sanitizer_report() is None, host.sanitizer_report()


# ---------------------------------------------------------------- 2, 3, 4: a flaky line during a stream


def test_a_reset_between_train_frames_stops_the_stream(build_a):
    xs, ys = samples(build_a.compiled, 8)
    with HostBoard(build_a.exe) as first, HostBoard(build_a.exe) as restarted:
        line = FlakyLine(first.url)

        def reset_after_the_fifth(i: int) -> None:
            if i == 4:
                line.reconnect(restarted.url)  # the board restarts: power-on state, step counter 0

        with Link(line.url) as link:
            link.wait_ready(10.0)
            engine = EngineClient(link)
            with pytest.raises(TinytrainError) as err:
                stream(engine, xs, ys, logit_scale(build_a.compiled), progress=False, on_step=reset_after_the_fifth)
        line.close()
    message = str(err.value)
    assert "is 0 where this session left it at 5" in message and "reset" in message, message
    assert "power-on state" in message and "sample 6 of 8" in message, message


def test_a_lost_train_reply_is_sent_again_and_applied_once(build_a):
    """The reply of the third TRAIN is swallowed: the host sends the same step again after its timeout,
    the board answers with the reply it kept (the step number was applied already), and the stream
    goes on identical to the reference."""
    xs, ys = samples(build_a.compiled, 6)
    with HostBoard(build_a.exe) as host:
        line = FlakyLine(host.url)
        line.add("drop_reply", MessageType.TRAIN, nth=3)
        with Link(line.url) as link:
            link.wait_ready(10.0)
            engine = EngineClient(link, train_timeout=1.0)
            ref = NumpyBackend(build_a.compiled.program)
            ref.load_state_bytes(engine.params_get())
            res = stream(engine, xs, ys, logit_scale(build_a.compiled), reference=ref, progress=False)
            assert res.samples == 6 and res.mismatch is None
            assert engine.params_get() == ref.state_bytes()
            assert engine.step_count() == 6  # six steps, each applied once
        line.close()
        assert line.log == [line.log[0]] and line.log[0].startswith("drop_reply 0x91"), line.log
    assert host.sanitizer_report() is None, host.sanitizer_report()


def test_a_lost_train_frame_is_sent_again_and_a_bad_crc_is_resent(build_a):
    """A TRAIN that never reached the board (its counter did not move) and one that reached it with a
    bit error (BAD_CRC: nothing changed) are both sent again; the stream stays identical to the reference."""
    xs, ys = samples(build_a.compiled, 6)
    with HostBoard(build_a.exe) as host:
        line = FlakyLine(host.url)
        line.add("drop_request", MessageType.TRAIN, nth=2)
        line.add("corrupt", MessageType.TRAIN, nth=4)
        with Link(line.url) as link:
            link.wait_ready(10.0)
            engine = EngineClient(link)
            ref = NumpyBackend(build_a.compiled.program)
            ref.load_state_bytes(engine.params_get())
            res = stream(engine, xs, ys, logit_scale(build_a.compiled), reference=ref, progress=False)
            assert res.samples == 6 and res.mismatch is None
            assert engine.params_get() == ref.state_bytes()
            assert link.crc_resends == 1
        line.close()
        assert len(line.log) == 2, line.log
    assert host.sanitizer_report() is None, host.sanitizer_report()


# ---------------------------------------------------------------- 5, 6: pull / push


def test_push_across_schemes_is_refused_by_host_and_board(build_a, build_b, tmp_path, capsys):
    ca, cb = build_a.compiled, build_b.compiled  # same model, same state size, other tensors trained
    assert ca.program.trainable_sram_bytes == cb.program.trainable_sram_bytes and ca.model_hash == cb.model_hash
    saved = tmp_path / "a.npz"
    with HostBoard(build_a.exe) as a, HostBoard(build_b.exe) as b:
        assert main(["pull", "--port", a.url, "--build", str(build_a.json), "--out", str(saved)]) == 0
        with Link(b.url) as link:
            before = EngineClient(link).params_get()
        capsys.readouterr()
        assert main(["push", "--port", b.url, "--build", str(build_b.json), str(saved)]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert "trained-state layout" in line and "refusing" in line, line
        assert ca.state_hash != cb.state_hash
        with Link(b.url) as link:
            engine = EngineClient(link)
            assert engine.params_get() == before
            # The board refuses on its own as well (PARAMS_SET BEGIN with the file's layout hash).
            with np.load(saved) as z:
                state, layout = z["state"].tobytes(), str(z["state_hash"])
            with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*another trained-state layout"):
                engine.params_set(state, layout)
            assert engine.params_get() == before
    assert a.sanitizer_report() is None and b.sanitizer_report() is None


@pytest.fixture(scope="module")
def shipped_build() -> Build:
    """platformio.ini's build (the shipped model, last:7): 47.6 KB of state, 24 PARAMS_SET chunks."""
    return Build(default_build_config())


def test_an_interrupted_push_leaves_the_old_state_whole(shipped_build, tmp_path, capsys):
    with HostBoard(shipped_build.exe) as host:
        with Link(host.url) as link:
            engine = EngineClient(link)
            old = engine.params_get()
        assert len(old) > 4 * 2048
        new = old[:4] + bytes((b + 7) & 0xFF for b in old[4:])
        saved = tmp_path / "new.npz"
        info = json.loads(shipped_build.json.read_text())
        np.savez(saved, model_hash=np.array(info["model_hash"]), model_name=np.array("fmnist-mbv2"),
                 state_hash=np.array(info.get("state_hash", "")), state=np.frombuffer(new, np.uint8))
        line = FlakyLine(host.url)
        line.add("cut", MessageType.PARAMS_SET, nth=4)  # 3 frames through, then the line dies in the 4th
        capsys.readouterr()
        assert main(["push", "--port", line.url, "--build", str(shipped_build.json), str(saved)]) == 2
        message = one_error_line(capsys.readouterr().err)
        assert "before its commit" in message and "still holds its previous learned state, whole" in message, message
        line.close()
        with Link(host.url) as link:
            engine = EngineClient(link)
            assert engine.params_get() == old
            engine.params_set(new)  # and a push that gets through commits all of it
            assert engine.params_get() == new
    assert host.sanitizer_report() is None, host.sanitizer_report()


def test_restore_commits_only_a_whole_staged_state_with_its_hash(build_a):
    set_ = MessageType.PARAMS_SET
    with HostBoard(build_a.exe) as host, Link(host.url) as link:
        engine = EngineClient(link)
        old = engine.params_get()
        new = old[:4] + bytes((b + 3) & 0xFF for b in old[4:])
        layout = bytes.fromhex(engine.model.state_hash)
        begin = b"\x00" + layout + struct.pack("<I", len(new))

        def data(offset: int, chunk: bytes) -> bytes:
            return struct.pack("<BI", 1, offset) + chunk

        commit = b"\x02" + hashlib.sha256(new).digest()
        link.request(set_, begin, retry=0)
        link.request(set_, data(0, new[:100]), retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_STATE.*incomplete"):
            link.request(set_, commit, retry=0)
        assert engine.params_get() == old
        link.request(set_, data(100, new[100:]), retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*SHA-256"):
            link.request(set_, b"\x02" + hashlib.sha256(b"something else").digest(), retry=0)
        assert engine.params_get() == old
        x = np.zeros(engine.model.input_bytes, dtype=np.int8)
        engine.train(x, 0, lr_scale=0)  # a step does not touch the state staged in the checkpoint slot
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*differ"):
            link.request(set_, data(100, bytes(8)), retry=0)  # staged bytes sent again must be the same
        engine.checkpoint()  # a checkpoint takes the slot: the staged state is gone
        with pytest.raises(BoardErrorReply, match="BAD_STATE"):
            link.request(set_, commit, retry=0)
        link.request(set_, begin, retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*gap"):
            link.request(set_, data(8, new[8:20]), retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*another trained-state layout"):
            link.request(set_, b"\x00" + bytes(32) + struct.pack("<I", len(new)), retry=0)
        with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT.*size"):
            link.request(set_, b"\x00" + layout + struct.pack("<I", len(new) + 1), retry=0)
        after_train = engine.params_get()
        assert after_train[4:] == old[4:] and after_train[:4] == struct.pack("<I", 1)
        engine.params_set(new)
        assert engine.params_get() == new
    assert host.sanitizer_report() is None, host.sanitizer_report()


# ---------------------------------------------------------------- 7, 9: TRAIN fields


def test_out_of_range_lr_scale_and_reserved_field_change_nothing(build_a):
    xs, ys = samples(build_a.compiled, 3)
    with HostBoard(build_a.exe) as host, Link(host.url) as link:
        engine = EngineClient(link)
        before = engine.params_get()
        for reserved, lr in ((0, 0xFFFFFFFF), (0, LR_SCALE_MAX + 1), (1, LR_ONE)):
            payload = struct.pack("<HHII", int(ys[0]), reserved, lr, 1) + xs[0].tobytes()
            with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT"):
                link.request(MessageType.TRAIN, payload, retry=0)
        with pytest.raises(EngineError, match="outside the range 0..4"):
            engine.train(xs[0], int(ys[0]), 0xFFFFFFFF)  # the host does not even send it
        assert engine.params_get() == before
        ref = NumpyBackend(build_a.compiled.program)
        ref.load_state_bytes(before)
        got = engine.train(xs[1], int(ys[1]), LR_SCALE_MAX)  # the top of the range is a real step
        assert np.array_equal(got.logits, ref.train_step(xs[1], int(ys[1]), LR_SCALE_MAX))
        assert engine.params_get() == ref.state_bytes()
    assert host.sanitizer_report() is None, host.sanitizer_report()


# ---------------------------------------------------------------- program hash


def test_the_board_reports_its_program_hash(build_a):
    info = json.loads(build_a.json.read_text())
    with HostBoard(build_a.exe) as host, Link(host.url) as link:
        model = EngineClient(link).model
    assert model.program_hash == info["program_hash"] == build_a.compiled.program_hash
    assert model.state_hash == info["state_hash"] == build_a.compiled.state_hash
    assert BuildConfig.from_json(info["config"]).compile().program_hash == model.program_hash  # deterministic


def test_a_board_of_another_program_or_a_stale_build_is_named(build_a, build_b, tmp_path, capsys):
    data = tmp_path / "d.npz"
    np.savez(data, images=np.zeros((2, 16, 16, 3), np.uint8), labels=np.zeros(2, np.int64))
    stale = tmp_path / "stale" / "tinytrain.json"
    stale.parent.mkdir()
    info = json.loads(build_b.json.read_text())
    info["config"]["lr"] = 0.03  # what the compiler makes of this configuration today differs from the board
    stale.write_text(json.dumps(info))
    with HostBoard(build_b.exe) as b:
        for command in ("eval", "stream", "check"):
            capsys.readouterr()
            assert main([command, "--port", b.url, "--build", str(build_a.json), "--data", str(data)]) == 2
            message = one_error_line(capsys.readouterr().err)
            assert "another program" in message, message
        assert main(["pull", "--port", b.url, "--build", str(build_a.json), "--out", str(tmp_path / "x.npz")]) == 2
        assert "another program" in one_error_line(capsys.readouterr().err)
        assert main(["eval", "--port", b.url, "--build", str(stale), "--data", str(data)]) == 2
        message = one_error_line(capsys.readouterr().err)
        assert "stale build" in message, message
        assert main(["eval", "--port", b.url, "--build", str(build_b.json), "--data", str(data)]) == 0


# ---------------------------------------------------------------- 10: a receive ring that overflows


@pytest.fixture(scope="module")
def ring_build() -> Build:
    """A streamed model on a host build whose serial line is a 512-byte ring filled by a 'receive
    interrupt' whether the firmware is busy or not, like the STM32F746's."""
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / "streamed.ttm"
    model_file.save(random_model(21, size=40, classes=4, width=8), path)
    return Build(BuildConfig(str(path), "last:2", lr=0.02), RING)


def test_overruns_are_counted_and_reported_in_stats(ring_build):
    with HostBoard(ring_build.exe) as host, Link(host.url) as link:
        assert link.wait_ready(10.0).rx_ring_bytes == 512
        assert link.stats().rx_overruns == 0
        # What a host that does not pace itself does: a large frame right behind a long request.
        busy = link.next_seq()
        link.send_raw(encode_frame(MessageType.CALIBRATE, busy, struct.pack("<I", 100_000_000)))
        link.send_raw(encode_frame(MessageType.ECHO, link.next_seq(), bytes(4000)))
        assert link.receive(busy, timeout=60.0) is not None
        time.sleep(1.5)  # the ECHO frame that lost bytes is dropped once the line stays idle for 1 s
        assert link.stats().rx_overruns > 0
    assert host.sanitizer_report() is None, host.sanitizer_report()


def test_streamed_samples_are_paced_by_credit_so_nothing_overruns(ring_build):
    compiled = ring_build.compiled
    assert compiled.program.buffers[compiled.program.model.input].role == "stream"
    xs, ys = samples(compiled, 4, seed=9)
    ref = NumpyBackend(compiled.program)
    with HostBoard(ring_build.exe) as host, Link(host.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        assert engine.model.input_streamed and engine.info.rx_ring_bytes == 512
        for x, y in zip(xs, ys):
            assert np.array_equal(engine.train(x, int(y)).logits, ref.train_step(x, int(y)))
            assert np.array_equal(engine.infer(x).logits, ref.infer(x))
        assert engine.params_get() == ref.state_bytes()
        assert link.stats().rx_overruns == 0
        assert link.credits > 0  # the board paced the samples
    assert host.sanitizer_report() is None, host.sanitizer_report()
