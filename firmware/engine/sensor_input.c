/* Raw int16 sensor counts -> int8 model input (sensor_input.h). */
#include "sensor_input.h"

_Static_assert((INT64_C(-1) >> 1) == INT64_C(-1), "arithmetic right shift required");

uint32_t tt_sensor_to_int8(const tt_sensor_input *s, const uint8_t *raw_le, uint32_t n, uint32_t first_channel,
                           int8_t *dst)
{
    uint32_t c = first_channel;
    for (uint32_t i = 0; i < n; ++i) {
        const int32_t raw = (int32_t)(int16_t)(uint16_t)((uint32_t)raw_le[2u * i] | ((uint32_t)raw_le[2u * i + 1u] << 8));
        const uint32_t shift = s->shift[c];
        const int64_t v = (int64_t)(raw - s->center[c]) * s->multiplier[c] + (INT64_C(1) << (shift - 1u));
        int64_t q = (int64_t)s->zero_point + (v >> shift);
        q = q < -128 ? -128 : (q > 127 ? 127 : q);
        dst[i] = (int8_t)q;
        c = c + 1u == s->channels ? 0u : c + 1u;
    }
    return c;
}
