/* Message type -> handler (+ optional rx claim). One line per message type.
 *
 * The training engine adds its entries here, with its handlers in their own
 * file (e.g. app/engine_messages.c, declared in app/engine_messages.h):
 *     {MSG_TRAIN, handle_train, claim_train},
 * where claim_train routes the sample straight into the arena's input slot. */
#include "app/app.h"
#include "app/core_messages.h"
#include "app/engine_messages.h"

const message_entry_t message_table[] = {
    {MSG_INFO, handle_info, claim_empty},
    {MSG_ECHO, handle_echo, NULL},
    {MSG_STATS, handle_stats, claim_empty},
    {MSG_CALIBRATE, handle_calibrate, claim_calibrate},
    {MSG_MODEL, handle_model, claim_empty},
    {MSG_TRAIN, handle_train, claim_train},
    {MSG_INFER, handle_infer, claim_infer},
    {MSG_PARAMS_GET, handle_params_get, claim_params_get},
    {MSG_PARAMS_SET, handle_params_set, NULL},
    {MSG_PROFILE, handle_profile, claim_profile},
    {MSG_CHECKPOINT, handle_checkpoint, NULL},
};

const unsigned message_table_count = sizeof message_table / sizeof message_table[0];
