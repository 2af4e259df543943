"""tinytrain.board.builds and the PlatformIO builds of both MCU targets (offline)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinytrain.board.builds import firmware_sources, project_root, run_pio_build
from tinytrain.board.elf_memory import static_memory


def rel(paths: list) -> set[str]:
    fw = project_root() / "firmware"
    return {str(p.relative_to(fw)) for p in paths}


def test_sources_exclude_other_boards_and_tests() -> None:
    sources = rel(firmware_sources(["cortex_m", "mps2_an500"]))
    assert {"app/main.c", "protocol/frame_rx.c", "boards/cortex_m/startup.c", "boards/mps2_an500/board_mps2_an500.c"} <= sources
    assert not any(s.startswith(("boards/stm32f746/", "boards/host/", "tests/")) for s in sources)
    host = rel(firmware_sources(["host"]))
    assert "boards/host/board_host.c" in host
    assert not any(s.startswith(("boards/cortex_m/", "boards/mps2_an500/")) for s in host)


@pytest.mark.parametrize("env,flash_origin", [("qemu_m7", 0x00000000), ("disco_f746ng", 0x08000000)])
def test_pio_build_fits_the_board(env: str, flash_origin: int) -> None:
    elf, output = run_pio_build(env)  # raises BuildError with PlatformIO's last lines when it fails
    assert "tinytrain size report" in output
    mem = static_memory(elf)
    assert mem.static_bytes + mem.stack_reserved_bytes <= 320 * 1024
    assert mem.flash_bytes <= 1024 * 1024
    with open(elf, "rb") as fh:
        image = ELFFile(fh)
        vectors = image.get_section_by_name(".isr_vector")
        assert vectors is not None and vectors["sh_addr"] == flash_origin
        initial_sp, reset = struct.unpack_from("<II", vectors.data())
        symbols = image.get_section_by_name(".symtab")
        assert isinstance(symbols, SymbolTableSection)
        stack_top = symbols.get_symbol_by_name("__stack_top__")
        reset_handler = symbols.get_symbol_by_name("Reset_Handler")
        assert stack_top and reset_handler
        assert initial_sp == stack_top[0]["st_value"]
        assert reset == reset_handler[0]["st_value"] | 1


def test_host_build_objects_are_reused_only_where_the_preprocessed_text_is_the_same(tmp_path, monkeypatch) -> None:
    """compile_host_program caches objects by preprocessed text: a -D that one file uses recompiles that
    file only, and each program prints its own value."""
    import subprocess

    from tinytrain.board import builds

    uses = tmp_path / "uses_flag.c"
    uses.write_text("int value(void);\nint value(void) { return FLAG; }\n")
    main = tmp_path / "main.c"
    main.write_text('#include <stdio.h>\nint value(void);\nint main(void) { printf("%d\\n", value()); return 0; }\n')
    compiled: list[str] = []
    real_gcc = builds._gcc

    def spy(args: list[str], what: str) -> str:
        if "-c" in args:
            compiled.append(Path(args[args.index("-c") + 1]).name)
        return real_gcc(args, what)

    monkeypatch.setattr(builds, "_gcc", spy)
    one = builds.compile_host_program(tmp_path / "one", [uses, main], flags=["-DFLAG=1"])
    first = sorted(compiled)
    compiled.clear()
    two = builds.compile_host_program(tmp_path / "two", [uses, main], flags=["-DFLAG=2"])
    assert first == ["main.c", "uses_flag.c"] and compiled == ["uses_flag.c"]
    assert [subprocess.run([str(p)], capture_output=True, text=True, check=True).stdout for p in (one, two)] == ["1\n", "2\n"]


def test_image_without_checkpoints_boots(tmp_path: Path) -> None:
    """TINYTRAIN_CHECKPOINTS=0 (what `tinytrain bench` builds the paper's models with) links the
    checkpoint region's size as 0: the board must see 0 and not treat the flash as checkpoint
    sectors (it once erased memory up to its own vector table and locked up at boot)."""
    from tinytrain.board.emulator import QemuBoard
    from tinytrain.board.link import Link

    elf, _ = run_pio_build("qemu_m7", model_options={"TINYTRAIN_CHECKPOINTS": "0"}, build_dir=tmp_path / "pio")
    with open(elf, "rb") as fh:
        symbols = ELFFile(fh).get_section_by_name(".symtab")
        assert isinstance(symbols, SymbolTableSection)
        assert symbols.get_symbol_by_name("__tt_nv_bytes__")[0]["st_value"] == 0
    with QemuBoard(elf) as qemu, Link(qemu.url) as link:
        link.wait_ready(15.0)
        assert link.stats().peak_sram_bytes > 0
