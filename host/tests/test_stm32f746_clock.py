"""The STM32F746G-DISCO clock and baud arithmetic (firmware/boards/stm32f746/
stm32f746_clock.h), checked on the host since the board cannot run in CI."""

from __future__ import annotations

import subprocess

from tinytrain.board.builds import build_c_test


def test_stm32f746_clock_arithmetic() -> None:
    exe = build_c_test("test_stm32f746_clock", ["tests/test_stm32f746_clock.c"])
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("passed, 0 failed")
