/* Scheduled work for modules: a function run on a worker every so often or
 * at a time of day (a queue runner, a reload check, RPOP polling, backups,
 * reports), so no module keeps a thread of its own. A schedule never runs
 * its function twice at once: a run that comes due while one is still
 * going waits for it. Since ABI minor 6. */
#ifndef PETREL_SCHEDULE_H
#define PETREL_SCHEDULE_H

#include <time.h>

#include <petrel/conn.h> /* petrel_work_fn */

struct petrel_schedule;

/* fn(arg) on a worker every interval_ms milliseconds (at least 10), the
 * first time one interval from now. Any thread, from a module's init on;
 * the server's stop runs a run already queued, then no more. */
struct petrel_schedule *petrel_schedule_every(unsigned interval_ms, petrel_work_fn *fn, void *arg);
/* fn(arg) on a worker each day at hour:minute, local time. */
struct petrel_schedule *petrel_schedule_daily(unsigned hour, unsigned minute, petrel_work_fn *fn,
                                              void *arg);
/* Run soon, whatever the time: new work arrived. Runs asked for while one
 * is going become one more run after it. Any thread, fn included. */
void petrel_schedule_kick(struct petrel_schedule *s);
/* No more runs; waits for one in progress to end. Not from fn, nor from
 * an I/O thread (it would hold the loop while it waits): a module's stop,
 * reload or a worker. */
void petrel_schedule_cancel(struct petrel_schedule *s);

/* The next hour:minute local time after now (for tests and reports). */
time_t petrel_schedule_next_daily(time_t now, unsigned hour, unsigned minute);

#endif
