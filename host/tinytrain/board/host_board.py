"""The firmware's host build as a process: a TCP "serial line" and its sanitizer output."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

from tinytrain.errors import TinytrainError

POWER_CUT_STATUS = 86  # exit status of a host build whose simulated power cut (TT_HOST_NV_CUT_AFTER) hit


class HostBoard:
    """Runs build/host/.../tinytrain_host on a free port; `with HostBoard(exe) as b: Link(b.url)`.

    port: 0 picks a free port; another, that one (a restarted board keeps its address anyway). nv: the
    file of its non-volatile storage (checkpoints), kept across restarts (None: RAM, lost when it stops).
    env: extra environment, e.g. TT_HOST_NV_CUT_AFTER for a power cut during a flash write."""

    def __init__(self, exe: Path, port: int = 0, nv: str | os.PathLike[str] | None = None,
                 env: dict[str, str] | None = None):
        self.exe = exe
        self.port = port
        self.nv = Path(nv) if nv is not None else None
        self.env = dict(env or {})
        self.url = ""
        self._lines: list[str] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> "HostBoard":
        args = [str(self.exe), str(self.port)] + ([str(self.nv)] if self.nv is not None else [])
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      env=dict(os.environ, **self.env))
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        match = re.search(r"socket://\S+:(\d+)", line)
        if not match:
            self._proc.kill()
            raise TinytrainError(f"the host build {self.exe} did not report its port ({line.strip()!r}).")
        self.url = match.group(0)
        self.port = int(match.group(1))
        self._reader = threading.Thread(target=self._drain, args=(self._proc,), daemon=True)
        self._reader.start()
        return self

    def __enter__(self) -> "HostBoard":
        return self.start()

    def _drain(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self._lines)

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def wait(self, timeout: float) -> int:
        """Waits for the process to end on its own (a simulated power cut); its exit status."""
        assert self._proc is not None
        return self._proc.wait(timeout)

    def kill(self) -> None:
        """Pulls the plug (SIGKILL)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)

    def restart(self, env: dict[str, str] | None = None) -> "HostBoard":
        """Kills the process and starts it again on the same port with the same non-volatile file."""
        self.kill()
        if env is not None:
            self.env = dict(env)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
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
