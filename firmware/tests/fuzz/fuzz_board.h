/* The board of the fuzz targets (firmware/tests/fuzz): board.h over memory. Received bytes come from
 * a queue the target fills, replies go to a buffer it decodes, the counter is virtual (it advances on
 * every read, so idle timeouts pass without waiting), and the non-volatile storage is an array with
 * the flash rules of boards/nv_emulated.h. */
#ifndef TT_FUZZ_BOARD_H
#define TT_FUZZ_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Two sectors that hold the fuzz model's state with room to spare; small, so that resetting them per
 * input is cheap. */
#define FUZZ_NV_SECTOR_BYTES (16u * 1024u)
#define FUZZ_NV_SECTORS 2u
#define FUZZ_OUT_BYTES (1u << 16)

void fuzz_board_reset(void);
/* Bytes the next board_getc calls return, in order. */
void fuzz_board_feed(const uint8_t *data, size_t len);
size_t fuzz_board_pending(void);
/* What the board sent since the last take (at most FUZZ_OUT_BYTES; the rest is counted, not kept). */
const uint8_t *fuzz_board_output(size_t *len);
void fuzz_board_output_clear(void);
uint8_t *fuzz_board_nv(void);
/* NV writes since the reset (erase chunks and program units). */
unsigned long fuzz_board_nv_writes(void);

#endif
