/* Every STM32F746 peripheral register tinytrain touches, from RM0385 (rev 8).
 * Core registers (SCB, SysTick, DWT, NVIC) are in boards/cortex_m/cortex_m7.h. */
#ifndef TT_STM32F746_REGS_H
#define TT_STM32F746_REGS_H

#include "boards/cortex_m/cortex_m7.h"

/* RCC (RM0385 5.3), base 0x40023800 */
#define RCC_BASE 0x40023800u
#define RCC_CR TT_REG32(RCC_BASE + 0x00u)
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_HSEBYP (1u << 18)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR TT_REG32(RCC_BASE + 0x04u)
#define RCC_PLLCFGR_PLLM_POS 0u   /* [5:0] */
#define RCC_PLLCFGR_PLLN_POS 6u   /* [14:6] */
#define RCC_PLLCFGR_PLLP_POS 16u  /* [17:16]: 00 = /2, 01 = /4, 10 = /6, 11 = /8 */
#define RCC_PLLCFGR_PLLSRC_HSE (1u << 22)
#define RCC_PLLCFGR_PLLQ_POS 24u  /* [27:24] */
/* Fields written by the clock setup; the other bits are reserved (keep reset value). */
#define RCC_PLLCFGR_FIELDS (0x3Fu | (0x1FFu << 6) | (0x3u << 16) | (1u << 22) | (0xFu << 24))
#define RCC_CFGR TT_REG32(RCC_BASE + 0x08u)
#define RCC_CFGR_SW_MASK (0x3u << 0)
#define RCC_CFGR_SW_PLL (0x2u << 0)
#define RCC_CFGR_SWS_MASK (0x3u << 2)
#define RCC_CFGR_SWS_PLL (0x2u << 2)
#define RCC_CFGR_HPRE_POS 4u   /* [7:4], 0xxx = /1 */
#define RCC_CFGR_PPRE1_POS 10u /* [12:10] */
#define RCC_CFGR_PPRE2_POS 13u /* [15:13] */
#define RCC_CFGR_PRESCALERS ((0xFu << 4) | (0x7u << 10) | (0x7u << 13))
#define RCC_AHB1ENR TT_REG32(RCC_BASE + 0x30u)
#define RCC_AHB1ENR_GPIOAEN (1u << 0)
#define RCC_AHB1ENR_GPIOBEN (1u << 1)
#define RCC_APB1ENR TT_REG32(RCC_BASE + 0x40u)
#define RCC_APB1ENR_PWREN (1u << 28)
#define RCC_APB2ENR TT_REG32(RCC_BASE + 0x44u)
#define RCC_APB2ENR_USART1EN (1u << 4)
#define RCC_DCKCFGR2 TT_REG32(RCC_BASE + 0x90u)
#define RCC_DCKCFGR2_USART1SEL_MASK (0x3u << 0) /* 00 = APB2 clock (PCLK2) */

/* PWR (RM0385 4.4), base 0x40007000 */
#define PWR_BASE 0x40007000u
#define PWR_CR1 TT_REG32(PWR_BASE + 0x00u)
#define PWR_CR1_VOS_MASK (0x3u << 14)
#define PWR_CR1_VOS_SCALE1 (0x3u << 14)
#define PWR_CR1_ODEN (1u << 16)
#define PWR_CR1_ODSWEN (1u << 17)
#define PWR_CSR1 TT_REG32(PWR_BASE + 0x04u)
#define PWR_CSR1_ODRDY (1u << 16)
#define PWR_CSR1_ODSWRDY (1u << 17)

/* Embedded flash interface (RM0385 3.7), base 0x40023C00 */
#define FLASH_BASE_REGS 0x40023C00u
#define FLASH_ACR TT_REG32(FLASH_BASE_REGS + 0x00u)
#define FLASH_ACR_LATENCY_MASK 0xFu
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ARTEN (1u << 9)
/* Programming and erasing (RM0385 3.3.4-3.3.6, 3.7.2-3.7.5); register offsets from FLASH_BASE_REGS. */
#define FLASH_KEYR_OFFSET 0x04u
#define FLASH_SR_OFFSET 0x0Cu
#define FLASH_CR_OFFSET 0x10u
#define FLASH_KEY1 0x45670123u
#define FLASH_KEY2 0xCDEF89ABu
#define FLASH_SR_EOP (1u << 0)
#define FLASH_SR_OPERR (1u << 1)
#define FLASH_SR_WRPERR (1u << 4)
#define FLASH_SR_PGAERR (1u << 5)
#define FLASH_SR_PGPERR (1u << 6)
#define FLASH_SR_ERSERR (1u << 7)
#define FLASH_SR_BSY (1u << 16)
#define FLASH_SR_ERRORS (FLASH_SR_OPERR | FLASH_SR_WRPERR | FLASH_SR_PGAERR | FLASH_SR_PGPERR | FLASH_SR_ERSERR)
#define FLASH_CR_PG (1u << 0)
#define FLASH_CR_SER (1u << 1)
#define FLASH_CR_MER (1u << 2)
#define FLASH_CR_SNB_POS 3u /* [6:3] sector number */
#define FLASH_CR_SNB_MASK (0xFu << 3)
#define FLASH_CR_PSIZE_POS 8u /* [9:8] 00 x8, 01 x16, 10 x32, 11 x64 (x64 needs VPP) */
#define FLASH_CR_PSIZE_MASK (0x3u << 8)
#define FLASH_CR_PSIZE_X32 (0x2u << 8) /* the parallelism for a 2.7-3.6 V supply */
#define FLASH_CR_STRT (1u << 16)
#define FLASH_CR_LOCK (1u << 31)

/* GPIO (RM0385 6.4) */
#define GPIOA_BASE 0x40020000u
#define GPIOB_BASE 0x40020400u
#define GPIO_MODER(base) TT_REG32((base) + 0x00u)
#define GPIO_OSPEEDR(base) TT_REG32((base) + 0x08u)
#define GPIO_PUPDR(base) TT_REG32((base) + 0x0Cu)
#define GPIO_AFRL(base) TT_REG32((base) + 0x20u)
#define GPIO_AFRH(base) TT_REG32((base) + 0x24u)
#define GPIO_MODE_AF 0x2u
#define GPIO_SPEED_HIGH 0x2u
#define GPIO_PULL_UP 0x1u

/* USART1 (RM0385 31.8), base 0x40011000, on APB2, interrupt 37 */
#define USART1_BASE 0x40011000u
#define USART1_IRQN 37u
#define USART_CR1(base) TT_REG32((base) + 0x00u)
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_BRR(base) TT_REG32((base) + 0x0Cu)
#define USART_ISR(base) TT_REG32((base) + 0x1Cu)
#define USART_ICR(base) TT_REG32((base) + 0x20u)
#define USART_RDR(base) TT_REG32((base) + 0x24u)
#define USART_TDR(base) TT_REG32((base) + 0x28u)
#define USART_ISR_PE (1u << 0)
#define USART_ISR_FE (1u << 1)
#define USART_ISR_NF (1u << 2)
#define USART_ISR_ORE (1u << 3)
#define USART_ISR_RXNE (1u << 5)
#define USART_ISR_TXE (1u << 7)
#define USART_ICR_ERRORS (USART_ISR_PE | USART_ISR_FE | USART_ISR_NF | USART_ISR_ORE) /* same bit positions */

/* STM32F74x/75x: 98 interrupts (RM0385 section 10, vector table) */
#define STM32F746_IRQ_COUNT 98u

#endif
