/* The STM32F746 flash driver (boards/stm32f746/stm32f746_flash.c) against a model of the flash
 * interface of RM0385 section 3 (the board cannot run here): the KEY1/KEY2 unlock sequence (a wrong
 * key locks FLASH_CR until reset), CR writes ignored while locked, BSY for a few reads after every
 * operation, sector erase (SER + SNB + STRT), word programming only with PG set and PSIZE = x32 (else
 * PGPERR / ERSERR, PGAERR when misaligned), error flags cleared by writing 1, injected write
 * protection errors, and a D-cache that keeps serving lines read before an erase or program until
 * they are invalidated. Built by host/tests/test_stm32f746_flash.py with -DTT_STM32F746_FLASH_SIM;
 * prints one line per check and exits 1 on the first that fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boards/board.h"
#include "boards/stm32f746/stm32f746_flash.h"
#include "boards/stm32f746/stm32f746_regs.h"

#define LINE 32u

static uint8_t flash[STM32F746_FLASH_BYTES];
static struct {
    uint32_t sr, cr;
    int key_stage;       /* 1: KEY1 seen */
    int locked_for_good; /* a wrong key: CR stays locked until reset */
    int busy_reads;      /* BSY reads left of the current operation */
    uint32_t inject;     /* SR error bits the next operation raises */
    unsigned erases, words, overwrites, strt_without_unlock, invalidated;
    int erased_sector;
} ctl;
static uint8_t cache[STM32F746_FLASH_BYTES / LINE][LINE];
static uint8_t cached[STM32F746_FLASH_BYTES / LINE];

static void reset(void)
{
    memset(&ctl, 0, sizeof ctl);
    ctl.cr = FLASH_CR_LOCK;
    ctl.erased_sector = -1;
    memset(cached, 0, sizeof cached);
}

static void start_operation(void)
{
    ctl.busy_reads = 3;
    ctl.sr |= ctl.inject ? ctl.inject : FLASH_SR_EOP;
}

uint32_t stm32f746_flash_reg_read(uint32_t reg)
{
    if (reg == FLASH_SR_OFFSET) {
        uint32_t sr = ctl.sr | (ctl.busy_reads > 0 ? FLASH_SR_BSY : 0u);
        if (ctl.busy_reads > 0) {
            ctl.busy_reads--;
        }
        return sr;
    }
    return reg == FLASH_CR_OFFSET ? ctl.cr : 0u;
}

void stm32f746_flash_reg_write(uint32_t reg, uint32_t value)
{
    if (reg == FLASH_KEYR_OFFSET) {
        if (!(ctl.cr & FLASH_CR_LOCK) || ctl.locked_for_good) {
            return;
        }
        if (ctl.key_stage == 0 && value == FLASH_KEY1) {
            ctl.key_stage = 1;
        } else if (ctl.key_stage == 1 && value == FLASH_KEY2) {
            ctl.cr &= ~FLASH_CR_LOCK;
            ctl.key_stage = 0;
        } else {
            ctl.locked_for_good = 1;
        }
    } else if (reg == FLASH_SR_OFFSET) {
        ctl.sr &= ~(value & (FLASH_SR_ERRORS | FLASH_SR_EOP));
    } else if (reg == FLASH_CR_OFFSET) {
        if (ctl.cr & FLASH_CR_LOCK) {
            if (value & FLASH_CR_STRT) {
                ctl.strt_without_unlock++;
            }
            return;
        }
        ctl.cr = value & ~FLASH_CR_STRT;
        if ((value & FLASH_CR_STRT) && (value & FLASH_CR_SER)) {
            int sector = (int)((value & FLASH_CR_SNB_MASK) >> FLASH_CR_SNB_POS);
            if ((value & FLASH_CR_MER) || (value & FLASH_CR_PG) || sector > 7) {
                ctl.sr |= FLASH_SR_ERSERR;
                return;
            }
            start_operation();
            if (!ctl.inject) {
                uint32_t a = stm32f746_flash_sector_start(sector);
                memset(flash + a, 0xFF, stm32f746_flash_sector_start(sector + 1) - a);
                ctl.erased_sector = sector;
            }
            ctl.erases++;
        }
    }
}

void stm32f746_flash_word_write(uint32_t offset, uint32_t word)
{
    if ((ctl.cr & FLASH_CR_LOCK) || !(ctl.cr & FLASH_CR_PG)) {
        ctl.sr |= FLASH_SR_ERSERR;
        return;
    }
    if ((ctl.cr & FLASH_CR_PSIZE_MASK) != FLASH_CR_PSIZE_X32) {
        ctl.sr |= FLASH_SR_PGPERR;
        return;
    }
    if (offset % 4u != 0u) {
        ctl.sr |= FLASH_SR_PGAERR;
        return;
    }
    start_operation();
    if (ctl.inject) {
        return;
    }
    for (unsigned i = 0; i < 4u; ++i) {
        uint8_t b = (uint8_t)(word >> (8u * i));
        if (flash[offset + i] != 0xFFu) {
            ctl.overwrites++;
        }
        flash[offset + i] &= b;
    }
    ctl.words++;
}

