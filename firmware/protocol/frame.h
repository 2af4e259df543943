/* Serial protocol v3 constants (docs/protocol.md). */
#ifndef TT_FRAME_H
#define TT_FRAME_H

#define PROTOCOL_VERSION 3u

#define FRAME_SYNC0 0xA5u
#define FRAME_SYNC1 0x5Au
/* sync 0xA5 0x5A, type, seq, len (u32), hcrc (u16 over type..len) */
#define FRAME_HEADER_BYTES 10u
/* pcrc (u32 over type..len and the payload) */
#define FRAME_TRAILER_BYTES 4u

/* Request types; a reply has the request's type | MSG_REPLY. */
#define MSG_INFO 0x01u
#define MSG_ECHO 0x02u
#define MSG_STATS 0x03u
#define MSG_CALIBRATE 0x04u
/* 0x10-0x1F: training engine (MODEL, TRAIN, INFER, PARAMS_GET, PARAMS_SET, PROFILE, CHECKPOINT) */
#define MSG_REPLY 0x80u
/* Board -> host during a streamed request on a board with a receive ring: send on up to here. */
#define MSG_CREDIT 0xFDu
#define MSG_FAULT 0xFEu
#define MSG_ERROR 0xFFu

/* ERROR_REPLY codes */
#define ERR_BAD_CRC 1u
#define ERR_BAD_LENGTH 2u
#define ERR_UNKNOWN_TYPE 3u
#define ERR_TOO_LARGE 4u
#define ERR_BAD_ARGUMENT 5u
#define ERR_BAD_STATE 6u

#endif
