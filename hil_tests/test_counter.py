"""The board's operation counter, checked with CALIBRATE: a loop of known
instruction count (two Thumb-2 instructions per iteration)."""

from __future__ import annotations

import pytest

from tinytrain.board.link import BoardErrorReply, Link
from tinytrain.board.messages import CounterKind, ErrorCode

from conftest import Board


def test_qemu_counts_forty_instructions_per_systick_tick(board: Board, link: Link) -> None:
    if board.info.counter_kind != CounterKind.INSTRUCTIONS:
        pytest.skip("only QEMU (-icount shift=0) counts instructions")
    small = link.calibrate(1_000_000)
    large = link.calibrate(3_000_000)
    assert small.instructions_per_iteration == large.instructions_per_iteration == 2
    # The counter has a resolution of one tick (40 instructions); a few dozen
    # instructions of counter reads frame the loop.
    assert 2_000_000 <= small.count <= 2_000_000 + 200
    assert abs((large.count - small.count) - 4_000_000) <= 80
    assert link.stats().last_count == large.count


def test_counter_advances_with_work(link: Link) -> None:
    short = link.calibrate(10_000).count
    long = link.calibrate(1_000_000).count
    assert 0 < short < long


def test_calibrate_rejects_out_of_range_iterations(link: Link) -> None:
    with pytest.raises(BoardErrorReply) as err:
        link.calibrate(0)
    assert err.value.reply.code == ErrorCode.BAD_ARGUMENT
