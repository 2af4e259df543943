"""Host side of serial protocol v3: one request frame, one reply frame.

    with Link("socket://127.0.0.1:4321") as link:   # QEMU or the host build
        print(link.info(), link.stats())
    Link("/dev/ttyACM0")                             # the STM32F746G-DISCO

Requests get a fresh seq on every try, so a late reply to an earlier try is
recognised by its stale seq and ignored. Only requests without side effects are
retried after a timeout (docs/protocol.md, "Limits and timing"); any request the
board refused with BAD_CRC (it changed nothing) is sent again. A streamed frame
to a board with a receive ring is sent only as far as the board's CREDIT frames
allow, so the ring never overflows; after a timeout, a frame larger than the
ring waits until the board answers again (it may still be busy with the last one).
"""

from __future__ import annotations

import socket
import struct
import time
from collections import deque

import serial

from tinytrain.errors import TinytrainError
from tinytrain.board.framing import BadCrc, Event, Frame, FrameDecoder, TooLarge, encode_frame
from tinytrain.board.messages import (
    REPLY,
    BoardInfo,
    ErrorCode,
    BoardStats,
    CalibrateResult,
    ErrorReply,
    FaultReport,
    MessageType,
    type_name,
)

DEFAULT_TIMEOUT = 2.0
DEFAULT_RETRIES = 2
# The serial rate of a real port: the STM32F746G-DISCO firmware's TT_UART_BAUD (platformio.ini; the
# ST-LINK V2-1 virtual COM port carries it; host/tests/test_stm32f746_clock.py checks they agree).
DEFAULT_BAUDRATE = 921600
CRC_RESENDS = 3  # BAD_CRC replies answered by sending the same request again, per request

# Request types that may be sent again after a timeout. The training engine adds
# MODEL, INFER and PARAMS_GET here when it defines them.
SIDE_EFFECT_FREE: set[int] = {MessageType.INFO, MessageType.ECHO, MessageType.STATS, MessageType.CALIBRATE,
                               MessageType.MODEL, MessageType.INFER, MessageType.PARAMS_GET, MessageType.PROFILE}


class LinkError(TinytrainError):
    """The serial line or the board did not behave as the protocol requires."""


class BoardNotAnswering(LinkError):
    """No reply within the timeout, after every allowed try."""


class BoardErrorReply(LinkError):
    """The board refused a request with an ERROR reply (and changed nothing)."""

    def __init__(self, url: str, reply: ErrorReply) -> None:
        self.reply = reply
        super().__init__(
            f"The board at {url} refused {type_name(reply.request_type)} with "
            f"{reply.code_name} (detail {reply.detail}): {reply.message}."
        )


class BoardFault(LinkError):
    """The board sent a FAULT frame: it crashed and has halted."""

    def __init__(self, url: str, fault: FaultReport) -> None:
        self.fault = fault
        super().__init__(f"The board at {url} crashed and halted ({fault.describe()}); reset it.")


