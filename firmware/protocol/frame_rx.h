/* Byte-at-a-time frame receiver: hunts for the sync bytes, checks the header
 * CRC (resynchronising inside a bad header), enforces the maximum payload,
 * streams the payload into the regions its caller chooses and checks the
 * payload CRC. It never allocates and never blocks. */
#ifndef TT_FRAME_RX_H
#define TT_FRAME_RX_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/frame.h"

/* dst == NULL (with len > 0) marks a streamed region, which must be the last: its bytes go
 * wherever frame_rx_stream_to() says when they arrive (a consumer pulls them), see below. */
typedef struct {
    uint8_t *dst;
    uint32_t len;
} frame_region_t;

#define FRAME_RX_MAX_REGIONS 2u

typedef enum {
    FRAME_RX_NONE = 0,  /* byte taken, nothing to report */
    FRAME_RX_HEADER,    /* a header with a good hcrc arrived: call frame_rx_route() now */
    FRAME_RX_FRAME,     /* the payload and a matching pcrc arrived */
    FRAME_RX_BAD_CRC,   /* the payload arrived but its pcrc did not match */
    FRAME_RX_TOO_LARGE, /* the header announced len > max_payload; hunting again */
    FRAME_RX_STREAM,    /* the regions before a streamed region are full: its consumer may start */
} frame_rx_event_t;

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint32_t len;
} frame_header_t;

typedef struct {
    uint32_t max_payload;
    frame_header_t header; /* valid from FRAME_RX_HEADER until the frame ends */
    /* private */
    uint8_t state;
    uint8_t count;
    uint8_t bytes[FRAME_HEADER_BYTES];
    frame_region_t regions[FRAME_RX_MAX_REGIONS];
    uint8_t region_count;
    uint8_t region;
    uint32_t offset;
    uint32_t remaining;
    uint32_t crc;
    uint8_t *stream_dst;  /* NULL: discard */
    uint32_t stream_want; /* streamed bytes still wanted at stream_dst */
} frame_rx_t;

void frame_rx_init(frame_rx_t *rx, uint32_t max_payload);

/* Drops a partial frame and hunts for the next one. */
void frame_rx_reset(frame_rx_t *rx);

/* True from a sync byte to the end of its frame (a partial header included: left alone, the next
 * frame's first bytes would complete it). */
bool frame_rx_busy(const frame_rx_t *rx);

frame_rx_event_t frame_rx_push(frame_rx_t *rx, uint8_t byte);

/* Right after FRAME_RX_HEADER: the payload fills these regions in order. They
 * must add up to header.len, else (and when never called) the payload is
 * received into a discard sink, still CRC-checked. Returns false then. */
bool frame_rx_route(frame_rx_t *rx, const frame_region_t *regions, unsigned count);

/* Streamed region: true when the next payload byte belongs to it (after routing, or after
 * FRAME_RX_STREAM). The consumer then asks for its bytes n at a time: frame_rx_stream_to(rx, dst,
 * n) sends the next n streamed bytes to dst (NULL: discard them), and it feeds bytes to
 * frame_rx_push() until frame_rx_stream_want() is 0. Streamed bytes that nobody asked for are
 * dropped (still CRC-checked); the frame ends with FRAME_RX_FRAME or FRAME_RX_BAD_CRC as usual. */
bool frame_rx_at_stream(const frame_rx_t *rx);
void frame_rx_stream_to(frame_rx_t *rx, uint8_t *dst, uint32_t n);
uint32_t frame_rx_stream_want(const frame_rx_t *rx);

#endif
