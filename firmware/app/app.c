/* Protocol main loop: feeds received bytes to the frame receiver, routes each
 * payload where its handler claims it, answers framing errors and dispatches
 * good frames through message_table. */
#include "app/app.h"

#include <stddef.h>
#include <string.h>

#include "boards/board.h"
#include "engine/sensor_input.h"
#include "engine/tt_model.h"
#include "protocol/frame_tx.h"
#include "protocol/wire.h"

static uint8_t rx_buffer[TT_RX_BUFFER_BYTES];
static frame_rx_t rx;

/* What to do with the frame being received once its CRC is known. */
static struct {
    const message_entry_t *entry; /* NULL: UNKNOWN_TYPE */
    bool bad_length;
    uint32_t expected_len;
    const uint8_t *payload;
    uint32_t before_stream; /* payload bytes of the regions before a streamed one */
} pending;

static struct {
    frame_tx_t tx;
    bool open;
    bool sent;
} out;

static struct {
    bool active;
    uint64_t since;
} idle;

/* A streamed request (its handler runs while its payload is still arriving). */
static struct {
    bool active;   /* between the handler's start and the end of its frame */
    bool replied;  /* the frame broke off: no reply is owed */
    uint32_t sensor_channel; /* a sensor model's samples: the channel of the next count */
    uint8_t seq;
    uint32_t consumed; /* bytes of the frame taken from the serial line so far */
    uint32_t granted;  /* bytes of the frame the host may have sent (CREDIT) */
} stream;

uint64_t tt_input_counter_total;

static void write_sink(const void *data, size_t len) { board_write(data, len); }

bool claim_empty(uint32_t len, rx_claim_t *claim)
{
    claim->expected_len = 0;
    claim->count = 0;
    return len == 0;
}

bool claim_rx_buffer(uint32_t len, rx_claim_t *claim)
{
    claim->expected_len = TT_RX_BUFFER_BYTES;
    if (len > TT_RX_BUFFER_BYTES) {
        return false;
    }
    claim->regions[0].dst = rx_buffer;
    claim->regions[0].len = len;
    claim->count = 1;
    return true;
}

bool claim_exactly(uint32_t len, uint32_t expected, rx_claim_t *claim)
{
    if (len != expected) {
        claim->expected_len = expected;
        return false;
    }
    return claim_rx_buffer(len, claim);
}

void reply_begin(const request_t *req, uint32_t len)
{
    frame_tx_begin(&out.tx, write_sink, (uint8_t)(req->type | MSG_REPLY), req->seq, len);
    out.open = true;
    out.sent = true;
}

void reply_data(const void *data, uint32_t len) { frame_tx_data(&out.tx, data, len); }

void reply_end(void)
{
    (void)frame_tx_end(&out.tx);
    out.open = false;
}

void reply(const request_t *req, const void *payload, uint32_t len)
{
    reply_begin(req, len);
    reply_data(payload, len);
    reply_end();
}

void reply_error(const request_t *req, uint8_t code, uint32_t detail, const char *message)
{
    uint8_t buf[1 + 1 + 4 + 1 + 255];
    wire_writer_t w = wire_writer(buf, sizeof buf);
    wire_u8(&w, code);
    wire_u8(&w, req->type);
    wire_u32(&w, detail);
    wire_str(&w, message);
    frame_tx_send(write_sink, MSG_ERROR, req->seq, buf, (uint32_t)w.len);
    out.sent = true;
}

static const message_entry_t *find_entry(uint8_t type)
{
    for (unsigned i = 0; i < message_table_count; ++i) {
        if (message_table[i].type == type) {
            return &message_table[i];
        }
    }
    return NULL;
}

static void route_payload(const frame_header_t *h)
{
    rx_claim_t claim = {0};
    pending.entry = find_entry(h->type);
    pending.bad_length = false;
    pending.payload = NULL;
    if (pending.entry == NULL) {
        return; /* discarded; UNKNOWN_TYPE once the CRC is checked */
    }
    rx_claim_fn claim_fn = pending.entry->claim ? pending.entry->claim : claim_rx_buffer;
    if (!claim_fn(h->len, &claim) || !frame_rx_route(&rx, claim.regions, claim.count)) {
        pending.bad_length = true;
        pending.expected_len = claim.expected_len;
        return;
    }
    if (h->len) {
        pending.payload = claim.regions[0].len ? claim.regions[0].dst : claim.regions[1].dst;
    }
    pending.before_stream = 0;
    for (unsigned i = 0; i < claim.count && claim.regions[i].dst != NULL; ++i) {
        pending.before_stream += claim.regions[i].len;
    }
}

