"""Message types and reply payloads of serial protocol v3 (docs/protocol.md)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from tinytrain.errors import TinytrainError

REPLY = 0x80
PROTOCOL_VERSION = 3  # what this host speaks (INFO protocol_version)


class MessageType(IntEnum):
    INFO = 0x01
    ECHO = 0x02
    STATS = 0x03
    CALIBRATE = 0x04
    MODEL = 0x10
    TRAIN = 0x11
    INFER = 0x12
    PARAMS_GET = 0x13
    PARAMS_SET = 0x14
    PROFILE = 0x15
    CHECKPOINT = 0x16
    CREDIT = 0xFD
    FAULT = 0xFE
    ERROR = 0xFF


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_LENGTH = 2
    UNKNOWN_TYPE = 3
    TOO_LARGE = 4
    BAD_ARGUMENT = 5
    BAD_STATE = 6


class CounterKind(IntEnum):
    INSTRUCTIONS = 0
    CYCLES = 1
    NANOSECONDS = 2


def type_name(type_: int) -> str:
    """Name of a request type for messages, e.g. `INFO` or `0x17`."""
    try:
        return MessageType(type_).name
    except ValueError:
        return f"0x{type_:02X}"


class MalformedReply(TinytrainError):
    """A reply whose payload does not have the layout its type requires."""


def _counter_kind(value: int) -> CounterKind:
    try:
        return CounterKind(value)
    except ValueError:
        raise MalformedReply(f"The board reported an unknown counter kind {value}.") from None


class _Reader:
    def __init__(self, what: str, payload: bytes) -> None:
        self.what, self.payload, self.pos = what, payload, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.payload):
            raise MalformedReply(f"The board sent a truncated {self.what} ({len(self.payload)} bytes).")
        chunk = self.payload[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self._take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (n,) = self.unpack("B")
        return self._take(n).decode("utf-8", errors="replace")

    def end(self) -> None:
        if self.pos != len(self.payload):
            raise MalformedReply(
                f"The board sent {len(self.payload) - self.pos} unexpected extra bytes in {self.what}."
            )


@dataclass(frozen=True)
class BoardInfo:
    protocol_version: int
    counter_kind: CounterKind
    max_payload: int
    ram_bytes: int
    flash_bytes: int
    clock_hz: int
    firmware_version: str
    board: str
    build_id: str
    rx_ring_bytes: int = 0  # v2: receive ring that overflows if the host sends too far ahead; 0: flow-controlled

    @classmethod
    def parse(cls, payload: bytes) -> BoardInfo:
        r = _Reader("INFO reply", payload)
        version, kind, ring, max_payload, ram, flash, clock = r.unpack("BBHIIII")
        info = cls(version, _counter_kind(kind), max_payload, ram, flash, clock, r.string(), r.string(), r.string(),
                   ring if version >= 2 else 0)
        r.end()
        return info


@dataclass(frozen=True)
class BoardStats:
    data_bytes: int
    bss_bytes: int
    stack_reserved_bytes: int
    stack_used_bytes: int
    peak_sram_bytes: int
    last_count: int
    counter_kind: CounterKind
    rx_overruns: int | None = None  # v2: received bytes lost to a full receive ring since boot

    @property
    def static_bytes(self) -> int:
        """.data + .bss, the part an ELF file can confirm."""
        return self.data_bytes + self.bss_bytes

    @classmethod
    def parse(cls, payload: bytes) -> BoardStats:
        r = _Reader("STATS reply", payload)
        data, bss, reserved, used, peak, last, kind = r.unpack("IIIIIQB")
        overruns = r.unpack("I")[0] if len(payload) > r.pos else None  # v1 boards do not count them
        r.end()
        return cls(data, bss, reserved, used, peak, last, _counter_kind(kind), overruns)


@dataclass(frozen=True)
class CalibrateResult:
    count: int
    instructions_per_iteration: int  # 0 where the loop length is unknown (host build)

    @classmethod
    def parse(cls, payload: bytes) -> CalibrateResult:
        r = _Reader("CALIBRATE reply", payload)
        count, per_iteration = r.unpack("QI")
        r.end()
        return cls(count, per_iteration)


@dataclass(frozen=True)
class ErrorReply:
    code: int
    request_type: int
    detail: int
    message: str

    @property
    def code_name(self) -> str:
        try:
            return ErrorCode(self.code).name
        except ValueError:
            return f"error {self.code}"

    @classmethod
    def parse(cls, payload: bytes) -> ErrorReply:
        r = _Reader("ERROR reply", payload)
        code, request_type, detail = r.unpack("BBI")
        reply = cls(code, request_type, detail, r.string())
        r.end()
        return reply


@dataclass(frozen=True)
class FaultReport:
    pc: int
    lr: int
    psr: int
    cfsr: int
    hfsr: int
    mmfar: int
    bfar: int
    sp: int

    @classmethod
    def parse(cls, payload: bytes) -> FaultReport:
        r = _Reader("FAULT frame", payload)
        report = cls(*r.unpack("8I"))
        r.end()
        return report

    def describe(self) -> str:
        return ", ".join(f"{name}=0x{value:08x}" for name, value in vars(self).items())