uint8_t stm32f746_flash_read(uint32_t offset)
{
    uint32_t line = offset / LINE;
    if (!cached[line]) {
        memcpy(cache[line], flash + line * LINE, LINE);
        cached[line] = 1;
    }
    return cache[line][offset % LINE];
}

void stm32f746_flash_barrier(void) {}

void stm32f746_flash_dcache_invalidate(uint32_t offset, uint32_t len)
{
    for (uint32_t a = offset / LINE * LINE; a < offset + len; a += LINE) {
        cached[a / LINE] = 0;
        ctl.invalidated++;
    }
}

static int failures;

static void check(int ok, const char *what)
{
    printf("%s %s\n", ok ? "ok" : "FAILED", what);
    if (!ok) {
        failures++;
    }
}

static int all(uint32_t from, uint32_t to, uint8_t value)
{
    for (uint32_t a = from; a < to; ++a) {
        if (flash[a] != value) {
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    const uint32_t s6 = 0x80000u, s7 = 0xC0000u;
    memset(flash, 0x5A, sizeof flash);

    reset();
    check(stm32f746_flash_sector(0x7FFFFu) == 5 && stm32f746_flash_sector(s6) == 6 &&
              stm32f746_flash_sector(s7) == 7 && stm32f746_flash_sector(0x1FFFFu) == 3 &&
              stm32f746_flash_sector(0x20000u) == 4 && stm32f746_flash_sector(0x100000u) == -1,
          "sector of an offset follows RM0385 table 3 (4 x 32 KB, 128 KB, 3 x 256 KB)");

    (void)stm32f746_flash_read(s6 + 64u); /* a line in the D-cache before the erase */
    int rc = stm32f746_flash_erase(s6);
    check(rc == BOARD_NV_OK, "erasing sector 6 succeeds");
    check(ctl.erases == 1 && ctl.erased_sector == 6, "one sector erase, of sector 6 (SER, SNB = 6, STRT)");
    check(all(s6, s7, 0xFF) && all(0, s6, 0x5A) && all(s7, STM32F746_FLASH_BYTES, 0x5A),
          "only sector 6 is erased");
    check((ctl.cr & FLASH_CR_LOCK) && !(ctl.cr & (FLASH_CR_SER | FLASH_CR_PG)), "the controller is locked again");
    check(stm32f746_flash_read(s6 + 64u) == 0xFF, "the stale D-cache line was invalidated");
    check((ctl.sr & (FLASH_SR_ERRORS | FLASH_SR_EOP)) == 0u, "EOP cleared");

    uint8_t data[16];
    for (unsigned i = 0; i < sizeof data; ++i) {
        data[i] = (uint8_t)(0x11u * i);
    }
    rc = stm32f746_flash_program(s6 + 256u, data, sizeof data);
    check(rc == BOARD_NV_OK && memcmp(flash + s6 + 256u, data, sizeof data) == 0, "16 bytes programmed");
    check(ctl.words == 4 && ctl.overwrites == 0, "as four x32 words, each over erased flash");
    check(ctl.cr & FLASH_CR_LOCK, "locked again after programming");
    check(stm32f746_flash_program(s6 + 256u, data, sizeof data) == BOARD_NV_NOT_ERASED && ctl.words == 4,
          "programming over programmed flash is refused before the controller is touched");
    check(stm32f746_flash_program(s6 + 2u, data, 4u) == BOARD_NV_BAD_RANGE &&
              stm32f746_flash_program(s6, data, 3u) == BOARD_NV_BAD_RANGE,
          "misaligned offsets and lengths are refused");
    check(stm32f746_flash_erase(s6 + 4096u) == BOARD_NV_BAD_RANGE && stm32f746_flash_erase(0x100000u) ==
              BOARD_NV_BAD_RANGE, "an erase must start at a sector");

    ctl.inject = FLASH_SR_WRPERR;
    rc = stm32f746_flash_erase(s7);
    check(rc == BOARD_NV_HW_ERROR, "a write-protection error fails the erase");
    check((ctl.sr & FLASH_SR_ERRORS) == 0u && (ctl.cr & FLASH_CR_LOCK), "its flag is cleared, the controller locked");
    rc = stm32f746_flash_program(s6 + 512u, data, 8u);
    check(rc == BOARD_NV_HW_ERROR && ctl.words == 4, "and fails programming too");
    ctl.inject = 0u;
    rc = stm32f746_flash_erase(s7);
    check(rc == BOARD_NV_OK && all(s7, STM32F746_FLASH_BYTES, 0xFF), "the next erase works again");

    /* A driver that ran with the controller still locked would never erase: the model counts STRTs
     * written while locked. */
    check(ctl.strt_without_unlock == 0, "no operation was started on a locked controller");
    check(ctl.invalidated > 0, "the D-cache was invalidated after every change");

    reset();
    ctl.locked_for_good = 1; /* a wrong key sequence earlier: locked until reset */
    check(stm32f746_flash_erase(s6) == BOARD_NV_HW_ERROR, "a controller that will not unlock is reported");
    printf("%s\n", failures ? "stm32f746 flash: FAILED" : "stm32f746 flash: all checks passed");
    return failures ? 1 : 0;
}
