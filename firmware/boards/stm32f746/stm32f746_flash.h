/* Erasing and programming the STM32F746's embedded flash (RM0385 section 3), for the checkpoint
 * slots in sectors 6 and 7. The sector arithmetic is pure so that a host test checks it, and the
 * driver reaches the controller only through the accessors below, which that test replaces with a
 * model of the controller (host/tests/test_stm32f746_flash.py). */
#ifndef TT_STM32F746_FLASH_H
#define TT_STM32F746_FLASH_H

#include <stdint.h>

#define STM32F746_FLASH_BASE 0x08000000u
#define STM32F746_FLASH_BYTES (1024u * 1024u)
/* Program unit at x32 parallelism (RM0385 3.3.6: PSIZE = x32 for a 2.7-3.6 V supply, the DISCO's 3.3 V). */
#define STM32F746_FLASH_UNIT 4u

/* Sector holding byte `offset` of the flash (RM0385 table 3: 4 x 32 KB, 128 KB, 3 x 256 KB), or -1. */
static inline int stm32f746_flash_sector(uint32_t offset)
{
    if (offset < 0x20000u) {
        return (int)(offset / 0x8000u);
    }
    if (offset < 0x40000u) {
        return 4;
    }
    if (offset < STM32F746_FLASH_BYTES) {
        return 5 + (int)((offset - 0x40000u) / 0x40000u);
    }
    return -1;
}

/* First byte of a sector, or STM32F746_FLASH_BYTES for sectors beyond the last. */
static inline uint32_t stm32f746_flash_sector_start(int sector)
{
    if (sector < 4) {
        return (uint32_t)sector * 0x8000u;
    }
    if (sector == 4) {
        return 0x20000u;
    }
    return sector <= 7 ? 0x40000u + (uint32_t)(sector - 5) * 0x40000u : STM32F746_FLASH_BYTES;
}

/* Erases the sector starting at flash offset `sector_offset` / programs `len` bytes (a multiple of
 * STM32F746_FLASH_UNIT, at an aligned offset) over erased flash; both block until the controller is
 * done, leave it locked, invalidate the D-cache over what changed and return a BOARD_NV_* code. */
int stm32f746_flash_erase(uint32_t sector_offset);
int stm32f746_flash_program(uint32_t offset, const uint8_t *data, uint32_t len);

/* Accessors: the controller's registers (offsets from 0x40023C00), a word write into the flash at
 * a byte offset from 0x08000000, reading flash back, the barrier after a write, D-cache invalidation. */
uint32_t stm32f746_flash_reg_read(uint32_t reg);
void stm32f746_flash_reg_write(uint32_t reg, uint32_t value);
void stm32f746_flash_word_write(uint32_t offset, uint32_t word);
uint8_t stm32f746_flash_read(uint32_t offset);
void stm32f746_flash_barrier(void);
void stm32f746_flash_dcache_invalidate(uint32_t offset, uint32_t len);

#endif
