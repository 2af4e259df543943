/* Host test driver for firmware/protocol, compiled with ASan and UBSan by
 * host/tests/test_framing_c.py, which feeds it the same vectors as the Python
 * reference (tinytrain.framing) and compares the answers.
 *
 * stdin carries records: u32 little-endian length, then that many bytes.
 *   frame_rx_driver rx MAX_PAYLOAD  each record is a byte stream for a fresh
 *                                   receiver; prints one line per event, then END
 *   frame_rx_driver crc             prints "crc16 crc32" of each record
 *   frame_rx_driver tx              record = type, seq, payload; prints the frame in hex */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/crc.h"
#include "protocol/frame_rx.h"
#include "protocol/frame_tx.h"

/* Frames of this type are not routed: their payload goes to the discard sink. */
#define TYPE_DISCARDED 0x7Fu
/* Payloads are split over two regions after this many bytes (the prefix + body claim). */
#define PREFIX_BYTES 5u
/* Frames of this type have a streamed body: the driver pulls it STREAM_CHUNK bytes at a time once
 * the prefix is in (a streamed TRAIN/INFER sample); for a short payload the stream is all of it. */
#define TYPE_STREAMED 0x7Eu
#define STREAM_CHUNK 7u

static uint8_t *read_record(uint32_t *len)
{
    uint8_t h[4];
    if (fread(h, 1, 4, stdin) != 4) {
        return NULL;
    }
    *len = (uint32_t)h[0] | ((uint32_t)h[1] << 8) | ((uint32_t)h[2] << 16) | ((uint32_t)h[3] << 24);
    uint8_t *data = malloc(*len ? *len : 1u);
    if (data == NULL || fread(data, 1, *len, stdin) != *len) {
        fprintf(stderr, "frame_rx_driver: truncated record\n");
        exit(2);
    }
    return data;
}

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        printf("%02x", p[i]);
    }
}

static void run_rx(uint32_t max_payload)
{
    uint8_t *prefix = malloc(PREFIX_BYTES);
    uint8_t *body = malloc(max_payload ? max_payload : 1u);
    uint32_t len;
    uint8_t *stream;
    while ((stream = read_record(&len)) != NULL) {
        frame_rx_t rx;
        memset(&rx, 0, sizeof rx);
        frame_rx_init(&rx, max_payload);
        uint32_t pulled = 0;  /* streamed body bytes asked for so far */
        bool pulling = false; /* between the stream's start and the frame's end */
        for (uint32_t i = 0; i < len; ++i) {
            const frame_header_t *h = &rx.header;
            uint32_t first = h->len < PREFIX_BYTES ? h->len : PREFIX_BYTES;
            if (h->type == TYPE_STREAMED && h->len <= PREFIX_BYTES) {
                first = 0;
            }
            if (pulling && frame_rx_stream_want(&rx) == 0 && pulled < h->len - first) {
                uint32_t n = h->len - first - pulled < STREAM_CHUNK ? h->len - first - pulled : STREAM_CHUNK;
                frame_rx_stream_to(&rx, body + pulled, n);
                pulled += n;
            }
            frame_rx_event_t event = frame_rx_push(&rx, stream[i]);
            switch (event) {
            case FRAME_RX_HEADER:
                pulling = false;
                pulled = 0;
                if (h->type != TYPE_DISCARDED) {
                    first = h->len < PREFIX_BYTES ? h->len : PREFIX_BYTES;
                    uint8_t *dst = body;
                    if (h->type == TYPE_STREAMED) {
                        first = h->len <= PREFIX_BYTES ? 0 : PREFIX_BYTES;
                        dst = NULL;
                    }
                    frame_region_t regions[2] = {{prefix, first}, {dst, h->len - first}};
                    if (!frame_rx_route(&rx, regions, 2)) {
                        printf("ROUTE_FAILED\n");
                    }
                    pulling = h->type == TYPE_STREAMED && frame_rx_at_stream(&rx);
                }
                break;
            case FRAME_RX_STREAM:
                if (h->type != TYPE_STREAMED || pulling) {
                    printf("UNEXPECTED_STREAM\n");
                }
                pulling = true;
                break;
            case FRAME_RX_FRAME:
                printf("FRAME %u %u %u ", h->type, h->seq, (unsigned)h->len);
                if (h->type == TYPE_DISCARDED) {
                    printf("-");
                } else {
                    print_hex(prefix, first);
                    print_hex(body, h->len - first);
                }
                printf("\n");
                break;
            case FRAME_RX_BAD_CRC:
                printf("BAD_CRC %u %u %u\n", h->type, h->seq, (unsigned)h->len);
                break;
            case FRAME_RX_TOO_LARGE:
                printf("TOO_LARGE %u %u %u\n", h->type, h->seq, (unsigned)h->len);
                break;
            case FRAME_RX_NONE:
                break;
            }
        }
        printf("END\n");
        fflush(stdout);
        free(stream);
    }
    free(prefix);
    free(body);
}

static uint8_t *tx_out;
static size_t tx_len;

static void tx_sink(const void *data, size_t len)
{
    memcpy(tx_out + tx_len, data, len);
    tx_len += len;
}

int main(int argc, char **argv)
{
    uint32_t len;
    uint8_t *data;
    if (argc == 3 && strcmp(argv[1], "rx") == 0) {
        run_rx((uint32_t)strtoul(argv[2], NULL, 10));
    } else if (argc == 2 && strcmp(argv[1], "crc") == 0) {
        while ((data = read_record(&len)) != NULL) {
            printf("%04x %08x\n", crc16_ccitt_false(data, len), (unsigned)crc32_iso_hdlc(data, len));
            fflush(stdout);
            free(data);
        }
    } else if (argc == 2 && strcmp(argv[1], "tx") == 0) {
        while ((data = read_record(&len)) != NULL) {
            if (len < 2) {
                fprintf(stderr, "frame_rx_driver: a tx record needs type and seq\n");
                return 2;
            }
            tx_out = malloc(len + 16u);
            tx_len = 0;
            frame_tx_send(tx_sink, data[0], data[1], data + 2, len - 2u);
            print_hex(tx_out, tx_len);
            printf("\n");
            fflush(stdout);
            free(tx_out);
            free(data);
        }
    } else {
        fprintf(stderr, "usage: frame_rx_driver rx MAX_PAYLOAD | crc | tx  < records\n");
        return 2;
    }
    return 0;
}
