/* The loops as modules see them (petrel/loop.h): which loop a thread runs,
 * posting to one, and watching descriptors of their own. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include <petrel/loop.h>
#include <petrel/mem.h>

#include "iothread.h"
#include "server.h"

_Thread_local struct petrel_loop *petrel_current_loop;

struct petrel_loop *petrel_loop_current(void) { return petrel_current_loop; }

unsigned petrel_loop_count(void) { return petrel_server.nthreads; }

struct petrel_loop *petrel_loop_get(unsigned index)
{
    if (petrel_server.nthreads == 0)
        return NULL;
    return &petrel_server.threads[index % petrel_server.nthreads];
}

int64_t petrel_loop_now_ms(const struct petrel_loop *loop) { return loop->now_ms; }

struct post {
    petrel_loop_fn *fn;
    void *arg;
};

static void post_task(struct petrel_loop *t, void *arg)
{
    struct post p = *(struct post *)arg;
    (void)t;
    free(arg);
    p.fn(p.arg);
}

void petrel_loop_post(struct petrel_loop *loop, petrel_loop_fn *fn, void *arg)
{
    struct post *p = petrel_malloc(sizeof(*p));
    p->fn = fn;
    p->arg = arg;
    petrel_iothread_post(loop, post_task, p);
}

struct petrel_io {
    struct petrel_evsrc ev;
    struct petrel_loop *loop;
    int fd;
    bool removed;
    petrel_io_fn *fn;
    void *ctx;
    struct petrel_io *next_dead;
};

static void io_event(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events)
{
    struct petrel_io *io = (struct petrel_io *)src;
    (void)t;
    if (!io->removed)
        io->fn(io, events, io->ctx);
}

struct petrel_io *petrel_io_add(int fd, unsigned events, petrel_io_fn *fn, void *ctx)
{
    struct petrel_loop *t = petrel_current_loop;
    if (t == NULL) {
        errno = EPERM;
        return NULL;
    }
    struct petrel_io *io = petrel_calloc(1, sizeof(*io));
    io->ev.handle = io_event;
    io->loop = t;
    io->fd = fd;
    io->fn = fn;
    io->ctx = ctx;
    struct epoll_event e = {.events = events, .data.ptr = io};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        int err = errno;
        free(io);
        errno = err;
        return NULL;
    }
    return io;
}

bool petrel_io_modify(struct petrel_io *io, unsigned events)
{
    struct epoll_event e = {.events = events, .data.ptr = io};
    return epoll_ctl(io->loop->epfd, EPOLL_CTL_MOD, io->fd, &e) == 0;
}

/* Freed after the loop turn: epoll may already have returned an event for
 * it in the batch being handled. */
void petrel_io_remove(struct petrel_io *io)
{
    if (io == NULL)
        return;
    epoll_ctl(io->loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    io->removed = true;
    io->next_dead = io->loop->io_dead;
    io->loop->io_dead = io;
}

void petrel_io_bury(struct petrel_loop *t)
{
    while (t->io_dead != NULL) {
        struct petrel_io *io = t->io_dead;
        t->io_dead = io->next_dead;
        free(io);
    }
}

_Static_assert(PETREL_IO_IN == EPOLLIN && PETREL_IO_OUT == EPOLLOUT && PETREL_IO_ERR == EPOLLERR &&
                   PETREL_IO_HUP == EPOLLHUP,
               "petrel/loop.h event bits are epoll's");
