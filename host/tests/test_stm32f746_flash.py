"""The STM32F746 flash driver (firmware/boards/stm32f746/stm32f746_flash.c) that erases and programs
the checkpoint sectors, run on the host against a model of RM0385's flash interface
(firmware/tests/stm32f746_flash_sim.c), since the board cannot run in CI: unlock sequence, x32
parallelism, sector erase, BSY polling, error flags, locking, D-cache invalidation."""

from __future__ import annotations

import subprocess

from tinytrain.board.builds import build_c_test


def test_stm32f746_flash_driver_against_a_model_of_the_controller() -> None:
    exe = build_c_test("stm32f746_flash_sim", ["tests/stm32f746_flash_sim.c", "boards/stm32f746/stm32f746_flash.c"],
                       flags=["-DTT_STM32F746_FLASH_SIM"])
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout and result.stdout.strip().endswith("all checks passed"), result.stdout
