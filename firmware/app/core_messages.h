/* Handlers of the messages every build answers (docs/protocol.md). */
#ifndef TT_CORE_MESSAGES_H
#define TT_CORE_MESSAGES_H

#include <stdbool.h>
#include <stdint.h>

#include "app/app.h"

void handle_info(const request_t *req);
void handle_echo(const request_t *req);
void handle_stats(const request_t *req);
void handle_calibrate(const request_t *req);
bool claim_calibrate(uint32_t len, rx_claim_t *claim);

#endif
