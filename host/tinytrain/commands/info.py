"""tinytrain info: what a board reports (INFO and STATS) over the serial protocol."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from tinytrain.board.builds import firmware_elf
from tinytrain.board.elf_memory import static_memory
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.link import DEFAULT_BAUDRATE, DEFAULT_TIMEOUT, Link
from tinytrain.board.messages import BoardInfo, BoardStats

COUNTER_UNITS = {0: "instructions", 1: "cycles", 2: "ns"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="print what a board reports (INFO, STATS)",
        description="Ask a board running the tinytrain firmware for INFO and STATS and print them. "
        "Give --port for a running board, or --emulate to boot the qemu_m7 image in QEMU for the occasion.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="URL", help="serial line: /dev/ttyACM0, socket://127.0.0.1:PORT, ...")
    where.add_argument("--emulate", action="store_true", help="boot the firmware image in QEMU and ask it")
    p.add_argument("--elf", type=Path, help="firmware image (default for --emulate: .pio/build/qemu_m7/firmware.elf); "
                   "its static sections are compared with what the board reports")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE,
                   help=f"baud rate of a real serial port (default {DEFAULT_BAUDRATE}, the DISCO firmware's)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for each reply")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.emulate:
        elf = args.elf or firmware_elf("qemu_m7")
        with QemuBoard(elf) as qemu:
            return report(qemu.url, args, elf)
    return report(args.port, args, args.elf)


def report(url: str, args: argparse.Namespace, elf: Path | None) -> int:
    with Link(url, timeout=args.timeout, baudrate=args.baud) as link:
        info = link.wait_ready(timeout=10.0) if args.emulate else link.info()
        stats = link.stats()
    elf_static = static_memory(elf).static_bytes if elf is not None else None
    if args.json:
        out: dict[str, object] = {"url": url, "info": asdict(info), "stats": asdict(stats)}
        if elf_static is not None:
            out["elf_static_bytes"] = elf_static
        print(json.dumps(out, indent=2))
    else:
        print(format_report(url, info, stats, elf_static))
    return 0


def format_report(url: str, info: BoardInfo, stats: BoardStats, elf_static: int | None = None) -> str:
    kb = 1024
    unit = COUNTER_UNITS.get(int(info.counter_kind), "units")
    clock = f"{info.clock_hz / 1e6:g} MHz" if info.clock_hz else "n/a"
    lines = [
        f"board {info.board} at {url}",
        "INFO",
        f"  firmware        {info.firmware_version} (build {info.build_id})",
        f"  protocol        v{info.protocol_version}, max payload {info.max_payload} bytes",
        f"  clock           {clock}, counter in {unit}",
        f"  memory          RAM {info.ram_bytes // kb} KB, flash {info.flash_bytes // kb} KB",
        f"  receive ring    {f'{info.rx_ring_bytes} bytes (streamed samples paced by CREDIT)' if info.rx_ring_bytes else 'none (the line waits)'}",
        "STATS",
        f"  .data           {stats.data_bytes} bytes",
        f"  .bss            {stats.bss_bytes} bytes",
        f"  stack           {stats.stack_used_bytes} of {stats.stack_reserved_bytes} bytes used (high-water mark)",
        f"  peak SRAM       {stats.peak_sram_bytes} bytes "
        f"({100.0 * stats.peak_sram_bytes / info.ram_bytes:.1f}% of {info.ram_bytes // kb} KB; a high-water mark "
        f"since boot: the training peak only once a TRAIN step has run)",
        f"  last count      {stats.last_count} {unit}",
    ]
    if stats.rx_overruns is not None:
        lines.append(f"  rx overruns     {stats.rx_overruns} bytes lost to a full receive ring since boot")
    if elf_static is not None:
        verdict = "matches" if elf_static == stats.static_bytes else "DIFFERS FROM"
        lines.append(f"  .data + .bss    {stats.static_bytes} bytes, {verdict} the ELF ({elf_static} bytes)")
    return "\n".join(lines)
