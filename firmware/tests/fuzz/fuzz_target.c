/* libFuzzer targets of the firmware's host build (docs/fuzzing.md), one per compile:
 *
 *   -DFUZZ_TARGET_FRAME_RX        the frame receiver alone, with fuzzed routing and streaming
 *   -DFUZZ_TARGET_APP             raw bytes into the main loop (receiver, routing, every handler)
 *   -DFUZZ_TARGET_TYPE=0xNN       frames of one message type, with good CRCs unless the input says
 *                                 otherwise, fed through the main loop (one target per handler)
 *   -DFUZZ_TARGET_RESTORE         a fuzzed checkpoint flash, restored at boot
 *
 * Each input starts from a fresh board (power-on learned state, erased flash). Invariants, checked
 * after every frame and at the end; a violation prints "tinytrain-fuzz: ..." and aborts:
 *   - every byte the board sends is part of a well-formed frame (sync, header CRC, payload CRC);
 *   - the learned state changes only with a successful TRAIN reply for the next step or a PARAMS_SET
 *     COMMIT reply (restore: only to the newest valid checkpoint of this build);
 *   - the board still answers INFO once the line has been idle;
 * and no sanitizer report (ASan, UBSan; the arena checker of TT_CHECKED aborts too).
 *
 * Message-target input: records `u8 flags, u16 length, payload`: flags bits 0-1 choose the frame
 * (0: the target's type; 1: INFO; 2: the type in the payload's first byte; 3: the target's type made
 * valid: TRAIN gets the next step number and a label in range, PARAMS_SET becomes a whole push of the
 * payload as state, CHECKPOINT a TAKE), bit 2 flips a bit of the frame (at bits 3-6 x 8 + 5), bit 7
 * cuts the frame in half and leaves the line idle. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/checkpoint.h"
#include "app/engine_messages.h"
#include "app/learned_state.h"
#include "engine/tt_model.h"
#include "protocol/crc.h"
#include "protocol/frame.h"
#include "protocol/frame_rx.h"
#include "protocol/frame_tx.h"
#include "protocol/sha256.h"
#include "protocol/wire.h"
#include "tests/fuzz/fuzz_board.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *initial_state, *before_state, *now_state;
static uint32_t state_total;

static void fail(const char *what)
{
    fprintf(stderr, "tinytrain-fuzz: %s\n", what);
    fflush(stderr);
    abort();
}

static void init_once(void)
{
    if (initial_state != NULL) {
        return;
    }
    state_total = learned_state_bytes();
    initial_state = malloc(state_total);
    before_state = malloc(state_total);
    now_state = malloc(state_total);
    if (initial_state == NULL || before_state == NULL || now_state == NULL) {
        fail("out of memory");
    }
    learned_state_read(0, state_total, initial_state);
}

static void fresh_board(void)
{
    fuzz_board_reset();
    learned_state_write(0, state_total, initial_state);
    memset(tt_arena, 0, tt_model.arena_bytes);
    app_init();
    engine_messages_init();
}

/* ------------------------------------------------------------ frames */

static uint8_t frame_buf[TT_MAX_PAYLOAD + 64u];
static size_t frame_len;

static void frame_sink(const void *d, size_t n)
{
    size_t room = sizeof frame_buf - frame_len;
    n = n < room ? n : room;
    if (n == 0u) {
        return; /* an empty payload comes as (NULL, 0) */
    }
    memcpy(frame_buf + frame_len, d, n);
    frame_len += n;
}

static void build_frame(uint8_t type, uint8_t seq, const uint8_t *payload, uint32_t len)
{
    frame_len = 0;
    frame_tx_send(frame_sink, type, seq, payload, len);
}

/* Runs the main loop until every fed byte was taken, then lets the line stay idle long enough for a
 * partial frame to be dropped. */
static void run_board(const uint8_t *bytes, size_t n, bool idle)
{
    fuzz_board_feed(bytes, n);
    for (int guard = 0; fuzz_board_pending() > 0u && guard < 1000000; ++guard) {
        app_poll();
    }
    if (idle) {
        for (int i = 0; i < 300; ++i) {
            app_poll();
        }
    }
}

/* What the board sent: each frame checked; counts the replies that may change the learned state. */
typedef struct {
    unsigned train_replies, commits, info_replies;
    uint32_t train_step;
    uint8_t info_seq;
} replies_t;

