/* Messages of the training engine (docs/protocol.md, "Training engine"):
 * MODEL, TRAIN, INFER, PARAMS_GET, PARAMS_SET, PROFILE, CHECKPOINT. */
#include "app/engine_messages.h"

#include <string.h>

#include "app/checkpoint.h"
#include "app/learned_state.h"
#include "app/stats.h"
#include "boards/board.h"
#include "engine/sensor_input.h"
#include "engine/tt_model.h"
#include "protocol/sha256.h"
#include "protocol/wire.h"

#define TRAIN_PREFIX_BYTES 12u
#define PARAMS_GET_MAX (TT_RX_BUFFER_BYTES - 16u)
/* Largest TRAIN lr_scale (Q16): 4 x the compiled learning rate. Beyond it a single step can
 * overwrite what was learned; a higher rate is a build option (docs/protocol.md). */
#define LR_SCALE_MAX 0x40000u

/* The logits a stored TRAIN reply keeps: the build passes the model's classes (TT_MODEL_CLASSES). */
#ifndef TT_MODEL_CLASSES
#define TT_MODEL_CLASSES 256u
#endif

static uint8_t train_prefix[TRAIN_PREFIX_BYTES];

/* A restore in progress (PARAMS_SET BEGIN, DATA..., COMMIT): the new state is staged in the checkpoint
 * slot that does not hold the newest checkpoint (app/checkpoint.h) and replaces the learned state only
 * when it is complete and matches the hash the host sent, so an interrupted restore leaves the old
 * state whole. Builds without checkpoint storage stage it in the arena (which the compiler then
 * sizes to hold it); their TRAIN and INFER, which receive samples into the arena, cancel it. */
enum { RESTORE_BEGIN = 0, RESTORE_DATA = 1, RESTORE_COMMIT = 2 };
static struct {
    bool active;
    uint32_t staged; /* bytes [0, staged) of the new state are in the arena */
} restore;

/* Exactly-once TRAIN: the reply to the last applied step, sent again (not recomputed) when the same
 * step arrives again because its reply was lost. */
static struct {
    bool valid;
    uint32_t step;
    uint16_t label;
    uint32_t lr_scale;
    uint16_t prediction;
    uint64_t count;
    int8_t logits[TT_MODEL_CLASSES];
} last_train;

enum { CHECKPOINT_OP_TAKE = 0, CHECKPOINT_OP_STATUS = 1, CHECKPOINT_OP_CLEAR = 2 };

void engine_messages_init(void)
{
    memset(train_prefix, 0, sizeof train_prefix);
    memset(&restore, 0, sizeof restore);
    memset(&last_train, 0, sizeof last_train);
    checkpoint_boot();
}

static uint32_t state_bytes(void) { return learned_state_bytes(); }

static void state_copy(uint32_t offset, uint32_t len, uint8_t *buf, bool set)
{
    if (set) {
        learned_state_write(offset, len, buf);
    } else {
        learned_state_read(offset, len, buf);
    }
}

/* ------------------------------------------------------------ handlers */

static uint16_t argmax(const int8_t *v, uint16_t n)
{
    uint16_t best = 0;
    for (uint16_t i = 1; i < n; ++i) {
        if (v[i] > v[best]) {
            best = i;
        }
    }
    return best;
}

