/* The embedded flash controller of the STM32F746 (RM0385 3.3.2-3.3.6, 3.7): unlock with the two
 * keys, one operation at a time with BSY polled, x32 parallelism (2.7-3.6 V), every error flag
 * checked and cleared, locked again afterwards. Written from the manual; it cannot run in this
 * repository's CI, where host/tests/test_stm32f746_flash.py runs it against a model of the controller. */
#include "boards/stm32f746/stm32f746_flash.h"

#include "boards/board.h"
#include "boards/stm32f746/stm32f746_regs.h"

#ifndef TT_STM32F746_FLASH_SIM
/* The real accessors; the host test compiles this file with its own. */
uint32_t stm32f746_flash_reg_read(uint32_t reg) { return TT_REG32(FLASH_BASE_REGS + reg); }

void stm32f746_flash_reg_write(uint32_t reg, uint32_t value) { TT_REG32(FLASH_BASE_REGS + reg) = value; }

void stm32f746_flash_word_write(uint32_t offset, uint32_t word)
{
    TT_REG32(STM32F746_FLASH_BASE + offset) = word;
}

uint8_t stm32f746_flash_read(uint32_t offset)
{
    return *(volatile const uint8_t *)(uintptr_t)(STM32F746_FLASH_BASE + offset);
}

void stm32f746_flash_barrier(void) { cortex_m_dsb(); }

void stm32f746_flash_dcache_invalidate(uint32_t offset, uint32_t len)
{
    /* The flash is cacheable (write-through): lines read before an erase or a program are stale. */
    uint32_t first = (STM32F746_FLASH_BASE + offset) & ~(CORTEX_M7_DCACHE_LINE - 1u);
    uint32_t end = STM32F746_FLASH_BASE + offset + len;
    cortex_m_dsb();
    for (uint32_t a = first; a < end; a += CORTEX_M7_DCACHE_LINE) {
        SCB_DCIMVAC = a;
    }
    cortex_m_dsb();
    cortex_m_isb();
}
#endif

static void wait_idle(void)
{
    while (stm32f746_flash_reg_read(FLASH_SR_OFFSET) & FLASH_SR_BSY) {
    }
}

/* Unlocks CR (KEY1 then KEY2; a wrong sequence locks it until the next reset) and clears stale flags. */
static int unlock(void)
{
    wait_idle();
    if (stm32f746_flash_reg_read(FLASH_CR_OFFSET) & FLASH_CR_LOCK) {
        stm32f746_flash_reg_write(FLASH_KEYR_OFFSET, FLASH_KEY1);
        stm32f746_flash_reg_write(FLASH_KEYR_OFFSET, FLASH_KEY2);
        if (stm32f746_flash_reg_read(FLASH_CR_OFFSET) & FLASH_CR_LOCK) {
            return BOARD_NV_HW_ERROR;
        }
    }
    stm32f746_flash_reg_write(FLASH_SR_OFFSET, FLASH_SR_ERRORS | FLASH_SR_EOP); /* write 1 to clear */
    return BOARD_NV_OK;
}

/* Waits for the operation, then reports and clears its errors. */
static int finish(void)
{
    stm32f746_flash_barrier();
    wait_idle();
    uint32_t sr = stm32f746_flash_reg_read(FLASH_SR_OFFSET);
    stm32f746_flash_reg_write(FLASH_SR_OFFSET, sr & (FLASH_SR_ERRORS | FLASH_SR_EOP));
    return (sr & FLASH_SR_ERRORS) ? BOARD_NV_HW_ERROR : BOARD_NV_OK;
}

static void lock(void)
{
    uint32_t cr = stm32f746_flash_reg_read(FLASH_CR_OFFSET);
    stm32f746_flash_reg_write(FLASH_CR_OFFSET, (cr & ~(FLASH_CR_PG | FLASH_CR_SER | FLASH_CR_SNB_MASK)) | FLASH_CR_LOCK);
}

int stm32f746_flash_erase(uint32_t sector_offset)
{
    int sector = stm32f746_flash_sector(sector_offset);
    if (sector < 0 || stm32f746_flash_sector_start(sector) != sector_offset) {
        return BOARD_NV_BAD_RANGE;
    }
    int rc = unlock();
    if (rc == BOARD_NV_OK) {
        uint32_t cr = stm32f746_flash_reg_read(FLASH_CR_OFFSET);
        cr &= ~(FLASH_CR_PG | FLASH_CR_MER | FLASH_CR_SNB_MASK | FLASH_CR_PSIZE_MASK);
        cr |= FLASH_CR_SER | ((uint32_t)sector << FLASH_CR_SNB_POS) | FLASH_CR_PSIZE_X32;
        stm32f746_flash_reg_write(FLASH_CR_OFFSET, cr);
        stm32f746_flash_reg_write(FLASH_CR_OFFSET, cr | FLASH_CR_STRT);
        rc = finish();
    }
    lock();
    stm32f746_flash_dcache_invalidate(sector_offset, stm32f746_flash_sector_start(sector + 1) - sector_offset);
    if (rc == BOARD_NV_OK) {
        for (uint32_t a = sector_offset; a < stm32f746_flash_sector_start(sector + 1); ++a) {
            if (stm32f746_flash_read(a) != 0xFFu) {
                return BOARD_NV_VERIFY;
            }
        }
    }
    return rc;
}

int stm32f746_flash_program(uint32_t offset, const uint8_t *data, uint32_t len)
{
    if (offset % STM32F746_FLASH_UNIT != 0u || len % STM32F746_FLASH_UNIT != 0u || offset > STM32F746_FLASH_BYTES ||
        len > STM32F746_FLASH_BYTES - offset) {
        return BOARD_NV_BAD_RANGE;
    }
    for (uint32_t i = 0; i < len; ++i) {
        if (stm32f746_flash_read(offset + i) != 0xFFu) {
            return BOARD_NV_NOT_ERASED;
        }
    }
    int rc = unlock();
    if (rc == BOARD_NV_OK) {
        uint32_t cr = stm32f746_flash_reg_read(FLASH_CR_OFFSET);
        cr &= ~(FLASH_CR_SER | FLASH_CR_MER | FLASH_CR_SNB_MASK | FLASH_CR_PSIZE_MASK);
        stm32f746_flash_reg_write(FLASH_CR_OFFSET, cr | FLASH_CR_PSIZE_X32 | FLASH_CR_PG);
        for (uint32_t at = 0; at < len && rc == BOARD_NV_OK; at += STM32F746_FLASH_UNIT) {
            uint32_t word = (uint32_t)data[at] | ((uint32_t)data[at + 1u] << 8) | ((uint32_t)data[at + 2u] << 16) |
                            ((uint32_t)data[at + 3u] << 24);
            stm32f746_flash_word_write(offset + at, word);
            rc = finish();
        }
    }
    lock();
    stm32f746_flash_dcache_invalidate(offset, len);
    for (uint32_t i = 0; i < len && rc == BOARD_NV_OK; ++i) {
        if (stm32f746_flash_read(offset + i) != data[i]) {
            rc = BOARD_NV_VERIFY;
        }
    }
    return rc;
}
