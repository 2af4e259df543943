"""tinytrain emulate: run the qemu_m7 firmware image in QEMU until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from tinytrain.board.builds import firmware_elf
from tinytrain.board.emulator import EmulatorError, QemuBoard


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "emulate",
        help="boot the firmware in QEMU and serve its serial line on a local TCP port",
        description="Boot a firmware image in QEMU (mps2-an500, Cortex-M7, -icount shift=0) and serve its UART "
        "as socket://127.0.0.1:PORT for `tinytrain info --port`, the HIL tests and other commands. "
        "Runs until Ctrl-C.",
    )
    p.add_argument("--elf", type=Path, help="firmware image (default: .pio/build/qemu_m7/firmware.elf)")
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--log", type=Path, help="file for QEMU's own output (default: a temporary file)")
    p.add_argument("--nv", type=Path, metavar="FILE",
                   help="the board's checkpoint flash, kept in FILE across runs (created erased when missing; "
                        "default: a temporary file, gone when QEMU stops)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
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
