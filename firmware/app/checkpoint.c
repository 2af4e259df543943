#include "app/checkpoint.h"

#include <stddef.h>
#include <string.h>

#include "app/learned_state.h"
#include "boards/board.h"
#include "engine/tt_model.h"
#include "protocol/crc.h"
#include "protocol/sha256.h"
#include "protocol/wire.h"

/* Header fields (little-endian) at the start of a slot; the CRC covers bytes [0, HDR_CRC). */
#define HDR_MAGIC 0u
#define HDR_VERSION 4u
#define HDR_SEQUENCE 8u
#define HDR_STEP_COUNT 12u
#define HDR_DATA_BYTES 16u
#define HDR_DATA_CRC 20u
#define HDR_ERASE_COUNT 24u
#define HDR_STREAM_BASE 28u
#define HDR_MODEL_HASH 32u
#define HDR_PROGRAM_HASH 64u
#define HDR_STATE_HASH 96u
#define HDR_STREAM_ID 128u
#define HDR_CRC 160u
#define HDR_BYTES 164u

_Static_assert(HDR_BYTES <= CHECKPOINT_HEADER_BYTES, "the header must fit its reserved bytes");
_Static_assert(HDR_BYTES % 4u == 0u, "the header is programmed in whole words");

#define MAX_UNIT 16u
#define CHUNK 64u

typedef struct {
    bool valid; /* magic, version and header CRC check out */
    uint32_t sequence, step_count, data_bytes, data_crc, erase_count, stream_base;
    uint8_t hashes[3][32];
    uint8_t stream_id[CHECKPOINT_STREAM_ID_BYTES];
} header_t;

static checkpoint_status_t status;
static int newest_slot = -1;      /* slot holding the newest checkpoint of this build */
static uint32_t max_sequence;     /* highest sequence of any valid header seen or written */
static uint32_t flash_error;

/* Appends bytes to a slot's data in program units (a partial unit waits in `pending`). */
static struct {
    bool active;   /* a PARAMS_SET restore is being staged */
    int slot;
    uint32_t flushed; /* data bytes programmed */
    uint8_t pending[MAX_UNIT];
    uint32_t pending_len;
} writer;

/* ------------------------------------------------------------ storage */

static uint32_t unit(void) { return board_nv_info()->program_unit; }

uint32_t checkpoint_slot_capacity(void)
{
    const board_nv_info_t *nv = board_nv_info();
    if (nv->base == NULL || nv->sectors < 2u || nv->program_unit == 0u || nv->program_unit > MAX_UNIT ||
        nv->sector_bytes <= CHECKPOINT_HEADER_BYTES) {
        return 0u;
    }
    return nv->sector_bytes - CHECKPOINT_HEADER_BYTES;
}

bool checkpoint_available(void) { return learned_state_bytes() <= checkpoint_slot_capacity(); }

static uint32_t slot_offset(int slot) { return (uint32_t)slot * board_nv_info()->sector_bytes; }

static void nv_read(uint32_t offset, uint8_t *out, uint32_t len)
{
    const volatile uint8_t *p = board_nv_info()->base + offset;
    for (uint32_t i = 0; i < len; ++i) {
        out[i] = p[i];
    }
}

static uint32_t nv_crc32(uint32_t offset, uint32_t len)
{
    uint32_t crc = CRC32_INIT;
    uint8_t buf[CHUNK];
    for (uint32_t at = 0; at < len; at += CHUNK) {
        uint32_t n = len - at < CHUNK ? len - at : CHUNK;
        nv_read(offset + at, buf, n);
        crc = crc32_update(crc, buf, n);
    }
    return crc ^ CRC32_XOROUT;
}

static int flash_result(int rc)
{
    if (rc != BOARD_NV_OK) {
        flash_error = (uint32_t)rc;
        return CHECKPOINT_FLASH;
    }
    return CHECKPOINT_OK;
}

