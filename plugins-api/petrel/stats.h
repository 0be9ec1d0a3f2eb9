/* Named counters shown by `petrelctl stats` (and, later, reporting). */
#ifndef PETREL_STATS_H
#define PETREL_STATS_H

#include <stdint.h>

struct petrel_counter;

/* Returns the counter of that name, creating it on first use. The pointer is
 * valid for the life of the process: look it up once (in init), then add
 * to it. All three calls are thread-safe (the lookup takes a lock). */
struct petrel_counter *petrel_counter(const char *name);
void petrel_counter_add(struct petrel_counter *c, int64_t delta);
int64_t petrel_counter_value(const struct petrel_counter *c);
/* Every counter once, with its value (the reporting
 * module exports them all). Any thread; fn must not create counters.
 * Since ABI minor 6. */
void petrel_stats_foreach(void (*fn)(const char *name, int64_t value, void *ctx), void *ctx);

#endif
