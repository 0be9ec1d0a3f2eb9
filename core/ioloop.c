/* The I/O threads' epoll loops: dispatching events, tasks posted from
 * other threads, listening sockets, and stopping. Timers are in timer.c,
 * descriptors watched for modules in io.c. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "iothread.h"
#include "server.h"

#define MAX_EVENTS 256
#define ACCEPT_BURST 64

time_t petrel_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

int64_t petrel_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- tasks posted from other threads --- */

void petrel_iothread_post(struct petrel_loop *t, petrel_task_fn *fn, void *arg)
{
    struct petrel_task *task = petrel_malloc(sizeof(*task));
    task->next = NULL;
    task->fn = fn;
    task->arg = arg;
    pthread_mutex_lock(&t->lock);
    *t->tasks_tail = task;
    t->tasks_tail = &task->next;
    pthread_mutex_unlock(&t->lock);
    uint64_t one = 1;
    if (write(t->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        petrel_log(PETREL_LOG_ERROR, "core", "eventfd write: %s", strerror(errno));
}

static void run_tasks(struct petrel_loop *t)
{
    uint64_t n;
    if (read(t->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
        petrel_log(PETREL_LOG_ERROR, "core", "eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&t->lock);
    struct petrel_task *list = t->tasks;
    t->tasks = NULL;
    t->tasks_tail = &t->tasks;
    pthread_mutex_unlock(&t->lock);
    while (list != NULL) {
        struct petrel_task *task = list;
        list = task->next;
        task->fn(t, task->arg);
        free(task);
    }
}

/* --- listening sockets --- */

static void slot_watch(struct petrel_loop *t, struct petrel_listen_slot *s, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(t->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, s->fd, &ev) < 0 && on)
        petrel_log(PETREL_LOG_ERROR, "core", "epoll add listener %s: %s", s->listener->address,
                   strerror(errno));
}

static void on_accept(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events);

void petrel_iothread_add_slot(struct petrel_loop *t, struct petrel_listen_slot *slot)
{
    slot->ev.handle = on_accept;
    t->slots = petrel_reallocarray(t->slots, t->nslots + 1, sizeof(*t->slots));
    t->slots[t->nslots++] = slot;
    if (t->accept_resume == 0 && !t->stopping)
        slot_watch(t, slot, true);
}

void petrel_iothread_remove_listener(struct petrel_loop *t, struct petrel_listener *l)
{
    for (size_t i = 0; i < t->nslots;) {
        struct petrel_listen_slot *s = t->slots[i];
        if (s->listener != l) {
            i++;
            continue;
        }
        if (t->accept_resume == 0 && !t->stopping)
            slot_watch(t, s, false);
        close(s->fd);
        s->removed = true;
        s->next_dead = t->slots_dead;
        t->slots_dead = s;
        t->slots[i] = t->slots[--t->nslots];
        petrel_listener_unref(l);
    }
}

static void accept_pause(struct petrel_loop *t, bool pause)
{
    for (size_t i = 0; i < t->nslots; i++)
        slot_watch(t, t->slots[i], !pause);
    t->accept_resume = pause ? t->now + 1 : 0;
}

/* Out of descriptors or memory: said once until an accept works again,
 * not every second. */
static atomic_bool accept_failing;

static void on_accept(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events)
{
    struct petrel_listen_slot *s = (struct petrel_listen_slot *)src;
    (void)events;
    if (s->removed)
        return; /* an event from the batch its listener was closed in */
    for (int i = 0; i < ACCEPT_BURST; i++) {
        /* At the connection limit, new clients wait in the listen queue:
         * the descriptors and memory left serve work in progress. */
        if (!petrel_server_may_accept()) {
            accept_pause(t, true);
            return;
        }
        struct sockaddr_storage peer, local;
        socklen_t plen = sizeof(peer), llen = sizeof(local);
        int fd = accept4(s->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (!atomic_exchange(&accept_failing, true))
                    petrel_log(PETREL_LOG_ERROR, "core",
                               "accept on %s: %s; pausing accepts, a second at a time, until "
                               "it works again",
                               s->listener->address, strerror(errno));
                accept_pause(t, true);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                petrel_log(PETREL_LOG_WARNING, "core", "accept on %s: %s", s->listener->address,
                           strerror(errno));
            }
            return;
        }
        if (atomic_exchange(&accept_failing, false))
            petrel_log(PETREL_LOG_INFO, "core", "accepting connections again");
        if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0)
            memset(&local, 0, sizeof(local));
        petrel_conn_accept(t, s->listener, fd, (struct sockaddr *)&peer, (struct sockaddr *)&local);
    }
}

/* --- stopping --- */

static void begin_stop(struct petrel_loop *t, void *unused)
{
    (void)unused;
    if (t->accept_resume == 0)
        accept_pause(t, true);
    t->stopping = true;
    petrel_conns_shutdown(t);
}

static void force_stop(struct petrel_loop *t, void *unused)
{
    (void)unused;
    t->forced = true;
    petrel_conns_abort(t);
}

static void on_notify(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events)
{
    (void)src;
    (void)events;
    run_tasks(t);
}

/* What a loop turn leaves to free once no event of the batch can name it. */
static void bury(struct petrel_loop *t)
{
    petrel_conn_bury(t);
    petrel_io_bury(t);
    while (t->slots_dead != NULL) {
        struct petrel_listen_slot *s = t->slots_dead;
        t->slots_dead = s->next_dead;
        free(s);
    }
}

static void *thread_main(void *arg)
{
    struct petrel_loop *t = arg;
    struct epoll_event evs[MAX_EVENTS];
    petrel_current_loop = t;
    t->now = petrel_monotonic();
    t->now_ms = petrel_monotonic_ms();
    while (!t->stopping || atomic_load(&t->nconns) > 0) {
        int n = epoll_wait(t->epfd, evs, MAX_EVENTS,
                           t->scheduled != NULL ? 0 : petrel_timers_next_ms(t));
        t->now = petrel_monotonic();
        t->now_ms = petrel_monotonic_ms();
        if (n < 0 && errno != EINTR) {
            petrel_log(PETREL_LOG_ERROR, "core", "epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct petrel_evsrc *src = evs[i].data.ptr;
            src->handle(t, src, evs[i].events);
        }
        if (t->accept_resume != 0 && t->now >= t->accept_resume && !t->stopping)
            accept_pause(t, false);
        petrel_timers_run(t);
        petrel_conns_run_scheduled(t);
        bury(t);
    }
    /* Tasks posted late (jobs of connections now gone were all waited for). */
    run_tasks(t);
    petrel_conns_run_scheduled(t);
    bury(t);
    return NULL;
}

int petrel_iothreads_create(unsigned count, const char **error_r)
{
    petrel_server.threads = petrel_calloc(count, sizeof(*petrel_server.threads));
    petrel_server.nthreads = count;
    for (unsigned i = 0; i < count; i++) {
        struct petrel_loop *t = &petrel_server.threads[i];
        t->index = i;
        t->notify_ev.handle = on_notify;
        t->tasks_tail = &t->tasks;
        t->scratch = petrel_malloc(PETREL_READ_STEP);
        pthread_mutex_init(&t->lock, NULL);
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t->notify_ev};
        if (t->epfd < 0 || t->evfd < 0 || epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->evfd, &ev) < 0) {
            *error_r = strerror(errno);
            return -1;
        }
    }
    return 0;
}

int petrel_iothreads_start(const char **error_r)
{
    for (unsigned i = 0; i < petrel_server.nthreads; i++) {
        struct petrel_loop *t = &petrel_server.threads[i];
        int err = pthread_create(&t->tid, NULL, thread_main, t);
        if (err != 0) {
            *error_r = strerror(err);
            return -1;
        }
        t->running = true;
    }
    return 0;
}

static bool all_idle(void)
{
    for (unsigned i = 0; i < petrel_server.nthreads; i++) {
        if (atomic_load(&petrel_server.threads[i].nconns) > 0)
            return false;
    }
    return true;
}

void petrel_iothreads_stop(long long grace)
{
    for (unsigned i = 0; i < petrel_server.nthreads; i++)
        petrel_iothread_post(&petrel_server.threads[i], begin_stop, NULL);
    /* Poll, bounded by the grace period, for sessions to finish. */
    for (long long waited = 0; waited < grace * 10 && !all_idle(); waited++)
        usleep(100000);
    if (!all_idle()) {
        petrel_log(PETREL_LOG_WARNING, "core", "closing connections still open after %llds", grace);
        for (unsigned i = 0; i < petrel_server.nthreads; i++)
            petrel_iothread_post(&petrel_server.threads[i], force_stop, NULL);
    }
    for (unsigned i = 0; i < petrel_server.nthreads; i++) {
        if (petrel_server.threads[i].running)
            pthread_join(petrel_server.threads[i].tid, NULL);
        petrel_server.threads[i].running = false;
    }
}

void petrel_iothreads_free(void)
{
    for (unsigned i = 0; i < petrel_server.nthreads; i++) {
        struct petrel_loop *t = &petrel_server.threads[i];
        /* Posts made after the loop ended (by workers finishing, by a
         * module's stop) or before it ever ran (--check-config): run here,
         * on the loop's behalf, now that no other thread is left. */
        petrel_current_loop = t;
        run_tasks(t);
        petrel_conns_run_scheduled(t);
        bury(t);
        petrel_current_loop = NULL;
        while (t->nslots > 0)
            petrel_iothread_remove_listener(t, t->slots[0]->listener);
        bury(t);
        free(t->slots);
        petrel_timers_free(t);
        petrel_io_bury(t);
        free(t->scratch);
        while (t->tasks != NULL) {
            struct petrel_task *task = t->tasks;
            t->tasks = task->next;
            free(task);
        }
        close(t->epfd);
        close(t->evfd);
        pthread_mutex_destroy(&t->lock);
    }
    free(petrel_server.threads);
    petrel_server.threads = NULL;
    petrel_server.nthreads = 0;
}