void handle_model(const request_t *req)
{
    uint8_t buf[3 * 32 + 40 + 2 * 64 + 1 + 13];
    wire_writer_t w = wire_writer(buf, sizeof buf);
    for (unsigned i = 0; i < 32u; ++i) {
        wire_u8(&w, tt_model.hash[i]);
    }
    for (unsigned i = 0; i < 32u; ++i) {
        wire_u8(&w, tt_model.program_hash[i]);
    }
    for (unsigned i = 0; i < 32u; ++i) {
        wire_u8(&w, tt_model.state_hash[i]);
    }
    wire_u16(&w, tt_model.classes);
    wire_u16(&w, tt_model.input_h);
    wire_u16(&w, tt_model.input_w);
    wire_u16(&w, tt_model.input_c);
    wire_u32(&w, tt_model.input_bytes);
    wire_u32(&w, tt_model.arena_bytes);
    wire_u32(&w, tt_model.trainable_bytes);
    wire_u32(&w, tt_model.planned_peak_sram_bytes);
    wire_u32(&w, state_bytes());
    wire_u16(&w, tt_model.n_params);
    wire_u16(&w, tt_model.n_train_ops);
    wire_u16(&w, tt_model.n_infer_ops);
    wire_str(&w, tt_model.name);
    wire_str(&w, tt_model.scheme);
    wire_u8(&w, (tt_model.input_streamed ? 1u : 0u) | (tt_sensor.channels ? 2u : 0u));
    /* v3: what was restored at boot, and the room for checkpoints. */
    const checkpoint_status_t *cs = checkpoint_status();
    bool restored = cs->boot == CHECKPOINT_BOOT_RESTORED;
    wire_u8(&w, cs->boot);
    wire_u32(&w, restored ? cs->restored.step_count : 0u);
    wire_u32(&w, restored ? cs->restored.sequence : 0u);
    wire_u32(&w, checkpoint_available() ? checkpoint_slot_capacity() : 0u);
    reply(req, buf, (uint32_t)w.len);
}

/* Bytes of one sample on the wire: int8 values, or a sensor model's int16 counts. */
static uint32_t sample_wire_bytes(void) { return tt_model.input_bytes * (tt_sensor.channels ? 2u : 1u); }

static bool claim_sample(uint32_t len, rx_claim_t *claim, uint32_t prefix, uint32_t offset)
{
    claim->expected_len = prefix + sample_wire_bytes();
    if (len != claim->expected_len) {
        return false;
    }
    if (!checkpoint_available()) {
        restore.active = false; /* the sample lands in the arena, over a restore staged there */
    }
    claim->count = 0;
    if (prefix) {
        claim->regions[claim->count++] = (frame_region_t){train_prefix, prefix};
    }
    /* A streamed sample (dst NULL) is pulled by the step itself, row by row (tt_input_read); so are
     * sensor counts, which tt_input_read scales to int8 on the way in (pull_sensor_sample). */
    uint8_t *dst = tt_model.input_streamed || tt_sensor.channels ? NULL : tt_arena + offset;
    claim->regions[claim->count++] = (frame_region_t){dst, sample_wire_bytes()};
    return true;
}

/* A sensor model without a streamed front: its scaled sample goes whole into the arena's input slot,
 * and the frame's CRC is checked before the step runs. */
static int pull_sensor_sample(uint32_t offset)
{
    if (!tt_sensor.channels || tt_model.input_streamed) {
        return TT_INPUT_OK;
    }
    int status = tt_input_read((int8_t *)(tt_arena + offset), tt_model.input_bytes);
    return status == TT_INPUT_OK ? tt_input_end() : status;
}

/* The step stopped because its streamed sample did not arrive intact: nothing changed. */
static void reply_input_lost(const request_t *req, int status)
{
    if (status == TT_INPUT_BAD_CRC) {
        reply_error(req, ERR_BAD_CRC, 0, "payload CRC mismatch");
    } else {
        reply_nothing();
    }
}

bool claim_train(uint32_t len, rx_claim_t *claim)
{
    return claim_sample(len, claim, TRAIN_PREFIX_BYTES, tt_model.train_input_offset);
}

bool claim_infer(uint32_t len, rx_claim_t *claim)
{
    return claim_sample(len, claim, 0u, tt_model.infer_input_offset);
}

static void reply_logits(const request_t *req, const int8_t *logits, uint16_t pred, bool train, uint64_t count)
{
    uint8_t head[4 + 4 + 8];
    wire_writer_t w = wire_writer(head, sizeof head);
    wire_u16(&w, pred);
    wire_u16(&w, tt_model.classes);
    if (train) {
        wire_u32(&w, train ? last_train.step : 0u);
    }
    wire_u64(&w, count);
    reply_begin(req, (uint32_t)w.len + tt_model.classes);
    reply_data(head, (uint32_t)w.len);
    reply_data(logits, tt_model.classes);
    reply_end();
}

/* A TRAIN whose step number is not the board's next step: the repeat of the last step (its reply was
 * lost) gets that step's stored reply, anything else BAD_STATE; neither changes anything. */
