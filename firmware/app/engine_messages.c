/* Messages of the training engine (docs/protocol.md, "Training engine"):
 * MODEL, TRAIN, INFER, PARAMS_GET, PARAMS_SET, PROFILE. */
#include "app/engine_messages.h"

#include <string.h>

#include "app/stats.h"
#include "boards/board.h"
#include "engine/sensor_input.h"
#include "engine/tt_model.h"
#include "protocol/sha256.h"
#include "protocol/wire.h"

#define TRAIN_PREFIX_BYTES 8u
#define PARAMS_GET_MAX (TT_RX_BUFFER_BYTES - 16u)
/* Largest TRAIN lr_scale (Q16): 4 x the compiled learning rate. Beyond it a single step can
 * overwrite what was learned; a higher rate is a build option (docs/protocol.md). */
#define LR_SCALE_MAX 0x40000u

static uint8_t train_prefix[TRAIN_PREFIX_BYTES];

/* A restore in progress (PARAMS_SET BEGIN, DATA..., COMMIT): the new state is staged in the arena
 * (which the compiler sizes to hold it) and replaces the learned state only when it is complete and
 * matches the hash the host sent, so an interrupted restore leaves the old state whole. TRAIN and
 * INFER receive their samples into the arena: they cancel it. */
enum { RESTORE_BEGIN = 0, RESTORE_DATA = 1, RESTORE_COMMIT = 2 };
static struct {
    bool active;
    uint32_t staged; /* bytes [0, staged) of the new state are in the arena */
} restore;

/* ------------------------------------------------------------ learned state
 * The state the host backs up and restores: the step counter (the PRNG's), then
 * the SRAM part of every trainable tensor in the model's order. */

static uint32_t state_bytes(void)
{
    uint32_t n = 4u;
    for (uint16_t i = 0; i < tt_model.n_params; ++i) {
        n += tt_model.params[i].bytes;
    }
    return n;
}

/* Copies state bytes [offset, offset+len) to (get) or from (set) buf. */
static void state_copy(uint32_t offset, uint32_t len, uint8_t *buf, bool set)
{
    uint8_t counter[4];
    for (unsigned i = 0; i < 4u; ++i) {
        counter[i] = (uint8_t)(tt_train_step_count >> (8u * i));
    }
    uint32_t base = 0;
    for (int r = -1; r < (int)tt_model.n_params && len > 0u; ++r) {
        uint8_t *data = r < 0 ? counter : (uint8_t *)tt_model.params[r].data;
        uint32_t size = r < 0 ? 4u : tt_model.params[r].bytes;
        if (offset < base + size) {
            uint32_t from = offset - base;
            uint32_t n = size - from < len ? size - from : len;
            if (set) {
                memcpy(data + from, buf, n);
            } else {
                memcpy(buf, data + from, n);
            }
            buf += n;
            offset += n;
            len -= n;
        }
        base += size;
    }
    if (set) {
        tt_train_step_count = wire_get_u32(counter);
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
    uint8_t buf[3 * 32 + 40 + 2 * 64 + 1];
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
    restore.active = false; /* the sample lands in the arena, over a staged restore */
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
        wire_u32(&w, tt_train_step_count);
    }
    wire_u64(&w, count);
    reply_begin(req, (uint32_t)w.len + tt_model.classes);
    reply_data(head, (uint32_t)w.len);
    reply_data(logits, tt_model.classes);
    reply_end();
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
    if (label >= tt_model.classes || reserved != 0u || lr_scale > LR_SCALE_MAX) {
        int status = tt_model.input_streamed ? tt_input_end() : TT_INPUT_OK;
        if (status != TT_INPUT_OK) {
            reply_input_lost(req, status);
        } else if (label >= tt_model.classes) {
            reply_error(req, ERR_BAD_ARGUMENT, tt_model.classes, "label out of range");
        } else if (reserved != 0u) {
            reply_error(req, ERR_BAD_ARGUMENT, 0u, "the reserved field of TRAIN must be 0");
        } else {
            reply_error(req, ERR_BAD_ARGUMENT, LR_SCALE_MAX, "lr_scale above 262144 (4.0 in Q16)");
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
    reply_logits(req, tt_logits, argmax(tt_logits, tt_model.classes), true, count);
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
        if (total > tt_model.arena_bytes) {
            reply_error(req, ERR_BAD_STATE, tt_model.arena_bytes, "the arena cannot hold a staged state");
            return;
        }
        restore.active = true;
        restore.staged = 0u;
        wire_u32(&w, total);
    } else if (op == RESTORE_DATA) {
        if (n < 4u) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 4u, "PARAMS_SET DATA needs an offset");
            return;
        }
        if (!restore.active) {
            reply_error(req, ERR_BAD_STATE, 0u, "no restore begun (TRAIN or INFER cancels one)");
            return;
        }
        uint32_t offset = wire_get_u32(p);
        uint32_t len = n - 4u;
        if (offset > restore.staged || offset > total || len > total - offset) {
            reply_error(req, ERR_BAD_ARGUMENT, restore.staged, "range outside the state or after a gap");
            return;
        }
        memcpy(tt_arena + offset, p + 4, len);
        if (offset + len > restore.staged) {
            restore.staged = offset + len;
        }
        wire_u32(&w, offset);
        wire_u32(&w, len);
    } else if (op == RESTORE_COMMIT) {
        if (n != 32u) {
            reply_error(req, ERR_BAD_LENGTH, 1u + 32u, "PARAMS_SET COMMIT takes the state's SHA-256");
            return;
        }
        if (!restore.active || restore.staged != total) {
            reply_error(req, ERR_BAD_STATE, restore.active ? restore.staged : 0u, "the staged state is incomplete");
            return;
        }
        sha256_t sha;
        uint8_t digest[32];
        sha256_init(&sha);
        sha256_update(&sha, tt_arena, total);
        sha256_final(&sha, digest);
        if (memcmp(digest, p, 32u) != 0) {
            reply_error(req, ERR_BAD_ARGUMENT, 0u, "the staged state does not match its SHA-256");
            return;
        }
        state_copy(0u, total, tt_arena, true);
        restore.active = false;
        wire_u32(&w, tt_train_step_count);
    } else {
        reply_error(req, ERR_BAD_ARGUMENT, RESTORE_COMMIT, "unknown PARAMS_SET operation");
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
