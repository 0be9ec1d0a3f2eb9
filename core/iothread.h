/* I/O threads: one epoll loop each. A connection lives on one thread for
 * its whole life; other threads reach it only by posting a task. */
#ifndef PETREL_CORE_IOTHREAD_H
#define PETREL_CORE_IOTHREAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#define PETREL_READ_STEP 16384 /* bytes asked of a socket per read */

struct petrel_loop;
struct petrel_conn;
struct petrel_listener;

/* First member of everything registered with epoll: how its events are
 * handled. */
struct petrel_evsrc;
typedef void petrel_ev_fn(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events);
struct petrel_evsrc {
    petrel_ev_fn *handle;
};

/* An entry of a loop's timer heap (timer.c), embedded in what it times.
 * when may move later without re-sorting: the entry is re-keyed when it
 * surfaces, so pushing a connection's deadline on costs nothing. */
struct petrel_tnode;
typedef void petrel_tnode_fn(struct petrel_tnode *n);
struct petrel_tnode {
    int64_t when, key; /* monotonic milliseconds */
    size_t idx;        /* SIZE_MAX when not in the heap */
    petrel_tnode_fn *fire;
};

typedef void petrel_task_fn(struct petrel_loop *t, void *arg);

struct petrel_task {
    struct petrel_task *next;
    petrel_task_fn *fn;
    void *arg;
};

struct petrel_listen_slot {
    struct petrel_evsrc ev;
    int fd;
    bool removed; /* closed: freed after the turn (an event may be pending) */
    struct petrel_listener *listener;
    struct petrel_listen_slot *next_dead;
};

struct petrel_loop {
    unsigned index;
    pthread_t tid;
    atomic_bool running; /* the thread runs: others post to it */
    int epfd;
    int evfd;
    struct petrel_evsrc notify_ev;
    pthread_mutex_t lock;
    struct petrel_task *tasks;
    struct petrel_task **tasks_tail;
    struct petrel_listen_slot **slots;
    size_t nslots;
    time_t accept_resume;       /* accept paused until then (out of descriptors) */
    struct petrel_tnode **heap; /* timers and connection deadlines */
    size_t heap_len, heap_cap;
    struct petrel_io *io_dead; /* removed this turn: freed after it */
    struct petrel_listen_slot *slots_dead;
    struct petrel_conn *conns; /* every connection of this thread */
    /* Destroyed this loop turn: freed after the turn, because an event for
     * one may still wait in the batch epoll_wait returned. */
    struct petrel_conn *graveyard;
    /* Connections a module wrote to or closed from outside their own turn
     * (a timer, another connection's callback): run before the loop
     * sleeps. */
    struct petrel_conn *scheduled;
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
void petrel_iothread_post(struct petrel_loop *t, petrel_task_fn *fn, void *arg);
time_t petrel_monotonic(void);
int64_t petrel_monotonic_ms(void);

/* What the loop asks of its connections (conn.c): a new one accepted;
 * goodbyes when the server stops; closing what is left after the grace
 * period. */
void petrel_conn_accept(struct petrel_loop *t, struct petrel_listener *l, int fd,
                        const struct sockaddr *peer, const struct sockaddr *local);
void petrel_conns_shutdown(struct petrel_loop *t);
void petrel_conns_abort(struct petrel_loop *t);
/* Free the connections destroyed during this loop turn. */
void petrel_conn_bury(struct petrel_loop *t);
/* Run the connections scheduled this turn. */
void petrel_conns_run_scheduled(struct petrel_loop *t);

/* The timer heap (timer.c). set: insert, or re-sort after when moved
 * earlier. */
void petrel_tnode_set(struct petrel_loop *t, struct petrel_tnode *n);
void petrel_tnode_remove(struct petrel_loop *t, struct petrel_tnode *n);
void petrel_timers_run(struct petrel_loop *t);
int petrel_timers_next_ms(const struct petrel_loop *t); /* poll timeout, at most 1 s */
void petrel_timers_free(struct petrel_loop *t);

/* Watched descriptors (io.c): free those removed during the turn. */
void petrel_io_bury(struct petrel_loop *t);
/* The loop of the calling thread (set by the thread at start). */
extern _Thread_local struct petrel_loop *petrel_current_loop;

/* listen slots */
void petrel_iothread_add_slot(struct petrel_loop *t, struct petrel_listen_slot *slot);
void petrel_iothread_remove_listener(struct petrel_loop *t, struct petrel_listener *l);

#endif
