"""Serial protocol framing (unchanged in v2) in pure Python (docs/protocol.md).

CRCs, frame encoding, and `FrameDecoder`, a receiver with exactly the rules of
the firmware's firmware/protocol/frame_rx.c: hunt for the sync bytes, check the
header CRC and on a mismatch resume hunting from the byte after the first sync
byte, refuse a length beyond the maximum, then check the payload CRC.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

SYNC0 = 0xA5
SYNC1 = 0x5A
SYNC = bytes((SYNC0, SYNC1))
HEADER_BYTES = 10  # sync, sync, type, seq, len (u32), hcrc (u16)
TRAILER_BYTES = 4  # pcrc (u32)
_HEADER_FIELDS = struct.Struct("<BBI")


def _crc16_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16_TABLE = _crc16_table()


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16_TABLE[(crc >> 8) ^ byte]
    return crc


def crc32_iso_hdlc(data: bytes) -> int:
    """CRC-32/ISO-HDLC, the zlib CRC."""
    return zlib.crc32(data) & 0xFFFFFFFF


def encode_header(type_: int, seq: int, length: int) -> bytes:
    fields = _HEADER_FIELDS.pack(type_, seq, length)
    return SYNC + fields + struct.pack("<H", crc16_ccitt_false(fields))


def encode_frame(type_: int, seq: int, payload: bytes = b"") -> bytes:
    """One complete frame: header, payload, payload CRC."""
    header = encode_header(type_, seq, len(payload))
    pcrc = zlib.crc32(payload, zlib.crc32(header[2:8])) & 0xFFFFFFFF
    return header + bytes(payload) + struct.pack("<I", pcrc)


@dataclass(frozen=True)
class Frame:
    """A frame whose header and payload CRCs both matched."""

    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class BadCrc:
    """A frame with a good header whose payload CRC did not match."""

    type: int
    seq: int
    length: int


@dataclass(frozen=True)
class TooLarge:
    """A good header announcing more than the decoder's maximum payload."""

    type: int
    seq: int
    length: int


Event = Frame | BadCrc | TooLarge

_HUNT, _SYNC, _HEADER, _PAYLOAD, _TRAILER = range(5)


class FrameDecoder:
    """Turns a byte stream into frames, skipping garbage between them."""

    def __init__(self, max_payload: int = 1 << 24) -> None:
        self.max_payload = max_payload
        self.reset()

    def reset(self) -> None:
        """Drops any partial frame."""
        self._state = _HUNT
        self._buf = bytearray()
        self._type = self._seq = self._length = 0

    @property
    def busy(self) -> bool:
        """True between a good header and the end of its frame."""
        return self._state in (_PAYLOAD, _TRAILER)

    def feed(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        i, n = 0, len(data)
        while i < n:
            state = self._state
            if state == _HUNT:
                j = data.find(SYNC0, i)
                if j < 0:
                    break
                self._buf = bytearray((SYNC0,))
                self._state = _SYNC
                i = j + 1
            elif state == _SYNC:
                byte = data[i]
                i += 1
                if byte == SYNC1:
                    self._buf.append(byte)
                    self._state = _HEADER
                elif byte != SYNC0:
                    self._state = _HUNT
            elif state == _HEADER:
                take = min(HEADER_BYTES - len(self._buf), n - i)
                self._buf += data[i : i + take]
                i += take
                if len(self._buf) == HEADER_BYTES:
                    event = self._header_complete()
                    if event is not None:
                        events.append(event)
            elif state == _PAYLOAD:
                take = min(self._length - len(self._buf), n - i)
                self._buf += data[i : i + take]
                i += take
                if len(self._buf) == self._length:
                    self._payload = bytes(self._buf)
                    self._buf = bytearray()
                    self._state = _TRAILER
            else:
                take = min(TRAILER_BYTES - len(self._buf), n - i)
                self._buf += data[i : i + take]
                i += take
                if len(self._buf) == TRAILER_BYTES:
                    events.append(self._frame_complete())
        return events

    def _header_complete(self) -> Event | None:
        header = bytes(self._buf)
        fields = header[2:8]
        if crc16_ccitt_false(fields) != struct.unpack_from("<H", header, 8)[0]:
            # Nine bytes cannot complete another header, so the replay yields nothing.
            self._state = _HUNT
            replayed = self.feed(header[1:])
            assert not replayed
            return None
        self._type, self._seq, self._length = _HEADER_FIELDS.unpack(fields)
        if self._length > self.max_payload:
            self._state = _HUNT
            return TooLarge(self._type, self._seq, self._length)
        self._crc = zlib.crc32(fields)
        self._payload = b""
        self._buf = bytearray()
        self._state = _PAYLOAD if self._length else _TRAILER
        return None

    def _frame_complete(self) -> Event:
        (pcrc,) = struct.unpack("<I", self._buf)
        self._state = _HUNT
        self._buf = bytearray()
        if zlib.crc32(self._payload, self._crc) & 0xFFFFFFFF != pcrc:
            return BadCrc(self._type, self._seq, self._length)
        return Frame(self._type, self._seq, self._payload)
