/* The event loops: each I/O thread runs one, and every connection,
 * listener, watched descriptor and timer belongs to exactly one of them.
 * Code on a loop's thread (any callback it makes) must never block.
 *
 * Threading rules: petrel_io_* and petrel_timer_reset() are called on the
 * loop's own thread (or in a module's stop hook, once the loops have
 * stopped). petrel_timer_add(), petrel_timer_remove() and
 * petrel_loop_post() may be called from any thread. Since ABI minor 6. */
#ifndef PETREL_LOOP_H
#define PETREL_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct petrel_loop;

/* The calling thread's loop; NULL off the I/O threads (a worker, the main
 * thread). */
struct petrel_loop *petrel_loop_current(void);
/* Loop index % petrel_loop_count(): to spread work over the loops; NULL
 * in a process without loops (petrelctl). */
struct petrel_loop *petrel_loop_get(unsigned index);
unsigned petrel_loop_count(void);
/* Monotonic milliseconds as of this loop turn (cheap: no system call); on
 * the loop's own thread. */
int64_t petrel_loop_now_ms(const struct petrel_loop *loop);

/* Run fn(arg) on the loop's thread, soon, in the order posted. Any thread.
 * Posts made as the server stops are still run, on the loop's behalf,
 * once every other thread has ended. */
typedef void petrel_loop_fn(void *arg);
void petrel_loop_post(struct petrel_loop *loop, petrel_loop_fn *fn, void *arg);

/* --- watching a descriptor (the caller opens and closes it) --- */

#define PETREL_IO_IN 0x001u  /* readable (EPOLLIN) */
#define PETREL_IO_OUT 0x004u /* writable (EPOLLOUT) */
#define PETREL_IO_ERR 0x008u /* error (reported whatever was asked) */
#define PETREL_IO_HUP 0x010u /* hang-up (reported whatever was asked) */

struct petrel_io;
typedef void petrel_io_fn(struct petrel_io *io, unsigned events, void *ctx);

/* Watch fd on the current loop (level-triggered) for events, calling fn
 * with what happened. NULL, with errno set, off an I/O thread or if the
 * kernel refuses. */
struct petrel_io *petrel_io_add(int fd, unsigned events, petrel_io_fn *fn, void *ctx);
/* Change what is watched; false (errno set) if the kernel refuses. */
bool petrel_io_modify(struct petrel_io *io, unsigned events);
/* Stop watching, before the descriptor is closed. No callback comes for it
 * afterwards, even one already reported in this loop turn. */
void petrel_io_remove(struct petrel_io *io);

/* --- timers, independent of connections --- */

struct petrel_timer;
typedef void petrel_timer_fn(void *ctx);

/* Call fn(ctx) after ms milliseconds on loop (NULL: the current loop, or
 * off the I/O threads the next one in turn), then every ms if repeat. From
 * another thread the timer is handed to its loop by a post. The handle is
 * the caller's until petrel_timer_remove(): a one-shot timer that fired
 * stays, idle, so the handle never dangles. A 0 ms timer runs on the next
 * turn. NULL in a process without loops. */
struct petrel_timer *petrel_timer_add(struct petrel_loop *loop, unsigned ms, bool repeat,
                                      petrel_timer_fn *fn, void *ctx);
/* Run again ms from now (restarting a one-shot one that has fired). On the
 * timer's loop. */
void petrel_timer_reset(struct petrel_timer *timer, unsigned ms);
/* Cancel and free; fn is not called again. May be called from fn. From
 * another thread the removal is posted to the timer's loop: a callback
 * already due may still run once before it. */
void petrel_timer_remove(struct petrel_timer *timer);

#endif
