"""Just enough of the GDB remote serial protocol to redirect a running QEMU
guest: stop it, set a register, let it go. Used to make the firmware fault on
purpose (QEMU 7.2 has no `nmi` for mps2-an500)."""

from __future__ import annotations

import socket

SP = 13  # register numbers in gdb's ARM layout
PC = 15


class GdbRemote:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
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
