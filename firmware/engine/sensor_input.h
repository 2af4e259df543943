/* Raw int16 sensor counts -> a model's int8 input, per channel (docs/protocol.md, "Sensor samples").
 * The C twin of host/tinytrain/numerics/sensor_input.py:
 *
 *   q = clamp(zero_point + ((raw - center[c]) * multiplier[c] + 2^(shift[c]-1)) >> shift[c], -128, 127)
 *
 * with 64-bit products and an arithmetic (flooring) shift. The generated model code defines
 * tt_sensor from the model's metadata sensor_to_input; channels == 0 means the model takes int8
 * samples as they are (images). */
#ifndef TT_SENSOR_INPUT_H
#define TT_SENSOR_INPUT_H

#include <stdint.h>

#define TT_SENSOR_MAX_CHANNELS 16u

typedef struct {
    uint16_t channels; /* 0: no sensor scaling, samples are int8 */
    int32_t zero_point;
    int32_t center[TT_SENSOR_MAX_CHANNELS];
    int32_t multiplier[TT_SENSOR_MAX_CHANNELS];
    uint8_t shift[TT_SENSOR_MAX_CHANNELS];
} tt_sensor_input;

extern const tt_sensor_input tt_sensor;

/* Scales n counts given as 2n little-endian bytes into n int8 values; the first count belongs to
 * channel first_channel (counts cycle through the channels, HWC). Returns the channel of the next
 * count. */
uint32_t tt_sensor_to_int8(const tt_sensor_input *s, const uint8_t *raw_le, uint32_t n, uint32_t first_channel,
                           int8_t *dst);

#endif
