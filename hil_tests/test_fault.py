"""A crash on the board reaches the host as a FAULT frame with the registers.

QEMU only: each case boots its own instance, stops it through QEMU's gdb stub,
sets the stack pointer and points the pc at an execute-never address, and lets
it run into a HardFault."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdb_remote import PC, SP, GdbRemote
from tinytrain.board.elf_memory import symbol_value
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.link import BoardFault, BoardNotAnswering, Link

from conftest import Board

BAD_PC = 0xDEADBEEE  # in the Device region: execute-never
HFSR_FORCED = 1 << 30
CFSR_IACCVIOL = 1 << 0


def stack_bounds(elf: Path) -> tuple[int, int]:
    bottom, top = symbol_value(elf, "__stack_bottom__"), symbol_value(elf, "__stack_top__")
    assert bottom is not None and top is not None
    return bottom, top


# Where the stack pointer is when the fault hits: the exception frame lands
# right below it, and the handler must not overwrite it before reading it.
DEPTHS = {
    "shallow": lambda bottom, top: top - 16,
    "deep": lambda bottom, top: top - 4096,
    # room for the exception frame: 104 B when the interrupted code had used the FPU (extended frame)
    "near the bottom": lambda bottom, top: bottom + 128,
}


@pytest.mark.parametrize("depth", list(DEPTHS))
def test_hardfault_sends_fault_frame_and_halts(board: Board, depth: str) -> None:
    if board.kind != "qemu":
        pytest.skip("needs QEMU's gdb stub")
    assert board.elf is not None
    sp = DEPTHS[depth](*stack_bounds(board.elf))
    with QemuBoard(board.elf, gdb=True) as qemu, Link(qemu.url) as link:
        link.wait_ready()
        gdb = GdbRemote(qemu.gdb_port)
        gdb.interrupt()
        gdb.set_register(SP, sp)
        gdb.set_register(PC, BAD_PC)
        gdb.detach()
        gdb.close()
        with pytest.raises(BoardFault) as err:
            link.info()
        fault = err.value.fault
        assert (fault.pc, fault.sp) == (BAD_PC, sp)
        assert fault.hfsr & HFSR_FORCED
        assert fault.cfsr & CFSR_IACCVIOL
        assert "crashed and halted" in str(err.value) and "pc=0xdeadbeee" in str(err.value)
        with pytest.raises(BoardNotAnswering):
            link.info(timeout=0.3)
