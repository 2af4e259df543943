"""Power cuts during checkpoint writes, in QEMU: the board is killed at a random instruction while it
erases or programs a checkpoint slot (or stages a pushed state in one), and must come back with either
the checkpoint it had or the complete new one, never a mix, and never with none once one existed.

How a cut lands where it should: QEMU's board calls tt_nv_fault_point before the N-th erase chunk or
program unit once the test wrote N into tt_nv_fault_countdown (boards/mps2_an500); the test stops the
guest there through the gdb stub, single-steps it a random number of instructions (so the cut falls
before, inside or after that unit's store and its write to the file) and kills QEMU. A third of the
cuts also leave the unit half done, as a real power cut may: a word with only some of its bits
programmed, or a chunk with only some of its bytes erased. The non-volatile file holds exactly what
the board had written (semihosting writes each unit through), and the next QEMU boots from it.

The "commit" cuts stop at the last unit of a checkpoint's header and let the board run up to 400 more
instructions, so some of them land after the header is whole: the test then expects the new checkpoint
back (and the old one otherwise), so both sides of the commit point are checked exactly.

TT_POWER_CUTS sets the number of cuts (default 10; docs/checkpoints.md reports a longer run)."""

from __future__ import annotations

import os
import random
import struct
import threading
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest

from gdb_remote import GdbRemote
from tinytrain.board.elf_memory import symbol_value
from tinytrain.board import engine_client
from tinytrain.board.emulator import QemuBoard
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.link import Link
from tinytrain.board.session import find_build
from tinytrain.reference.executor import NumpyBackend
from tinytrain.errors import TinytrainError

from conftest import Board

CUTS = int(os.environ.get("TT_POWER_CUTS", "10"))
SEED = int(os.environ.get("TT_POWER_CUT_SEED", "2027"))
ERASE_CHUNK = 1024  # boards/nv_emulated.h
UNIT = 4
HEADER_UNITS = 164 // UNIT  # firmware/app/checkpoint.c: HDR_BYTES
SECTOR = 256 * 1024
PHASES = ("erase", "data", "header", "commit", "push")


@dataclass
class Cut:
    phase: str
    unit: int  # the countdown: the unit or chunk before which the guest stopped
    steps: int  # instructions single-stepped after that before the kill
    partial: bool
    outcome: str = ""
    expected: str = "old"  # "new" once the write's last unit (its header's end) is whole in the file


def boot(elf, nv) -> tuple[QemuBoard, Link, EngineClient]:
    qemu = QemuBoard(elf, nv=nv, gdb=True).start()
    link = Link(qemu.url)
    link.wait_ready(15.0)
    return qemu, link, EngineClient(link)


