"""A connection to a board running a model: the link, the engine client, and the build
configuration that produced its firmware (found by the model and program hashes the board
reports). Before anything is sent, the program the board runs is compared with the one the
build configuration compiles to today (compiler.program_hash): a board flashed from another
build, or a build made by another compiler version, is refused in one sentence instead of
showing up later as logits that differ from the reference."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tinytrain.board.builds import firmware_elf, project_root
from tinytrain.compile.build_config import BuildConfig, read_build_info
from tinytrain.compile.compiler import Compiled
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.errors import TinytrainError
from tinytrain.board.link import DEFAULT_BAUDRATE, Link
from tinytrain.reference.executor import NumpyBackend


def add_board_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="URL", help="serial line of a running board: /dev/ttyACM0, socket://HOST:PORT")
    where.add_argument("--emulate", action="store_true", help="boot the qemu_m7 image in QEMU for the occasion")
    p.add_argument("--build", type=Path, help="the firmware's build folder or its tinytrain.json "
                                              "(default: the .pio/build/* folder whose model the board runs)")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE,
                   help=f"baud rate of a real serial port (default {DEFAULT_BAUDRATE}, the DISCO firmware's)")


@dataclass
class BoardSession:
    url: str
    link: Link
    engine: EngineClient
    config: BuildConfig
    info: dict
    qemu: QemuBoard | None
    _compiled: Compiled | None = None

    def compiled(self) -> Compiled:
        if self._compiled is None:
            self._compiled = self.config.compile()
        return self._compiled

    def verify_program(self) -> Compiled:
        """The reference program, checked to be the one the board runs."""
        compiled = self.compiled()
        check_program(self.engine.model.program_hash, self.info, compiled)
        return compiled

    def reference(self) -> NumpyBackend:
        """The NumPy reference of exactly the program the board runs."""
        return NumpyBackend(self.verify_program().program)


def check_program(board_hash: str, info: dict, compiled: Compiled) -> None:
    """One sentence for each way the board's program can differ from the reference rebuilt from its build."""
    where = info.get("_path", "the build's tinytrain.json")
    built = info.get("program_hash")
    if built is None:
        raise TinytrainError(f"{where} was written by a tinytrain without program hashes, so the board runs a stale "
                             "build; rebuild and reflash the firmware.")
    if board_hash != built:
        raise TinytrainError(f"the board runs a build of another program than {where} describes (program hash "
                             f"{board_hash[:12]}, the build {built[:12]}): it was flashed from another build or "
                             "compiler version; reflash it from this build or pass --build with the one it runs.")
    if compiled.program_hash != built:
        raise TinytrainError(f"the board runs a stale build: this tinytrain compiles its configuration to another "
                             f"program (program hash {compiled.program_hash[:12]}, the board {built[:12]}), so "
                             "the board was built by another compiler version; rebuild and reflash the firmware.")


def find_build(model_hash: str, build: Path | None, program_hash: str | None = None) -> tuple[BuildConfig, dict]:
    """The build configuration of the board's firmware: --build, or the build under .pio/build for the
    board's model (the one with the board's program hash if several are)."""
    if build is not None:
        cfg, info = read_build_info(build)
        if info["model_hash"] != model_hash:
            raise TinytrainError(f"{build} was built for another model than the board runs "
                                 f"({info['model_hash'][:12]} vs {model_hash[:12]}).")
        info["_path"] = str(build)
        return cfg, info
    candidates = sorted((project_root() / ".pio" / "build").glob("*/generated/tinytrain.json"))
    matches = []
    for path in candidates:
        cfg, info = read_build_info(path)
        if info["model_hash"] == model_hash:
            info["_path"] = str(path)
            matches.append((cfg, info))
    for cfg, info in matches:
        if program_hash is not None and info.get("program_hash") == program_hash:
            return cfg, info
    if matches:
        return matches[0]
    raise TinytrainError(f"no build under .pio/build matches the board's model {model_hash[:12]}; "
                         "pass --build with the folder the firmware was built in.")


@contextlib.contextmanager
def open_board(args: argparse.Namespace, env: str = "qemu_m7", verify: bool = True) -> Iterator[BoardSession]:
    """A session with the board of --port or --emulate; with verify, its program is checked first."""
    with contextlib.ExitStack() as stack:
        qemu = None
        if args.emulate:
            build_dir = args.build if args.build is not None and args.build.is_dir() else None
            elf = (build_dir / "firmware.elf") if build_dir else firmware_elf(env)
            if not elf.exists():
                raise TinytrainError(f"{elf} does not exist; build it with `pio run -e {env}`.")
            qemu = stack.enter_context(QemuBoard(elf))
            url = qemu.url
        else:
            url = args.port
        link = stack.enter_context(Link(url, baudrate=getattr(args, "baud", DEFAULT_BAUDRATE)))
        link.wait_ready(timeout=15.0) if qemu else link.info()
        engine = EngineClient(link)
        cfg, info = find_build(engine.model.hash, getattr(args, "build", None), engine.model.program_hash)
        session = BoardSession(url, link, engine, cfg, info, qemu)
        if verify:
            session.verify_program()
        yield session