static bool header_read(int slot, header_t *h)
{
    uint8_t b[HDR_BYTES];
    nv_read(slot_offset(slot), b, HDR_BYTES);
    memset(h, 0, sizeof *h);
    if (wire_get_u32(b + HDR_MAGIC) != CHECKPOINT_MAGIC || wire_get_u32(b + HDR_VERSION) != CHECKPOINT_VERSION ||
        wire_get_u32(b + HDR_CRC) != crc32_iso_hdlc(b, HDR_CRC)) {
        return false;
    }
    h->valid = true;
    h->sequence = wire_get_u32(b + HDR_SEQUENCE);
    h->step_count = wire_get_u32(b + HDR_STEP_COUNT);
    h->data_bytes = wire_get_u32(b + HDR_DATA_BYTES);
    h->data_crc = wire_get_u32(b + HDR_DATA_CRC);
    h->erase_count = wire_get_u32(b + HDR_ERASE_COUNT);
    h->stream_base = wire_get_u32(b + HDR_STREAM_BASE);
    memcpy(h->hashes[0], b + HDR_MODEL_HASH, 32u);
    memcpy(h->hashes[1], b + HDR_PROGRAM_HASH, 32u);
    memcpy(h->hashes[2], b + HDR_STATE_HASH, 32u);
    memcpy(h->stream_id, b + HDR_STREAM_ID, CHECKPOINT_STREAM_ID_BYTES);
    return true;
}

/* A checkpoint this build may restore: its hashes are the build's and its data is intact. */
static bool restorable(int slot, const header_t *h)
{
    uint32_t total = learned_state_bytes();
    return h->valid && h->data_bytes == total && total <= checkpoint_slot_capacity() &&
           memcmp(h->hashes[0], tt_model.hash, 32u) == 0 && memcmp(h->hashes[1], tt_model.program_hash, 32u) == 0 &&
           memcmp(h->hashes[2], tt_model.state_hash, 32u) == 0 &&
           nv_crc32(slot_offset(slot) + CHECKPOINT_HEADER_BYTES, total) == h->data_crc;
}

static checkpoint_meta_t meta_of(int slot, const header_t *h)
{
    checkpoint_meta_t m;
    m.slot = (uint8_t)slot;
    m.sequence = h->sequence;
    m.step_count = h->step_count;
    m.stream_base = h->stream_base;
    memcpy(m.stream_id, h->stream_id, CHECKPOINT_STREAM_ID_BYTES);
    return m;
}

void checkpoint_boot(void)
{
    memset(&status, 0, sizeof status);
    memset(&writer, 0, sizeof writer);
    newest_slot = -1;
    max_sequence = 0u;
    flash_error = 0u;
    if (checkpoint_slot_capacity() == 0u) {
        return;
    }
    header_t h[2];
    bool foreign = false;
    for (int s = 0; s < 2; ++s) {
        if (!header_read(s, &h[s])) {
            continue;
        }
        status.slot_erases[s] = h[s].erase_count;
        max_sequence = h[s].sequence > max_sequence ? h[s].sequence : max_sequence;
        if (restorable(s, &h[s])) {
            if (newest_slot < 0 || h[s].sequence > h[newest_slot].sequence) {
                newest_slot = s;
            }
        } else {
            foreign = true;
        }
    }
    if (newest_slot < 0) {
        status.boot = foreign ? CHECKPOINT_BOOT_FOREIGN : CHECKPOINT_BOOT_NONE;
        return;
    }
    uint32_t total = learned_state_bytes();
    uint8_t buf[CHUNK];
    for (uint32_t at = 0; at < total; at += CHUNK) {
        uint32_t n = total - at < CHUNK ? total - at : CHUNK;
        nv_read(slot_offset(newest_slot) + CHECKPOINT_HEADER_BYTES + at, buf, n);
        learned_state_write(at, n, buf);
    }
    status.boot = CHECKPOINT_BOOT_RESTORED;
    status.restored = meta_of(newest_slot, &h[newest_slot]);
    status.has_newest = true;
    status.newest = status.restored;
}

const checkpoint_status_t *checkpoint_status(void) { return &status; }

uint32_t checkpoint_flash_error(void) { return flash_error; }

/* The slot a new checkpoint goes to: never the one holding the newest checkpoint of this build. */
static int target_slot(void)
{
    if (newest_slot >= 0) {
        return 1 - newest_slot;
    }
    header_t h[2];
    bool v0 = header_read(0, &h[0]), v1 = header_read(1, &h[1]);
    if (!v0 || !v1) {
        return v0 ? 1 : 0;
    }
    return h[0].sequence <= h[1].sequence ? 0 : 1;
}

static int erase_slot(int slot)
{
    status.erases_since_boot++;
    status.slot_erases[slot]++; /* counted even if the erase fails: it wore the sector all the same */
    return flash_result(board_nv_erase((uint32_t)slot));
}

static void writer_start(int slot)
{
    writer.slot = slot;
    writer.flushed = 0u;
    writer.pending_len = 0u;
}

