/* Arena write checks of the host's checked build (see tt_check.h). */
#include "tt_check.h"

#ifdef TT_CHECKED
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tt_model.h"

static uint8_t *snapshot;

void tt_check_begin(void)
{
    if (snapshot == NULL) {
        snapshot = malloc(tt_model.arena_bytes); /* host-only build: the board never links this */
        if (snapshot == NULL) {
            abort();
        }
    }
    memcpy(snapshot, tt_arena, tt_model.arena_bytes);
}

void tt_check_end(const tt_check_range *writes, const tt_check_step *steps, uint32_t step, const char *program)
{
    const tt_check_step *s = &steps[step];
    for (uint32_t i = 0; i < tt_model.arena_bytes; i++) {
        if (tt_arena[i] == snapshot[i]) {
            continue;
        }
        int allowed = 0;
        for (uint32_t r = s->first; r < s->first + s->count; r++) {
            if (i >= writes[r].offset && i < writes[r].offset + writes[r].bytes) {
                allowed = 1;
                break;
            }
        }
        if (!allowed) {
            fprintf(stderr, "tt_check: %s step %u (%s) wrote arena byte %u outside its outputs\n", program,
                    (unsigned)step, (program[0] == 't' ? tt_model.train_ops : tt_model.infer_ops)[step].name,
                    (unsigned)i);
            abort();
        }
    }
}
#endif