static void reply_not_next(const request_t *req, uint32_t step, uint32_t label, uint32_t lr_scale)
{
    if (last_train.valid && step == last_train.step && step == tt_train_step_count && label == last_train.label &&
        lr_scale == last_train.lr_scale) {
        reply_logits(req, last_train.logits, last_train.prediction, true, last_train.count);
    } else if (step - 1u < tt_train_step_count) {
        reply_error(req, ERR_BAD_STATE, tt_train_step_count, "this TRAIN step was applied already");
    } else {
        reply_error(req, ERR_BAD_STATE, tt_train_step_count, "this TRAIN step is ahead of the board's step count");
    }
}

void handle_train(const request_t *req)
{
    int pulled = pull_sensor_sample(tt_model.train_input_offset);
    if (pulled != TT_INPUT_OK) {
        reply_input_lost(req, pulled);
        return;
    }
    uint32_t label = wire_get_u16(train_prefix);
    uint32_t reserved = wire_get_u16(train_prefix + 2);
    uint32_t lr_scale = wire_get_u32(train_prefix + 4);
    uint32_t step = wire_get_u32(train_prefix + 8);
    bool next = step == tt_train_step_count + 1u;
    if (label >= tt_model.classes || reserved != 0u || lr_scale > LR_SCALE_MAX || !next) {
        /* Only once the whole frame arrived with a good CRC may its fields be trusted. */
        int status = tt_model.input_streamed ? tt_input_end() : TT_INPUT_OK;
        if (status != TT_INPUT_OK) {
            reply_input_lost(req, status);
        } else if (label >= tt_model.classes) {
            reply_error(req, ERR_BAD_ARGUMENT, tt_model.classes, "label out of range");
        } else if (reserved != 0u) {
            reply_error(req, ERR_BAD_ARGUMENT, 0u, "the reserved field of TRAIN must be 0");
        } else if (lr_scale > LR_SCALE_MAX) {
            reply_error(req, ERR_BAD_ARGUMENT, LR_SCALE_MAX, "lr_scale above 262144 (4.0 in Q16)");
        } else {
            reply_not_next(req, step, label, lr_scale);
        }
        return;
    }
    uint64_t received = tt_input_counter_total;
    uint64_t t0 = board_counter_read();
    int status = tt_train_step((int32_t)label, lr_scale, tt_logits);
    uint64_t count = board_counter_read() - t0 - (tt_input_counter_total - received);
    if (status != TT_INPUT_OK) {
        reply_input_lost(req, status);
        return;
    }
    stats_set_last_count(count);
    last_train.valid = tt_model.classes <= TT_MODEL_CLASSES;
    last_train.step = tt_train_step_count;
    last_train.label = (uint16_t)label;
    last_train.lr_scale = lr_scale;
    last_train.prediction = argmax(tt_logits, tt_model.classes);
    last_train.count = count;
    if (last_train.valid) {
        memcpy(last_train.logits, tt_logits, tt_model.classes);
    }
    reply_logits(req, tt_logits, last_train.prediction, true, count);
}

void handle_infer(const request_t *req)
{
    int pulled = pull_sensor_sample(tt_model.infer_input_offset);
    if (pulled != TT_INPUT_OK) {
        reply_input_lost(req, pulled);
        return;
    }
    uint64_t received = tt_input_counter_total;
    uint64_t t0 = board_counter_read();
    int status = tt_infer(tt_logits);
    uint64_t count = board_counter_read() - t0 - (tt_input_counter_total - received);
    if (status != TT_INPUT_OK) {
        reply_input_lost(req, status);
        return;
    }
    stats_set_last_count(count);
    reply_logits(req, tt_logits, argmax(tt_logits, tt_model.classes), false, count);
}

bool claim_params_get(uint32_t len, rx_claim_t *claim) { return claim_exactly(len, 8u, claim); }

