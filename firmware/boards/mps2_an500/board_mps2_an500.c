/* QEMU `-M mps2-an500` (Cortex-M7, 25 MHz system clock), run with
 * `-icount shift=0` so that the virtual clock advances 1 ns per instruction.
 * Serial line: CMSDK APB UART0. Counter: SysTick on the CPU clock.
 *
 * Non-volatile storage: QEMU models no flash controller, so the checkpoint sectors (the last 512 KB
 * of the 1 MB "flash", as on the STM32F746, reserved by the linker script) are RAM that follows the
 * flash rules in software (boards/nv_emulated.h) and is written through to a file on the host with
 * Arm semihosting, one program unit or erase chunk per call: a QEMU killed at any instruction leaves
 * the file as a power cut leaves flash. The harness (tinytrain.board.emulator) preloads the file at the
 * sectors' address (-device loader), passes its path as the semihosting command line and puts
 * NV_MAILBOX_MAGIC at NV_MAILBOX; without them (QEMU started by hand) the sectors are erased RAM. */
#include <stdbool.h>
#include <stdint.h>

#include "boards/board.h"
#include "boards/cortex_m/cortex_m7.h"
#include "boards/nv_emulated.h"

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

static void nv_init(void);

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
    nv_init();
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

/* ------------------------------------------------------------ non-volatile storage */

#define NV_SECTOR_BYTES (256u * 1024u)
#define NV_UNIT 4u
/* In ZBT SSRAM1 above the 1 MB "flash": written by the harness, never by the image. */
#define NV_MAILBOX 0x003FFFF0u
#define NV_MAILBOX_MAGIC 0x564E5454u /* "TTNV": semihosting is on and its command line is the NV file */

extern const uint8_t __nv_start__[];
extern const uint8_t __tt_nv_bytes__[]; /* its address is the size (0: built without checkpoints) */

static board_nv_info_t nv_info;
static nv_emulated_t nv;
static int nv_file = -1;

/* Arm semihosting (BKPT 0xAB): op in r0, parameter block in r1, result in r0. */
static int semihost(int op, const void *block)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#define SYS_OPEN 0x01
#define SYS_WRITE 0x05
#define SYS_SEEK 0x0A
#define SYS_GET_CMDLINE 0x15
#define SYS_OPEN_RB_PLUS 3 /* "r+b": the file exists, keep it */

/* Power cuts for tests: the harness writes N here through QEMU's gdb stub; the N-th erase chunk or
 * program unit from then on calls tt_nv_fault_point first, where it has set a breakpoint, and from
 * where it lets the board run a few more instructions before it kills QEMU. */
volatile uint32_t tt_nv_fault_countdown;

__attribute__((noinline, used)) void tt_nv_fault_point(uint32_t offset, uint32_t len, const uint8_t *data)
{
    __asm__ volatile("" ::"r"(offset), "r"(len), "r"(data) : "memory");
}

static void nv_before(uint32_t offset, uint32_t len, const uint8_t *data)
{
    uint32_t n = tt_nv_fault_countdown;
    if (n != 0u) {
        tt_nv_fault_countdown = n - 1u;
        if (n == 1u) {
            tt_nv_fault_point(offset, len, data);
        }
    }
}

static void nv_persist(uint32_t offset, uint32_t len)
{
    if (nv_file < 0) {
        return;
    }
    uint32_t seek[2] = {(uint32_t)nv_file, offset};
    uint32_t write[3] = {(uint32_t)nv_file, (uint32_t)(uintptr_t)(nv_info.base + offset), len};
    (void)semihost(SYS_SEEK, seek);
    (void)semihost(SYS_WRITE, write);
}

static void nv_init(void)
{
    /* through a register: GCC takes the address of an object for non-zero and would drop the test */
    uintptr_t size = (uintptr_t)__tt_nv_bytes__;
    __asm__("" : "+r"(size));
    uint32_t bytes = (uint32_t)size;
    if (bytes == 0u) {
        nv_info = (board_nv_info_t){NULL, NV_SECTOR_BYTES, 0u, NV_UNIT, false};
        return;
    }
    volatile uint8_t *mem = (volatile uint8_t *)(uintptr_t)__nv_start__;
    if (TT_REG32(NV_MAILBOX) == NV_MAILBOX_MAGIC) {
        static char path[256];
        uint32_t cmdline[2] = {(uint32_t)(uintptr_t)path, sizeof path - 1u};
        if (semihost(SYS_GET_CMDLINE, cmdline) == 0) {
            uint32_t n = 0;
            while (n < sizeof path && path[n] != '\0') {
                n++;
            }
            uint32_t open[3] = {(uint32_t)(uintptr_t)path, SYS_OPEN_RB_PLUS, n};
            nv_file = semihost(SYS_OPEN, open);
        }
    }
    if (nv_file < 0) {
        for (uint32_t i = 0; i < bytes; ++i) {
            mem[i] = 0xFFu; /* a RAM stand-in: erased at every start */
        }
    }
    nv_info = (board_nv_info_t){mem, NV_SECTOR_BYTES, bytes / NV_SECTOR_BYTES, NV_UNIT, nv_file >= 0};
    nv = (nv_emulated_t){mem, NV_SECTOR_BYTES, bytes / NV_SECTOR_BYTES, NV_UNIT, nv_before, nv_persist};
}

const board_nv_info_t *board_nv_info(void) { return &nv_info; }

int board_nv_erase(uint32_t sector) { return nv_emulated_erase(&nv, sector); }

int board_nv_program(uint32_t offset, const void *data, uint32_t len)
{
    return nv_emulated_program(&nv, offset, data, len);
}

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
