/* The engine as a host shared library, for fine-tuning runs (tinytrain.board.host_runs): the code
 * generated for one program, the kernels of firmware/engine and this file, built with gcc into a
 * .so that Python loads with ctypes. No serial line and no application: the samples are rows of
 * one contiguous int8 array [N][input_bytes] (the model inputs), and one call runs many training
 * steps or inferences, so a run costs one call per phase instead of one per sample.
 *
 * As a board it is the least one can be: the counter reads 0 (the op counts are not wanted), and a
 * streamed sample (tt_model.input_streamed) is read from the same row in memory. PlatformIO never
 * compiles it (it is no board of platformio.ini). */
#include <stdint.h>
#include <string.h>

#include "boards/board.h"
#include "engine/tt_model.h"

uint64_t tt_input_counter_total;

uint64_t board_counter_read(void) { return 0u; }

/* The sample a streamed program pulls from, and how much of it it has pulled. */
static const int8_t *stream_sample;
static uint32_t stream_pos;

int tt_input_read(int8_t *dst, uint32_t n)
{
    if (stream_sample == NULL || stream_pos + n > tt_model.input_bytes) {
        return TT_INPUT_BROKEN_OFF;
    }
    memcpy(dst, stream_sample + stream_pos, n);
    stream_pos += n;
    return TT_INPUT_OK;
}

int tt_input_end(void)
{
    stream_sample = NULL;
    return TT_INPUT_OK;
}

static void put_sample(const int8_t *sample, uint32_t offset)
{
    if (tt_model.input_streamed) {
        stream_sample = sample;
        stream_pos = 0u;
    } else {
        memcpy(tt_arena + offset, sample, tt_model.input_bytes);
    }
}

uint32_t ttr_input_bytes(void) { return tt_model.input_bytes; }

uint32_t ttr_classes(void) { return tt_model.classes; }

uint32_t ttr_step_count(void) { return tt_train_step_count; }

/* n training steps: step i trains on samples[rows[i]] with labels[i] and lr_scales[i]; its logits
 * (of the forward pass, before the update) go to logits[i][classes]. Returns 0, or the status that
 * stopped a step (nothing after it ran). */
int ttr_train(const int8_t *samples, const int32_t *rows, const int32_t *labels, const uint32_t *lr_scales,
              int32_t n, int8_t *logits)
{
    for (int32_t i = 0; i < n; ++i) {
        put_sample(samples + (size_t)rows[i] * tt_model.input_bytes, tt_model.train_input_offset);
        int status = tt_train_step(labels[i], lr_scales[i], logits + (size_t)i * tt_model.classes);
        if (status != TT_INPUT_OK) {
            return status;
        }
    }
    return 0;
}

/* n inferences of samples[rows[i]] into logits[i][classes]. */
int ttr_infer(const int8_t *samples, const int32_t *rows, int32_t n, int8_t *logits)
{
    for (int32_t i = 0; i < n; ++i) {
        put_sample(samples + (size_t)rows[i] * tt_model.input_bytes, tt_model.infer_input_offset);
        int status = tt_infer(logits + (size_t)i * tt_model.classes);
        if (status != TT_INPUT_OK) {
            return status;
        }
    }
    return 0;
}

/* The learned state, as PARAMS_GET sends it: the u32 step counter (little-endian), then the SRAM
 * part of every trainable tensor in order. Returns its size; writes it when out is not NULL. */
uint32_t ttr_state(uint8_t *out)
{
    uint32_t size = 4u;
    if (out != NULL) {
        for (unsigned i = 0; i < 4u; ++i) {
            out[i] = (uint8_t)(tt_train_step_count >> (8u * i));
        }
    }
    for (uint16_t r = 0; r < tt_model.n_params; ++r) {
        if (out != NULL) {
            memcpy(out + size, tt_model.params[r].data, tt_model.params[r].bytes);
        }
        size += tt_model.params[r].bytes;
    }
    return size;
}
