"""tinytrain.elf_memory on a small ELF linked with the boards' own sections.ld."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tinytrain.board.builds import project_root
from tinytrain.board.elf_memory import ElfError, read_c_string, static_memory

SOURCE = r"""
char data_bytes[10] = {1};
char bss_bytes[100];
__attribute__((section(".dtcm_bss"))) char hot_bytes[64];
const char tt_build_id[] = "abc1234 2026-01-01T00:00:00Z";
void Reset_Handler(void) { for (;;) { data_bytes[0] += bss_bytes[0] + hot_bytes[0] + tt_build_id[0]; } }
__attribute__((section(".isr_vector"), used)) void (*const vectors[2])(void) = {0, Reset_Handler};
"""

LINKER_SCRIPT = """
__tt_nv_bytes__ = 256K;
MEMORY
{
    FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 768K
    NV (r)     : ORIGIN = 0x080C0000, LENGTH = 256K
    RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 320K
}
__stack_size__ = 4K;
INCLUDE sections.ld
"""


@pytest.fixture(scope="module")
def elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("elf")
    (tmp / "probe.c").write_text(SOURCE)
    (tmp / "probe.ld").write_text(LINKER_SCRIPT)
    out = tmp / "probe.elf"
    subprocess.run(
        [
            "arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-O2", "-nostdlib", "-nostartfiles",
            "-L", str(project_root() / "firmware" / "boards" / "cortex_m"), "-T", str(tmp / "probe.ld"),
            str(tmp / "probe.c"), "-o", str(out),
        ],
        check=True,
    )
    return out


def test_static_memory_sums_the_ram_sections(elf: Path) -> None:
    mem = static_memory(elf)
    # sections.ld pads every RAM section to 8 bytes.
    assert mem.data_bytes == 16
    assert mem.bss_bytes == 104 + 64
    assert mem.stack_reserved_bytes == 4096
    assert mem.static_bytes == 16 + 168
    assert 16 < mem.flash_bytes < 1024


def test_reads_the_build_id(elf: Path) -> None:
    assert read_c_string(elf, "tt_build_id") == "abc1234 2026-01-01T00:00:00Z"
    assert read_c_string(elf, "no_such_symbol") is None


def test_not_an_elf_is_one_sentence(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.elf"
    bogus.write_bytes(b"not an elf")
    with pytest.raises(ElfError, match=r"is not a readable ELF file .*\.$"):
        static_memory(bogus)
    with pytest.raises(ElfError, match=r"^Cannot read the firmware ELF .*\.$"):
        static_memory(tmp_path / "missing.elf")
