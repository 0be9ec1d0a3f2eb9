/* Scheduled work (petrel/schedule.h) on real loops and workers: periodic
 * runs, never two at once, kicks that coalesce, a cancel that waits for
 * the run in progress, and the next time of day. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/schedule.h>

#include "iothread.h"
#include "server.h"
#include "worker.h"

struct probe {
    atomic_int runs, inside, most_inside;
    unsigned sleep_ms;
    atomic_bool finished;
};

static void run(void *arg)
{
    struct probe *p = arg;
    int now = atomic_fetch_add(&p->inside, 1) + 1;
    int most = atomic_load(&p->most_inside);
    while (now > most && !atomic_compare_exchange_weak(&p->most_inside, &most, now))
        ;
    if (p->sleep_ms)
        usleep(p->sleep_ms * 1000);
    atomic_fetch_sub(&p->inside, 1);
    atomic_fetch_add(&p->runs, 1);
    atomic_store(&p->finished, true);
}

/* Wait until p->runs reaches n, at most 5 s. */
static bool wait_runs(struct probe *p, int n)
{
    for (int i = 0; i < 500 && atomic_load(&p->runs) < n; i++)
        usleep(10000);
    return atomic_load(&p->runs) >= n;
}

static int setup(void **state)
{
    (void)state;
    const char *error;
    if (petrel_iothreads_create(2, &error) < 0 || petrel_workers_start(4, 64, &error) < 0 ||
        petrel_iothreads_start(&error) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    petrel_iothreads_stop(1);
    petrel_workers_stop();
    petrel_iothreads_free();
    return 0;
}

static void test_every(void **state)
{
    (void)state;
    struct probe p = {0};
    struct petrel_schedule *s = petrel_schedule_every(30, run, &p);
    assert_true(wait_runs(&p, 3));
    petrel_schedule_cancel(s);
    int after = atomic_load(&p.runs);
    usleep(200 * 1000);
    assert_int_equal(atomic_load(&p.runs), after); /* none after the cancel */
}

static void test_never_two_at_once(void **state)
{
    (void)state;
    struct probe p = {.sleep_ms = 100};
    struct petrel_schedule *s = petrel_schedule_every(10, run, &p);
    for (int i = 0; i < 5; i++)
        petrel_schedule_kick(s); /* kicks while running pile up as one */
    assert_true(wait_runs(&p, 3));
    petrel_schedule_cancel(s);
    assert_int_equal(atomic_load(&p.most_inside), 1);
}

static void test_kick_runs_now_and_coalesces(void **state)
{
    (void)state;
    struct probe p = {.sleep_ms = 150};
    struct petrel_schedule *s = petrel_schedule_every(60000, run, &p);
    petrel_schedule_kick(s);
    usleep(50 * 1000); /* the first run is going */
    petrel_schedule_kick(s);
    petrel_schedule_kick(s);
    petrel_schedule_kick(s);
    assert_true(wait_runs(&p, 2));
    usleep(400 * 1000);
    assert_int_equal(atomic_load(&p.runs), 2); /* three kicks while busy: one more run */
    petrel_schedule_cancel(s);
}

static void test_cancel_waits_for_the_run(void **state)
{
    (void)state;
    struct probe p = {.sleep_ms = 300};
    struct petrel_schedule *s = petrel_schedule_every(60000, run, &p);
    petrel_schedule_kick(s);
    for (int i = 0; i < 500 && atomic_load(&p.inside) == 0; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&p.inside), 1);
    petrel_schedule_cancel(s);
    assert_true(atomic_load(&p.finished));
    assert_int_equal(atomic_load(&p.inside), 0);
}

static void test_next_daily(void **state)
{
    (void)state;
    setenv("TZ", "UTC", 1);
    tzset();
    time_t noon = 1796299200; /* 2026-12-03 12:00:00 UTC */
    assert_int_equal(petrel_schedule_next_daily(noon, 13, 30), noon + 5400);
    assert_int_equal(petrel_schedule_next_daily(noon, 3, 0), noon + 15 * 3600);
    assert_int_equal(petrel_schedule_next_daily(noon, 12, 0), noon + 24 * 3600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every),
        cmocka_unit_test(test_never_two_at_once),
        cmocka_unit_test(test_kick_runs_now_and_coalesces),
        cmocka_unit_test(test_cancel_waits_for_the_run),
        cmocka_unit_test(test_next_daily),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