static int writer_append(const uint8_t *data, uint32_t len)
{
    uint32_t u = unit();
    uint32_t base = slot_offset(writer.slot) + CHECKPOINT_HEADER_BYTES;
    while (len > 0u) {
        if (writer.pending_len == 0u && len >= u) {
            uint32_t n = len - len % u;
            int rc = flash_result(board_nv_program(base + writer.flushed, data, n));
            if (rc != CHECKPOINT_OK) {
                return rc;
            }
            writer.flushed += n;
            data += n;
            len -= n;
            continue;
        }
        writer.pending[writer.pending_len++] = *data++;
        len--;
        if (writer.pending_len == u) {
            int rc = flash_result(board_nv_program(base + writer.flushed, writer.pending, u));
            if (rc != CHECKPOINT_OK) {
                return rc;
            }
            writer.flushed += u;
            writer.pending_len = 0u;
        }
    }
    return CHECKPOINT_OK;
}

/* Programs a partial last unit, padded with the erased value. */
static int writer_flush(void)
{
    if (writer.pending_len == 0u) {
        return CHECKPOINT_OK;
    }
    uint32_t u = unit();
    memset(writer.pending + writer.pending_len, 0xFF, u - writer.pending_len);
    int rc = flash_result(board_nv_program(slot_offset(writer.slot) + CHECKPOINT_HEADER_BYTES + writer.flushed,
                                           writer.pending, u));
    if (rc == CHECKPOINT_OK) {
        writer.flushed += writer.pending_len;
        writer.pending_len = 0u;
    }
    return rc;
}

/* The commit point: the header goes last, after the data it describes was read back intact. */
static int write_header(int slot, uint32_t step_count, uint32_t data_crc, uint32_t stream_base,
                        const uint8_t *stream_id)
{
    uint8_t b[HDR_BYTES];
    wire_writer_t w = wire_writer(b, sizeof b);
    wire_u32(&w, CHECKPOINT_MAGIC);
    wire_u32(&w, CHECKPOINT_VERSION);
    wire_u32(&w, max_sequence + 1u);
    wire_u32(&w, step_count);
    wire_u32(&w, learned_state_bytes());
    wire_u32(&w, data_crc);
    wire_u32(&w, status.slot_erases[slot]);
    wire_u32(&w, stream_base);
    memcpy(b + HDR_MODEL_HASH, tt_model.hash, 32u);
    memcpy(b + HDR_PROGRAM_HASH, tt_model.program_hash, 32u);
    memcpy(b + HDR_STATE_HASH, tt_model.state_hash, 32u);
    if (stream_id != NULL) {
        memcpy(b + HDR_STREAM_ID, stream_id, CHECKPOINT_STREAM_ID_BYTES);
    } else {
        memset(b + HDR_STREAM_ID, 0, CHECKPOINT_STREAM_ID_BYTES);
    }
    uint32_t crc = crc32_iso_hdlc(b, HDR_CRC);
    for (unsigned i = 0; i < 4u; ++i) {
        b[HDR_CRC + i] = (uint8_t)(crc >> (8u * i));
    }
    int rc = flash_result(board_nv_program(slot_offset(slot), b, HDR_BYTES));
    if (rc != CHECKPOINT_OK) {
        return rc;
    }
    header_t h;
    if (!header_read(slot, &h)) {
        flash_error = BOARD_NV_VERIFY;
        return CHECKPOINT_FLASH;
    }
    max_sequence = h.sequence;
    newest_slot = slot;
    status.has_newest = true;
    status.newest = meta_of(slot, &h);
    return CHECKPOINT_OK;
}

int checkpoint_take(uint32_t stream_base, const uint8_t stream_id[CHECKPOINT_STREAM_ID_BYTES])
{
    if (!checkpoint_available()) {
        return CHECKPOINT_UNAVAILABLE;
    }
    writer.active = false; /* it would share the slot */
    int slot = target_slot();
    int rc = erase_slot(slot);
    if (rc != CHECKPOINT_OK) {
        return rc;
    }
    writer_start(slot);
    uint32_t total = learned_state_bytes();
    uint32_t crc = CRC32_INIT;
    uint8_t buf[CHUNK];
    for (uint32_t at = 0; at < total && rc == CHECKPOINT_OK; at += CHUNK) {
        uint32_t n = total - at < CHUNK ? total - at : CHUNK;
        learned_state_read(at, n, buf);
        crc = crc32_update(crc, buf, n);
        rc = writer_append(buf, n);
    }
    rc = rc == CHECKPOINT_OK ? writer_flush() : rc;
    if (rc != CHECKPOINT_OK) {
        return rc;
    }
    crc ^= CRC32_XOROUT;
    if (nv_crc32(slot_offset(slot) + CHECKPOINT_HEADER_BYTES, total) != crc) {
        flash_error = BOARD_NV_VERIFY;
        return CHECKPOINT_FLASH;
    }
    uint32_t steps;
    learned_state_read(0u, 4u, buf);
    steps = wire_get_u32(buf);
    return write_header(slot, steps, crc, stream_base, stream_id);
}

