/* The portable board interface: everything outside firmware/boards/ reaches the
 * hardware only through these functions, so the same firmware builds for QEMU
 * (boards/mps2_an500), the STM32F746G-DISCO (boards/stm32f746) and a Linux
 * process (boards/host). */
#ifndef TT_BOARD_H
#define TT_BOARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What board_counter_read() counts; the values are the protocol's counter_kind. */
typedef enum {
    BOARD_COUNTER_INSTRUCTIONS = 0, /* QEMU -icount shift=0: SysTick ticks x 40 */
    BOARD_COUNTER_CYCLES = 1,       /* DWT->CYCCNT */
    BOARD_COUNTER_NANOSECONDS = 2,  /* host CLOCK_MONOTONIC */
} board_counter_kind_t;

typedef struct {
    const char *name;             /* "mps2_an500", "stm32f746" or "host" */
    uint32_t ram_bytes;           /* SRAM budget: 320 KB on both MCU targets */
    uint32_t flash_bytes;         /* 1 MB on both MCU targets */
    uint32_t clock_hz;            /* core clock (0 on the host) */
    board_counter_kind_t counter_kind;
    uint64_t counter_hz;          /* counter units per second (instructions per virtual second in QEMU) */
    uint32_t rx_ring_bytes;       /* receive ring that holds bytes while the firmware is busy; 0: the
                                   * line itself waits (QEMU, the host build's socket), nothing is lost */
} board_info_t;

typedef struct {
    uint32_t data_bytes;           /* .data */
    uint32_t bss_bytes;            /* .bss and .dtcm_bss */
    uint32_t stack_reserved_bytes; /* size of the stack region */
    uint32_t stack_used_bytes;     /* bytes of the painted stack ever written */
} board_memory_t;

/* Registers captured by a fault handler, in the order of the FAULT frame. */
typedef struct {
    uint32_t pc, lr, psr, cfsr, hfsr, mmfar, bfar, sp;
} board_fault_t;

/* Clocks, serial line, counter and interrupts. argc/argv are main()'s: the host
 * board reads its TCP port there; the MCU boards get 0 and NULL. */
void board_init(int argc, char **argv);

/* Next received byte, or -1 at once when none is waiting. */
int board_getc(void);

/* Received bytes lost since boot because the receive ring (or the UART) was full: each one
 * breaks a frame (BAD_CRC or a frame that never ends). STATS reports it. */
uint32_t board_rx_overruns(void);

/* Sends len bytes; returns when they are all handed to the hardware. Safe to
 * call from a fault handler. */
void board_write(const void *data, size_t len);

/* 64-bit monotonically increasing counter; unit given by board_info(). */
uint64_t board_counter_read(void);

const board_info_t *board_info(void);

/* Static sections and stack high-water mark (stack painted at boot). */
void board_memory(board_memory_t *out);

/* Non-volatile storage for checkpoints (docs/checkpoints.md): `sectors` erase units of
 * `sector_bytes` each, readable in place at `base`. Erasing a sector sets every byte to 0xFF;
 * programming only turns bits from 1 to 0, `program_unit` bytes at a time, and is refused over bytes
 * that are not erased. A power cut during either leaves the bytes it was working on undefined and
 * every other byte as it was. STM32F746: flash sectors 6 and 7; QEMU and the host build: a
 * file-backed stand-in with the same rules (RAM only when they were started without a file). */
typedef struct {
    const volatile uint8_t *base; /* NULL: no non-volatile storage */
    uint32_t sector_bytes;
    uint32_t sectors;
    uint32_t program_unit;        /* offsets and lengths of board_nv_program are multiples of it */
    bool persistent;              /* false: a RAM stand-in that the next start does not see */
} board_nv_info_t;

/* Results of board_nv_erase / board_nv_program: 0, or why the storage refused. */
enum {
    BOARD_NV_OK = 0,
    BOARD_NV_BAD_RANGE = 1,   /* outside the region, or not aligned to the program unit */
    BOARD_NV_NOT_ERASED = 2,  /* programming over bytes that are not 0xFF */
    BOARD_NV_HW_ERROR = 3,    /* the flash controller reported an error (write protection, alignment...) */
    BOARD_NV_VERIFY = 4,      /* the bytes read back differ from the bytes programmed */
};

const board_nv_info_t *board_nv_info(void);

/* Erases sector `sector` of the region (blocking; seconds on the STM32F746). */
int board_nv_erase(uint32_t sector);

/* Programs len bytes at byte `offset` of the region (blocking). */
int board_nv_program(uint32_t offset, const void *data, uint32_t len);

/* Fault report hook. Implemented outside boards/ (app/ sends a FAULT frame);
 * the board calls it from its fault handler with interrupts off and then
 * halts. It may use board_write() and nothing that could itself fault. */
void board_on_fault(const board_fault_t *fault);

#endif
