"""Runs the qemu_m7 firmware image in QEMU with its UART on a local TCP port.

    with QemuBoard(elf) as qemu:           # boots, waits until the port accepts
        with Link(qemu.url) as link:       # socket://127.0.0.1:PORT
            link.info()
    # QEMU is stopped here; its output stays in qemu.log_path

`-icount shift=0` makes the virtual clock advance exactly 1 ns per instruction,
so the SysTick-based counter of boards/mps2_an500 counts instructions.

Checkpoints survive a restart of QEMU when it is given a non-volatile file
(`QemuBoard(elf, nv="board.nv")`, created erased when missing): QEMU preloads it
at the image's checkpoint sectors, and the firmware writes every program unit
and erase chunk through to it with Arm semihosting (boards/mps2_an500), so a
QEMU killed at any instruction leaves the file as a power cut leaves flash.
Without a file the sectors start erased and are lost when QEMU stops.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from tinytrain.errors import TinytrainError

QEMU_BINARY = "qemu-system-arm"
QEMU_MACHINE = "mps2-an500"
HOST = "127.0.0.1"
# boards/mps2_an500: a word in ZBT SSRAM1, above the 1 MB of flash, that tells the firmware semihosting is
# on and its command line names the non-volatile file.
NV_MAILBOX = 0x003FFFF0
NV_MAILBOX_MAGIC = 0x564E5454


_NV_REGIONS: dict[tuple[str, int, int], tuple[int, int]] = {}


def nv_region(elf: str | os.PathLike[str]) -> tuple[int, int]:
    """(address, bytes) of an image's checkpoint sectors (bytes 0: built without checkpoints)."""
    from tinytrain.board.elf_memory import symbol_values

    st = os.stat(elf)
    key = (str(Path(elf).resolve()), st.st_mtime_ns, st.st_size)
    if key not in _NV_REGIONS:  # reading a symbol table takes a while; restarts of one image read it once
        found = symbol_values(elf, ["__nv_start__", "__tt_nv_bytes__"])
        start, size = found.get("__nv_start__"), found.get("__tt_nv_bytes__")
        _NV_REGIONS[key] = (start, size) if start is not None and size is not None else (0, 0)
    return _NV_REGIONS[key]


