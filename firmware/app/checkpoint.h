/* Checkpoints of the learned state in non-volatile storage (docs/checkpoints.md).
 *
 * Two slots, one erase sector each (board_nv_info()), written alternately: a checkpoint erases the
 * slot that does not hold the newest one, programs the state into it, reads it back, and only then
 * programs the slot's header (model, program and state hashes, sequence number, step count, length,
 * CRC-32 of the state, CRC-32 of the header). A power cut at any instruction leaves either a slot
 * whose header does not check out (ignored) or a complete new checkpoint; the other slot, holding
 * the previous checkpoint, is never touched. At boot the newest slot whose header and data check out
 * and whose hashes are this build's is restored.
 *
 * A PARAMS_SET restore stages the new state in the same slot (instead of SRAM) and commits it by
 * writing the header: a pushed state is a checkpoint too. */
#ifndef TT_CHECKPOINT_H
#define TT_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

/* Slot layout: the header at its start (written last), the state from CHECKPOINT_HEADER_BYTES on. */
#define CHECKPOINT_HEADER_BYTES 256u
#define CHECKPOINT_MAGIC 0x4B435454u /* "TTCK" */
#define CHECKPOINT_VERSION 1u
#define CHECKPOINT_STREAM_ID_BYTES 32u
/* stream_base of a checkpoint that no stream took (a PARAMS_SET commit) */
#define CHECKPOINT_NO_STREAM 0xFFFFFFFFu

/* What the board found at boot (MODEL and CHECKPOINT STATUS report it). */
enum {
    CHECKPOINT_BOOT_NONE = 0,     /* no valid checkpoint: the power-on state */
    CHECKPOINT_BOOT_RESTORED = 1, /* the newest valid checkpoint of this build was restored */
    CHECKPOINT_BOOT_FOREIGN = 2,  /* valid checkpoints, but of another model or program: not restored */
};

/* Results; CHECKPOINT_FLASH carries the board's BOARD_NV_* code in checkpoint_flash_error(). */
enum {
    CHECKPOINT_OK = 0,
    CHECKPOINT_UNAVAILABLE = 1, /* no non-volatile storage, or the state does not fit a slot */
    CHECKPOINT_FLASH = 2,       /* erasing or programming failed */
    CHECKPOINT_DIFFERS = 3,     /* staged DATA sent again with other bytes */
    CHECKPOINT_RANGE = 4,       /* staged DATA outside the state, or after a gap */
    CHECKPOINT_INCOMPLETE = 5,  /* COMMIT before every byte was staged, or nothing staged */
    CHECKPOINT_HASH = 6,        /* COMMIT with a SHA-256 the staged bytes do not have */
};

typedef struct {
    uint8_t slot;
    uint32_t sequence;
    uint32_t step_count;
    uint32_t stream_base;
    uint8_t stream_id[CHECKPOINT_STREAM_ID_BYTES];
} checkpoint_meta_t;

typedef struct {
    uint8_t boot;                /* CHECKPOINT_BOOT_* */
    checkpoint_meta_t restored;  /* when boot == CHECKPOINT_BOOT_RESTORED */
    bool has_newest;             /* a checkpoint of this build exists (restored or taken since) */
    checkpoint_meta_t newest;
    uint32_t erases_since_boot;  /* sector erases since the board started */
    uint32_t slot_erases[2];     /* erases of each slot's sector as its headers count them (0: unknown) */
} checkpoint_status_t;

/* Bytes of learned state a slot holds (0: the board has no non-volatile storage). */
uint32_t checkpoint_slot_capacity(void);
/* The board has storage and the learned state fits a slot. */
bool checkpoint_available(void);

/* At start: restores the newest valid checkpoint of this build (if any) into the learned state. */
void checkpoint_boot(void);
const checkpoint_status_t *checkpoint_status(void);

/* Takes a checkpoint of the learned state, tagged with the stream that asked for it. */
int checkpoint_take(uint32_t stream_base, const uint8_t stream_id[CHECKPOINT_STREAM_ID_BYTES]);
/* Erases both slots (the learned state in SRAM stays). */
int checkpoint_clear(void);
uint32_t checkpoint_flash_error(void);

/* Staging a restore (PARAMS_SET): begin erases the slot, data appends (or repeats) bytes in order,
 * commit checks the SHA-256 of the staged state, writes the header and loads the state. */
int checkpoint_stage_begin(void);
int checkpoint_stage_data(uint32_t offset, const uint8_t *data, uint32_t len);
bool checkpoint_stage_active(void);
uint32_t checkpoint_staged_bytes(void);
int checkpoint_stage_commit(const uint8_t sha256[32]);
void checkpoint_stage_cancel(void);

#endif
