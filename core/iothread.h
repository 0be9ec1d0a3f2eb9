/* I/O threads: one epoll loop each. A connection lives on one thread for
 * its whole life; other threads reach it only by posting a task. */
#ifndef PETREL_CORE_IOTHREAD_H
#define PETREL_CORE_IOTHREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define PETREL_READ_STEP 16384 /* bytes asked of a socket per read */

enum petrel_evtype { PETREL_EV_LISTEN, PETREL_EV_CONN, PETREL_EV_NOTIFY };

/* First member of everything registered with epoll. */
struct petrel_evsrc {
    enum petrel_evtype type;
};

struct petrel_iothread;
struct petrel_conn;
struct petrel_listener;

typedef void petrel_task_fn(struct petrel_iothread *t, void *arg);

struct petrel_task {
    struct petrel_task *next;
    petrel_task_fn *fn;
    void *arg;
};

struct petrel_listen_slot {
    struct petrel_evsrc ev;
    int fd;
    struct petrel_listener *listener;
};

struct petrel_iothread {
    unsigned index;
    pthread_t tid;
    bool running;
    int epfd;
    int evfd;
    struct petrel_evsrc notify_ev;
    pthread_mutex_t lock;
    struct petrel_task *tasks;
    struct petrel_task **tasks_tail;
    struct petrel_listen_slot **slots;
    size_t nslots;
    time_t accept_resume;      /* accept paused until then (out of descriptors) */
    struct petrel_conn **heap; /* idle-timeout min-heap */
    size_t heap_len, heap_cap;
    struct petrel_conn *conns; /* every connection of this thread */
    /* Destroyed this loop turn: freed after the turn, because an event for
     * one may still wait in the batch epoll_wait returned. */
    struct petrel_conn *graveyard;
    atomic_size_t nconns;
    char *scratch;  /* every read lands here first (conn.c) */
    time_t now;     /* monotonic seconds, updated each loop turn */
    int64_t now_ms; /* the same in milliseconds, for timeouts */
    bool stopping;
    bool forced;
};

int petrel_iothreads_create(unsigned count, const char **error_r);
int petrel_iothreads_start(const char **error_r);
/* Stop accepting, say goodbye to idle connections, wait up to grace seconds
 * for the rest, then close what is left and join the threads. */
void petrel_iothreads_stop(long long grace);
void petrel_iothreads_free(void);
void petrel_iothread_post(struct petrel_iothread *t, petrel_task_fn *fn, void *arg);
time_t petrel_monotonic(void);
int64_t petrel_monotonic_ms(void);

/* Free the connections destroyed during this loop turn. */
void petrel_conn_bury(struct petrel_iothread *t);

/* Timer heap (conn.c keeps deadline and key in the connection). */
void petrel_timer_set(struct petrel_iothread *t, struct petrel_conn *c);
void petrel_timer_remove(struct petrel_iothread *t, struct petrel_conn *c);

/* listen slots */
void petrel_iothread_add_slot(struct petrel_iothread *t, struct petrel_listen_slot *slot);
void petrel_iothread_remove_listener(struct petrel_iothread *t, struct petrel_listener *l);

#endif
