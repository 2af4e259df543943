"""A streamed sample on the emulated board: the streaming front pulls the sample's rows from the UART
while it computes, so the board's serial line, not a test double, feeds the step. QEMU only (it needs
an image of its own: a synthetic model whose input is large enough to be streamed)."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.model import ttm as model_file
from tinytrain.board.builds import build_firmware, project_root
from tinytrain.compile.build_config import BuildConfig
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.framing import encode_frame
from tinytrain.board.link import Link
from tinytrain.board.messages import ErrorCode, ErrorReply, MessageType
from tinytrain.reference.executor import NumpyBackend
from tinytrain.model.synthetic import random_model

BUILD = project_root() / ".pio" / "build-hil-streamed"
MODEL = project_root() / "build" / "hil" / "streamed.ttm"  # not in BUILD: PlatformIO may clean that


@pytest.fixture(scope="module")
def streamed(board):
    if board.kind != "qemu":
        pytest.skip("builds and boots an image of its own in QEMU")
    MODEL.parent.mkdir(parents=True, exist_ok=True)
    path = MODEL
    model_file.save(random_model(21, size=40, classes=4, width=8), path)
    options = {"TINYTRAIN_MODEL": str(path), "TINYTRAIN_SCHEME": "last:2", "TINYTRAIN_LR": "0.02",
               "TINYTRAIN_CLASSES": "", "TINYTRAIN_NEW_HEAD": "0", "TINYTRAIN_BUDGET": ""}
    elf = build_firmware("qemu_m7", model_options=options, build_dir=BUILD)
    compiled = BuildConfig(str(path), "last:2", lr=0.02).compile()
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(10.0)
        yield EngineClient(link), link, compiled


def test_streamed_steps_match_the_reference_and_a_corrupted_sample_changes_nothing(streamed):
    engine, link, compiled = streamed
    assert engine.model.input_streamed and engine.model.hash == compiled.model_hash
    model = compiled.program.model
    ref = NumpyBackend(compiled.program)
    rng = np.random.default_rng(5)
    xs = rng.integers(-128, 128, size=(6, *model.input_spec.shape)).astype(np.int8)
    for i in range(3):
        assert np.array_equal(engine.train(xs[i], i % 4).logits, ref.train_step(xs[i], i % 4)), i
    before = engine.params_get()
    seq = link.next_seq()
    frame = bytearray(encode_frame(MessageType.TRAIN, seq, bytes([1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]) + xs[3].tobytes()))
    frame[-100] ^= 0x08  # in the sample's last rows, after the stage has consumed the first ones
    link.send_raw(bytes(frame))
    reply = link.receive(seq, timeout=10.0)
    assert reply is not None and reply.type == MessageType.ERROR
    assert ErrorReply.parse(reply.payload).code == ErrorCode.BAD_CRC
    assert engine.params_get() == before
    for i in range(3, 6):
        assert np.array_equal(engine.train(xs[i], i % 4).logits, ref.train_step(xs[i], i % 4)), i
    assert engine.params_get() == ref.state_bytes()
    assert np.array_equal(engine.infer(xs[0]).logits, ref.infer(xs[0]))
    stats, plan = link.stats(), compiled.sram
    print(f"measured: static {stats.static_bytes} stack {stats.stack_used_bytes} peak {stats.peak_sram_bytes}; "
          f"planned: model {plan.arena_bytes + plan.trainable_bytes + plan.runtime_bytes} "
          f"firmware {plan.firmware_static_bytes} stack {plan.stack_bytes} total {plan.total}")
    # The plan's firmware constants (sram_budget.FIRMWARE_BASE) cover this build and stay close to it.
    assert stats.stack_used_bytes <= plan.stack_bytes
    assert stats.static_bytes <= plan.total - plan.stack_bytes
    assert stats.peak_sram_bytes <= plan.total < stats.peak_sram_bytes + 2048
