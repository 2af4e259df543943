"""A connection to a board running a model: the link, the engine client, and the build
configuration that produced its firmware (found by the model hash the board reports)."""

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
from tinytrain.board.link import Link
from tinytrain.reference.executor import NumpyBackend


def add_board_arguments(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="URL", help="serial line of a running board: /dev/ttyACM0, socket://HOST:PORT")
    where.add_argument("--emulate", action="store_true", help="boot the qemu_m7 image in QEMU for the occasion")
    p.add_argument("--build", type=Path, help="the firmware's build folder or its tinytrain.json "
                                              "(default: the .pio/build/* folder whose model the board runs)")
    p.add_argument("--baud", type=int, default=115200, help="baud rate of a real serial port")


@dataclass
class BoardSession:
    url: str
    link: Link
    engine: EngineClient
    config: BuildConfig
    info: dict
    qemu: QemuBoard | None

    def compiled(self) -> Compiled:
        return self.config.compile()

    def reference(self) -> NumpyBackend:
        """The NumPy reference of exactly the program the board runs."""
        compiled = self.compiled()
        if compiled.model_hash != self.engine.model.hash:
            raise TinytrainError("the build configuration does not reproduce the board's model hash; "
                                 "rebuild and reflash the firmware.")
        return NumpyBackend(compiled.program)


def find_build(model_hash: str, build: Path | None) -> tuple[BuildConfig, dict]:
    if build is not None:
        cfg, info = read_build_info(build)
        if info["model_hash"] != model_hash:
            raise TinytrainError(f"{build} was built for another model than the board runs "
                                 f"({info['model_hash'][:12]} vs {model_hash[:12]}).")
        return cfg, info
    candidates = sorted((project_root() / ".pio" / "build").glob("*/generated/tinytrain.json"))
    for path in candidates:
        cfg, info = read_build_info(path)
        if info["model_hash"] == model_hash:
            return cfg, info
    raise TinytrainError(f"no build under .pio/build matches the board's model {model_hash[:12]}; "
                         "pass --build with the folder the firmware was built in.")


@contextlib.contextmanager
def open_board(args: argparse.Namespace, env: str = "qemu_m7") -> Iterator[BoardSession]:
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
        link = stack.enter_context(Link(url, baudrate=getattr(args, "baud", 115200)))
        link.wait_ready(timeout=15.0) if qemu else link.info()
        engine = EngineClient(link)
        cfg, info = find_build(engine.model.hash, getattr(args, "build", None))
        yield BoardSession(url, link, engine, cfg, info, qemu)
