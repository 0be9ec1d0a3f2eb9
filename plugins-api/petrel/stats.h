/* Named counters shown by `petrelctl stats` (and, later, reporting). */
#ifndef PETREL_STATS_H
#define PETREL_STATS_H

#include <stdint.h>

struct petrel_counter;

/* Returns the counter of that name, creating it on first use. The pointer is
 * valid for the life of the process: look it up once, then add to it. */
struct petrel_counter *petrel_counter(const char *name);
void petrel_counter_add(struct petrel_counter *c, int64_t delta);
int64_t petrel_counter_value(const struct petrel_counter *c);

#endif
