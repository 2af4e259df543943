"""Exactly-once training on the emulated board: TRAIN replies dropped or duplicated on the line, TRAIN
frames duplicated, and resets (QEMU killed and restarted with its checkpoint flash) in the middle of a
stream that resumes from the step the board restored. The trained tensors must end up identical to an
uninterrupted run and to the NumPy reference. QEMU only (each case boots its own instances)."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from tinytrain.board.builds import project_root
from tinytrain.board.emulator import QemuBoard, find_free_port
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.link import Link
from tinytrain.board.messages import MessageType
from tinytrain.board.session import find_build
from tinytrain.board.streaming import stream
from tinytrain.learn.sample_input import model_samples
from tinytrain.reference.executor import NumpyBackend

sys.path.insert(0, str(project_root() / "host" / "tests"))
from flaky_line import FlakyLine  # noqa: E402

SAMPLES = 20
RESETS_AFTER = (4, 10, 16)  # samples after which the board loses power (the second one mid-TRAIN)


@pytest.fixture(scope="module")
def setup(board):
    if board.kind != "qemu":
        pytest.skip("restarts its own QEMU instances")
    engine = EngineClient(board.link)
    cfg, _ = find_build(engine.model.hash, None, engine.model.program_hash)
    compiled = cfg.compile()
    model = compiled.program.model
    xs, ys = model_samples("mnist:train", model, SAMPLES)
    return board.elf, compiled, xs, ys, model.tensors[model.output].qparams.scale


def test_dropped_and_duplicated_train_replies_are_applied_once(setup):
    elf, compiled, xs, ys, scale = setup
    with QemuBoard(elf) as qemu:
        line = FlakyLine(qemu.url)
        line.add("drop_reply", MessageType.TRAIN, nth=3)
        line.add("duplicate_reply", MessageType.TRAIN, nth=5)
        line.add("duplicate_request", MessageType.TRAIN, nth=7)
        line.add("drop_reply", MessageType.TRAIN, nth=9)
        with Link(line.url) as link:
            link.wait_ready(10.0)
            engine = EngineClient(link, train_timeout=8.0)  # a lost reply costs one timeout
            ref = NumpyBackend(compiled.program)
            ref.load_state_bytes(engine.params_get())
            res = stream(engine, xs[:12], ys[:12], scale, reference=ref, progress=False)
            assert res.samples == 12 and res.mismatch is None
            assert engine.step_count() == 12  # twelve steps, each applied once
            assert engine.params_get() == ref.state_bytes()
            assert link.frames_dropped >= 2  # the second copies of a reply were recognised as stale
        line.close()
    assert len(line.log) == 4, line.log


def test_a_stream_survives_three_resets_and_ends_identical_to_an_uninterrupted_run(setup, tmp_path):
    elf, compiled, xs, ys, scale = setup
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        stream(engine, xs, ys, scale, schedule="linear", checkpoint_every=3, progress=False)
        uninterrupted = engine.params_get()

    qemu = QemuBoard(elf, port=find_free_port(), nv=tmp_path / "board.nv")
    resets: list[int] = []

    def power_cut(i: int) -> None:
        if i not in RESETS_AFTER or i in resets:  # after a reset the stream passes these samples again
            return
        resets.append(i)
        if i == RESETS_AFTER[1]:  # during the next TRAIN: the frame, the step or its reply is lost
            threading.Timer(0.05, qemu.restart).start()
        else:
            qemu.restart()

    with qemu, Link(qemu.url) as link:
        link.wait_ready(10.0)
        engine = EngineClient(link)
        ref = NumpyBackend(compiled.program)
        ref.load_state_bytes(engine.params_get())
        t0 = time.monotonic()
        res = stream(engine, xs, ys, scale, schedule="linear", reference=ref, checkpoint_every=3, on_step=power_cut,
                     progress=False)
        interrupted = engine.params_get()
        seconds = time.monotonic() - t0
    print(f"\n{SAMPLES} samples, resets after samples {resets}: {res.resumes} resumes, {res.checkpoints} "
          f"checkpoints, {seconds:.1f} s; final state identical to the uninterrupted run: {interrupted == uninterrupted}")
    assert res.resumes == 3 and resets == list(RESETS_AFTER)
    assert res.mismatch is None
    assert interrupted == uninterrupted == ref.state_bytes()
    assert len(res.correct) == SAMPLES - res.start  # every sample's step exactly once in the end
