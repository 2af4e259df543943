/* STM32F746G-DISCO: 216 MHz from the 25 MHz HSE, caches on, USART1 on the
 * ST-LINK virtual COM port (PA9 TX, PB7 RX), DWT cycle counter. Written from
 * RM0385; it cannot run in this repository's CI, so the clock arithmetic sits
 * in stm32f746_clock.h where a host test checks it. */
#include <stdint.h>

#include "boards/board.h"
#include "boards/stm32f746/stm32f746_clock.h"
#include "boards/stm32f746/stm32f746_flash.h"
#include "boards/uart_ring.h"
#include "boards/stm32f746/stm32f746_regs.h"

#ifndef TT_UART_BAUD
#define TT_UART_BAUD 921600u
#endif

_Static_assert(STM32F746_SYSCLK_HZ == 216000000u, "the PLL must give 216 MHz");

/* Received bytes wait here: at 921600 baud a byte arrives every ~2340 cycles,
 * but a handler may be busy for longer than one byte time. The host never has more
 * than this many bytes on the way while the board computes (docs/protocol.md, CREDIT). */
#define RX_RING_BYTES 512u
static uint8_t rx_bytes[RX_RING_BYTES];
static uart_ring_t rx_ring = {rx_bytes, RX_RING_BYTES, 0u, 0u, 0u};
/* Bytes the USART itself lost (ORE: a byte arrived before the previous one was read). */
static volatile uint32_t uart_overruns;

static const board_info_t info = {
    .name = "stm32f746",
    .ram_bytes = 320u * 1024u,
    .flash_bytes = 1024u * 1024u,
    .clock_hz = STM32F746_HCLK_HZ,
    .counter_kind = BOARD_COUNTER_CYCLES,
    .counter_hz = STM32F746_HCLK_HZ,
    .rx_ring_bytes = RX_RING_BYTES,
};

static void nv_init(void);

static uint32_t cycles_high; /* wraps of the 32-bit DWT->CYCCNT */
static uint32_t cycles_last;

static void wait_set(volatile uint32_t *reg, uint32_t mask)
{
    while ((*reg & mask) != mask) {
    }
}

static void clocks_init(void)
{
    /* Voltage scale 1 (needed for over-drive) may only change while the PLL is off. */
    RCC_APB1ENR |= RCC_APB1ENR_PWREN;
    (void)RCC_APB1ENR; /* the enable takes effect after one read-back */
    PWR_CR1 = (PWR_CR1 & ~PWR_CR1_VOS_MASK) | PWR_CR1_VOS_SCALE1;

    RCC_CR = (RCC_CR & ~RCC_CR_HSEBYP) | RCC_CR_HSEON;
    wait_set(&RCC_CR, RCC_CR_HSERDY);

    RCC_PLLCFGR = (RCC_PLLCFGR & ~RCC_PLLCFGR_FIELDS) |
                  stm32f746_pllcfgr_fields(STM32F746_PLLM, STM32F746_PLLN, STM32F746_PLLP, STM32F746_PLLQ);
    RCC_CR |= RCC_CR_PLLON;

    /* Over-drive is what allows 216 MHz (RM0385 4.1.4, in this order). */
    PWR_CR1 |= PWR_CR1_ODEN;
    wait_set(&PWR_CSR1, PWR_CSR1_ODRDY);
    PWR_CR1 |= PWR_CR1_ODSWEN;
    wait_set(&PWR_CSR1, PWR_CSR1_ODSWRDY);

    /* Wait states before the faster clock, with prefetch and the ART accelerator. */
    FLASH_ACR = stm32f746_flash_latency(STM32F746_HCLK_HZ) | FLASH_ACR_PRFTEN | FLASH_ACR_ARTEN;
    while ((FLASH_ACR & FLASH_ACR_LATENCY_MASK) != stm32f746_flash_latency(STM32F746_HCLK_HZ)) {
    }
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_PRESCALERS) |
               (stm32f746_ppre_bits(STM32F746_APB1_DIV) << RCC_CFGR_PPRE1_POS) |
               (stm32f746_ppre_bits(STM32F746_APB2_DIV) << RCC_CFGR_PPRE2_POS);

    wait_set(&RCC_CR, RCC_CR_PLLRDY);
    RCC_CFGR = (RCC_CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
    while ((RCC_CFGR & RCC_CFGR_SWS_MASK) != RCC_CFGR_SWS_PLL) {
    }
}

