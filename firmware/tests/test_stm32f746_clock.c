/* Host check of the STM32F746G-DISCO clock setup arithmetic (the board itself
 * cannot run in CI). Run by host/tests/test_stm32f746_clock.py. */
#include <stdio.h>
#include <stdlib.h>

#include "boards/stm32f746/stm32f746_clock.h"

static int passed, failed;

static void check(int ok, const char *what, unsigned long long got, unsigned long long want)
{
    if (ok) {
        passed++;
    } else {
        failed++;
        printf("FAIL %s: got %llu, want %llu\n", what, got, want);
    }
}

#define EQ(what, got, want) check((got) == (want), what, (unsigned long long)(got), (unsigned long long)(want))
#define IN(what, got, lo, hi) check((got) >= (lo) && (got) <= (hi), what, (unsigned long long)(got), (unsigned long long)(lo))

int main(void)
{
    const uint32_t hse = STM32F746_HSE_HZ, m = STM32F746_PLLM, n = STM32F746_PLLN;
    /* RM0385 5.3.2: VCO input 0.95..2.1 MHz, VCO output 100..432 MHz, N 50..432, M 2..63, Q 2..15. */
    EQ("VCO input", stm32f746_vco_in_hz(hse, m), 1000000u);
    IN("VCO input range", stm32f746_vco_in_hz(hse, m), 950000u, 2100000u);
    EQ("VCO output", stm32f746_vco_out_hz(hse, m, n), 432000000u);
    IN("VCO output range", stm32f746_vco_out_hz(hse, m, n), 100000000u, 432000000u);
    IN("PLLN range", n, 50u, 432u);
    IN("PLLM range", m, 2u, 63u);
    IN("PLLQ range", STM32F746_PLLQ, 2u, 15u);
    EQ("SYSCLK", stm32f746_pll_p_hz(hse, m, n, STM32F746_PLLP), 216000000u);
    EQ("SYSCLK macro", STM32F746_SYSCLK_HZ, 216000000u);
    EQ("48 MHz domain (USB, SDMMC, RNG)", stm32f746_pll_q_hz(hse, m, n, STM32F746_PLLQ), 48000000u);
    EQ("HCLK", STM32F746_HCLK_HZ, 216000000u);
    /* Datasheet limits with over-drive: APB1 <= 54 MHz, APB2 <= 108 MHz. */
    EQ("PCLK1", STM32F746_HCLK_HZ / STM32F746_APB1_DIV, 54000000u);
    EQ("PCLK2", STM32F746_PCLK2_HZ, 108000000u);
    EQ("PLLCFGR fields", stm32f746_pllcfgr_fields(m, n, STM32F746_PLLP, STM32F746_PLLQ), 0x09406C19u);
    EQ("PPRE /1", stm32f746_ppre_bits(1), 0u);
    EQ("PPRE /2", stm32f746_ppre_bits(2), 4u);
    EQ("PPRE /4", stm32f746_ppre_bits(4), 5u);
    EQ("PPRE /16", stm32f746_ppre_bits(16), 7u);
    /* RM0385 3.3.2, 2.7-3.6 V: 0 WS up to 30 MHz ... 7 WS from 210 to 216 MHz. */
    EQ("flash latency 216 MHz", stm32f746_flash_latency(216000000u), 7u);
    EQ("flash latency 210 MHz", stm32f746_flash_latency(210000000u), 6u);
    EQ("flash latency 30 MHz", stm32f746_flash_latency(30000000u), 0u);
    EQ("flash latency 31 MHz", stm32f746_flash_latency(31000000u), 1u);
    EQ("flash latency 16 MHz (HSI)", stm32f746_flash_latency(16000000u), 0u);
    /* USART1 on PCLK2, 16x oversampling. */
    uint32_t brr = stm32f746_usart_brr(STM32F746_PCLK2_HZ, 115200u);
    EQ("BRR 115200", brr, 938u);
    double error = (double)STM32F746_PCLK2_HZ / brr / 115200.0 - 1.0;
    check(error < 0.001 && error > -0.001, "baud error 115200 < 0.1%", (unsigned long long)(error * 1e6), 0);
    EQ("BRR 921600", stm32f746_usart_brr(STM32F746_PCLK2_HZ, 921600u), 117u);
    EQ("BRR 2000000", stm32f746_usart_brr(STM32F746_PCLK2_HZ, 2000000u), 54u);
    /* The rates the board may be built with (TT_UART_BAUD; platformio.ini's is 921600): the real rate
     * PCLK2 / BRR within 2 % of the nominal one (a UART tolerates about 3 % between the two ends). */
    static const uint32_t rates[] = {115200u, 230400u, 460800u, 921600u, 1000000u, 2000000u};
    for (unsigned i = 0; i < sizeof rates / sizeof rates[0]; ++i) {
        uint32_t b = stm32f746_usart_brr(STM32F746_PCLK2_HZ, rates[i]);
        double e = (double)STM32F746_PCLK2_HZ / b / rates[i] - 1.0;
        printf("baud %u: BRR %u, real %.0f, error %+.3f %%\n", (unsigned)rates[i], (unsigned)b,
               (double)STM32F746_PCLK2_HZ / b, 100.0 * e);
        check(e < 0.02 && e > -0.02, "baud error < 2%", (unsigned long long)rates[i], 0);
        IN("BRR >= 16 (OVER8 = 0)", b, 16u, 0xFFFFu);
    }
    EQ("BRR 9600", stm32f746_usart_brr(STM32F746_PCLK2_HZ, 9600u), 11250u);
    IN("BRR >= 16 (OVER8 = 0)", brr, 16u, 0xFFFFu);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
