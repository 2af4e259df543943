/* QEMU `-M mps2-an500` (Cortex-M7, 25 MHz system clock), run with
 * `-icount shift=0` so that the virtual clock advances 1 ns per instruction.
 * Serial line: CMSDK APB UART0. Counter: SysTick on the CPU clock. */
#include <stdint.h>

#include "boards/board.h"
#include "boards/cortex_m/cortex_m7.h"

#define SYSCLK_HZ 25000000u
/* Under -icount shift=0 one instruction takes 1 ns of virtual time and the
 * 25 MHz SysTick ticks every 40 ns, i.e. every 40 instructions (checked by
 * hil_tests/test_counter.py with a loop of known length). */
#define INSTRUCTIONS_PER_TICK 40u

/* CMSDK APB UART (Arm DDI 0479) */
#define UART0_BASE 0x40004000u
#define UART_DATA TT_REG32(UART0_BASE + 0x00u)
#define UART_STATE TT_REG32(UART0_BASE + 0x04u)
#define UART_CTRL TT_REG32(UART0_BASE + 0x08u)
#define UART_BAUDDIV TT_REG32(UART0_BASE + 0x10u)
#define UART_STATE_TXFULL (1u << 0)
#define UART_STATE_RXFULL (1u << 1)
#define UART_CTRL_TX_EN (1u << 0)
#define UART_CTRL_RX_EN (1u << 1)
#define UART_BAUD 115200u

static const board_info_t info = {
    .name = "mps2_an500",
    .ram_bytes = 320u * 1024u,
    .flash_bytes = 1024u * 1024u,
    .clock_hz = SYSCLK_HZ,
    .counter_kind = BOARD_COUNTER_INSTRUCTIONS,
    .counter_hz = (uint64_t)SYSCLK_HZ * INSTRUCTIONS_PER_TICK,
    .rx_ring_bytes = 0u, /* QEMU's serial backend waits until the UART takes the next byte */
};

static volatile uint32_t systick_wraps;

void SysTick_Handler(void) { systick_wraps = systick_wraps + 1u; }

void board_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* QEMU ignores the rate, but requires BAUDDIV >= 16 like the hardware. */
    UART_BAUDDIV = SYSCLK_HZ / UART_BAUD;
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN;

    SYST_RVR = SYST_RELOAD_MAX;
    SYST_CVR = 0u;
    SYST_CSR = SYST_CSR_CLKSOURCE_CPU | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
    cortex_m_irq_enable();
}

int board_getc(void)
{
    if (UART_STATE & UART_STATE_RXFULL) {
        return (int)(UART_DATA & 0xFFu);
    }
    return -1;
}

uint32_t board_rx_overruns(void) { return 0u; }

void board_write(const void *data, size_t len)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < len; ++i) {
        while (UART_STATE & UART_STATE_TXFULL) {
        }
        UART_DATA = bytes[i];
    }
}

uint64_t board_counter_read(void)
{
    /* With interrupts masked, a wrap not yet counted shows as a pending SysTick;
     * the value is then re-read so that it is certainly from after that wrap. */
    uint32_t primask = cortex_m_irq_save();
    uint32_t wraps = systick_wraps;
    uint32_t value = SYST_CVR;
    if (SCB_ICSR & SCB_ICSR_PENDSTSET) {
        wraps += 1u;
        value = SYST_CVR;
    }
    cortex_m_irq_restore(primask);
    uint64_t ticks = ((uint64_t)wraps << 24) + (SYST_RELOAD_MAX - value);
    return ticks * INSTRUCTIONS_PER_TICK;
}

const board_info_t *board_info(void) { return &info; }

/* Cortex-M7 core exceptions plus the 32 interrupts of the AN500 image; none is
 * enabled but SysTick, so the rest report a fault if they ever fire. */
#define IRQ_COUNT 32u
typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16u + IRQ_COUNT] = {
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
    [16 ... 16u + IRQ_COUNT - 1u] = Default_Handler,
};
