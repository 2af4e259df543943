"""Static memory of a firmware ELF, to check what the board reports in STATS.

The Cortex-M linker script (firmware/boards/cortex_m/sections.ld) puts the
stack, .dtcm_bss, .data and .bss in RAM; the board reports .data, .bss +
.dtcm_bss and the stack region, measured from symbols that bracket exactly
these output sections, so both sides must agree to the byte.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinytrain.errors import TinytrainError


class ElfError(TinytrainError):
    """The file is not a firmware ELF this module understands."""


@dataclass(frozen=True)
class ElfMemory:
    data_bytes: int
    bss_bytes: int  # .bss + .dtcm_bss
    stack_reserved_bytes: int
    flash_bytes: int  # every byte loaded into flash, .data's initial values included

    @property
    def static_bytes(self) -> int:
        return self.data_bytes + self.bss_bytes


def static_memory(elf_path: str | os.PathLike[str]) -> ElfMemory:
    """Section sizes of a Cortex-M tinytrain firmware ELF."""
    try:
        with open(elf_path, "rb") as fh:
            elf = ELFFile(fh)
            sizes = {sec.name: sec["sh_size"] for sec in elf.iter_sections()}
            flash = sum(
                seg["p_filesz"]
                for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and not 0x20000000 <= seg["p_paddr"] < 0x40000000
            )
    except OSError as exc:
        raise ElfError(f"Cannot read the firmware ELF {elf_path}: {exc.strerror}.") from None
    except Exception as exc:  # pyelftools raises its own exception types for bad files
        raise ElfError(f"{elf_path} is not a readable ELF file ({exc}).") from None
    if ".stack" not in sizes:
        raise ElfError(f"{elf_path} has no .stack section; is it a tinytrain Cortex-M firmware image?")
    return ElfMemory(
        data_bytes=sizes.get(".data", 0),
        bss_bytes=sizes.get(".bss", 0) + sizes.get(".dtcm_bss", 0),
        stack_reserved_bytes=sizes[".stack"],
        flash_bytes=flash,
    )


def symbol_value(elf_path: str | os.PathLike[str], symbol: str) -> int | None:
    """The value (address) of a symbol, e.g. __stack_top__; None if absent."""
    with open(elf_path, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            return None
        matches = symtab.get_symbol_by_name(symbol)
        return int(matches[0]["st_value"]) if matches else None


def symbol_values(elf_path: str | os.PathLike[str], symbols: list[str]) -> dict[str, int]:
    """The values of several symbols at once (those present)."""
    out: dict[str, int] = {}
    with open(elf_path, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            return out
        for name in symbols:
            matches = symtab.get_symbol_by_name(name)
            if matches:
                out[name] = int(matches[0]["st_value"])
    return out


def read_c_string(elf_path: str | os.PathLike[str], symbol: str) -> str | None:
    """The NUL-terminated string a global const char array holds, e.g. tt_build_id."""
    with open(elf_path, "rb") as fh:
        elf = ELFFile(fh)
        symtab = elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            return None
        matches = symtab.get_symbol_by_name(symbol)
        if not matches:
            return None
        sym = matches[0]
        addr, size = sym["st_value"], sym["st_size"]
        for sec in elf.iter_sections():
            start = sec["sh_addr"]
            if sec["sh_type"] == "SHT_PROGBITS" and start <= addr and addr + size <= start + sec["sh_size"]:
                raw = sec.data()[addr - start : addr - start + size]
                return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return None