def prepare_nv_file(path: str | os.PathLike[str], size: int) -> Path:
    """The non-volatile file of a board: created erased (0xFF) when missing; one of another size refused."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff" * size)
    elif path.stat().st_size != size:
        raise EmulatorError(f"{path} has {path.stat().st_size} bytes, not the {size} of this image's checkpoint "
                            "sectors; give another file or delete it.")
    return path


def _die_with_parent() -> None:
    """Runs in the QEMU child: Linux stops it when the launching process dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class EmulatorError(TinytrainError):
    """QEMU is missing, could not start, or died."""


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class QemuBoard:
    """One QEMU process running one firmware image; a context manager."""

    def __init__(
        self,
        elf: str | os.PathLike[str],
        *,
        port: int = 0,
        log_path: str | os.PathLike[str] | None = None,
        monitor: bool = False,
        gdb: bool = False,
        startup_timeout: float = 10.0,
        qemu: str = QEMU_BINARY,
        nv: str | os.PathLike[str] | None = None,
    ) -> None:
        self.elf = Path(elf)
        self.nv_path = Path(nv) if nv is not None else None  # None: a temporary file, gone with QEMU
        self.nv_address = self.nv_bytes = 0
        self.requested_port = port
        self.port = port
        self.log_path = Path(log_path) if log_path else None
        self.monitor = monitor
        self.gdb = gdb
        self.gdb_port = 0
        self.startup_timeout = startup_timeout
        self.qemu = qemu
        self.process: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._monitor_path: Path | None = None

    @property
    def url(self) -> str:
        """The pyserial URL of the board's serial line."""
        return f"socket://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command_line(self) -> list[str]:
        cmd = [
            self.qemu,
            "-M", QEMU_MACHINE,
            "-nographic",
            "-icount", "shift=0",
            "-kernel", str(self.elf),
            # nodelay: QEMU writes the UART byte by byte; Nagle would hold replies back.
            "-serial", f"tcp:{HOST}:{self.port},server=on,wait=off,nodelay=on",
            "-d", "guest_errors,unimp",
        ]
        if self.nv_bytes:
            nv = str(self.nv_path)
            cmd += [
                "-semihosting-config", f"enable=on,target=native,arg={nv}",
                "-device", f"loader,file={nv},addr=0x{self.nv_address:08x},force-raw=on",
                "-device", f"loader,addr=0x{NV_MAILBOX:08x},data=0x{NV_MAILBOX_MAGIC:08x},data-len=4",
            ]
        if self.gdb:
            # For gdb-multiarch: `target remote 127.0.0.1:GDB_PORT`.
            cmd += ["-gdb", f"tcp:{HOST}:{self.gdb_port}"]
        if self._monitor_path is not None:
            cmd += ["-monitor", f"unix:{self._monitor_path},server=on,wait=off"]
        else:
            cmd += ["-monitor", "none"]
        return cmd

    def start(self) -> QemuBoard:
        if not self.elf.is_file():
            raise EmulatorError(
                f"No firmware image at {self.elf}; build it with `.venv/bin/pio run -e qemu_m7`."
            )
        if shutil.which(self.qemu) is None:
            raise EmulatorError(f"{self.qemu} is not installed; run `make setup` (Debian package qemu-system-arm).")
        if self._tmpdir is None:  # a restart keeps it (and the temporary non-volatile file in it)
            self._tmpdir = tempfile.TemporaryDirectory(prefix="tinytrain-qemu-")
        if self.log_path is None:
            self.log_path = Path(self._tmpdir.name) / "qemu.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if self.monitor:
            self._monitor_path = Path(self._tmpdir.name) / "monitor.sock"
        self.nv_address, self.nv_bytes = nv_region(self.elf)
        if self.nv_bytes:
            if "," in str(self.nv_path or ""):
                raise EmulatorError(f"QEMU cannot take the file name {self.nv_path} (it has a comma).")
            self.nv_path = prepare_nv_file(self.nv_path or Path(self._tmpdir.name) / "board.nv", self.nv_bytes)
        # A port picked here may be taken before QEMU binds it: then try another.
        for attempt in range(3):
            self.port = self.requested_port or find_free_port()
            if self.gdb:
                self.gdb_port = find_free_port()
            if self._launch():
                return self
            if self.requested_port or "Address already in use" not in self.log_text():
                break
        tail = "\n".join(self.log_text().splitlines()[-10:])
        self.stop()
        raise EmulatorError(f"QEMU did not start serving {self.url}; its log ends with:\n{tail}")

    def _launch(self) -> bool:
        assert self.log_path is not None
        with open(self.log_path, "ab") as log:
            log.write(("$ " + " ".join(self.command_line()) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command_line(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # The death signal follows the thread that forks, not the process: a QEMU started from a
                # short-lived thread (a restart from a timer) would die with that thread.
                preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            # Not probing the gdb port: a gdb connection pauses the guest. QEMU opens
            # it before the serial port anyway.
            if port_accepts(self.port) and (self._monitor_path is None or self._monitor_path.exists()):
                return True
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        """Pulls the plug: SIGKILL, whatever the board was doing (a power cut)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> QemuBoard:
        """Kills QEMU and boots the same image on the same port with the same non-volatile file."""
        self.kill()
        self.requested_port = self.port
        return self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops QEMU (SIGTERM, then SIGKILL); the log file stays."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.log_path is not None and self._tmpdir is not None and self.log_path.is_relative_to(self._tmpdir.name):
            # Keep a default log readable after the temporary directory goes.
            kept = Path(tempfile.gettempdir()) / f"tinytrain-qemu-{self.port}.log"
            shutil.copyfile(self.log_path, kept)
            self.log_path = kept
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> QemuBoard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        """QEMU's own output (not the guest's serial line)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def monitor_command(self, command: str, timeout: float = 5.0) -> str:
        """Runs a QEMU human monitor command (needs monitor=True), e.g. "nmi"."""
        if self._monitor_path is None:
            raise EmulatorError("This QEMU was started without a monitor (monitor=True).")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self._monitor_path))
            _read_until_prompt(sock)
            sock.sendall(command.encode() + b"\n")
            return _read_until_prompt(sock)


def _read_until_prompt(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"(qemu) "):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
