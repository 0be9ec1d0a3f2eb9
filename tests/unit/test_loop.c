/* The loops as modules use them (petrel/loop.h): timers one-shot and
 * periodic, removed before firing, from their callback and from another
 * thread; posts; watched descriptors. Two real I/O threads run; the test
 * thread waits on what their callbacks record, each wait bounded. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <petrel/loop.h>

#include "iothread.h"
#include "server.h"

#define WAIT_MS 5000 /* longest wait for anything a loop should do soon */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;

struct probe {
    int fired;
    struct petrel_loop *loop; /* the loop each callback ran on */
    int64_t first_ms;         /* monotonic time of the first call */
    struct petrel_timer *timer;
    int remove_at; /* remove the timer from its callback on this call */
    char got[64];  /* bytes read by the descriptor callback */
    size_t len;
    struct petrel_io *io;
    int fd;
    unsigned events;
};

static void record(struct probe *p)
{
    pthread_mutex_lock(&lock);
    if (p->fired++ == 0)
        p->first_ms = petrel_monotonic_ms();
    p->loop = petrel_loop_current();
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
}

/* Wait until p->fired reaches n (false after WAIT_MS). */
static bool wait_fired(struct probe *p, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&lock);
    int r = 0;
    while (p->fired < n && r == 0)
        r = pthread_cond_timedwait(&cond, &lock, &until);
    bool ok = p->fired >= n;
    pthread_mutex_unlock(&lock);
    return ok;
}

static int fired(struct probe *p)
{
    pthread_mutex_lock(&lock);
    int n = p->fired;
    pthread_mutex_unlock(&lock);
    return n;
}

/* Runs fn(arg) on loop and waits for it to return: setting things up
 * where the loop-thread-only calls are allowed. (cmocka's asserts stay on
 * the test thread.) */
struct on_loop {
    void (*fn)(void *);
    void *arg;
    struct probe done;
};

static void on_loop_task(void *arg)
{
    struct on_loop *o = arg;
    o->fn(o->arg);
    record(&o->done);
}

static void run_on(struct petrel_loop *loop, void (*fn)(void *), void *arg)
{
    struct on_loop o = {.fn = fn, .arg = arg};
    petrel_loop_post(loop, on_loop_task, &o);
    assert_true(wait_fired(&o.done, 1));
}

/* record() comes last: once it signals, the test may return and its
 * probe, on the test's stack, be gone. */
static void tick(void *ctx)
{
    struct probe *p = ctx;
    pthread_mutex_lock(&lock);
    bool last = p->remove_at != 0 && p->fired + 1 == p->remove_at;
    pthread_mutex_unlock(&lock);
    if (last)
        petrel_timer_remove(p->timer);
    record(p);
}