void handle_params_get(const request_t *req)
{
    uint32_t offset = wire_get_u32(req->payload);
    uint32_t len = wire_get_u32(req->payload + 4);
    uint32_t total = state_bytes();
    if (len > PARAMS_GET_MAX || offset > total || len > total - offset) {
        reply_error(req, ERR_BAD_ARGUMENT, total, "range outside the learned state");
        return;
    }
    uint8_t head[8];
    wire_writer_t w = wire_writer(head, sizeof head);
    wire_u32(&w, offset);
    wire_u32(&w, total);
    reply_begin(req, 8u + len);
    reply_data(head, 8u);
    uint8_t chunk[64];
    while (len > 0u) {
        uint32_t n = len < sizeof chunk ? len : (uint32_t)sizeof chunk;
        state_copy(offset, n, chunk, false);
        reply_data(chunk, n);
        offset += n;
        len -= n;
    }
    reply_end();
}

/* One sentence per way a checkpoint operation fails (the request changed nothing else). */
static void reply_checkpoint_error(const request_t *req, int rc)
{
    switch (rc) {
    case CHECKPOINT_UNAVAILABLE:
        reply_error(req, ERR_BAD_STATE, checkpoint_slot_capacity(),
                    "this build has no checkpoint storage that holds its learned state");
        break;
    case CHECKPOINT_FLASH:
        reply_error(req, ERR_BAD_STATE, checkpoint_flash_error(), "the checkpoint flash failed to erase or program");
        break;
    case CHECKPOINT_DIFFERS:
        reply_error(req, ERR_BAD_ARGUMENT, checkpoint_staged_bytes(), "bytes sent again differ from the staged ones");
        break;
    case CHECKPOINT_RANGE:
        reply_error(req, ERR_BAD_ARGUMENT, checkpoint_staged_bytes(), "range outside the state or after a gap");
        break;
    case CHECKPOINT_INCOMPLETE:
        reply_error(req, ERR_BAD_STATE, checkpoint_staged_bytes(), "the staged state is incomplete");
        break;
    case CHECKPOINT_HASH:
    default:
        reply_error(req, ERR_BAD_ARGUMENT, 0u, "the staged state does not match its SHA-256");
        break;
    }
}

/* PARAMS_SET staged in the arena: builds without checkpoint storage. */
static bool params_set_in_arena(const request_t *req, uint8_t op, const uint8_t *p, uint32_t n, wire_writer_t *w)
{
    const uint32_t total = state_bytes();
    if (op == RESTORE_BEGIN) {
        if (total > tt_model.arena_bytes) {
            reply_error(req, ERR_BAD_STATE, tt_model.arena_bytes, "the arena cannot hold a staged state");
            return false;
        }
        restore.active = true;
        restore.staged = 0u;
        wire_u32(w, total);
    } else if (op == RESTORE_DATA) {
        if (!restore.active) {
            reply_error(req, ERR_BAD_STATE, 0u, "no restore begun (TRAIN or INFER cancels one)");
            return false;
        }
        uint32_t offset = wire_get_u32(p);
        uint32_t len = n - 4u;
        if (offset > restore.staged || offset > total || len > total - offset) {
            reply_error(req, ERR_BAD_ARGUMENT, restore.staged, "range outside the state or after a gap");
            return false;
        }
        memcpy(tt_arena + offset, p + 4, len);
        if (offset + len > restore.staged) {
            restore.staged = offset + len;
        }
        wire_u32(w, offset);
        wire_u32(w, len);
    } else {
        if (!restore.active || restore.staged != total) {
            reply_error(req, ERR_BAD_STATE, restore.active ? restore.staged : 0u, "the staged state is incomplete");
            return false;
        }
        sha256_t sha;
        uint8_t digest[32];
        sha256_init(&sha);
        sha256_update(&sha, tt_arena, total);
        sha256_final(&sha, digest);
        if (memcmp(digest, p, 32u) != 0) {
            reply_error(req, ERR_BAD_ARGUMENT, 0u, "the staged state does not match its SHA-256");
            return false;
        }
        state_copy(0u, total, tt_arena, true);
        restore.active = false;
        last_train.valid = false;
        wire_u32(w, tt_train_step_count);
    }
    return true;
}

/* PARAMS_SET staged in a checkpoint slot: the commit is the slot's header, so a pushed state also
 * survives a reset. */