static void dispatch(const frame_header_t *h)
{
    request_t req = {h->type, h->seq, h->len, pending.payload};
    if (pending.entry == NULL) {
        reply_error(&req, ERR_UNKNOWN_TYPE, 0, "no handler for this message type");
        return;
    }
    if (pending.bad_length) {
        reply_error(&req, ERR_BAD_LENGTH, pending.expected_len, "payload length wrong for this type");
        return;
    }
    out.sent = false;
    pending.entry->handle(&req);
    if (out.open) {
        reply_end();
    }
    if (!out.sent) {
        reply_error(&req, ERR_BAD_STATE, 0, "the handler sent no reply");
    }
}

void reply_nothing(void) { out.sent = true; }

/* A board whose serial line drops bytes when its receive ring is full (board_info()->rx_ring_bytes)
 * lets the host send a streamed frame only so far ahead of what it consumed: the ring can then
 * never overflow while the step computes between reads. The first ring's worth is implied. */
static void grant_credit(void)
{
    uint32_t ring = board_info()->rx_ring_bytes;
    if (ring == 0u || !stream.active) {
        return;
    }
    uint32_t grant = stream.consumed + ring;
    if (grant - stream.granted >= ring / 2u) {
        uint8_t buf[4];
        wire_writer_t w = wire_writer(buf, sizeof buf);
        wire_u32(&w, grant);
        frame_tx_send(write_sink, MSG_CREDIT, stream.seq, buf, (uint32_t)w.len);
        stream.granted = grant;
    }
}

/* Runs a streamed request's handler as soon as the payload before its streamed region arrived. */
static void dispatch_stream(const frame_header_t *h)
{
    request_t req = {h->type, h->seq, h->len, pending.payload};
    stream.active = true;
    stream.sensor_channel = 0u;
    stream.seq = h->seq;
    stream.consumed = FRAME_HEADER_BYTES + pending.before_stream;
    stream.granted = board_info()->rx_ring_bytes;
    out.sent = false;
    pending.entry->handle(&req);
    if (out.open) {
        reply_end();
    }
    if (stream.active) {
        /* The handler did not read its payload to the end: a frame must still be answered only
         * once its CRC is known. */
        int status = tt_input_end();
        if (!out.sent && status == TT_INPUT_BAD_CRC) {
            reply_error(&req, ERR_BAD_CRC, 0, "payload CRC mismatch");
        }
        out.sent = out.sent || status != TT_INPUT_OK;
    }
    if (!out.sent) {
        reply_error(&req, ERR_BAD_STATE, 0, "the handler sent no reply");
    }
}

/* Feeds the frame receiver until the stream wants no more bytes (until_end: until the frame
 * ends). Everything it takes counts as receiving, not computing (tt_input_counter_total). */
static int pump(uint8_t *dst, uint32_t n, bool until_end)
{
    if (!stream.active) {
        return TT_INPUT_BROKEN_OFF;
    }
    uint64_t start = board_counter_read();
    uint64_t limit = board_info()->counter_hz / 1000u * TT_RX_IDLE_RESET_MS;
    uint64_t since = 0;
    bool waiting = false;
    int status = TT_INPUT_OK;
    grant_credit();
    frame_rx_stream_to(&rx, dst, until_end ? UINT32_MAX : n);
    while (until_end || frame_rx_stream_want(&rx) > 0u) {
        int c = board_getc();
        if (c < 0) {
            uint64_t now = board_counter_read();
            if (!waiting) {
                waiting = true;
                since = now;
            } else if (now - since > limit) {
                frame_rx_reset(&rx); /* the sender went away: the frame is dropped, unanswered */
                stream.active = false;
                status = TT_INPUT_BROKEN_OFF;
                break;
            }
            continue;
        }
        waiting = false;
        frame_rx_event_t event = frame_rx_push(&rx, (uint8_t)c);
        stream.consumed++;
        if (event == FRAME_RX_FRAME || event == FRAME_RX_BAD_CRC) {
            stream.active = false;
            status = event == FRAME_RX_FRAME ? TT_INPUT_OK : TT_INPUT_BAD_CRC;
            break;
        }
        grant_credit();
    }
    frame_rx_stream_to(&rx, NULL, 0u);
    tt_input_counter_total += board_counter_read() - start;
    return status;
}

