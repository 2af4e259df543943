"""Protocol smoke tests against the board (QEMU by default; see conftest.py)."""

from __future__ import annotations

import random
import struct

import pytest

from tinytrain.board.elf_memory import read_c_string, static_memory
from tinytrain.board.framing import SYNC, Frame, encode_frame, encode_header
from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import PROTOCOL_VERSION, ErrorCode, ErrorReply, MessageType

from conftest import Board

KNOWN_BOARDS = {"mps2_an500", "stm32f746", "host"}


def expect_error(frame: Frame | None, code: ErrorCode, request_type: int) -> ErrorReply:
    assert frame is not None, "no reply"
    assert frame.type == MessageType.ERROR
    reply = ErrorReply.parse(frame.payload)
    assert (reply.code, reply.request_type) == (code, request_type), reply
    return reply


def test_info_fields(board: Board, link: Link) -> None:
    info = link.info()
    assert info.protocol_version == PROTOCOL_VERSION == 3
    assert info.board in KNOWN_BOARDS
    # A ring that drops bytes only on the real board; QEMU's UART and the host's socket wait.
    assert info.rx_ring_bytes == {"mps2_an500": 0, "stm32f746": 512, "host": 0}[info.board]
    assert info.max_payload >= 4096
    assert info.ram_bytes == 320 * 1024
    assert info.flash_bytes == 1024 * 1024
    assert info.firmware_version == "0.1.0"
    assert info.build_id
    expected = {"mps2_an500": (0, 25_000_000), "stm32f746": (1, 216_000_000), "host": (2, 0)}[info.board]
    assert (int(info.counter_kind), info.clock_hz) == expected


def test_build_id_is_the_elf_s(board: Board, link: Link) -> None:
    if board.elf is None:
        pytest.skip("no ELF for this board (give --elf)")
    assert read_c_string(board.elf, "tt_build_id") == link.info().build_id


def echo_limit(board: Board, link: Link) -> int:
    """max_payload, or the receive buffer's size when a build made it smaller."""
    try:
        link.echo(bytes(board.info.max_payload), timeout=10.0)
        return board.info.max_payload
    except BoardErrorReply as err:
        assert err.reply.code == ErrorCode.BAD_LENGTH
        return err.reply.detail


def test_echo_random_payloads_up_to_the_maximum(board: Board, link: Link) -> None:
    rng = random.Random(1234)
    top = echo_limit(board, link)
    assert top >= 4096
    for size in [0, 1, 2, 3, 9, 255, 256, 1000, 1024, top - 1, top]:
        data = rng.randbytes(size)
        assert link.echo(data, timeout=10.0) == data, size


def test_echo_payload_full_of_sync_bytes(link: Link) -> None:
    data = (SYNC + encode_frame(MessageType.INFO, 1)) * 20
    assert link.echo(data) == data


def test_corrupted_payload_gets_bad_crc_and_the_next_frame_works(link: Link) -> None:
    seq = link.next_seq()
    frame = bytearray(encode_frame(MessageType.ECHO, seq, b"0123456789"))
    frame[10 + 4] ^= 0x10
    link.send_raw(bytes(frame))
    expect_error(link.receive(seq), ErrorCode.BAD_CRC, MessageType.ECHO)
    assert link.echo(b"still here") == b"still here"


def test_corrupted_pcrc_gets_bad_crc(link: Link) -> None:
    seq = link.next_seq()
    frame = bytearray(encode_frame(MessageType.STATS, seq))
    frame[-1] ^= 0x01
    link.send_raw(bytes(frame))
    expect_error(link.receive(seq), ErrorCode.BAD_CRC, MessageType.STATS)


def test_oversize_frame_gets_too_large_and_the_link_still_works(board: Board, link: Link) -> None:
    top = board.info.max_payload
    rng = random.Random(5)
    # The oversized payload is skipped as garbage; keep sync bytes out of it.
    body = bytes(rng.choice([b for b in range(256) if b != 0xA5]) for _ in range(top + 1))
    seq = link.next_seq()
    link.send_raw(encode_header(MessageType.ECHO, seq, top + 1) + body + b"\0\0\0\0")
    reply = expect_error(link.receive(seq), ErrorCode.TOO_LARGE, MessageType.ECHO)
    assert reply.detail == top
    assert link.echo(b"after") == b"after"


def test_header_claiming_gigabytes_gets_too_large(link: Link) -> None:
    seq = link.next_seq()
    link.send_raw(encode_header(MessageType.ECHO, seq, 0xFFFFFFFF))
    expect_error(link.receive(seq), ErrorCode.TOO_LARGE, MessageType.ECHO)


GARBAGE = [
    b"\x00",
    b"hello board",
    b"\xa5",
    b"\xa5\xa5\xa5",
    SYNC,
    SYNC + b"\x02\x07",
    SYNC + bytes(7),
    SYNC + b"\xff" * 8,
    b"\x5a\xa5\x5a\xa5",
    bytes(range(256)),
]


