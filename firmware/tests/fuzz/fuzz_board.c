#include "tests/fuzz/fuzz_board.h"

#include <string.h>

#include "boards/board.h"
#include "boards/nv_emulated.h"

static const uint8_t *in_data;
static size_t in_len, in_pos;
static uint8_t out[FUZZ_OUT_BYTES];
static size_t out_len;
static uint64_t now;
static uint8_t nv_mem[FUZZ_NV_SECTOR_BYTES * FUZZ_NV_SECTORS];
static unsigned long nv_writes;

static void nv_count(uint32_t offset, uint32_t len)
{
    (void)offset;
    (void)len;
    nv_writes++;
}

static const nv_emulated_t nv = {nv_mem, FUZZ_NV_SECTOR_BYTES, FUZZ_NV_SECTORS, 4u, NULL, nv_count};
static const board_nv_info_t nv_info = {nv_mem, FUZZ_NV_SECTOR_BYTES, FUZZ_NV_SECTORS, 4u, true};

/* A receive ring, so that streamed samples go through CREDIT as on the STM32F746. */
static const board_info_t info = {
    .name = "fuzz",
    .ram_bytes = 320u * 1024u,
    .flash_bytes = 1024u * 1024u,
    .clock_hz = 0u,
    .counter_kind = BOARD_COUNTER_NANOSECONDS,
    .counter_hz = 1000000000u,
    .rx_ring_bytes = 512u,
};

void fuzz_board_reset(void)
{
    in_data = NULL;
    in_len = in_pos = 0;
    out_len = 0;
    now = 0;
    nv_writes = 0;
    memset(nv_mem, 0xFF, sizeof nv_mem);
}

void fuzz_board_feed(const uint8_t *data, size_t len)
{
    in_data = data;
    in_len = len;
    in_pos = 0;
}

size_t fuzz_board_pending(void) { return in_len - in_pos; }

const uint8_t *fuzz_board_output(size_t *len)
{
    *len = out_len;
    return out;
}

void fuzz_board_output_clear(void) { out_len = 0; }

uint8_t *fuzz_board_nv(void) { return nv_mem; }

unsigned long fuzz_board_nv_writes(void) { return nv_writes; }

void board_init(int argc, char **argv)
{
    (void)argc;
    (void)argv;
}

int board_getc(void)
{
    if (in_pos < in_len) {
        return in_data[in_pos++];
    }
    return -1;
}

uint32_t board_rx_overruns(void) { return 0u; }

void board_write(const void *data, size_t len)
{
    size_t n = len < sizeof out - out_len ? len : sizeof out - out_len;
    if (n == 0u) {
        return;
    }
    memcpy(out + out_len, data, n);
    out_len += n;
}

/* 10 ms of virtual time per read: a frame that stops arriving is dropped after 100 reads. */
uint64_t board_counter_read(void)
{
    now += 10000000u;
    return now;
}

const board_info_t *board_info(void) { return &info; }

void board_memory(board_memory_t *m)
{
    memset(m, 0, sizeof *m);
}

const board_nv_info_t *board_nv_info(void) { return &nv_info; }

int board_nv_erase(uint32_t sector) { return nv_emulated_erase(&nv, sector); }

int board_nv_program(uint32_t offset, const void *data, uint32_t len)
{
    return nv_emulated_program(&nv, offset, data, len);
}
