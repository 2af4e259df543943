"""The STM32F746G-DISCO clock and baud arithmetic (firmware/boards/stm32f746/
stm32f746_clock.h), checked on the host since the board cannot run in CI."""

from __future__ import annotations

import re
import subprocess

from tinytrain.board.builds import build_c_test, project_root
from tinytrain.board.link import DEFAULT_BAUDRATE

PCLK2_HZ = 108_000_000  # USART1's clock: 25 MHz HSE / 25 * 432 / 2 = 216 MHz, APB2 / 2


def test_stm32f746_clock_arithmetic() -> None:
    exe = build_c_test("test_stm32f746_clock", ["tests/test_stm32f746_clock.c"])
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("passed, 0 failed")
    # the C code's BRR of the configured rate, and its error, as the line shows them
    line = next(x for x in result.stdout.splitlines() if x.startswith(f"baud {DEFAULT_BAUDRATE}:"))
    assert f"BRR {round(PCLK2_HZ / DEFAULT_BAUDRATE)}," in line


def test_disco_baud_is_the_hosts_default_and_exact_enough() -> None:
    root = project_root()
    ini = (root / "platformio.ini").read_text()
    env = ini[ini.index("[env:disco_f746ng]"):]
    built = int(re.search(r"-D\s*TT_UART_BAUD=(\d+)", env).group(1))
    fallback = int(re.search(r"#define TT_UART_BAUD (\d+)u",
                             (root / "firmware/boards/stm32f746/board_stm32f746.c").read_text()).group(1))
    assert built == fallback == DEFAULT_BAUDRATE
    assert built >= 8 * 115200  # samples arrive fast (issue 19)
    brr = (PCLK2_HZ + built // 2) // built  # stm32f746_usart_brr: 16x oversampling, rounded
    assert brr == 117
    assert abs(PCLK2_HZ / brr / built - 1) < 0.02
