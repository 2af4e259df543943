#include "app/stats.h"

static uint64_t last_count;

void stats_set_last_count(uint64_t count) { last_count = count; }

uint64_t stats_last_count(void) { return last_count; }