static void caches_init(void)
{
    /* I-cache: invalidate, then enable (Cortex-M7 TRM / ARMv7-M cache maintenance). */
    cortex_m_dsb();
    cortex_m_isb();
    SCB_ICIALLU = 0;
    cortex_m_dsb();
    cortex_m_isb();
    SCB_CCR |= SCB_CCR_IC;
    cortex_m_dsb();
    cortex_m_isb();

    /* D-cache: invalidate every line by set/way (32-byte lines, 4 ways), then enable. */
    SCB_CSSELR = 0; /* level 1 data cache */
    cortex_m_dsb();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    for (uint32_t set = 0; set < sets; ++set) {
        for (uint32_t way = 0; way < ways; ++way) {
            SCB_DCISW = (set << 5) | (way << 30);
        }
    }
    cortex_m_dsb();
    SCB_CCR |= SCB_CCR_DC;
    cortex_m_dsb();
    cortex_m_isb();
}

static void uart_init(void)
{
    RCC_AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN;
    RCC_APB2ENR |= RCC_APB2ENR_USART1EN;
    (void)RCC_APB2ENR;
    RCC_DCKCFGR2 &= ~RCC_DCKCFGR2_USART1SEL_MASK; /* USART1 clocked from PCLK2 */

    /* PA9 = USART1_TX, PB7 = USART1_RX, both alternate function 7. */
    GPIO_MODER(GPIOA_BASE) = (GPIO_MODER(GPIOA_BASE) & ~(0x3u << 18)) | (GPIO_MODE_AF << 18);
    GPIO_OSPEEDR(GPIOA_BASE) = (GPIO_OSPEEDR(GPIOA_BASE) & ~(0x3u << 18)) | (GPIO_SPEED_HIGH << 18);
    GPIO_AFRH(GPIOA_BASE) = (GPIO_AFRH(GPIOA_BASE) & ~(0xFu << 4)) | (7u << 4);
    GPIO_MODER(GPIOB_BASE) = (GPIO_MODER(GPIOB_BASE) & ~(0x3u << 14)) | (GPIO_MODE_AF << 14);
    GPIO_PUPDR(GPIOB_BASE) = (GPIO_PUPDR(GPIOB_BASE) & ~(0x3u << 14)) | (GPIO_PULL_UP << 14);
    GPIO_AFRL(GPIOB_BASE) = (GPIO_AFRL(GPIOB_BASE) & ~(0xFu << 28)) | (7u << 28);

    USART_BRR(USART1_BASE) = stm32f746_usart_brr(STM32F746_PCLK2_HZ, TT_UART_BAUD);
    USART_CR1(USART1_BASE) = USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE | USART_CR1_UE;
    cortex_m_nvic_enable(USART1_IRQN);
}

void USART1_IRQHandler(void)
{
    uint32_t isr = USART_ISR(USART1_BASE);
    if (isr & USART_ICR_ERRORS) {
        /* An overrun would otherwise keep the interrupt asserted and stop reception;
         * the lost bytes surface as a CRC error or a timeout on the host, and in STATS. */
        USART_ICR(USART1_BASE) = isr & USART_ICR_ERRORS;
        if (isr & USART_ISR_ORE) {
            uart_overruns = uart_overruns + 1u;
        }
    }
    if (isr & USART_ISR_RXNE) {
        (void)uart_ring_put(&rx_ring, (uint8_t)USART_RDR(USART1_BASE));
    }
}

uint32_t board_rx_overruns(void) { return rx_ring.overruns + uart_overruns; }

