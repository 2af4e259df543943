"""The training engine on the board: bit-exact training steps, refused requests, backup and restore,
and real learning (QEMU by default, --port for a real board)."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.board.session import find_build
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.framing import encode_frame
from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import ErrorCode, ErrorReply, MessageType
from tinytrain.reference.executor import NumpyBackend
from tinytrain.learn.sample_input import model_samples
from tinytrain.board.streaming import evaluate, stream
from tinytrain.learn.schedules import lr_scales


@pytest.fixture(scope="module")
def engine(board) -> EngineClient:
    return EngineClient(board.link)


@pytest.fixture(scope="module")
def built(engine):
    # the build of the board's program (another board's build of the same model may be older)
    cfg, info = find_build(engine.model.hash, None, engine.model.program_hash)
    return cfg, info, cfg.compile()


@pytest.fixture
def reference(engine, built) -> NumpyBackend:
    """The NumPy reference, started from the board's current learned state."""
    ref = NumpyBackend(built[2].program)
    ref.load_state_bytes(engine.params_get())
    return ref


@pytest.fixture(scope="module")
def digits(built):
    model = built[2].program.model
    train = model_samples("mnist:train", model, 300)
    test = model_samples("mnist:test", model, 300)
    return train, test


def test_model_matches_its_build(engine, built):
    cfg, info, compiled = built
    assert engine.model.hash == compiled.model_hash
    assert engine.model.program_hash == info["program_hash"] == compiled.program_hash
    assert engine.model.state_hash == compiled.state_hash
    assert engine.model.classes == compiled.program.model.num_classes
    assert engine.model.arena_bytes == compiled.arena_bytes


def test_fifty_steps_identical_to_reference(engine, reference, digits):
    (xs, ys), _ = digits
    scales = lr_scales(50, "linear")
    for i in range(50):
        got = engine.train(xs[i], int(ys[i]), int(scales[i]))
        want = reference.train_step(xs[i], int(ys[i]), int(scales[i]))
        assert np.array_equal(got.logits, want), f"step {i}"
    assert engine.params_get() == reference.state_bytes()


def test_refused_requests_change_nothing_and_the_stream_goes_on(board, engine, reference, digits):
    (xs, ys), _ = digits
    link: Link = board.link
    before = engine.params_get()
    with pytest.raises(BoardErrorReply, match="BAD_ARGUMENT|label"):
        engine.train(xs[0], engine.model.classes)
    short = np.asarray(xs[0]).reshape(-1)[:-1].tobytes()
    with pytest.raises(BoardErrorReply, match="BAD_LENGTH|length"):
        link.request(MessageType.TRAIN, b"\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00" + short, retry=0)
    seq = link.next_seq()
    frame = bytearray(encode_frame(MessageType.TRAIN, seq, bytes([1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]) + np.asarray(xs[1]).tobytes()))
    frame[20] ^= 0x40  # a flipped bit in the sample: the CRC must catch it
    link.send_raw(bytes(frame))
    reply = link.receive(seq, timeout=5.0)
    assert reply is not None and reply.type == MessageType.ERROR
    assert ErrorReply.parse(reply.payload).code == ErrorCode.BAD_CRC
    assert engine.params_get() == before
    for i in range(5):  # the stream goes on, still identical to the reference
        got = engine.train(xs[i], int(ys[i]))
        assert np.array_equal(got.logits, reference.train_step(xs[i], int(ys[i])))
    assert engine.params_get() == reference.state_bytes()


def test_short_run_learns(engine, digits, built):
    (xs, ys), (tx, ty) = digits
    scale = built[2].program.model.tensors[built[2].program.model.output].qparams.scale
    before = evaluate(engine, tx, ty, progress=False).accuracy
    stream(engine, xs, ys, scale, schedule="linear", progress=False)
    after = evaluate(engine, tx, ty, progress=False).accuracy
    assert after >= before + 0.2, (before, after)


def test_pull_and_push_round_trip_after_a_reset(board, engine, tmp_path):
    """A new board (QEMU restarted from the same image: the power-on state) takes a pushed state
    and gives back exactly the same bytes."""
    if board.kind != "qemu":
        pytest.skip("a reset needs a board this test can restart (QEMU)")
    state = engine.params_get()
    with QemuBoard(board.elf) as fresh, Link(fresh.url) as link:
        link.wait_ready(10.0)
        other = EngineClient(link)
        assert other.model.hash == engine.model.hash
        assert other.params_get() != state  # power-on weights, not what was learned
        other.params_set(state)
        assert other.params_get() == state
