#include "app/learned_state.h"

#include <stdbool.h>
#include <string.h>

#include "engine/tt_model.h"
#include "protocol/wire.h"

uint32_t learned_state_bytes(void)
{
    uint32_t n = 4u;
    for (uint16_t i = 0; i < tt_model.n_params; ++i) {
        n += tt_model.params[i].bytes;
    }
    return n;
}

static void copy(uint32_t offset, uint32_t len, uint8_t *buf, bool set)
{
    uint8_t counter[4];
    for (unsigned i = 0; i < 4u; ++i) {
        counter[i] = (uint8_t)(tt_train_step_count >> (8u * i));
    }
    uint32_t base = 0;
    for (int r = -1; r < (int)tt_model.n_params && len > 0u; ++r) {
        uint8_t *data = r < 0 ? counter : (uint8_t *)tt_model.params[r].data;
        uint32_t size = r < 0 ? 4u : tt_model.params[r].bytes;
        if (offset < base + size) {
            uint32_t from = offset - base;
            uint32_t n = size - from < len ? size - from : len;
            if (set) {
                memcpy(data + from, buf, n);
            } else {
                memcpy(buf, data + from, n);
            }
            buf += n;
            offset += n;
            len -= n;
        }
        base += size;
    }
    if (set) {
        tt_train_step_count = wire_get_u32(counter);
    }
}

void learned_state_read(uint32_t offset, uint32_t len, uint8_t *out) { copy(offset, len, out, false); }

void learned_state_write(uint32_t offset, uint32_t len, const uint8_t *in)
{
    copy(offset, len, (uint8_t *)(uintptr_t)in, true);
}
