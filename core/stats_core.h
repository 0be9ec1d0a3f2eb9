#ifndef PETREL_CORE_STATS_H
#define PETREL_CORE_STATS_H

#include <petrel/stats.h>

void petrel_stats_free(void);

#endif
