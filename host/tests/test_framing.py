"""tinytrain.framing: CRC check values, frame layout, decoder resynchronisation."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from tinytrain.board.framing import (
    SYNC,
    BadCrc,
    Frame,
    FrameDecoder,
    TooLarge,
    crc16_ccitt_false,
    crc32_iso_hdlc,
    encode_frame,
)

PAYLOADS = st.binary(max_size=600)
TYPES = st.integers(0, 255)
SEQS = st.integers(0, 255)


def decode(data: bytes, max_payload: int = 1 << 24, chunk: int | None = None) -> list:
    decoder = FrameDecoder(max_payload)
    if chunk is None:
        return decoder.feed(data)
    events = []
    for i in range(0, len(data), chunk):
        events += decoder.feed(data[i : i + chunk])
    return events


def test_crc_check_values() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc32_iso_hdlc(b"123456789") == 0xCBF43926
    assert crc16_ccitt_false(b"") == 0xFFFF
    assert crc32_iso_hdlc(b"") == 0


def test_frame_layout() -> None:
    frame = encode_frame(0x02, 0x07, b"hi")
    assert frame[:2] == SYNC
    assert frame[2:8] == bytes([0x02, 0x07, 2, 0, 0, 0])
    assert struct.unpack_from("<H", frame, 8)[0] == crc16_ccitt_false(frame[2:8])
    assert frame[10:12] == b"hi"
    assert struct.unpack_from("<I", frame, 12)[0] == crc32_iso_hdlc(frame[2:8] + b"hi")
    assert len(frame) == 16


def test_empty_payload_frame() -> None:
    assert decode(encode_frame(1, 1)) == [Frame(1, 1, b"")]


def test_too_large_then_hunts_again() -> None:
    big = encode_frame(2, 3, bytes(20))
    good = encode_frame(1, 4)
    assert decode(big[:10] + good, max_payload=10) == [TooLarge(2, 3, 20), Frame(1, 4, b"")]


def test_sync_byte_before_real_sync() -> None:
    assert decode(b"\xa5" + encode_frame(1, 9)) == [Frame(1, 9, b"")]
    assert decode(b"\xa5\xa5\xa5" + encode_frame(1, 9)) == [Frame(1, 9, b"")]


def test_frame_inside_bad_header_is_found() -> None:
    # A sync pair and three bytes of junk, then a real frame: the bad "header"
    # swallows the real frame's first bytes; resync must still find it.
    real = encode_frame(3, 5, b"abc")
    assert decode(SYNC + b"\x01\x02\x03" + real) == [Frame(3, 5, b"abc")]


@given(TYPES, SEQS, PAYLOADS)
def test_any_payload_round_trips(type_: int, seq: int, payload: bytes) -> None:
    assert decode(encode_frame(type_, seq, payload)) == [Frame(type_, seq, payload)]


@given(st.lists(st.tuples(TYPES, SEQS, PAYLOADS), max_size=5), st.integers(1, 17))
def test_chunking_does_not_matter(frames: list, chunk: int) -> None:
    stream = b"".join(encode_frame(*f) for f in frames)
    expected = [Frame(*f) for f in frames]
    assert decode(stream) == expected
    assert decode(stream, chunk=chunk) == expected


@settings(max_examples=300)
@given(TYPES, SEQS, st.binary(max_size=64), st.data())
def test_any_single_bit_error_is_detected_and_resynchronised(
    type_: int, seq: int, payload: bytes, data: st.DataObject
) -> None:
    frame = bytearray(encode_frame(type_, seq, payload))
    bit = data.draw(st.integers(0, len(frame) * 8 - 1), label="bit")
    frame[bit // 8] ^= 1 << (bit % 8)
    follower = encode_frame(0x01, 0x42, b"next")
    events = decode(bytes(frame) + follower)
    # The corrupted frame never passes as a good frame ...
    assert Frame(type_, seq, payload) not in events
    assert all(not isinstance(e, Frame) or e == Frame(0x01, 0x42, b"next") for e in events[:-1])
    # ... and the frame after it always arrives. A flipped length can make the
    # corrupted frame swallow it only if its header CRC passed, which a single
    # bit error cannot do; in the payload or pcrc it is a BadCrc.
    assert events[-1] == Frame(0x01, 0x42, b"next")
    if bit >= 10 * 8:
        assert events == [BadCrc(type_, seq, len(payload)), Frame(0x01, 0x42, b"next")]


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=4), st.lists(st.tuples(TYPES, SEQS, PAYLOADS), max_size=4))
def test_garbage_between_frames_is_skipped(garbage: list, frames: list) -> None:
    # Garbage may contain sync bytes; it must only never look like a whole frame,
    # which a random header with a valid CRC-16 (1 in 65536) could. Keep the
    # garbage free of complete sync pairs followed by a valid header by
    # construction: cut it before any sync pair.
    cleaned = [g.replace(SYNC, b"\xa5") for g in garbage]
    stream = b""
    for i, (type_, seq, payload) in enumerate(frames):
        stream += cleaned[i % len(cleaned)] + encode_frame(type_, seq, payload)
    stream += cleaned[-1]
    assert decode(stream) == [Frame(*f) for f in frames]


def test_stray_sync_pairs_with_any_junk_length_are_skipped() -> None:
    junk = bytes(range(0x10, 0x30))
    real = encode_frame(0x02, 0x33, b"payload")
    for n in range(len(junk)):
        stream = SYNC + junk[:n] + real + SYNC + SYNC + junk[:n] + real
        assert decode(stream) == [Frame(0x02, 0x33, b"payload")] * 2, n
