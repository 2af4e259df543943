"""A serial line that misbehaves on purpose, between a Link and a board's TCP port (the host build
or QEMU): it forwards whole frames both ways and, when told, flips a bit in a request, swallows a
request or a reply, sends a request or a reply twice, cuts the line, or reconnects to another board
(a reset in between)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

from tinytrain.board.framing import Frame, FrameDecoder, encode_frame


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("socket://").rsplit(":", 1)
    return host, int(port)


@dataclass
class Fault:
    kind: str  # corrupt | drop_request | drop_reply | duplicate_request | duplicate_reply | cut
    type: int  # request type (replies: the request's type)
    nth: int  # 1 = the first frame of that type from now on
    seen: int = 0
    done: bool = False


@dataclass
class FlakyLine:
    board_url: str
    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._server.getsockname()[1]}"
        self._lock = threading.Lock()
        self._client: socket.socket | None = None
        self._upstream: socket.socket | None = None
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    # ------------------------------------------------------------------ control

    def add(self, kind: str, type_: int, nth: int = 1) -> Fault:
        fault = Fault(kind, type_, nth)
        with self._lock:
            self.faults.append(fault)
        return fault

    def reconnect(self, board_url: str) -> None:
        """From now on the frames go to another board (the first one was 'reset')."""
        with self._lock:
            self.board_url = board_url
            old, self._upstream = self._upstream, socket.create_connection(_address(board_url))
        if old is not None:
            try:
                old.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            old.close()
        threading.Thread(target=self._pump_up, args=(self._upstream,), daemon=True).start()

    def close(self) -> None:
        """The line dies: both ends see the connection closed at once (shutdown wakes blocked reads)."""
        self._stop = True
        for s in (self._client, self._upstream, self._server):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    # ------------------------------------------------------------------ plumbing

    def _match(self, kind: str, frame: Frame) -> bool:
        reply = kind in ("drop_reply", "duplicate_reply")
        type_ = frame.type & 0x7F if reply else frame.type
        if reply and not frame.type & 0x80:
            return False
        with self._lock:
            for f in self.faults:
                if f.kind == kind and f.type == type_ and not f.done:
                    f.seen += 1
                    if f.seen == f.nth:
                        f.done = True
                        self.log.append(f"{kind} 0x{frame.type:02X} seq {frame.seq}")
                        return True
        return False

    def _accept(self) -> None:
        try:
            self._client, _ = self._server.accept()
        except OSError:
            return
        self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reconnect(self.board_url)
        decoder = FrameDecoder()
        while not self._stop:
            try:
                data = self._client.recv(65536)
            except OSError:
                return
            if not data:
                return
            for frame in decoder.feed(data):
                if not isinstance(frame, Frame):
                    continue
                out = encode_frame(frame.type, frame.seq, frame.payload)
                if self._match("cut", frame):
                    self.close()
                    return
                if self._match("drop_request", frame):
                    continue
                if self._match("corrupt", frame):
                    out = bytearray(out)
                    out[10 + len(frame.payload) // 2] ^= 0x20  # a payload bit: the frame gets BAD_CRC
                    out = bytes(out)
                if self._match("duplicate_request", frame):
                    out = out + out
                try:
                    assert self._upstream is not None
                    self._upstream.sendall(out)
                except OSError:
                    pass

    def _pump_up(self, upstream: socket.socket) -> None:
        decoder = FrameDecoder()
        while not self._stop:
            try:
                data = upstream.recv(65536)
            except OSError:
                return
            if not data:
                return
            for frame in decoder.feed(data):
                if not isinstance(frame, Frame) or self._match("drop_reply", frame):
                    continue
                out = encode_frame(frame.type, frame.seq, frame.payload)
                if self._match("duplicate_reply", frame):
                    out = out + out
                try:
                    assert self._client is not None
                    self._client.sendall(out)
                except OSError:
                    return
