/* The learned state (docs/protocol.md, PARAMS_GET/SET): the u32 step counter (the stochastic-rounding
 * PRNG's, and the count of applied TRAIN steps), then the SRAM part of every trainable tensor in the
 * model's order. What the host backs up, what a checkpoint slot holds. */
#ifndef TT_LEARNED_STATE_H
#define TT_LEARNED_STATE_H

#include <stdint.h>

uint32_t learned_state_bytes(void);

/* Bytes [offset, offset + len) of the state, which must lie inside it. */
void learned_state_read(uint32_t offset, uint32_t len, uint8_t *out);
void learned_state_write(uint32_t offset, uint32_t len, const uint8_t *in);

#endif