static uint32_t le32(const uint8_t *p) { return wire_get_u32(p); }

static replies_t decode_output(void)
{
    replies_t r = {0};
    size_t len;
    const uint8_t *out = fuzz_board_output(&len);
    size_t at = 0;
    while (at < len) {
        if (len - at < FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES || out[at] != FRAME_SYNC0 || out[at + 1] != FRAME_SYNC1) {
            fail("the board sent bytes that are not a frame");
        }
        const uint8_t *h = out + at;
        if (crc16_ccitt_false(h + 2, 6) != (uint16_t)(h[8] | (h[9] << 8))) {
            fail("the board sent a frame with a bad header CRC");
        }
        uint32_t n = le32(h + 4);
        if (n > len - at - FRAME_HEADER_BYTES - FRAME_TRAILER_BYTES) {
            fail("the board sent a truncated frame");
        }
        uint32_t crc = crc32_update(CRC32_INIT, h + 2, 6);
        crc = crc32_update(crc, h + FRAME_HEADER_BYTES, n) ^ CRC32_XOROUT;
        if (crc != le32(h + FRAME_HEADER_BYTES + n)) {
            fail("the board sent a frame with a bad payload CRC");
        }
        const uint8_t *p = h + FRAME_HEADER_BYTES;
        uint8_t type = h[2];
        if (type == (MSG_TRAIN | MSG_REPLY) && n >= 8u) {
            r.train_replies++;
            r.train_step = le32(p + 4);
        } else if (type == (MSG_PARAMS_SET | MSG_REPLY) && n >= 1u && p[0] == 2u) {
            r.commits++;
        } else if (type == (MSG_INFO | MSG_REPLY)) {
            r.info_replies++;
            r.info_seq = h[3];
        }
        at += FRAME_HEADER_BYTES + n + FRAME_TRAILER_BYTES;
    }
    fuzz_board_output_clear();
    return r;
}

/* The learned state may change only through a step the board reported, or a committed restore. */
static void check_state(const replies_t *r)
{
    learned_state_read(0, state_total, now_state);
    if (memcmp(now_state, before_state, state_total) == 0) {
        return;
    }
    uint32_t before_steps = le32(before_state);
    bool stepped = r->train_replies > 0u && r->train_step == le32(now_state) && le32(now_state) != before_steps;
    if (!stepped && r->commits == 0u) {
        fail("silent tensor change: the learned state changed without a TRAIN step or a committed restore");
    }
}

static void send_and_check(uint8_t type, uint8_t seq, const uint8_t *payload, uint32_t len, int flip, bool cut)
{
    learned_state_read(0, state_total, before_state);
    build_frame(type, seq, payload, len);
    if (flip >= 0 && frame_len > 0u) {
        frame_buf[(size_t)flip % frame_len] ^= 0x20u;
    }
    size_t n = cut ? frame_len / 2u : frame_len;
    run_board(frame_buf, n, cut);
    replies_t r = decode_output();
    check_state(&r);
}

static void check_answers_info(void)
{
    run_board(NULL, 0, true); /* idle: whatever frame was cut off is dropped */
    (void)decode_output();
    learned_state_read(0, state_total, before_state);
    build_frame(MSG_INFO, 0x5Au, NULL, 0);
    run_board(frame_buf, frame_len, false);
    replies_t r = decode_output();
    if (r.info_replies != 1u || r.info_seq != 0x5Au) {
        fail("the board no longer answers INFO");
    }
    check_state(&r);
}

/* ------------------------------------------------------------ message targets */

#if defined(FUZZ_TARGET_TYPE)
static const uint8_t engine_types[] = {MSG_INFO, MSG_ECHO, MSG_STATS, MSG_CALIBRATE, MSG_MODEL, MSG_TRAIN,
                                       MSG_INFER, MSG_PARAMS_GET, MSG_PARAMS_SET, MSG_PROFILE, MSG_CHECKPOINT};

static uint8_t payload_buf[TT_MAX_PAYLOAD + 64u];