/* A sensor model's sample arrives as int16 counts (2 bytes per input value): they are pulled a few at
 * a time into a small buffer and scaled to the int8 input (engine/sensor_input.h). */
static int read_sensor_counts(int8_t *dst, uint32_t n)
{
    uint8_t raw[2u * 32u];
    while (n > 0u) {
        uint32_t k = n < 32u ? n : 32u;
        int status = pump(raw, 2u * k, false);
        if (status != TT_INPUT_OK) {
            return status;
        }
        stream.sensor_channel = tt_sensor_to_int8(&tt_sensor, raw, k, stream.sensor_channel, dst);
        dst += k;
        n -= k;
    }
    return TT_INPUT_OK;
}

int tt_input_read(int8_t *dst, uint32_t n)
{
    int status = tt_sensor.channels ? read_sensor_counts(dst, n) : pump((uint8_t *)dst, n, false);
    /* The frame cannot end before its streamed bytes: ending here means it was cut short. */
    return status == TT_INPUT_OK && !stream.active ? TT_INPUT_BROKEN_OFF : status;
}

int tt_input_end(void) { return pump(NULL, 0u, true); }

static void on_event(frame_rx_event_t event)
{
    const frame_header_t *h = &rx.header;
    request_t req = {h->type, h->seq, h->len, NULL};
    switch (event) {
    case FRAME_RX_HEADER:
        route_payload(h);
        if (!pending.bad_length && pending.entry != NULL && frame_rx_at_stream(&rx)) {
            dispatch_stream(h);
        }
        break;
    case FRAME_RX_STREAM:
        dispatch_stream(h);
        break;
    case FRAME_RX_FRAME:
        dispatch(h);
        break;
    case FRAME_RX_BAD_CRC:
        reply_error(&req, ERR_BAD_CRC, 0, "payload CRC mismatch");
        break;
    case FRAME_RX_TOO_LARGE:
        reply_error(&req, ERR_TOO_LARGE, TT_MAX_PAYLOAD, "payload larger than max_payload");
        break;
    case FRAME_RX_NONE:
    default:
        break;
    }
}

void app_init(void)
{
    memset(&pending, 0, sizeof pending);
    memset(&out, 0, sizeof out);
    memset(&idle, 0, sizeof idle);
    memset(&stream, 0, sizeof stream);
    tt_input_counter_total = 0u;
    frame_rx_init(&rx, TT_MAX_PAYLOAD);
}

void app_poll(void)
{
    int c = board_getc();
    if (c < 0) {
        /* Drop a frame whose sender went away, so the next one is not swallowed. */
        if (!frame_rx_busy(&rx)) {
            idle.active = false;
        } else if (!idle.active) {
            idle.active = true;
            idle.since = board_counter_read();
        } else if (board_counter_read() - idle.since >
                   board_info()->counter_hz / 1000u * TT_RX_IDLE_RESET_MS) {
            frame_rx_reset(&rx);
            idle.active = false;
        }
        return;
    }
    idle.active = false;
    do {
        on_event(frame_rx_push(&rx, (uint8_t)c));
    } while ((c = board_getc()) >= 0);
}

/* The fault report hook of board.h: one FAULT frame, then the board halts. */
void board_on_fault(const board_fault_t *f)
{
    uint8_t buf[8 * 4];
    wire_writer_t w = wire_writer(buf, sizeof buf);
    const uint32_t regs[8] = {f->pc, f->lr, f->psr, f->cfsr, f->hfsr, f->mmfar, f->bfar, f->sp};
    for (unsigned i = 0; i < 8; ++i) {
        wire_u32(&w, regs[i]);
    }
    frame_tx_send(write_sink, MSG_FAULT, 0, buf, (uint32_t)w.len);
}
