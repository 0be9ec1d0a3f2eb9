/* A test double of libpetrel's connection API (plugins-api/petrel/conn.h)
 * for fuzzing a protocol module's session code in one process: input is
 * framed by the real line reader (core/linereader.c) as core/conn.c frames
 * it, one unit at a time and none while a job or a delay is pending; a
 * job's work and done run when the harness says, never inside the call
 * that submitted it (as the worker pool and the timer do). Replies gather
 * in an output buffer the harness reads and clears; after
 * petrel_conn_want_drained() the module's output_drained runs between
 * input units, as if each piece had gone out. Single-threaded. */
#ifndef PETREL_CONN_FAKE_H
#define PETREL_CONN_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/buf.h>
#include <petrel/conn.h>

struct fuzz_conn_opts {
    size_t max_line;
    unsigned max_errors, max_auth_errors;
    bool can_starttls;
    unsigned busy_every; /* every Nth submit finds the pool full; 0: never */
};

/* What the harness watches. */
struct fuzz_conn_hooks {
    /* After each unit, job or delay the module was handed: its output. */
    void (*after)(struct petrel_conn *conn, void *ctx);
    /* Just before a line or a chunk part goes to the module. */
    void (*unit)(struct petrel_conn *conn, void *ctx, const char *data, size_t len, bool line,
                 bool crlf, bool last);
    void *ctx;
};

struct petrel_conn *fuzz_conn_open(const struct petrel_protocol *proto, const void *config,
                                   const struct fuzz_conn_opts *opts,
                                   const struct fuzz_conn_hooks *hooks);
/* Bytes from the network; then everything that can run does, except a
 * pending job or delay when finish_jobs is false (it ends later, after
 * more input arrived). */
void fuzz_conn_input(struct petrel_conn *conn, const void *data, size_t len, bool finish_jobs);
/* The peer goes away: pending jobs end with closing true, then close(). */
void fuzz_conn_free(struct petrel_conn *conn);

/* The replies written since the last fuzz_conn_take_output. */
struct petrel_buf *fuzz_conn_output(struct petrel_conn *conn);
/* Input that arrived and that the module has not been handed yet (the unit
 * being delivered does not count). */
size_t fuzz_conn_pending(const struct petrel_conn *conn);
bool fuzz_conn_closing(const struct petrel_conn *conn);
bool fuzz_conn_job_pending(const struct petrel_conn *conn);

#endif
