"""A crash on the board reaches the host as a FAULT frame with the registers.

QEMU only: the test boots its own instance, stops it through QEMU's gdb stub,
points the pc at an execute-never address and lets it run into a HardFault."""

from __future__ import annotations

import pytest

from gdb_remote import PC, GdbRemote
from tinytrain.board_build import firmware_elf
from tinytrain.emulator import QemuBoard
from tinytrain.link import BoardFault, BoardNotAnswering, Link

from conftest import Board

BAD_PC = 0xDEADBEEE  # in the Device region: execute-never
HFSR_FORCED = 1 << 30
CFSR_IACCVIOL = 1 << 0


def test_hardfault_sends_fault_frame_and_halts(board: Board) -> None:
    if board.kind != "qemu":
        pytest.skip("needs QEMU's gdb stub")
    assert board.elf is not None
    with QemuBoard(board.elf, gdb=True) as qemu, Link(qemu.url) as link:
        link.wait_ready()
        gdb = GdbRemote(qemu.gdb_port)
        gdb.interrupt()
        gdb.set_register(PC, BAD_PC)
        gdb.detach()
        gdb.close()
        with pytest.raises(BoardFault) as err:
            link.info()
        fault = err.value.fault
        assert fault.pc == BAD_PC
        assert fault.hfsr & HFSR_FORCED
        assert fault.cfsr & CFSR_IACCVIOL
        assert 0x20000000 < fault.sp <= 0x20000000 + 320 * 1024
        assert "crashed and halted" in str(err.value) and "pc=0xdeadbeee" in str(err.value)
        with pytest.raises(BoardNotAnswering):
            link.info(timeout=0.3)