def units_of(phase: str, state_bytes: int) -> tuple[int, int]:
    """(first, last) countdown values that land in a phase of one checkpoint write."""
    erase = SECTOR // ERASE_CHUNK
    data = -(-state_bytes // UNIT)
    if phase == "erase":
        return 1, erase
    if phase == "data":
        return erase + 1, erase + data
    if phase == "header":
        return erase + data + 1, erase + data + HEADER_UNITS
    if phase == "commit":  # the header's last unit: the cut falls just before or after the commit point
        return erase + data + HEADER_UNITS, erase + data + HEADER_UNITS
    return 1, erase + data + HEADER_UNITS  # push: BEGIN erases, DATA programs, COMMIT writes the header


def half_done(rng: random.Random, now: bytes, before: bytes, data: bytes | None) -> bytes:
    """A unit interrupted while being programmed (some of the bits to clear are still 1) or a chunk
    interrupted while being erased (some bytes erased, the others as they were)."""
    if data is None:
        return bytes(0xFF if rng.random() < 0.5 else b for b in before)
    return bytes(d | (rng.randrange(256) & ~d & 0xFF) for d in data)


def test_power_cuts_during_checkpoint_writes_leave_the_old_or_the_new_checkpoint(board: Board, tmp_path, monkeypatch):
    if board.kind != "qemu":
        pytest.skip("cuts the power of QEMU through its gdb stub")
    # A push's DATA frames cross the emulated UART slowly when the machine is busy: wait, do not resend.
    monkeypatch.setattr(engine_client, "DATA_FLASH_TIMEOUT", 120.0)
    assert board.elf is not None
    fault_point = symbol_value(board.elf, "tt_nv_fault_point")
    countdown = symbol_value(board.elf, "tt_nv_fault_countdown")
    assert fault_point is not None and countdown is not None
    rng = random.Random(SEED)
    nv = tmp_path / "board.nv"

    # The first checkpoint, written without a cut: from here on one must always be there.
    qemu, link, engine = boot(board.elf, nv)
    reference = NumpyBackend(find_build(engine.model.hash, None, engine.model.program_hash)[0].compile().program)
    x = np.zeros(engine.model.input_bytes, dtype=np.int8)
    engine.train(x, 1)
    engine.checkpoint()
    candidates = {engine.params_get()}
    link.close()
    qemu.kill()

    cuts: list[Cut] = []
    for trial in range(CUTS):
        qemu, link, engine = boot(board.elf, nv)
        model = engine.model
        restored = engine.params_get()
        assert model.checkpoint_boot == "restored", f"cut {trial - 1} lost every checkpoint: {cuts[-1:]}"
        assert restored in candidates, f"after cut {trial - 1} the board restored a mix: {cuts[-1:]}"
        assert model.restored_step_count == struct.unpack_from("<I", restored)[0]
        if cuts:
            cuts[-1].outcome = "new" if restored == new else "old"

        phase = PHASES[trial % len(PHASES)]
        if phase == "push":  # a pushed state is staged in a slot and committed by its header too
            new = restored[:4] + bytes((b + 1 + trial) & 0xFF for b in restored[4:])
            work = lambda: engine.params_set(new)  # noqa: E731
        else:
            sample, label = np.frombuffer(rng.randbytes(x.size), dtype=np.int8), rng.randrange(model.classes)
            engine.train(sample, label)
            reference.load_state_bytes(restored)
            reference.train_step(sample.reshape(reference.program.model.input_spec.shape), label)
            new = reference.state_bytes()  # what the board holds now and checkpoints
            work = engine.checkpoint
        candidates = {restored, new}
        first, last = units_of(phase, len(new))
        cut = Cut(phase, rng.randint(first, last), rng.randrange(0, 400 if phase == "commit" else 80),
                  rng.random() < 1 / 3)
        end = units_of(phase, len(new))[1] if phase in ("header", "commit", "push") else -1
        cuts.append(cut)
        before = nv.read_bytes()

        gdb = GdbRemote(qemu.gdb_port)
        gdb.interrupt()
        gdb.set_breakpoint(fault_point)
        gdb.write_memory(countdown, struct.pack("<I", cut.unit))
        gdb.resume()
        failed: list[Exception] = []

        def run() -> None:
            try:
                work()
            except TinytrainError as exc:  # the board died under it
                failed.append(exc)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        stop = gdb.wait_stop(300.0)  # a push sends 30 KB at 115200 baud: slow on a busy machine
        assert stop is not None, f"cut {trial} ({cut}) never reached its unit: {failed or 'the work still runs'}"
        offset, length, data_at = (gdb.read_register(r) for r in (0, 1, 2))
        data = gdb.read_memory(data_at, length) if data_at else None
        gdb.set_breakpoint(fault_point, on=False)
        for _ in range(cut.steps):
            gdb.step()
        qemu.kill()
        gdb.close()
        worker.join(timeout=40.0)
        link.close()
        if cut.partial:
            image = bytearray(nv.read_bytes())
            image[offset:offset + length] = half_done(rng, bytes(image[offset:offset + length]),
                                                      before[offset:offset + length], data)
            nv.write_bytes(bytes(image))
        if cut.unit == end and data is not None and nv.read_bytes()[offset:offset + length] == data:
            cut.expected = "new"  # the last unit of the header is whole: the new checkpoint exists

    qemu, link, engine = boot(board.elf, nv)
    restored = engine.params_get()
    assert engine.model.checkpoint_boot == "restored" and restored in candidates
    cuts[-1].outcome = "new" if restored == new else "old"
    link.close()
    qemu.stop()
    tally = Counter((c.phase, c.outcome) for c in cuts)
    print(f"\npower cuts in QEMU: {len(cuts)} ({sum(c.partial for c in cuts)} with a half-done unit); after every "
          f"restart the old or the new checkpoint, whole: "
          + ", ".join(f"{phase} {outcome} {n}" for (phase, outcome), n in sorted(tally.items())))
    assert all(c.outcome in ("old", "new") for c in cuts)
    # A cut before the header is whole keeps the old checkpoint; once it is whole, the new one is restored.
    assert [c for c in cuts if c.outcome != c.expected] == []
