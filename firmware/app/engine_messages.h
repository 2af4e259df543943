/* Handlers of the training engine's messages (docs/protocol.md). */
#ifndef TT_ENGINE_MESSAGES_H
#define TT_ENGINE_MESSAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "app/app.h"

#define MSG_MODEL 0x10u
#define MSG_TRAIN 0x11u
#define MSG_INFER 0x12u
#define MSG_PARAMS_GET 0x13u
#define MSG_PARAMS_SET 0x14u
#define MSG_PROFILE 0x15u
#define MSG_CHECKPOINT 0x16u

/* Resets the handlers' state and restores the newest checkpoint of this build (at start). */
void engine_messages_init(void);

void handle_model(const request_t *req);
void handle_train(const request_t *req);
void handle_infer(const request_t *req);
void handle_params_get(const request_t *req);
void handle_params_set(const request_t *req);
void handle_profile(const request_t *req);
void handle_checkpoint(const request_t *req);
bool claim_train(uint32_t len, rx_claim_t *claim);
bool claim_infer(uint32_t len, rx_claim_t *claim);
bool claim_params_get(uint32_t len, rx_claim_t *claim);
bool claim_profile(uint32_t len, rx_claim_t *claim);

#endif
