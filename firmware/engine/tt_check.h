/* Checked builds (-DTT_CHECKED, host only): every generated step may change only
 * the arena bytes of the buffers it writes, as planned. A kernel that writes
 * outside its outputs (into another live buffer) aborts with the step number. */
#ifndef TT_CHECK_H
#define TT_CHECK_H

#include <stdint.h>

typedef struct {
    uint32_t offset, bytes;
} tt_check_range;

typedef struct {
    uint32_t first, count; /* rows of the write-range table */
} tt_check_step;

#ifdef TT_CHECKED
void tt_check_begin(void);
void tt_check_end(const tt_check_range *writes, const tt_check_step *steps, uint32_t step, const char *program);
#define TT_CHECK_BEGIN(i) tt_check_begin()
#define TT_CHECK_END(which, i) tt_check_end(which##_writes, which##_steps, (i), #which)
#else
#define TT_CHECK_BEGIN(i) ((void)0)
#define TT_CHECK_END(which, i) ((void)0)
#endif

#endif
