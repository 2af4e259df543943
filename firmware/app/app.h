/* The application: serial protocol main loop and the message handler API.
 *
 * Adding a message type = a handler (and, if its payload should not land in the
 * receive buffer, an rx claim) plus one line in app/message_table.c. */
#ifndef TT_APP_H
#define TT_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/frame.h"
#include "protocol/frame_rx.h"

/* Largest payload the board accepts (INFO max_payload). Frames beyond it get
 * TOO_LARGE before any payload byte is stored. Raise it with build_flags
 * (-D TT_MAX_PAYLOAD=...) when claimed payloads (samples) need it. */
#ifndef TT_MAX_PAYLOAD
#define TT_MAX_PAYLOAD 4096u
#endif

/* Size of the receive buffer, where payloads go unless a claim routes them
 * elsewhere (ECHO uses it). May stay below TT_MAX_PAYLOAD. */
#ifndef TT_RX_BUFFER_BYTES
#define TT_RX_BUFFER_BYTES TT_MAX_PAYLOAD
#endif

/* A frame that stops arriving midway for this long is dropped. */
#ifndef TT_RX_IDLE_RESET_MS
#define TT_RX_IDLE_RESET_MS 1000u
#endif

#define TT_FIRMWARE_VERSION "0.1.0"

_Static_assert(TT_MAX_PAYLOAD >= 4096u, "the protocol requires a maximum payload of at least 4096 bytes");

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint32_t len;
    /* Start of the payload: the receive buffer, or the first region of the
     * handler's claim (NULL when len == 0). */
    const uint8_t *payload;
} request_t;

/* Where a payload goes, decided from its announced length before any payload
 * byte arrives: up to two regions, filled in order, adding up to len (e.g. a
 * small prefix buffer, then the input slot of the arena). */
typedef struct {
    frame_region_t regions[FRAME_RX_MAX_REGIONS];
    unsigned count;
    uint32_t expected_len; /* when refusing: the BAD_LENGTH detail */
} rx_claim_t;

/* Returns true with claim->regions set to take the payload, or false (with
 * claim->expected_len) to have it discarded and answered with BAD_LENGTH. */
typedef bool (*rx_claim_fn)(uint32_t len, rx_claim_t *claim);

/* Runs once the whole frame arrived with a good CRC; sends exactly one reply. A claim whose last
 * region is streamed (dst NULL) has its handler run as soon as the regions before it are full;
 * the handler pulls the rest with tt_input_read / tt_input_end (engine/tt_model.h) and must not
 * trust anything it read before tt_input_end returned TT_INPUT_OK. */
typedef void (*message_handler_fn)(const request_t *req);

typedef struct {
    uint8_t type;
    message_handler_fn handle;
    rx_claim_fn claim; /* NULL: into the receive buffer, BAD_LENGTH beyond TT_RX_BUFFER_BYTES */
} message_entry_t;

extern const message_entry_t message_table[];
extern const unsigned message_table_count;

/* Ready-made claims. */
bool claim_empty(uint32_t len, rx_claim_t *claim);     /* only len == 0 */
bool claim_rx_buffer(uint32_t len, rx_claim_t *claim); /* what a NULL claim does */
/* Into the receive buffer if the payload has exactly `expected` bytes, else BAD_LENGTH. */
bool claim_exactly(uint32_t len, uint32_t expected, rx_claim_t *claim);

/* Replies (type = request type | MSG_REPLY, the request's seq). */
void reply(const request_t *req, const void *payload, uint32_t len);
/* Streamed reply of len bytes: reply_begin, reply_data as often as needed, reply_end. */
void reply_begin(const request_t *req, uint32_t len);
void reply_data(const void *data, uint32_t len);
void reply_end(void);
/* ERROR_REPLY; a request answered with an error must have changed nothing. */
void reply_error(const request_t *req, uint8_t code, uint32_t detail, const char *message);
/* No reply: a streamed request whose frame broke off (dropped silently, like any cut frame). */
void reply_nothing(void);

void app_init(void);
/* Handles every byte waiting on the serial line; call it forever. */
void app_poll(void);

#endif
