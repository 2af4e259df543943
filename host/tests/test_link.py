"""tinytrain.link against a scripted fake board on a local TCP socket."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tinytrain.board.framing import Frame, FrameDecoder, encode_frame
from tinytrain.board.link import BoardErrorReply, BoardFault, BoardNotAnswering, Link, LinkError
from tinytrain.board.messages import BoardInfo, ErrorCode, MessageType

# A script gets each request frame and its index; it returns raw bytes to send
# (or None to stay silent).
Script = Callable[[Frame, int], bytes | None]

INFO_PAYLOAD = struct.pack("<BBHIIII", 1, 0, 0, 4096, 327680, 1048576, 25_000_000) + b"\x050.1.0\x04fake\x02id"


def reply(frame: Frame, payload: bytes = b"") -> bytes:
    return encode_frame(frame.type | 0x80, frame.seq, payload)


class FakeBoard:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Frame] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        decoder = FrameDecoder()
        with conn:
            while data := conn.recv(4096):
                for event in decoder.feed(data):
                    assert isinstance(event, Frame)
                    self.requests.append(event)
                    out = self.script(event, len(self.requests) - 1)
                    if out:
                        conn.sendall(out)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def fake() -> Iterator[Callable[[Script], FakeBoard]]:
    boards: list[FakeBoard] = []

    def make(script: Script) -> FakeBoard:
        boards.append(FakeBoard(script))
        return boards[-1]

    yield make
    for b in boards:
        b.close()


def test_info_is_parsed(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: reply(f, INFO_PAYLOAD))
    with Link(board.url) as link:
        info = link.info()
    assert info == BoardInfo(1, info.counter_kind, 4096, 327680, 1048576, 25_000_000, "0.1.0", "fake", "id")


def test_stale_seq_is_ignored(fake: Callable[[Script], FakeBoard]) -> None:
    # An old reply (previous seq) arrives first, in the same segment as the right one.
    board = fake(lambda f, i: encode_frame(f.type | 0x80, (f.seq - 1) % 256, b"old") + reply(f, b"new"))
    with Link(board.url) as link:
        assert link.echo(b"x") == b"new"
        assert link.frames_dropped == 1


def test_replies_arriving_together_are_all_delivered(fake: Callable[[Script], FakeBoard]) -> None:
    pending: list[Frame] = []

    def script(frame: Frame, index: int) -> bytes | None:
        pending.append(frame)
        if index < 2:
            return None
        return b"".join(reply(f, bytes([f.seq])) for f in pending)

    board = fake(script)
    with Link(board.url) as link:
        seqs = [link.next_seq() for _ in range(3)]
        for s in seqs:
            link.send_raw(encode_frame(MessageType.ECHO, s, b"?"))
        for s in seqs:
            assert link.receive(s, timeout=2) == Frame(0x82, s, bytes([s]))


def test_side_effect_free_requests_are_retried_with_fresh_seqs(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: reply(f, b"ok") if i == 2 else None)
    with Link(board.url, timeout=0.2) as link:
        assert link.echo(b"q") == b"ok"
    assert len(board.requests) == 3
    assert len({f.seq for f in board.requests}) == 3


def test_late_reply_to_an_earlier_try_is_not_taken(fake: Callable[[Script], FakeBoard]) -> None:
    def script(frame: Frame, index: int) -> bytes | None:
        if index == 0:
            time.sleep(0.3)  # past the first try's timeout
            return reply(frame, b"late")
        return reply(frame, b"fresh")

    board = fake(script)
    with Link(board.url, timeout=0.2) as link:
        assert link.echo(b"q") == b"fresh"


def test_requests_with_side_effects_are_not_retried(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: None)
    with Link(board.url, timeout=0.2) as link:
        with pytest.raises(BoardNotAnswering) as err:
            link.request(MessageType.TRAIN, b"train")
    assert len(board.requests) == 1
    message = str(err.value)
    assert board.url in message and "TRAIN" in message and message.endswith(".")


def test_error_reply_raises_with_code_name(fake: Callable[[Script], FakeBoard]) -> None:
    error = struct.pack("<BBI", ErrorCode.BAD_LENGTH, 0x02, 16) + b"\x05wrong"
    board = fake(lambda f, i: encode_frame(0xFF, f.seq, error))
    with Link(board.url) as link:
        with pytest.raises(BoardErrorReply) as err:
            link.echo(b"abc")
    assert err.value.reply.code == ErrorCode.BAD_LENGTH
    assert "ECHO" in str(err.value) and "BAD_LENGTH" in str(err.value) and "wrong" in str(err.value)


def test_fault_frame_raises_with_registers(fake: Callable[[Script], FakeBoard]) -> None:
    regs = struct.pack("<8I", 0x0800_1234, 0x0800_0101, 0x6100_0000, 0x100, 1 << 30, 0, 0, 0x2000_3F00)
    board = fake(lambda f, i: encode_frame(0xFE, 0, regs))
    with Link(board.url) as link:
        with pytest.raises(BoardFault) as err:
            link.stats()
    assert err.value.fault.pc == 0x0800_1234
    assert "pc=0x08001234" in str(err.value) and "hfsr=0x40000000" in str(err.value)


def test_wrong_reply_type_is_an_error(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: encode_frame(0x83, f.seq, b""))
    with Link(board.url) as link:
        with pytest.raises(LinkError, match="answered INFO with message type 0x83"):
            link.info()


def test_unreachable_port_is_one_sentence() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LinkError) as err:
        Link(f"socket://127.0.0.1:{port}")
    message = str(err.value)
    assert message.startswith(f"Cannot open the serial line socket://127.0.0.1:{port}") and message.endswith(".")


def bad_crc(frame: Frame) -> bytes:
    return encode_frame(0xFF, frame.seq, struct.pack("<BBI", ErrorCode.BAD_CRC, frame.type, 0) + b"\x03crc")


def test_bad_crc_is_sent_again_even_for_requests_with_side_effects(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: bad_crc(f) if i < 2 else reply(f, b"done"))
    with Link(board.url) as link:
        assert link.request(MessageType.TRAIN, b"step", retry=0) == b"done"
        assert link.crc_resends == 2
    assert len(board.requests) == 3 and len({f.seq for f in board.requests}) == 3


def test_bad_crc_resends_are_bounded(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: bad_crc(f))
    with Link(board.url) as link:
        with pytest.raises(BoardErrorReply, match="BAD_CRC"):
            link.request(MessageType.TRAIN, b"step", retry=0)
    assert len(board.requests) == 4


def test_a_board_that_answered_before_is_not_blamed_on_the_firmware(fake: Callable[[Script], FakeBoard]) -> None:
    board = fake(lambda f, i: reply(f, INFO_PAYLOAD) if f.type == MessageType.INFO else None)
    with Link(board.url, timeout=0.2) as link:
        link.info()
        with pytest.raises(BoardNotAnswering) as err:
            link.request(MessageType.TRAIN, b"x")
    message = str(err.value)
    assert "answered earlier requests" in message and "tinytrain firmware" not in message


def test_credit_paces_a_streamed_frame(fake: Callable[[Script], FakeBoard]) -> None:
    """The host sends no further than the board's CREDIT frames allow (here a 64-byte ring)."""
    received = bytearray()
    frame_len = 10 + 300 + 4
    lock = threading.Lock()

    class Board(FakeBoard):
        granted = 64  # the implied first credit: one ring

        def _serve(self) -> None:
            conn, _ = self.server.accept()
            with conn:
                while len(received) < frame_len:
                    data = conn.recv(4096)
                    if not data:
                        return
                    with lock:
                        received.extend(data)
                    seq = received[3]
                    # At any moment the host has sent at most 64 bytes beyond what the board granted.
                    assert len(received) <= self.granted, (len(received), self.granted)
                    self.granted = len(received) + 64
                    conn.sendall(encode_frame(MessageType.CREDIT, seq, struct.pack("<I", self.granted)))
                conn.sendall(encode_frame(MessageType.TRAIN | 0x80, received[3], b"ok"))

    board = Board(lambda f, i: None)
    try:
        with Link(board.url) as link:
            assert link.request(MessageType.TRAIN, bytes(300), retry=0, credit=64) == b"ok"
            assert link.credits >= 300 // 64
        assert len(received) == frame_len
    finally:
        board.close()


def test_after_a_timeout_a_large_frame_waits_until_the_board_answers_again(fake: Callable[[Script], FakeBoard]) -> None:
    """A board with a receive ring may still be busy with the request that timed out: the host asks
    INFO (which fits the ring) before it sends a frame larger than the ring again."""
    def script(frame: Frame, index: int) -> bytes | None:
        if frame.type == MessageType.INFO:
            return reply(frame, bytes([2]) + INFO_PAYLOAD[1:2] + struct.pack("<H", 512) + INFO_PAYLOAD[4:])
        return reply(frame, b"ok") if index > 0 else None

    board = fake(script)
    with Link(board.url, timeout=0.3) as link:
        link.rx_ring_bytes = 512
        assert link.echo(bytes(1000)) == b"ok"
    assert [f.type for f in board.requests] == [MessageType.ECHO, MessageType.INFO, MessageType.ECHO]
    assert link.rx_ring_bytes == 512
