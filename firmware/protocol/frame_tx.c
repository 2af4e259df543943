#include "protocol/frame_tx.h"

#include "protocol/crc.h"
#include "protocol/frame.h"

void frame_tx_begin(frame_tx_t *tx, frame_sink_fn sink, uint8_t type, uint8_t seq, uint32_t len)
{
    uint8_t h[FRAME_HEADER_BYTES] = {
        FRAME_SYNC0, FRAME_SYNC1, type, seq,
        (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24),
    };
    uint16_t hcrc = crc16_ccitt_false(h + 2, 6);
    h[8] = (uint8_t)hcrc;
    h[9] = (uint8_t)(hcrc >> 8);
    tx->sink = sink;
    tx->crc = crc32_update(CRC32_INIT, h + 2, 6);
    tx->remaining = len;
    tx->overflowed = false;
    sink(h, sizeof h);
}

void frame_tx_data(frame_tx_t *tx, const void *data, size_t len)
{
    if (len > tx->remaining) {
        len = tx->remaining;
        tx->overflowed = true;
    }
    tx->crc = crc32_update(tx->crc, data, len);
    tx->remaining -= (uint32_t)len;
    tx->sink(data, len);
}

bool frame_tx_end(frame_tx_t *tx)
{
    bool exact = !tx->overflowed && tx->remaining == 0;
    static const uint8_t zeros[16];
    while (tx->remaining) {
        frame_tx_data(tx, zeros, tx->remaining < sizeof zeros ? tx->remaining : sizeof zeros);
    }
    uint32_t crc = tx->crc ^ CRC32_XOROUT;
    uint8_t t[FRAME_TRAILER_BYTES] = {(uint8_t)crc, (uint8_t)(crc >> 8), (uint8_t)(crc >> 16),
                                      (uint8_t)(crc >> 24)};
    tx->sink(t, sizeof t);
    return exact;
}

void frame_tx_send(frame_sink_fn sink, uint8_t type, uint8_t seq, const void *payload, uint32_t len)
{
    frame_tx_t tx;
    frame_tx_begin(&tx, sink, type, seq, len);
    frame_tx_data(&tx, payload, len);
    (void)frame_tx_end(&tx);
}
