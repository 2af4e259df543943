/* Clock tree arithmetic of the STM32F746G-DISCO setup, as pure functions so
 * that a host test (host/tests/test_stm32f746_clock.py) can check the numbers
 * the board cannot run here. RM0385 section 5 (RCC) and 3.3.2 (flash latency). */
#ifndef TT_STM32F746_CLOCK_H
#define TT_STM32F746_CLOCK_H

#include <stdint.h>

/* The DISCO board's 25 MHz crystal (X2) on OSC_IN/OSC_OUT. */
#define STM32F746_HSE_HZ 25000000u
/* VCO in = HSE / M = 1 MHz, VCO out = 432 MHz, SYSCLK = VCO / P = 216 MHz,
 * 48 MHz domain = VCO / Q = 48 MHz. */
#define STM32F746_PLLM 25u
#define STM32F746_PLLN 432u
#define STM32F746_PLLP 2u
#define STM32F746_PLLQ 9u
/* AHB /1 (216 MHz), APB1 /4 (54 MHz, its maximum), APB2 /2 (108 MHz, its maximum). */
#define STM32F746_AHB_DIV 1u
#define STM32F746_APB1_DIV 4u
#define STM32F746_APB2_DIV 2u

#define STM32F746_SYSCLK_HZ (STM32F746_HSE_HZ / STM32F746_PLLM * STM32F746_PLLN / STM32F746_PLLP)
#define STM32F746_HCLK_HZ (STM32F746_SYSCLK_HZ / STM32F746_AHB_DIV)
#define STM32F746_PCLK2_HZ (STM32F746_HCLK_HZ / STM32F746_APB2_DIV)

static inline uint32_t stm32f746_vco_in_hz(uint32_t hse_hz, uint32_t m) { return hse_hz / m; }

static inline uint32_t stm32f746_vco_out_hz(uint32_t hse_hz, uint32_t m, uint32_t n)
{
    return stm32f746_vco_in_hz(hse_hz, m) * n;
}

static inline uint32_t stm32f746_pll_p_hz(uint32_t hse_hz, uint32_t m, uint32_t n, uint32_t p)
{
    return stm32f746_vco_out_hz(hse_hz, m, n) / p;
}

static inline uint32_t stm32f746_pll_q_hz(uint32_t hse_hz, uint32_t m, uint32_t n, uint32_t q)
{
    return stm32f746_vco_out_hz(hse_hz, m, n) / q;
}

/* RCC_PLLCFGR fields with HSE as PLL source (reserved bits not included). */
static inline uint32_t stm32f746_pllcfgr_fields(uint32_t m, uint32_t n, uint32_t p, uint32_t q)
{
    return m | (n << 6) | ((p / 2u - 1u) << 16) | (1u << 22) | (q << 24);
}

/* RCC_CFGR PPREx encoding of an APB divider: 1 -> 0b000, 2 -> 0b100 ... 16 -> 0b111. */
static inline uint32_t stm32f746_ppre_bits(uint32_t div)
{
    uint32_t bits = 0;
    while (div > 1u) {
        div >>= 1;
        bits++;
    }
    return bits ? (0x4u | (bits - 1u)) : 0u;
}

/* Flash wait states at 2.7-3.6 V: one per started 30 MHz beyond the first
 * (RM0385 3.3.2: 7 WS for 210 < HCLK <= 216 MHz). */
static inline uint32_t stm32f746_flash_latency(uint32_t hclk_hz) { return (hclk_hz - 1u) / 30000000u; }

/* USART_BRR with 16x oversampling (OVER8 = 0): USARTDIV = f_ck / baud, rounded. */
static inline uint32_t stm32f746_usart_brr(uint32_t pclk_hz, uint32_t baud)
{
    return (pclk_hz + baud / 2u) / baud;
}

#endif
