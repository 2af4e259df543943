#include "protocol/frame_rx.h"

#include <stddef.h>

#include "protocol/crc.h"

enum { HUNT, SYNC, HEADER, PAYLOAD, TRAILER };

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void frame_rx_init(frame_rx_t *rx, uint32_t max_payload)
{
    rx->max_payload = max_payload;
    frame_rx_reset(rx);
}

void frame_rx_reset(frame_rx_t *rx)
{
    rx->state = HUNT;
    rx->count = 0;
    rx->region_count = 0;
    rx->stream_want = 0;
}

bool frame_rx_busy(const frame_rx_t *rx) { return rx->state != HUNT; }

bool frame_rx_route(frame_rx_t *rx, const frame_region_t *regions, unsigned count)
{
    uint64_t total = 0;
    rx->region_count = 0;
    if (count > FRAME_RX_MAX_REGIONS) {
        return false;
    }
    for (unsigned i = 0; i < count; ++i) {
        if (regions[i].len != 0 && regions[i].dst == NULL && i + 1u != count) {
            return false; /* only the last region may be streamed */
        }
        total += regions[i].len;
    }
    if (total != rx->header.len) {
        return false;
    }
    for (unsigned i = 0; i < count; ++i) {
        rx->regions[i] = regions[i];
    }
    rx->region_count = (uint8_t)count;
    return true;
}

static void skip_full_regions(frame_rx_t *rx)
{
    while (rx->region < rx->region_count && rx->offset == rx->regions[rx->region].len) {
        rx->region++;
        rx->offset = 0;
    }
}

static bool in_stream(const frame_rx_t *rx)
{
    return rx->region < rx->region_count && rx->regions[rx->region].dst == NULL;
}

/* Stores one payload byte; true when it completed the regions before a streamed one. */
static bool store(frame_rx_t *rx, uint8_t byte)
{
    skip_full_regions(rx);
    if (rx->region >= rx->region_count) {
        return false;
    }
    rx->offset++;
    if (in_stream(rx)) {
        if (rx->stream_want > 0u) {
            rx->stream_want--;
            if (rx->stream_dst != NULL) {
                *rx->stream_dst++ = byte;
            }
        }
        return false;
    }
    rx->regions[rx->region].dst[rx->offset - 1u] = byte;
    skip_full_regions(rx);
    return in_stream(rx);
}

bool frame_rx_at_stream(const frame_rx_t *rx)
{
    if (rx->state != PAYLOAD) {
        return false;
    }
    frame_rx_t r = *rx;
    skip_full_regions(&r);
    return in_stream(&r);
}

void frame_rx_stream_to(frame_rx_t *rx, uint8_t *dst, uint32_t n)
{
    rx->stream_dst = dst;
    rx->stream_want = n;
}

uint32_t frame_rx_stream_want(const frame_rx_t *rx) { return rx->stream_want; }

static frame_rx_event_t header_complete(frame_rx_t *rx)
{
    const uint8_t *b = rx->bytes;
    uint16_t hcrc = (uint16_t)(b[8] | (b[9] << 8));
    if (crc16_ccitt_false(b + 2, 6) != hcrc) {
        /* Garbage that looked like a sync: hunt again from the byte after the
         * first sync byte, so a real frame starting inside is still found. Nine
         * bytes cannot complete another header, so this replay reports nothing. */
        uint8_t replay[FRAME_HEADER_BYTES - 1u];
        for (unsigned i = 0; i < sizeof replay; ++i) {
            replay[i] = b[i + 1u];
        }
        rx->state = HUNT;
        for (unsigned i = 0; i < sizeof replay; ++i) {
            (void)frame_rx_push(rx, replay[i]);
        }
        return FRAME_RX_NONE;
    }
    rx->header.type = b[2];
    rx->header.seq = b[3];
    rx->header.len = le32(b + 4);
    if (rx->header.len > rx->max_payload) {
        rx->state = HUNT;
        return FRAME_RX_TOO_LARGE;
    }
    rx->crc = crc32_update(CRC32_INIT, b + 2, 6);
    rx->region_count = 0;
    rx->region = 0;
    rx->offset = 0;
    rx->stream_dst = NULL;
    rx->stream_want = 0;
    rx->remaining = rx->header.len;
    rx->count = 0;
    rx->state = rx->remaining ? PAYLOAD : TRAILER;
    return FRAME_RX_HEADER;
}

frame_rx_event_t frame_rx_push(frame_rx_t *rx, uint8_t byte)
{
    switch (rx->state) {
    case HUNT:
        if (byte == FRAME_SYNC0) {
            rx->bytes[0] = byte;
            rx->state = SYNC;
        }
        return FRAME_RX_NONE;
    case SYNC:
        if (byte == FRAME_SYNC1) {
            rx->bytes[1] = byte;
            rx->count = 2;
            rx->state = HEADER;
        } else if (byte != FRAME_SYNC0) {
            rx->state = HUNT;
        }
        return FRAME_RX_NONE;
    case HEADER:
        rx->bytes[rx->count++] = byte;
        return rx->count == FRAME_HEADER_BYTES ? header_complete(rx) : FRAME_RX_NONE;
    case PAYLOAD: {
        rx->crc = crc32_update(rx->crc, &byte, 1);
        bool stream_next = store(rx, byte);
        if (--rx->remaining == 0) {
            rx->count = 0;
            rx->state = TRAILER;
            return FRAME_RX_NONE;
        }
        return stream_next ? FRAME_RX_STREAM : FRAME_RX_NONE;
    }
    case TRAILER:
    default:
        rx->bytes[rx->count++] = byte;
        if (rx->count < FRAME_TRAILER_BYTES) {
            return FRAME_RX_NONE;
        }
        rx->state = HUNT;
        rx->count = 0;
        return (rx->crc ^ CRC32_XOROUT) == le32(rx->bytes) ? FRAME_RX_FRAME : FRAME_RX_BAD_CRC;
    }
}