static int setup(void **state)
{
    (void)state;
    const char *error;
    if (petrel_iothreads_create(2, &error) < 0 || petrel_iothreads_start(&error) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    petrel_iothreads_stop(1);
    petrel_iothreads_free();
    return 0;
}

static void test_one_shot(void **state)
{
    (void)state;
    struct probe p = {0};
    int64_t t0 = petrel_monotonic_ms();
    p.timer = petrel_timer_add(petrel_loop_get(1), 50, false, tick, &p);
    assert_true(wait_fired(&p, 1));
    assert_true(p.first_ms - t0 >= 50);
    assert_ptr_equal(p.loop, petrel_loop_get(1));
    usleep(200 * 1000);
    assert_int_equal(fired(&p), 1); /* once only */
    petrel_timer_remove(p.timer);   /* the handle stayed the caller's */
}

static void test_periodic_removed_from_its_callback(void **state)
{
    (void)state;
    struct probe p = {.remove_at = 3};
    p.timer = petrel_timer_add(NULL, 20, true, tick, &p);
    assert_true(wait_fired(&p, 3));
    assert_non_null(p.loop); /* ran on a loop, though added off them */
    usleep(200 * 1000);
    assert_int_equal(fired(&p), 3);
}

static void test_removed_before_firing(void **state)
{
    (void)state;
    struct probe p = {0}, q = {0};
    struct petrel_timer *t = petrel_timer_add(petrel_loop_get(0), 100, false, tick, &p);
    petrel_timer_remove(t); /* from another thread: posted after the add */
    /* A later timer on the same loop shows the loop went past the time. */
    q.timer = petrel_timer_add(petrel_loop_get(0), 300, false, tick, &q);
    assert_true(wait_fired(&q, 1));
    assert_int_equal(fired(&p), 0);
    petrel_timer_remove(q.timer);
}

static struct probe reset_probe;

static void reset_it(void *arg)
{
    (void)arg;
    petrel_timer_reset(reset_probe.timer, 30);
}

static void test_reset_restarts_a_fired_one_shot(void **state)
{
    (void)state;
    memset(&reset_probe, 0, sizeof(reset_probe));
    reset_probe.timer = petrel_timer_add(petrel_loop_get(0), 10, false, tick, &reset_probe);
    assert_true(wait_fired(&reset_probe, 1));
    run_on(petrel_loop_get(0), reset_it, NULL);
    assert_true(wait_fired(&reset_probe, 2));
    petrel_timer_remove(reset_probe.timer);
}

struct order {
    int seen[8];
    int n;
    struct probe done;
};

static struct order order;

static void note(void *arg)
{
    pthread_mutex_lock(&lock);
    order.seen[order.n++] = (int)(intptr_t)arg;
    pthread_mutex_unlock(&lock);
    if ((intptr_t)arg == 7)
        record(&order.done);
}

static void test_posts_run_in_order_on_their_loop(void **state)
{
    (void)state;
    memset(&order, 0, sizeof(order));
    for (intptr_t i = 0; i < 8; i++)
        petrel_loop_post(petrel_loop_get(1), note, (void *)i);
    assert_true(wait_fired(&order.done, 1));
    for (int i = 0; i < 8; i++)
        assert_int_equal(order.seen[i], i);
    assert_ptr_equal(order.done.loop, petrel_loop_get(1));
}

static struct probe io_probe;

static void readable(struct petrel_io *io, unsigned events, void *ctx)
{
    struct probe *p = ctx;
    p->events = events;
    ssize_t n = read(p->fd, p->got + p->len, sizeof(p->got) - p->len);
    if (n > 0)
        p->len += (size_t)n;
    petrel_io_remove(io); /* one read only: later bytes are not ours */
    record(p);
}

static void watch(void *arg)
{
    struct probe *p = arg;
    p->io = petrel_io_add(p->fd, PETREL_IO_IN, readable, p);
}

static void test_watched_descriptor(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    memset(&io_probe, 0, sizeof(io_probe));
    io_probe.fd = fds[0];
    /* Off the loops there is no loop to watch on. */
    errno = 0;
    assert_null(petrel_io_add(fds[0], PETREL_IO_IN, readable, &io_probe));
    assert_int_equal(errno, EPERM);
    run_on(petrel_loop_get(0), watch, &io_probe);
    assert_non_null(io_probe.io);
    assert_int_equal(write(fds[1], "hello", 5), 5);
    assert_true(wait_fired(&io_probe, 1));
    assert_true(io_probe.events & PETREL_IO_IN);
    assert_int_equal(io_probe.len, 5);
    assert_memory_equal(io_probe.got, "hello", 5);
    assert_int_equal(write(fds[1], "again", 5), 5);
    usleep(200 * 1000);
    assert_int_equal(fired(&io_probe), 1); /* removed: no second call */
    close(fds[0]);
    close(fds[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_shot),
        cmocka_unit_test(test_periodic_removed_from_its_callback),
        cmocka_unit_test(test_removed_before_firing),
        cmocka_unit_test(test_reset_restarts_a_fired_one_shot),
        cmocka_unit_test(test_posts_run_in_order_on_their_loop),
        cmocka_unit_test(test_watched_descriptor),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
