"""The firmware's host build as a process: a TCP "serial line" and its sanitizer output."""

from __future__ import annotations

import re
import subprocess
import threading
from pathlib import Path

from tinytrain.errors import TinytrainError


class HostBoard:
    """Runs build/host/.../tinytrain_host on a free port; `with HostBoard(exe) as b: Link(b.url)`."""

    def __init__(self, exe: Path, port: int = 0):
        self.exe = exe
        self.port = port  # 0: a free port; another: that one (a restarted board keeps its address)
        self.url = ""
        self._lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "HostBoard":
        self._proc = subprocess.Popen([str(self.exe), str(self.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = re.search(r"socket://\S+", line)
        if not match:
            self._proc.kill()
            raise TinytrainError(f"the host build {self.exe} did not report its port ({line.strip()!r}).")
        self.url = match.group(0)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        return self

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def sanitizer_report(self) -> str | None:
        """The sanitizer's or the arena checker's complaint, if the process printed one."""
        out = self.output
        for marker in ("runtime error", "Sanitizer", "tt_check:"):
            if marker in out:
                return out
        return None
