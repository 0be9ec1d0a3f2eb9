/* Named counters: created once under a lock, then updated lock-free. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/stats.h>

#include "stats_core.h"

struct petrel_counter {
    struct petrel_counter *next;
    atomic_llong value;
    char name[];
};

static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static struct petrel_counter *counters;

struct petrel_counter *petrel_counter(const char *name)
{
    pthread_mutex_lock(&stats_lock);
    struct petrel_counter **p = &counters;
    /* Keep the list sorted so `petrelctl stats` prints in name order. */
    while (*p != NULL && strcmp((*p)->name, name) < 0)
        p = &(*p)->next;
    if (*p == NULL || strcmp((*p)->name, name) != 0) {
        size_t len = strlen(name);
        struct petrel_counter *c = petrel_malloc(sizeof(*c) + len + 1);
        memcpy(c->name, name, len + 1);
        atomic_init(&c->value, 0);
        c->next = *p;
        *p = c;
    }
    struct petrel_counter *c = *p;
    pthread_mutex_unlock(&stats_lock);
    return c;
}

void petrel_counter_add(struct petrel_counter *c, int64_t delta)
{
    atomic_fetch_add_explicit(&c->value, delta, memory_order_relaxed);
}

int64_t petrel_counter_value(const struct petrel_counter *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

void petrel_stats_foreach(void (*fn)(const char *name, int64_t value, void *ctx), void *ctx)
{
    pthread_mutex_lock(&stats_lock);
    for (struct petrel_counter *c = counters; c != NULL; c = c->next)
        fn(c->name, petrel_counter_value(c), ctx);
    pthread_mutex_unlock(&stats_lock);
}

void petrel_stats_free(void)
{
    pthread_mutex_lock(&stats_lock);
    while (counters != NULL) {
        struct petrel_counter *c = counters;
        counters = c->next;
        free(c);
    }
    pthread_mutex_unlock(&stats_lock);
}