static bool params_set_in_slot(const request_t *req, uint8_t op, const uint8_t *p, uint32_t n, wire_writer_t *w)
{
    int rc;
    if (op == RESTORE_BEGIN) {
        rc = checkpoint_stage_begin();
        wire_u32(w, state_bytes());
    } else if (op == RESTORE_DATA) {
        if (!checkpoint_stage_active()) {
            reply_error(req, ERR_BAD_STATE, 0u, "no restore begun (CHECKPOINT cancels one)");
            return false;
        }
        rc = checkpoint_stage_data(wire_get_u32(p), p + 4, n - 4u);
        wire_u32(w, wire_get_u32(p));
        wire_u32(w, n - 4u);
    } else {
        rc = checkpoint_stage_commit(p);
        if (rc == CHECKPOINT_OK) {
            last_train.valid = false;
        }
        wire_u32(w, tt_train_step_count);
    }
    if (rc != CHECKPOINT_OK) {
        reply_checkpoint_error(req, rc);
        return false;
    }
    return true;
}

void handle_params_set(const request_t *req)
{
    if (req->len < 1u) {
        reply_error(req, ERR_BAD_LENGTH, 1u, "PARAMS_SET needs an operation");
        return;
    }
    const uint8_t op = req->payload[0];
    const uint8_t *p = req->payload + 1;
    const uint32_t n = req->len - 1u;
    const uint32_t total = state_bytes();
    uint8_t out[1 + 8];
    wire_writer_t w = wire_writer(out, sizeof out);
    wire_u8(&w, op);
    if (op == RESTORE_BEGIN) {
        if (n != 32u + 4u) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 32u + 4u, "PARAMS_SET BEGIN takes a state hash and a size");
            return;
        }
        if (memcmp(p, tt_model.state_hash, 32u) != 0) {
            reply_error(req, ERR_BAD_ARGUMENT, 0u, "the state was saved for another trained-state layout");
            return;
        }
        if (wire_get_u32(p + 32) != total) {
            reply_error(req, ERR_BAD_ARGUMENT, total, "the state has another size than this model's");
            return;
        }
    } else if (op == RESTORE_DATA) {
        if (n < 4u) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 4u, "PARAMS_SET DATA needs an offset");
            return;
        }
    } else if (op == RESTORE_COMMIT) {
        if (n != 32u) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 32u, "PARAMS_SET COMMIT takes the state's SHA-256");
            return;
        }
    } else {
        reply_error(req, ERR_BAD_ARGUMENT, RESTORE_COMMIT, "unknown PARAMS_SET operation");
        return;
    }
    bool ok = checkpoint_available() ? params_set_in_slot(req, op, p, n, &w)
                                     : params_set_in_arena(req, op, p, n, &w);
    if (ok) {
        reply(req, out, (uint32_t)w.len);
    }
}