/* A whole PARAMS_SET push of `state` (the fuzz bytes, repeated to the state's size). */
static void push_state(const uint8_t *bytes, uint32_t n, uint8_t seq)
{
    uint8_t *state = malloc(state_total);
    if (state == NULL) {
        fail("out of memory");
    }
    for (uint32_t i = 0; i < state_total; ++i) {
        state[i] = n ? bytes[i % n] : (uint8_t)i;
    }
    payload_buf[0] = 0u;
    memcpy(payload_buf + 1, tt_model.state_hash, 32u);
    for (unsigned i = 0; i < 4u; ++i) {
        payload_buf[33 + i] = (uint8_t)(state_total >> (8u * i));
    }
    send_and_check(MSG_PARAMS_SET, seq, payload_buf, 37u, -1, false);
    const uint32_t chunk = 1024u;
    for (uint32_t off = 0; off < state_total; off += chunk) {
        uint32_t k = state_total - off < chunk ? state_total - off : chunk;
        payload_buf[0] = 1u;
        for (unsigned i = 0; i < 4u; ++i) {
            payload_buf[1 + i] = (uint8_t)(off >> (8u * i));
        }
        memcpy(payload_buf + 5, state + off, k);
        send_and_check(MSG_PARAMS_SET, (uint8_t)(seq + 1u + off / chunk), payload_buf, 5u + k, -1, false);
    }
    sha256_t sha;
    payload_buf[0] = 2u;
    sha256_init(&sha);
    sha256_update(&sha, state, state_total);
    sha256_final(&sha, payload_buf + 1);
    send_and_check(MSG_PARAMS_SET, (uint8_t)(seq + 99u), payload_buf, 33u, -1, false);
    free(state);
}

static uint32_t made_valid(uint8_t type, const uint8_t *p, uint32_t n, uint8_t seq)
{
    if (n > sizeof payload_buf) {
        n = sizeof payload_buf;
    }
    memcpy(payload_buf, p, n);
    if (type == MSG_TRAIN) {
        uint8_t pick = n > 0u ? p[0] : 0u;
        uint32_t want = 12u + tt_model.input_bytes;
        for (uint32_t i = n; i < want && i < sizeof payload_buf; ++i) {
            payload_buf[i] = (uint8_t)(i * 37u);
        }
        n = want;
        uint32_t step = tt_train_step_count + 1u;
        uint16_t label = (uint16_t)(pick % tt_model.classes);
        payload_buf[0] = (uint8_t)label;
        payload_buf[1] = (uint8_t)(label >> 8);
        payload_buf[2] = payload_buf[3] = 0u;
        payload_buf[6] &= 0x03u; /* lr_scale at most 4.0 */
        payload_buf[7] = 0u;
        for (unsigned i = 0; i < 4u; ++i) {
            payload_buf[8 + i] = (uint8_t)(step >> (8u * i));
        }
    } else if (type == MSG_CHECKPOINT) {
        payload_buf[0] = 0u;
        for (uint32_t i = n; i < 37u; ++i) {
            payload_buf[i] = 0u;
        }
        n = 37u;
    } else if (type == MSG_PARAMS_SET) {
        push_state(p, n, seq);
        return UINT32_MAX;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fresh_board();
    size_t pos = 0;
    unsigned frames = 0;
    while (pos + 3u <= size && frames < 64u) {
        uint8_t flags = data[pos];
        size_t len = (size_t)data[pos + 1] | ((size_t)data[pos + 2] << 8);
        pos += 3u;
        if (len > size - pos) {
            len = size - pos;
        }
        const uint8_t *p = data + pos;
        pos += len;
        frames++;
        uint8_t seq = (uint8_t)(frames | 1u);
        uint8_t type = FUZZ_TARGET_TYPE;
        switch (flags & 3u) {
        case 1u:
            type = MSG_INFO;
            break;
        case 2u:
            if (len > 0u) {
                type = engine_types[p[0] % sizeof engine_types];
                p++;
                len--;
            }
            break;
        case 3u: {
            uint32_t n = made_valid(type, p, (uint32_t)len, seq);
            if (n == UINT32_MAX) {
                continue;
            }
            p = payload_buf;
            len = n;
            break;
        }
        default:
            break;
        }
        int flip = (flags & 4u) ? (int)(((flags >> 3) & 0xFu) * 8u + 5u) : -1;
        send_and_check(type, seq, p, (uint32_t)len, flip, (flags & 0x80u) != 0u);
    }
    check_answers_info();
    return 0;
}

/* ------------------------------------------------------------ raw bytes into the main loop */
#elif defined(FUZZ_TARGET_APP)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fresh_board();
    learned_state_read(0, state_total, before_state);
    run_board(data, size, true);
    replies_t r = decode_output();
    if (r.train_replies > 1u || r.commits > 0u) {
        learned_state_read(0, state_total, before_state); /* several steps: only the last is checkable */
    } else {
        check_state(&r);
    }
    check_answers_info();
    return 0;
}

