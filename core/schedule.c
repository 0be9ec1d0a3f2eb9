/* Scheduled work (petrel/schedule.h): a loop timer decides when, a worker
 * runs the function. One mutex per schedule guards its state; a run and
 * its successor never overlap. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <petrel/log.h>
#include <petrel/loop.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/schedule.h>

#include "iothread.h"
#include "server.h"

#define MIN_INTERVAL_MS 10

struct petrel_schedule {
    pthread_mutex_t lock;
    pthread_cond_t idle; /* signalled when a run ends */
    struct petrel_timer *timer;
    struct petrel_loop *loop;
    petrel_work_fn *fn;
    void *arg;
    bool daily;
    unsigned hour, minute;
    bool running; /* fn is on a worker, or queued for one */
    bool again;   /* run once more when this run ends */
    bool cancelled;
};

time_t petrel_schedule_next_daily(time_t now, unsigned hour, unsigned minute)
{
    struct tm tm;
    localtime_r(&now, &tm);
    tm.tm_hour = (int)hour;
    tm.tm_min = (int)minute;
    tm.tm_sec = 0;
    tm.tm_isdst = -1; /* let mktime decide across a DST change */
    time_t t = mktime(&tm);
    if (t <= now) {
        tm.tm_mday++;
        tm.tm_hour = (int)hour;
        tm.tm_min = (int)minute;
        tm.tm_sec = 0;
        tm.tm_isdst = -1;
        t = mktime(&tm);
    }
    return t;
}

static void work(void *arg);

/* Under s->lock: hand a run to the pool, unless one is going. False if
 * the pool took nothing (its queue full, or not running yet or any more). */
static bool submit_locked(struct petrel_schedule *s)
{
    if (s->cancelled)
        return true;
    if (s->running) {
        s->again = true;
        return true;
    }
    s->running = true;
    if (!petrel_worker_submit(work, s)) {
        s->running = false;
        return false;
    }
    return true;
}

static void work(void *arg)
{
    struct petrel_schedule *s = arg;
    s->fn(s->arg);
    pthread_mutex_lock(&s->lock);
    s->running = false;
    if (s->again) {
        s->again = false;
        submit_locked(s);
    }
    pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
}

/* From a minute ahead: a timer that fires a little before the minute by
 * the wall clock must not find the same minute again. */
static unsigned ms_to_daily(const struct petrel_schedule *s)
{
    time_t now = time(NULL);
    long long d = (long long)(petrel_schedule_next_daily(now + 60, s->hour, s->minute) - now);
    return d > 25LL * 3600 ? 25U * 3600 * 1000 : (unsigned)(d * 1000);
}

#define RETRY_MS 60000 /* a daily run the pool could not take: try again */

static void due(void *ctx)
{
    struct petrel_schedule *s = ctx;
    pthread_mutex_lock(&s->lock);
    bool taken = submit_locked(s);
    pthread_mutex_unlock(&s->lock);
    if (!taken)
        petrel_log(PETREL_LOG_WARNING, "core", "scheduled work postponed: no worker took it");
    if (s->daily) /* one-shot: the next day is worked out again (DST) */
        petrel_timer_reset(s->timer, taken ? ms_to_daily(s) : RETRY_MS);
}

/* The handle is complete before its timer is armed. */
static struct petrel_schedule *make(struct petrel_schedule *s, unsigned ms, bool repeat,
                                    petrel_work_fn *fn, void *arg)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    s->fn = fn;
    s->arg = arg;
    s->loop = petrel_loop_get(0);
    s->timer = petrel_timer_add(s->loop, ms, repeat, due, s);
    return s;
}

struct petrel_schedule *petrel_schedule_every(unsigned interval_ms, petrel_work_fn *fn, void *arg)
{
    struct petrel_schedule *s = petrel_calloc(1, sizeof(*s));
    return make(s, interval_ms < MIN_INTERVAL_MS ? MIN_INTERVAL_MS : interval_ms, true, fn, arg);
}

struct petrel_schedule *petrel_schedule_daily(unsigned hour, unsigned minute, petrel_work_fn *fn,
                                              void *arg)
{
    struct petrel_schedule *s = petrel_calloc(1, sizeof(*s));
    s->daily = true;
    s->hour = hour % 24;
    s->minute = minute % 60;
    return make(s, ms_to_daily(s), false, fn, arg);
}

void petrel_schedule_kick(struct petrel_schedule *s)
{
    pthread_mutex_lock(&s->lock);
    if (!submit_locked(s))
        s->again = true; /* not lost: the next due time runs it */
    pthread_mutex_unlock(&s->lock);
}

static void free_schedule(void *arg)
{
    struct petrel_schedule *s = arg;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}

void petrel_schedule_cancel(struct petrel_schedule *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->cancelled = true;
    s->again = false;
    while (s->running)
        pthread_cond_wait(&s->idle, &s->lock);
    pthread_mutex_unlock(&s->lock);
    petrel_timer_remove(s->timer);
    /* A callback already due on the loop still sees s (and that it is
     * cancelled): free it there, after the removal posted before. */
    if (s->loop != NULL && atomic_load(&s->loop->running) && petrel_loop_current() != s->loop)
        petrel_loop_post(s->loop, free_schedule, s);
    else
        free_schedule(s);
}
