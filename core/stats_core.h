#ifndef PETREL_CORE_STATS_H
#define PETREL_CORE_STATS_H

#include <stdint.h>

void petrel_stats_foreach(void (*fn)(const char *name, int64_t value, void *ctx), void *ctx);
void petrel_stats_free(void);

#endif