/* ------------------------------------------------------------ the frame receiver alone */
#elif defined(FUZZ_TARGET_FRAME_RX)
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4u) {
        return 0;
    }
    uint32_t max_payload = 1u + (uint32_t)(data[0] | (data[1] << 8));
    uint8_t prefix_len = data[2] % 16u;
    uint8_t chunk = (uint8_t)(1u + data[3] % 32u);
    data += 4;
    size -= 4;
    frame_rx_t rx;
    memset(&rx, 0, sizeof rx);
    frame_rx_init(&rx, max_payload);
    uint8_t *prefix = NULL, *body = NULL;
    uint32_t body_len = 0, got = 0;
    bool streamed = false, discarded = false;
    uint32_t crc = 0;
    uint8_t last[4] = {0};
    uint32_t count = 0;
    for (size_t i = 0; i < size; ++i) {
        frame_rx_event_t e = frame_rx_push(&rx, data[i]);
        last[count++ % 4u] = data[i];
        if (e == FRAME_RX_HEADER) {
            free(prefix);
            free(body);
            const frame_header_t *h = &rx.header;
            uint32_t pre = prefix_len < h->len ? prefix_len : h->len;
            prefix = malloc(pre ? pre : 1u);
            body_len = h->len - pre;
            streamed = (h->type & 1u) != 0u && body_len > 0u;
            body = streamed ? malloc(chunk) : malloc(body_len ? body_len : 1u);
            frame_region_t regions[2] = {{prefix, pre}, {streamed ? NULL : body, body_len}};
            /* Streamed bytes land in one small buffer, chunk after chunk: their CRC is not checkable here. */
            discarded = !frame_rx_route(&rx, regions, 2u) || streamed;
            got = 0;
            uint8_t hdr[6] = {h->type, h->seq, (uint8_t)h->len, (uint8_t)(h->len >> 8), (uint8_t)(h->len >> 16),
                              (uint8_t)(h->len >> 24)};
            crc = crc32_update(CRC32_INIT, hdr, sizeof hdr);
        }
        if (streamed && frame_rx_at_stream(&rx) && frame_rx_stream_want(&rx) == 0u && got < body_len) {
            uint32_t k = body_len - got < chunk ? body_len - got : chunk;
            frame_rx_stream_to(&rx, body, k); /* into a buffer of exactly `chunk` bytes */
            got += k;
        }
        if (e == FRAME_RX_FRAME && !discarded && prefix != NULL) {
            /* A frame the receiver accepts must carry the CRC of what it delivered. */
            uint32_t c = crc32_update(crc, prefix, rx.header.len - body_len);
            c = crc32_update(c, body, body_len) ^ CRC32_XOROUT;
            uint8_t t[4];
            for (unsigned k = 0; k < 4u; ++k) {
                t[k] = last[(count + k) % 4u];
            }
            if (c != le32(t)) {
                fail("the receiver accepted a frame whose payload CRC does not match");
            }
        }
    }
    free(prefix);
    free(body);
    return 0;
}

/* ------------------------------------------------------------ restore at boot */
#elif defined(FUZZ_TARGET_RESTORE)