/* Reads CYCCNT often enough (at least once per 2^32 cycles) to count its wraps. */
static uint64_t cycles_extend(void)
{
    uint32_t now = DWT_CYCCNT;
    if (now < cycles_last) {
        cycles_high++;
    }
    cycles_last = now;
    return ((uint64_t)cycles_high << 32) | now;
}

/* Every 2^24 cycles (78 ms), far inside CYCCNT's 19.9 s wrap period. */
void SysTick_Handler(void) { (void)cycles_extend(); }

void board_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    clocks_init();
    caches_init();

    DEMCR |= DEMCR_TRCENA;
    DWT_LAR = DWT_LAR_UNLOCK;
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
    SYST_RVR = SYST_RELOAD_MAX;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_CLKSOURCE_CPU | SYST_CSR_TICKINT | SYST_CSR_ENABLE;

    uart_init();
    nv_init();
    cortex_m_irq_enable();
}

int board_getc(void) { return uart_ring_get(&rx_ring); }

void board_write(const void *data, size_t len)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < len; ++i) {
        while (!(USART_ISR(USART1_BASE) & USART_ISR_TXE)) {
        }
        USART_TDR(USART1_BASE) = bytes[i];
    }
}

uint64_t board_counter_read(void)
{
    uint32_t primask = cortex_m_irq_save();
    uint64_t cycles = cycles_extend();
    cortex_m_irq_restore(primask);
    return cycles;
}

const board_info_t *board_info(void) { return &info; }

/* ------------------------------------------------------------ non-volatile storage: sectors 6 and 7 */

#define NV_SECTOR_BYTES (256u * 1024u)

extern const uint8_t __nv_start__[];
extern const uint8_t __tt_nv_bytes__[]; /* its address is the size (0: built without checkpoints) */

static board_nv_info_t nv_info;

static void nv_init(void)
{
    /* through a register: GCC takes the address of an object for non-zero and would drop the test */
    uintptr_t size = (uintptr_t)__tt_nv_bytes__;
    __asm__("" : "+r"(size));
    uint32_t bytes = (uint32_t)size;
    nv_info = (board_nv_info_t){bytes ? (const volatile uint8_t *)__nv_start__ : NULL, NV_SECTOR_BYTES,
                                bytes / NV_SECTOR_BYTES, STM32F746_FLASH_UNIT, true};
}

/* Byte offset in the flash of byte `offset` of the checkpoint region. */
static uint32_t nv_flash_offset(uint32_t offset)
{
    return (uint32_t)(uintptr_t)__nv_start__ - STM32F746_FLASH_BASE + offset;
}

const board_nv_info_t *board_nv_info(void) { return &nv_info; }

int board_nv_erase(uint32_t sector)
{
    if (sector >= nv_info.sectors) {
        return BOARD_NV_BAD_RANGE;
    }
    return stm32f746_flash_erase(nv_flash_offset(sector * NV_SECTOR_BYTES));
}

int board_nv_program(uint32_t offset, const void *data, uint32_t len)
{
    uint32_t size = nv_info.sectors * NV_SECTOR_BYTES;
    if (offset > size || len > size - offset) {
        return BOARD_NV_BAD_RANGE;
    }
    return stm32f746_flash_program(nv_flash_offset(offset), data, len);
}

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16u + STM32F746_IRQ_COUNT] = {
    [0] = (vector_t)(uintptr_t)&__stack_top__,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = Default_Handler,  /* MemManage */
    [5] = Default_Handler,  /* BusFault */
    [6] = Default_Handler,  /* UsageFault */
    [11] = Default_Handler, /* SVCall */
    [12] = Default_Handler, /* DebugMonitor */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 ... 16u + USART1_IRQN - 1u] = Default_Handler,
    [16u + USART1_IRQN] = USART1_IRQHandler,
    [16u + USART1_IRQN + 1u ... 16u + STM32F746_IRQ_COUNT - 1u] = Default_Handler,
};