/* CHECKPOINT: u8 op; TAKE u32 stream_base + 32-byte stream id, STATUS, CLEAR (docs/protocol.md). */
void handle_checkpoint(const request_t *req)
{
    if (req->len < 1u) {
        reply_error(req, ERR_BAD_LENGTH, 1u, "CHECKPOINT needs an operation");
        return;
    }
    const uint8_t op = req->payload[0];
    const checkpoint_status_t *cs = checkpoint_status();
    uint8_t out[1 + 1 + 8 + 1 + 1 + 12 + 32 + 4 + 1 + 12 + 1];
    wire_writer_t w = wire_writer(out, sizeof out);
    wire_u8(&w, op);
    if (op == CHECKPOINT_OP_TAKE) {
        if (req->len != 1u + 4u + CHECKPOINT_STREAM_ID_BYTES) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 4u + CHECKPOINT_STREAM_ID_BYTES,
                        "CHECKPOINT TAKE takes a stream base and a stream id");
            return;
        }
        int rc = checkpoint_take(wire_get_u32(req->payload + 1), req->payload + 5);
        if (rc != CHECKPOINT_OK) {
            reply_checkpoint_error(req, rc);
            return;
        }
        wire_u32(&w, cs->newest.step_count);
        wire_u32(&w, cs->newest.sequence);
        wire_u8(&w, cs->newest.slot);
        wire_u32(&w, cs->erases_since_boot);
    } else if (op == CHECKPOINT_OP_STATUS) {
        if (req->len != 1u) {
            reply_error(req, ERR_BAD_LENGTH, 1u, "CHECKPOINT STATUS takes nothing");
            return;
        }
        bool restored = cs->boot == CHECKPOINT_BOOT_RESTORED;
        wire_u8(&w, cs->boot);
        wire_u32(&w, restored ? cs->restored.step_count : 0u);
        wire_u32(&w, restored ? cs->restored.sequence : 0u);
        wire_u8(&w, cs->has_newest ? 1u : 0u);
        wire_u8(&w, cs->has_newest ? cs->newest.slot : 0u);
        wire_u32(&w, cs->has_newest ? cs->newest.sequence : 0u);
        wire_u32(&w, cs->has_newest ? cs->newest.step_count : 0u);
        wire_u32(&w, cs->has_newest ? cs->newest.stream_base : CHECKPOINT_NO_STREAM);
        for (unsigned i = 0; i < CHECKPOINT_STREAM_ID_BYTES; ++i) {
            wire_u8(&w, cs->has_newest ? cs->newest.stream_id[i] : 0u);
        }
        wire_u32(&w, checkpoint_available() ? checkpoint_slot_capacity() : 0u);
        wire_u8(&w, board_nv_info()->persistent ? 1u : 0u);
        wire_u32(&w, cs->erases_since_boot);
        wire_u32(&w, cs->slot_erases[0]);
        wire_u32(&w, cs->slot_erases[1]);
    } else if (op == CHECKPOINT_OP_CLEAR) {
        if (req->len != 1u) {
            reply_error(req, ERR_BAD_LENGTH, 1u, "CHECKPOINT CLEAR takes nothing");
            return;
        }
        int rc = checkpoint_clear();
        if (rc != CHECKPOINT_OK) {
            reply_checkpoint_error(req, rc);
            return;
        }
        wire_u32(&w, cs->erases_since_boot);
    } else {
        reply_error(req, ERR_BAD_ARGUMENT, CHECKPOINT_OP_CLEAR, "unknown CHECKPOINT operation");
        return;
    }
    reply(req, out, (uint32_t)w.len);
}

bool claim_profile(uint32_t len, rx_claim_t *claim) { return claim_exactly(len, 3u, claim); }

void handle_profile(const request_t *req)
{
    uint8_t which = req->payload[0];
    uint16_t first = wire_get_u16(req->payload + 1);
    const tt_op_info *ops = which == 0 ? tt_model.train_ops : tt_model.infer_ops;
    const uint32_t *counts = which == 0 ? tt_train_op_counts : tt_infer_op_counts;
    uint16_t total = which == 0 ? tt_model.n_train_ops : tt_model.n_infer_ops;
    if (which > 1u || first > total) {
        reply_error(req, ERR_BAD_ARGUMENT, total, "no such program or row");
        return;
    }
    /* Rows are streamed; a first pass sizes the reply. */
    uint32_t room = TT_RX_BUFFER_BYTES - 6u;
    uint32_t len = 6u;
    uint16_t rows = 0;
    for (uint16_t i = first; i < total; ++i) {
        size_t name = strlen(ops[i].name);
        uint32_t row = 1u + 4u + 4u + 1u + (uint32_t)(name > 255u ? 255u : name);
        if (len - 6u + row > room) {
            break;
        }
        len += row;
        rows++;
    }
    uint8_t head[6];
    wire_writer_t w = wire_writer(head, sizeof head);
    wire_u16(&w, total);
    wire_u16(&w, first);
    wire_u16(&w, rows);
    reply_begin(req, len);
    reply_data(head, 6u);
    for (uint16_t i = first; i < first + rows; ++i) {
        uint8_t row[10 + 255];
        wire_writer_t r = wire_writer(row, sizeof row);
        wire_u8(&r, ops[i].kind);
        wire_u32(&r, ops[i].macs);
        wire_u32(&r, counts[i]);
        wire_str(&r, ops[i].name);
        reply_data(row, (uint32_t)r.len);
    }
    reply_end();
}