class Link:
    """A connection to a board running the tinytrain firmware."""

    def __init__(
        self, url: str, *, timeout: float = DEFAULT_TIMEOUT, baudrate: int = DEFAULT_BAUDRATE
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.baudrate = baudrate
        self.frames_dropped = 0  # corrupted or stale frames seen and ignored
        self.crc_resends = 0  # requests sent again after a BAD_CRC reply
        self.credits = 0  # CREDIT frames that let a streamed frame go on
        self.replies = 0  # good replies received: the board has answered on this link
        self.bytes_sent = 0  # every byte written to the line, frames and raw bytes alike
        self.bytes_received = 0  # every byte read from it
        self.rx_ring_bytes: int | None = None  # from INFO; None until the board said
        self._port = self._open()
        self._decoder = FrameDecoder()
        self._events: deque[Event] = deque()  # decoded, not yet looked at
        self._seq = 0

    def _open(self) -> serial.SerialBase:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = str(exc).replace(f"Could not open port {self.url}: ", "")
            raise LinkError(f"Cannot open the serial line {self.url} ({reason}).") from None
        sock = getattr(port, "_socket", None)
        if isinstance(sock, socket.socket):
            # Small frames back to back must not wait for delayed ACKs (Nagle).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return port

    def reopen(self, timeout: float = 30.0) -> None:
        """Closes the line and opens it again, trying until `timeout` (a board that restarted: QEMU or the
        host build listen again only once they run, a USB serial port may come back under the same name).
        Whatever was received and not yet read is dropped."""
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._port = self._open()
                break
            except LinkError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        self._decoder = FrameDecoder()
        self._events.clear()

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_seq(self) -> int:
        """A fresh sequence number, 1..255 (0 is the FAULT frame's)."""
        self._seq = self._seq % 255 + 1
        return self._seq

    def send_raw(self, data: bytes) -> None:
        """Writes bytes as they are (tests use it for corrupted frames and garbage)."""
        try:
            self._port.write(data)
            self._port.flush()
            self.bytes_sent += len(data)
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"Writing to {self.url} failed: {exc}.") from None

    def _read_some(self, timeout: float) -> bytes:
        try:
            self._port.timeout = max(timeout, 0.0)
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            data = first + self._port.read(65536)
            self.bytes_received += len(data)
            return data
        except (serial.SerialException, OSError) as exc:
            raise LinkError(f"Reading from {self.url} failed: {exc}.") from None

    def receive(self, seq: int, timeout: float | None = None) -> Frame | None:
        """The next frame with this seq (replies and ERROR replies alike), or None
        on timeout. Raises BoardFault when the board reports a crash."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if not self._events:
                self._events.extend(self._decoder.feed(self._read_some(deadline - time.monotonic())))
            while self._events:
                event = self._events.popleft()
                if isinstance(event, (BadCrc, TooLarge)):
                    self.frames_dropped += 1
                elif event.type == MessageType.FAULT:
                    raise BoardFault(self.url, FaultReport.parse(event.payload))
                elif event.seq != seq:
                    self.frames_dropped += 1
                else:
                    return event
            if time.monotonic() >= deadline:
                return None

    def transfer_seconds(self, nbytes: int) -> float:
        """Time the line needs for nbytes at the configured baud rate (8N1: 10 bits a byte)."""
        return nbytes * 10.0 / max(self.baudrate, 1)

    def _exchange(self, frame: bytes, seq: int, timeout: float, credit: int) -> Frame | None:
        """Sends one frame and returns the frame with its seq that ends the exchange (a reply or an
        ERROR reply), or None on timeout. With credit (the board's receive ring), only that many
        bytes go out at first and the rest as the board's CREDIT frames allow."""
        sent = len(frame) if credit <= 0 else min(credit, len(frame))
        self.send_raw(frame[:sent])
        while True:
            reply = self.receive(seq, timeout)
            if reply is None or reply.type != MessageType.CREDIT:
                return reply
            if len(reply.payload) == 4:
                self.credits += 1
                (until,) = struct.unpack("<I", reply.payload)
                if until > sent:
                    self.send_raw(frame[sent:until])
                    sent = min(until, len(frame))

    def _wait_until_idle(self, timeout: float) -> None:
        """After a timeout the board may still be busy with the request that timed out; a frame
        larger than its receive ring sent now would overflow it. INFO fits; its answer means idle."""
        ring = self.rx_ring_bytes
        if ring == 0:
            return
        deadline = time.monotonic() + max(timeout, DEFAULT_TIMEOUT)
        while True:
            try:
                self.info(timeout=min(DEFAULT_TIMEOUT, max(deadline - time.monotonic(), 0.1)))
                return
            except BoardNotAnswering:
                if time.monotonic() >= deadline:
                    return  # the request itself will then time out with the right message

    def request(
        self, type_: int, payload: bytes = b"", timeout: float | None = None, retry: int | None = None,
        credit: int = 0,
    ) -> bytes:
        """Sends one request and returns its reply payload.

        retry: tries after a timeout; by default 2 for SIDE_EFFECT_FREE types, else 0.
        credit: the board's receive ring for a streamed request (send only as far as CREDIT allows).
        Raises BoardErrorReply, BoardFault or BoardNotAnswering.
        """
        timeout = self.timeout if timeout is None else timeout
        if retry is None:
            retry = DEFAULT_RETRIES if type_ in SIDE_EFFECT_FREE else 0
        timeouts = resends = 0
        while True:
            seq = self.next_seq()
            frame = encode_frame(type_, seq, payload)
            if timeouts and len(frame) > (self.rx_ring_bytes if self.rx_ring_bytes is not None else 256):
                self._wait_until_idle(timeout)
            reply = self._exchange(frame, seq, timeout, credit)
            if reply is None:
                timeouts += 1
                if timeouts > retry:
                    break
                continue
            if reply.type == MessageType.ERROR:
                error = ErrorReply.parse(reply.payload)
                if error.code == ErrorCode.BAD_CRC and resends < CRC_RESENDS:
                    # The frame was damaged on the way and the board changed nothing: always safe to resend.
                    resends += 1
                    self.crc_resends += 1
                    continue
                raise BoardErrorReply(self.url, error)
            if reply.type != type_ | REPLY:
                raise LinkError(
                    f"The board at {self.url} answered {type_name(type_)} with message type "
                    f"0x{reply.type:02X}; is it running matching firmware?"
                )
            self.replies += 1
            return reply.payload
        tries = f" ({retry + 1} tries)" if retry else ""
        if self.replies:
            raise BoardNotAnswering(
                f"The board at {self.url} answered earlier requests but not {type_name(type_)} within "
                f"{timeout:g} s{tries}: the frame or its reply was lost on the line, or the board hung or restarted."
            )
        raise BoardNotAnswering(
            f"The board at {self.url} did not answer {type_name(type_)} within {timeout:g} s{tries}; "
            "check that it is running the tinytrain firmware and that nothing else uses the port."
        )

    def info(self, timeout: float | None = None) -> BoardInfo:
        info = BoardInfo.parse(self.request(MessageType.INFO, timeout=timeout))
        self.rx_ring_bytes = info.rx_ring_bytes if info.protocol_version >= 2 else None
        return info

    def echo(self, data: bytes, timeout: float | None = None) -> bytes:
        return self.request(MessageType.ECHO, data, timeout=timeout)

    def stats(self, timeout: float | None = None) -> BoardStats:
        return BoardStats.parse(self.request(MessageType.STATS, timeout=timeout))

    def calibrate(self, iterations: int, timeout: float | None = None) -> CalibrateResult:
        """Times a loop of `iterations` x a known instruction count on the board."""
        payload = struct.pack("<I", iterations)
        return CalibrateResult.parse(self.request(MessageType.CALIBRATE, payload, timeout=timeout))

    def wait_ready(self, timeout: float = 10.0) -> BoardInfo:
        """Polls INFO until the board answers (it may still be booting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.info(timeout=min(0.5, max(deadline - time.monotonic(), 0.05)))
            except BoardNotAnswering:
                if time.monotonic() >= deadline:
                    raise BoardNotAnswering(
                        f"The board at {self.url} did not answer INFO within {timeout:g} s of starting."
                    ) from None