int checkpoint_clear(void)
{
    if (checkpoint_slot_capacity() == 0u) {
        return CHECKPOINT_UNAVAILABLE;
    }
    writer.active = false;
    newest_slot = -1;
    status.has_newest = false;
    int rc = erase_slot(0);
    return rc == CHECKPOINT_OK ? erase_slot(1) : rc;
}

/* ------------------------------------------------------------ staging a restore */

int checkpoint_stage_begin(void)
{
    if (!checkpoint_available()) {
        return CHECKPOINT_UNAVAILABLE;
    }
    writer.active = false;
    int slot = target_slot();
    int rc = erase_slot(slot);
    if (rc != CHECKPOINT_OK) {
        return rc;
    }
    writer_start(slot);
    writer.active = true;
    return CHECKPOINT_OK;
}

bool checkpoint_stage_active(void) { return writer.active; }

uint32_t checkpoint_staged_bytes(void) { return writer.active ? writer.flushed + writer.pending_len : 0u; }

static uint8_t staged_byte(uint32_t offset)
{
    if (offset >= writer.flushed) {
        return writer.pending[offset - writer.flushed];
    }
    uint8_t b;
    nv_read(slot_offset(writer.slot) + CHECKPOINT_HEADER_BYTES + offset, &b, 1u);
    return b;
}

int checkpoint_stage_data(uint32_t offset, const uint8_t *data, uint32_t len)
{
    if (!writer.active) {
        return CHECKPOINT_INCOMPLETE;
    }
    uint32_t staged = checkpoint_staged_bytes();
    uint32_t total = learned_state_bytes();
    if (offset > staged || offset > total || len > total - offset) {
        return CHECKPOINT_RANGE;
    }
    uint32_t again = staged - offset < len ? staged - offset : len; /* bytes sent before: must be the same */
    for (uint32_t i = 0; i < again; ++i) {
        if (staged_byte(offset + i) != data[i]) {
            return CHECKPOINT_DIFFERS;
        }
    }
    int rc = writer_append(data + again, len - again);
    if (rc != CHECKPOINT_OK) {
        writer.active = false;
    }
    return rc;
}

int checkpoint_stage_commit(const uint8_t sha256[32])
{
    uint32_t total = learned_state_bytes();
    if (!writer.active || checkpoint_staged_bytes() != total) {
        return CHECKPOINT_INCOMPLETE;
    }
    int rc = writer_flush();
    if (rc != CHECKPOINT_OK) {
        writer.active = false;
        return rc;
    }
    uint32_t data = slot_offset(writer.slot) + CHECKPOINT_HEADER_BYTES;
    sha256_t sha;
    uint8_t digest[32];
    uint8_t buf[CHUNK];
    sha256_init(&sha);
    for (uint32_t at = 0; at < total; at += CHUNK) {
        uint32_t n = total - at < CHUNK ? total - at : CHUNK;
        nv_read(data + at, buf, n);
        sha256_update(&sha, buf, n);
    }
    sha256_final(&sha, digest);
    if (memcmp(digest, sha256, 32u) != 0) {
        return CHECKPOINT_HASH; /* still staged: a COMMIT with the right hash may follow */
    }
    nv_read(data, buf, 4u);
    rc = write_header(writer.slot, wire_get_u32(buf), nv_crc32(data, total), CHECKPOINT_NO_STREAM, NULL);
    writer.active = false;
    if (rc != CHECKPOINT_OK) {
        return rc;
    }
    for (uint32_t at = 0; at < total; at += CHUNK) {
        uint32_t n = total - at < CHUNK ? total - at : CHUNK;
        nv_read(data + at, buf, n);
        learned_state_write(at, n, buf);
    }
    return CHECKPOINT_OK;
}

void checkpoint_stage_cancel(void) { writer.active = false; }
