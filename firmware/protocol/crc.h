/* The two CRCs of the protocol (docs/protocol.md). Both are computed a nibble at
 * a time from 16-entry tables: small in flash and fast enough for a serial line. */
#ifndef TT_CRC_H
#define TT_CRC_H

#include <stddef.h>
#include <stdint.h>

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xorout. */
#define CRC16_INIT 0xFFFFu
uint16_t crc16_update(uint16_t crc, const uint8_t *data, size_t len);
uint16_t crc16_ccitt_false(const uint8_t *data, size_t len);

/* CRC-32/ISO-HDLC (zlib): reflected poly 0xEDB88320, init and xorout 0xFFFFFFFF.
 * Incremental use: s = CRC32_INIT; s = crc32_update(s, ...)...; crc = s ^ CRC32_XOROUT. */
#define CRC32_INIT 0xFFFFFFFFu
#define CRC32_XOROUT 0xFFFFFFFFu
uint32_t crc32_update(uint32_t state, const uint8_t *data, size_t len);
uint32_t crc32_iso_hdlc(const uint8_t *data, size_t len);

#endif
