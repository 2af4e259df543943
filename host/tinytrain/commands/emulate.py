"""tinytrain emulate: run the qemu_m7 firmware image in QEMU until Ctrl-C, or in the background
(--daemon, stopped by --stop)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tinytrain.board.builds import firmware_elf, project_root
from tinytrain.board.emulator import EmulatorError, QemuBoard, find_free_port, port_accepts
from tinytrain.errors import TinytrainError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="boot the firmware in QEMU and serve its serial line on a local TCP port",
        description="Boot a firmware image in QEMU (mps2-an500, Cortex-M7, -icount shift=0) and serve its UART "
        "as socket://127.0.0.1:PORT for `tinytrain info --port`, the HIL tests and other commands. "
        "Runs until Ctrl-C; with --daemon it runs in the background: the command prints the URL and "
        "exits, and `tinytrain emulate --stop` ends it.",
    )
    p.add_argument("--elf", type=Path, help="firmware image (default: .pio/build/qemu_m7/firmware.elf)")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--log", type=Path, help="file for QEMU's own output (default: a temporary file)")
    p.add_argument("--nv", type=Path, metavar="FILE",
                   help="the board's checkpoint flash, kept in FILE across runs (created erased when missing; "
                        "default: a temporary file, gone when QEMU stops)")
    p.add_argument("--daemon", action="store_true", help="run in the background; print the URL and exit")
    p.add_argument("--stop", nargs="?", const="all", metavar="PORT",
                   help="stop the background emulator on PORT (default: every one this checkout started)")
    p.set_defaults(func=run)


def daemons_dir() -> Path:
    return project_root() / "build" / "emulators"


def start_daemon(args: argparse.Namespace) -> int:
    elf = args.elf or firmware_elf("qemu_m7")
    if not Path(elf).is_file():
        raise EmulatorError(f"No firmware image at {elf}; build it with `.venv/bin/pio run -e qemu_m7`.")
    port = args.port or find_free_port()
    folder = daemons_dir()
    folder.mkdir(parents=True, exist_ok=True)
    log = args.log or folder / f"{port}.log"
    cmd = [sys.executable, "-m", "tinytrain", "emulate", "--elf", str(elf), "--port", str(port), "--log", str(log)]
    if args.nv is not None:
        cmd += ["--nv", str(Path(args.nv).resolve())]
    with open(folder / f"{port}.out", "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 20
    while not port_accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.terminate()
            raise EmulatorError(f"the emulator did not start serving port {port}; see {folder / f'{port}.out'}.")
        time.sleep(0.05)
    (folder / f"{port}.json").write_text(json.dumps({"pid": proc.pid, "port": port, "elf": str(elf), "log": str(log)}))
    print(f"socket://127.0.0.1:{port}")
    return 0


def stop_daemons(which: str) -> int:
    folder = daemons_dir()
    records = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if which != "all":
        records = [r for r in records if r.stem == which]
        if not records:
            raise TinytrainError(f"no background emulator of this checkout serves port {which}.")
    for r in records:
        pid = json.loads(r.read_text())["pid"]
        try:
            os.kill(pid, signal.SIGTERM)  # the emulate process stops QEMU on its way out
            print(f"stopped the emulator on port {r.stem}")
        except ProcessLookupError:
            print(f"the emulator on port {r.stem} had already stopped")
        r.unlink()
    if not records:
        print("no background emulator was running")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.stop:
        return stop_daemons(args.stop)
    if args.daemon:
        return start_daemon(args)
    # A plain kill must also stop QEMU (through the context manager below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    elf = args.elf or firmware_elf("qemu_m7")
    qemu = QemuBoard(elf, port=args.port, log_path=args.log, nv=args.nv)
    with qemu:
        print(f"QEMU runs {elf}; serial line at {qemu.url}", flush=True)
        print(f"QEMU log: {qemu.log_path}; Ctrl-C stops it.", flush=True)
        if args.nv is not None:
            print(f"checkpoint flash: {qemu.nv_path}", flush=True)
        try:
            assert qemu.process is not None
            code = qemu.process.wait()
        except KeyboardInterrupt:
            print("stopping QEMU", flush=True)
            return 0
    raise EmulatorError(f"QEMU exited on its own (status {code}); see {qemu.log_path}.")
