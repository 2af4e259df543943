/* The interface between the firmware and the generated model code.
 *
 * The code generator (host/tinytrain/codegen_c.py, run by `pio run` through
 * tools/platformio/scripts/generate_model.py) writes tt_model_gen.c into the
 * build folder: constants in flash, trainable tensors in SRAM, one static arena,
 * and straight-line tt_train_step / tt_infer with constant arena offsets. */
#ifndef TT_MODEL_H
#define TT_MODEL_H

#include <stdint.h>

typedef struct {
    void *data;     /* SRAM part of one trainable tensor */
    uint32_t bytes;
} tt_param_region;

typedef struct {
    const char *name;  /* "conv12 weight_update" */
    uint8_t kind;      /* the step's kind: enum tt_step_kind, which the generated file defines from the
                          host's list (tinytrain.ir.program.StepKind, whose order decodes PROFILE) */
    uint32_t macs;
} tt_op_info;

typedef struct {
    const char *name;
    const char *scheme;
    uint8_t hash[32];          /* SHA-256 of the model file's canonical bytes */
    uint8_t program_hash[32];  /* SHA-256 of the compiled training program (compiler.program_hash) */
    uint8_t state_hash[32];    /* SHA-256 of the learned state's layout (compiler.state_layout_hash) */
    uint16_t classes;
    uint16_t input_h, input_w, input_c;
    uint32_t input_bytes;
    uint8_t input_streamed;      /* 1: the sample is pulled with tt_input_read during the step */
    uint32_t train_input_offset; /* else: arena offset of the sample for TRAIN */
    uint32_t infer_input_offset; /* ... and for INFER */
    uint32_t arena_bytes;
    uint32_t trainable_bytes;
    uint32_t planned_peak_sram_bytes;
    uint16_t n_params;
    const tt_param_region *params;
    uint16_t n_train_ops, n_infer_ops;
    const tt_op_info *train_ops, *infer_ops;
} tt_model_desc;

extern const tt_model_desc tt_model;
extern uint8_t tt_arena[];

/* Learned state besides the parameters: training steps taken (the PRNG's step counter). */
extern uint32_t tt_train_step_count;

/* The logits of the last TRAIN or INFER (tt_model.classes values). */
extern int8_t tt_logits[];

/* Per-op counter units of the last train step / inference (board_counter_read differences). */
extern uint32_t tt_train_op_counts[];
extern uint32_t tt_infer_op_counts[];

/* Where the sample comes from. Unless tt_model.input_streamed, it is already in the arena at the
 * program's input offset. Streamed, the generated streaming stage pulls it while it runs (so it
 * never exists whole): tt_input_read gives the next n bytes of the sample, tt_input_end skips
 * whatever is left of it and checks the frame's CRC. Both return TT_INPUT_OK or why the sample is
 * lost; the step then returns that code at once, having changed nothing that persists (the
 * streaming stage is frozen and runs before any update). The application (app/app.c) implements
 * them on the frame being received. tt_input_counter_total counts what receiving took
 * (board_counter_read units), so that op counts exclude it. */
enum tt_input_status { TT_INPUT_OK = 0, TT_INPUT_BAD_CRC = 1, TT_INPUT_BROKEN_OFF = 2 };
int tt_input_read(int8_t *dst, uint32_t n);
int tt_input_end(void);
extern uint64_t tt_input_counter_total;

/* logits receives tt_model.classes int8 values of the forward pass (before the update).
 * Returns TT_INPUT_OK, or the tt_input_status that stopped the step. */
int tt_train_step(int32_t label, uint32_t lr_scale, int8_t *logits);
int tt_infer(int8_t *logits);

#endif
