"""Just enough of the GDB remote serial protocol to steer a running QEMU guest:
stop it, read and set registers and memory, set breakpoints, step, let it go.
Used to make the firmware fault on purpose (QEMU 7.2 has no `nmi` for
mps2-an500) and to cut the power at chosen points of a flash write."""

from __future__ import annotations

import select
import socket

SP = 13  # register numbers in gdb's ARM layout
PC = 15


class GdbRemote:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        # Packets and acks are tiny: without this, Nagle and delayed ACKs add 40 ms to every exchange.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def _recv_byte(self) -> int:
        if not self.buf:
            self.buf = self.sock.recv(4096)
            if not self.buf:
                raise ConnectionError("QEMU closed the gdb connection")
        byte, self.buf = self.buf[0], self.buf[1:]
        return byte

    def _packet(self) -> str:
        while self._recv_byte() != ord("$"):
            pass
        data = bytearray()
        while (byte := self._recv_byte()) != ord("#"):
            data.append(byte)
        self._recv_byte()
        self._recv_byte()
        self.sock.sendall(b"+")
        return data.decode()

    def command(self, data: str) -> str:
        checksum = sum(data.encode()) % 256
        self.sock.sendall(f"${data}#{checksum:02x}".encode())
        return self._packet()

    def interrupt(self) -> str:
        self.sock.sendall(b"\x03")
        return self._packet()

    def set_register(self, number: int, value: int) -> None:
        # QEMU accepts single-register writes only from a client that read its
        # target description first.
        self.command("qXfer:features:read:target.xml:0,fff")
        reply = self.command(f"P{number:x}={value.to_bytes(4, 'little').hex()}")
        if reply != "OK":
            raise RuntimeError(f"gdb stub refused to set register {number}: {reply!r}")

    def detach(self) -> None:
        self.command("D")

    def read_register(self, number: int) -> int:
        self.command("qXfer:features:read:target.xml:0,fff")
        return int.from_bytes(bytes.fromhex(self.command(f"p{number:x}")), "little")

    def write_memory(self, address: int, data: bytes) -> None:
        reply = self.command(f"M{address:x},{len(data):x}:{data.hex()}")
        if reply != "OK":
            raise RuntimeError(f"gdb stub refused to write memory at 0x{address:x}: {reply!r}")

    def read_memory(self, address: int, length: int) -> bytes:
        out = b""
        while len(out) < length:
            n = min(1024, length - len(out))
            out += bytes.fromhex(self.command(f"m{address + len(out):x},{n:x}"))
        return out

    def set_breakpoint(self, address: int, on: bool = True) -> None:
        reply = self.command(f"{'Z' if on else 'z'}0,{address & ~1:x},2")
        if reply != "OK":
            raise RuntimeError(f"gdb stub refused the breakpoint at 0x{address:x}: {reply!r}")

    def resume(self) -> None:
        """Lets the guest run; its next stop comes from wait_stop()."""
        checksum = sum(b"c") % 256
        self.sock.sendall(f"$c#{checksum:02x}".encode())

    def wait_stop(self, timeout: float) -> str | None:
        """The stop reply after resume() (a breakpoint), or None if the guest is still running."""
        while b"$" not in self.buf:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return None
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("QEMU closed the gdb connection")
            self.buf += chunk
        return self._packet()

    def step(self) -> str:
        return self.command("s")