def test_garbage_between_frames_is_skipped(link: Link) -> None:
    for garbage in GARBAGE:
        seq = link.next_seq()
        link.send_raw(garbage + encode_frame(MessageType.ECHO, seq, garbage))
        frame = link.receive(seq)
        assert frame == Frame(MessageType.ECHO | 0x80, seq, garbage), garbage


def test_back_to_back_frames_with_garbage_all_answered(link: Link) -> None:
    seqs = [link.next_seq() for _ in GARBAGE]
    link.send_raw(b"".join(g + encode_frame(MessageType.ECHO, s, bytes([s])) for g, s in zip(GARBAGE, seqs)))
    for s in seqs:
        assert link.receive(s) == Frame(MessageType.ECHO | 0x80, s, bytes([s]))


def test_unknown_type_gets_unknown_type(link: Link) -> None:
    with pytest.raises(BoardErrorReply) as err:
        link.request(0x7E, b"abc")
    assert err.value.reply.code == ErrorCode.UNKNOWN_TYPE
    assert err.value.reply.request_type == 0x7E


def test_wrong_length_gets_bad_length(link: Link) -> None:
    with pytest.raises(BoardErrorReply) as err:
        link.request(MessageType.INFO, b"x")
    assert (err.value.reply.code, err.value.reply.detail) == (ErrorCode.BAD_LENGTH, 0)
    with pytest.raises(BoardErrorReply) as err:
        link.request(MessageType.CALIBRATE, b"\x01\x00")
    assert (err.value.reply.code, err.value.reply.detail) == (ErrorCode.BAD_LENGTH, 4)


def test_stats_peak_sram_is_plausible(board: Board, link: Link) -> None:
    stats = link.stats()
    assert stats.counter_kind == board.info.counter_kind
    assert stats.peak_sram_bytes == stats.data_bytes + stats.bss_bytes + stats.stack_used_bytes
    assert stats.rx_overruns == 0  # nothing this host sent was lost
    if not board.is_mcu:
        assert stats.stack_reserved_bytes == 0
        return
    assert 0 < stats.stack_used_bytes < stats.stack_reserved_bytes
    assert stats.static_bytes < stats.peak_sram_bytes <= board.info.ram_bytes
    # The stack only grows: after a 4 KB ECHO the high-water mark cannot drop.
    link.echo(bytes(4096))
    assert link.stats().stack_used_bytes >= stats.stack_used_bytes


def test_stats_static_part_equals_the_elf(board: Board, link: Link) -> None:
    if board.elf is None:
        pytest.skip("no ELF for this board (give --elf)")
    stats = link.stats()
    elf = static_memory(board.elf)
    assert (stats.data_bytes, stats.bss_bytes, stats.stack_reserved_bytes) == (
        elf.data_bytes,
        elf.bss_bytes,
        elf.stack_reserved_bytes,
    )
    assert stats.peak_sram_bytes > elf.static_bytes
    assert elf.static_bytes + elf.stack_reserved_bytes <= 320 * 1024
    assert elf.flash_bytes <= 1024 * 1024


def test_stale_reply_is_ignored(link: Link) -> None:
    # A reply whose seq the host no longer waits for must not be taken for the next one.
    stale = link.next_seq()
    link.send_raw(encode_frame(MessageType.ECHO, stale, b"old"))
    dropped = link.frames_dropped
    assert link.echo(b"new") == b"new"
    assert link.frames_dropped == dropped + 1


def test_bytes_sent_faster_than_the_board_reads_arrive_whole_or_are_counted(board: Board, link: Link) -> None:
    """A host that does not pace itself: frames totalling several times the receive buffer sent right
    behind a request that keeps the board busy. Every frame is answered with exactly its payload, or,
    where the board's receive ring overflowed, not answered (or refused for its CRC) and counted in
    STATS: never a wrong reply.
    A flow-controlled line (QEMU's UART, rx_ring_bytes 0) loses nothing."""
    overruns_before = link.stats().rx_overruns or 0
    limit = min(echo_limit(board, link), 4000)
    rng = random.Random(15)
    payloads = [rng.randbytes(limit - i) for i in range(4)]
    busy = link.next_seq()
    seqs = [link.next_seq() for _ in payloads]
    link.send_raw(encode_frame(MessageType.CALIBRATE, busy, struct.pack("<I", 20_000_000))
                  + b"".join(encode_frame(MessageType.ECHO, s, p) for s, p in zip(seqs, payloads)))
    assert link.receive(busy, timeout=120.0) is not None
    lost = 0
    for seq, payload in zip(seqs, payloads):
        frame = link.receive(seq, timeout=5.0)
        if frame is None:
            lost += 1
        elif frame.type == MessageType.ERROR:  # bytes missing from it: its CRC failed, and it says so
            expect_error(frame, ErrorCode.BAD_CRC, MessageType.ECHO)
            lost += 1
        else:
            assert frame == Frame(MessageType.ECHO | 0x80, seq, payload)
    overruns = (link.stats().rx_overruns or 0) - overruns_before
    assert (overruns > 0) == (lost > 0), f"{lost} frames lost, {overruns} overruns counted"
    if board.info.rx_ring_bytes == 0:
        assert lost == 0
