"""Hardware-in-the-loop tests over the serial protocol (v2).

By default a session fixture builds the qemu_m7 image (`pio run`, incremental) and each
test module boots it in QEMU on a free port and runs its tests against it. Other targets:

    pytest hil_tests --target host              the firmware as a Linux process (ASan, UBSan)
    pytest hil_tests --port /dev/ttyACM0 \\      a real board (flash it first); --elf enables
        --elf .pio/build/disco_f746ng/firmware.elf   the checks against the image
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tinytrain.board.builds import build_firmware, build_host_firmware
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.host_board import HostBoard
from tinytrain.board.link import DEFAULT_BAUDRATE, Link
from tinytrain.board.messages import PROTOCOL_VERSION, BoardInfo

sys.path.insert(0, str(Path(__file__).parent))

# What to show with a failed test: QEMU's log, or the host build's output.
_LOGS: dict[str, Callable[[], str]] = {}
_QEMUS: list[QemuBoard] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tinytrain HIL")
    group.addoption("--port", metavar="URL", help="serial line of a board already running the firmware "
                    "(/dev/ttyACM0, socket://127.0.0.1:PORT); default: boot QEMU")
    group.addoption("--baud", type=int, default=DEFAULT_BAUDRATE,
                    help=f"baud rate for --port (default {DEFAULT_BAUDRATE}, the DISCO firmware's)")
    group.addoption("--elf", metavar="PATH", help="the firmware image running at --port, for the checks against the ELF")
    group.addoption("--target", choices=["qemu", "host"], default="qemu",
                    help="without --port: qemu (default) or host (the firmware as a Linux process)")


@dataclass
class Board:
    """The board under test."""

    link: Link
    info: BoardInfo
    elf: Path | None  # the image it runs, when known
    kind: str  # "qemu", "host" or "port"
    qemu: QemuBoard | None = None

    @property
    def is_mcu(self) -> bool:
        return self.info.board != "host"


@pytest.fixture(scope="session")
def board_image(request: pytest.FixtureRequest) -> Path | None:
    """What the boards of this session run: the qemu_m7 ELF or the host build's program, built once
    (None with --port)."""
    config = request.config
    if config.getoption("--port"):
        return None
    if config.getoption("--target") == "host":
        return build_host_firmware()
    elf_opt = config.getoption("--elf")
    return Path(elf_opt) if elf_opt else build_firmware("qemu_m7")


# One board per test module: an emulator left idle beside other modules' work still spins its
# guest's polling loop on a core (pytest-xdist runs the modules of a session on several workers).
@pytest.fixture(scope="module")
def board(request: pytest.FixtureRequest, board_image: Path | None) -> Iterator[Board]:
    config = request.config
    port = config.getoption("--port")
    elf_opt = config.getoption("--elf")
    if port:
        with Link(port, baudrate=config.getoption("--baud")) as link:
            yield Board(link, link.wait_ready(10.0), Path(elf_opt) if elf_opt else None, "port")
    elif config.getoption("--target") == "host":
        assert board_image is not None
        with HostBoard(board_image) as host:
            _LOGS["host board output"] = lambda: host.output
            with Link(host.url) as link:
                yield Board(link, link.wait_ready(10.0), None, "host")
        # A sanitizer report means the firmware misbehaved even if every reply looked right.
        report = host.sanitizer_report()
        assert report is None, report
    else:
        assert board_image is not None
        with QemuBoard(board_image) as qemu:
            _QEMUS.append(qemu)
            _LOGS["QEMU log"] = qemu.log_text
            with Link(qemu.url) as link:
                yield Board(link, link.wait_ready(10.0), board_image, "qemu", qemu)


@pytest.fixture
def link(board: Board) -> Iterator[Link]:
    yield board.link
    # Whatever a test sent, the board must still answer afterwards.
    assert board.link.info().protocol_version == PROTOCOL_VERSION


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "hil_tests" in str(item.path):
        for title, read in _LOGS.items():
            text = read()
            report.sections.append((title, text[-20000:] if text else "(empty)"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for qemu in _QEMUS:
        terminalreporter.write_line(f"HIL: QEMU log of {qemu.elf} in {qemu.log_path}")
