/* Frame writer: header, payload (from any number of pieces, so big replies need
 * no assembly buffer) and payload CRC, handed to a sink such as board_write. */
#ifndef TT_FRAME_TX_H
#define TT_FRAME_TX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*frame_sink_fn)(const void *data, size_t len);

typedef struct {
    frame_sink_fn sink;
    uint32_t crc;
    uint32_t remaining;
    bool overflowed;
} frame_tx_t;

void frame_tx_begin(frame_tx_t *tx, frame_sink_fn sink, uint8_t type, uint8_t seq, uint32_t len);
/* Bytes beyond the announced length are dropped, so the frame stays well formed. */
void frame_tx_data(frame_tx_t *tx, const void *data, size_t len);
/* Pads a short payload with zeros; returns false if it had to pad or drop. */
bool frame_tx_end(frame_tx_t *tx);

void frame_tx_send(frame_sink_fn sink, uint8_t type, uint8_t seq, const void *payload, uint32_t len);

#endif
