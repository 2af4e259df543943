"""The firmware's protocol C code (crc, frame_rx, frame_tx), compiled for the
host with AddressSanitizer and UBSan, against the Python reference on the same
vectors (firmware/tests/frame_rx_driver.c)."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinytrain.board.builds import build_c_test
from tinytrain.board.framing import SYNC, BadCrc, Frame, FrameDecoder, TooLarge, crc16_ccitt_false, crc32_iso_hdlc, encode_frame

MAX_PAYLOAD = 300
DISCARDED_TYPE = 0x7F  # the driver does not route these payloads (discard sink)
STREAMED_TYPE = 0x7E  # the driver pulls these payloads' bodies in chunks (a streamed sample)
DRIVER_SOURCES = ["tests/frame_rx_driver.c", "protocol/crc.c", "protocol/frame_rx.c", "protocol/frame_tx.c"]


class Driver:
    """One long-lived driver process; each record is answered before the next is sent."""

    def __init__(self, *args: str) -> None:
        exe = build_c_test("frame_rx_driver", DRIVER_SOURCES)
        self.proc = subprocess.Popen(
            [str(exe), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def send(self, record: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(struct.pack("<I", len(record)) + record)
        self.proc.stdin.flush()

    def line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        if not line:
            self.proc.kill()
            raise AssertionError(f"driver died: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        return line

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        code = self.proc.wait(10)
        err = self.proc.stderr.read().decode() if self.proc.stderr else ""
        assert code == 0 and "runtime error" not in err and "Sanitizer" not in err, err


@pytest.fixture(scope="module")
def rx_driver() -> Iterator[Driver]:
    driver = Driver("rx", str(MAX_PAYLOAD))
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def crc_driver() -> Iterator[Driver]:
    driver = Driver("crc")
    yield driver
    driver.close()


@pytest.fixture(scope="module")
def tx_driver() -> Iterator[Driver]:
    driver = Driver("tx")
    yield driver
    driver.close()


def c_events(driver: Driver, stream: bytes) -> list[str]:
    driver.send(stream)
    lines = []
    while (line := driver.line()) != "END":
        lines.append(line)
    return lines


def python_events(stream: bytes) -> list[str]:
    lines = []
    for e in FrameDecoder(MAX_PAYLOAD).feed(stream):
        if isinstance(e, Frame):
            shown = "-" if e.type == DISCARDED_TYPE else e.payload.hex()
            lines.append(f"FRAME {e.type} {e.seq} {len(e.payload)} {shown}".rstrip())
        elif isinstance(e, BadCrc):
            lines.append(f"BAD_CRC {e.type} {e.seq} {e.length}")
        elif isinstance(e, TooLarge):
            lines.append(f"TOO_LARGE {e.type} {e.seq} {e.length}")
    return lines


def test_crc_check_values(crc_driver: Driver) -> None:
    crc_driver.send(b"123456789")
    assert crc_driver.line() == "29b1 cbf43926"


@given(st.binary(max_size=2000))
def test_crc_matches_python(crc_driver: Driver, data: bytes) -> None:
    crc_driver.send(data)
    assert crc_driver.line() == f"{crc16_ccitt_false(data):04x} {crc32_iso_hdlc(data):08x}"


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=700))
def test_writer_matches_python(tx_driver: Driver, type_: int, seq: int, payload: bytes) -> None:
    tx_driver.send(bytes([type_, seq]) + payload)
    assert tx_driver.line() == encode_frame(type_, seq, payload).hex()


# Streams: frames (some too large, some for the discard sink), each possibly
# with one flipped bit, separated by garbage that may hold stray sync bytes.
FRAMES = st.tuples(
    st.sampled_from([0x01, 0x02, 0x03, DISCARDED_TYPE, STREAMED_TYPE, 0x81]), st.integers(0, 255), st.binary(max_size=MAX_PAYLOAD + 20)
)
GARBAGE = st.one_of(
    st.binary(max_size=24), st.sampled_from([SYNC, b"\xa5", SYNC + b"\x00\x01\x02", b"\xa5\xa5\x5a\x5a"])
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    stream = b""
    for type_, seq, payload in draw(st.lists(FRAMES, max_size=5)):
        stream += draw(GARBAGE)
        frame = bytearray(encode_frame(type_, seq, payload))
        if draw(st.booleans()):
            bit = draw(st.integers(0, len(frame) * 8 - 1))
            frame[bit // 8] ^= 1 << (bit % 8)
        stream += bytes(frame)
    return stream + draw(GARBAGE)


@settings(max_examples=300)
@given(streams())
def test_receiver_matches_python(rx_driver: Driver, stream: bytes) -> None:
    assert c_events(rx_driver, stream) == python_events(stream)


def test_receiver_fixed_vectors(rx_driver: Driver) -> None:
    good = encode_frame(0x02, 7, b"hello")
    cases = [
        good,
        b"\xa5" + good,
        SYNC + b"\x01\x02\x03" + good,
        encode_frame(0x02, 8, bytes(MAX_PAYLOAD + 1))[:10] + good,
        good[:-1] + bytes([good[-1] ^ 0x80]) + good,
        encode_frame(DISCARDED_TYPE, 1, b"xyz") + encode_frame(0x01, 2),
        encode_frame(0x02, 9, bytes(range(256)) + bytes(MAX_PAYLOAD - 256)),
        encode_frame(STREAMED_TYPE, 3, bytes(range(40))) + encode_frame(STREAMED_TYPE, 4, b"ab") + good,
        encode_frame(STREAMED_TYPE, 5, bytes(range(200)))[:60] + good,  # a stream cut short, then resync
    ]
    for stream in cases:
        assert c_events(rx_driver, stream) == python_events(stream)
    assert python_events(cases[3]) == [f"TOO_LARGE 2 8 {MAX_PAYLOAD + 1}", f"FRAME 2 7 5 {b'hello'.hex()}"]
    assert python_events(cases[4])[0] == "BAD_CRC 2 7 5"