/* An independent writer of checkpoint slots (docs/checkpoints.md), to give the fuzzer valid ones. */
static void write_slot(uint8_t *slot, uint32_t sequence, const uint8_t *state, bool foreign)
{
    uint8_t *h = slot;
    memset(slot, 0xFF, FUZZ_NV_SECTOR_BYTES);
    memcpy(slot + CHECKPOINT_HEADER_BYTES, state, state_total);
    uint32_t fields[8] = {CHECKPOINT_MAGIC, CHECKPOINT_VERSION, sequence, le32(state), state_total,
                          crc32_iso_hdlc(state, state_total), 1u, 0u};
    for (unsigned f = 0; f < 8u; ++f) {
        for (unsigned i = 0; i < 4u; ++i) {
            h[4u * f + i] = (uint8_t)(fields[f] >> (8u * i));
        }
    }
    memcpy(h + 32, tt_model.hash, 32u);
    memcpy(h + 64, tt_model.program_hash, 32u);
    memcpy(h + 96, tt_model.state_hash, 32u);
    memset(h + 128, 0, 32u);
    if (foreign) {
        h[64] ^= 1u;
    }
    uint32_t crc = crc32_iso_hdlc(h, 160u);
    for (unsigned i = 0; i < 4u; ++i) {
        h[160 + i] = (uint8_t)(crc >> (8u * i));
    }
}

/* What a correct restore does with these slots: the newest intact one of this build, else nothing. */
static int expected_slot(const uint8_t *nv)
{
    int best = -1;
    uint32_t best_seq = 0;
    for (int s = 0; s < 2; ++s) {
        const uint8_t *h = nv + (size_t)s * FUZZ_NV_SECTOR_BYTES;
        if (le32(h) != CHECKPOINT_MAGIC || le32(h + 4) != CHECKPOINT_VERSION || le32(h + 160) != crc32_iso_hdlc(h, 160u) ||
            le32(h + 16) != state_total || memcmp(h + 32, tt_model.hash, 32u) != 0 ||
            memcmp(h + 64, tt_model.program_hash, 32u) != 0 || memcmp(h + 96, tt_model.state_hash, 32u) != 0 ||
            crc32_iso_hdlc(h + CHECKPOINT_HEADER_BYTES, state_total) != le32(h + 20)) {
            continue;
        }
        if (best < 0 || le32(h + 8) > best_seq) {
            best = s;
            best_seq = le32(h + 8);
        }
    }
    return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_board_reset();
    learned_state_write(0, state_total, initial_state);
    uint8_t *nv = fuzz_board_nv();
    size_t pos = 0;
    uint8_t *state = malloc(state_total);
    if (state == NULL) {
        fail("out of memory");
    }
    for (int s = 0; s < 2; ++s) {
        uint8_t *slot = nv + (size_t)s * FUZZ_NV_SECTOR_BYTES;
        uint8_t mode = pos < size ? data[pos++] : 0u;
        uint32_t seq = pos + 4u <= size ? le32(data + pos) : 0u;
        pos += 4u;
        for (uint32_t i = 0; i < state_total; ++i) {
            state[i] = pos < size ? data[pos++] : (uint8_t)(i + (uint32_t)s);
        }
        if ((mode & 3u) == 0u) {
            /* raw: whatever the fuzzer wrote, over the header and the start of the data */
            memcpy(slot, state, state_total < FUZZ_NV_SECTOR_BYTES ? state_total : FUZZ_NV_SECTOR_BYTES);
            continue;
        }
        write_slot(slot, seq, state, (mode & 3u) == 3u);
        if (mode & 4u) { /* then a bit flipped somewhere in the header or the data */
            uint32_t at = (seq >> 3) % (CHECKPOINT_HEADER_BYTES + state_total);
            slot[at] ^= (uint8_t)(1u << (seq & 7u));
        }
    }
    free(state);
    int want = expected_slot(nv);
    memset(tt_arena, 0, tt_model.arena_bytes);
    app_init();
    engine_messages_init(); /* restores at boot */
    learned_state_read(0, state_total, now_state);
    const uint8_t *expect = want < 0 ? initial_state : nv + (size_t)want * FUZZ_NV_SECTOR_BYTES + CHECKPOINT_HEADER_BYTES;
    if (memcmp(now_state, expect, state_total) != 0) {
        fail(want < 0 ? "silent tensor change: restored from flash that holds no valid checkpoint"
                      : "restored something else than the newest valid checkpoint");
    }
    const checkpoint_status_t *cs = checkpoint_status();
    if ((cs->boot == CHECKPOINT_BOOT_RESTORED) != (want >= 0) || (want >= 0 && cs->restored.slot != (uint8_t)want)) {
        fail("the reported restore differs from what was restored");
    }
    check_answers_info();
    return 0;
}
#else
#error "define one FUZZ_TARGET_*"
#endif
