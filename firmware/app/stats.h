/* Measurements the board reports in STATS_REPLY. */
#ifndef TT_STATS_H
#define TT_STATS_H

#include <stdint.h>

/* Records the counter units (see board_info()->counter_kind) spent by the last
 * timed operation, e.g. a training step:
 *     uint64_t t0 = board_counter_read();
 *     train_step(...);
 *     stats_set_last_count(board_counter_read() - t0); */
void stats_set_last_count(uint64_t count);
uint64_t stats_last_count(void);

#endif
