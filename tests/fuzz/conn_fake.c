/* The connection API faked for fuzz targets: see conn_fake.h. What a
 * module can observe follows core/conn.c: units are handed over one at a
 * time from the front of the input buffer and consumed after the callback
 * returns (so petrel_conn_has_input() is true during a line callback, as
 * in the core); nothing is handed over during a job, a delay, a pending
 * STARTTLS or a close; input sent before a STARTTLS handshake is dropped. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>
#include <petrel/module.h>

#include "conn_fake.h"
#include "login_slot.h"
#include "linereader.h"

#define STUB_INPUT_MAX (4u << 20)
#define STUB_OUTPUT_MAX (1u << 20)

struct petrel_conn {
    const struct petrel_protocol *proto;
    const void *config;
    struct fuzz_conn_opts opts;
    struct fuzz_conn_hooks hooks;
    void *session;
    struct petrel_linereader lr;
    struct petrel_buf in, out;
    bool line_crlf, closing, tls, starttls, deflating;
    /* the pending job or delay */
    bool job_pending, delay;
    petrel_work_fn *work;
    petrel_done_fn *done;
    void *arg;
    unsigned submits;
    bool drain_wanted; /* petrel_conn_want_drained() */
    unsigned turns;
    struct petrel_login *login; /* the core's login flow, linked in */
    uint16_t login_errors;
};

struct petrel_login **petrel_conn_login_slot(struct petrel_conn *c) { return &c->login; }
uint16_t *petrel_conn_login_errors(struct petrel_conn *c) { return &c->login_errors; }

static void after(struct petrel_conn *c)
{
    if (c->hooks.after != NULL)
        c->hooks.after(c, c->hooks.ctx);
}

struct petrel_conn *fuzz_conn_open(const struct petrel_protocol *proto, const void *config,
                                   const struct fuzz_conn_opts *opts,
                                   const struct fuzz_conn_hooks *hooks)
{
    struct petrel_conn *c = petrel_calloc(1, sizeof(*c));
    c->proto = proto;
    c->config = config;
    c->opts = *opts;
    c->hooks = *hooks;
    c->session = petrel_calloc(1, proto->session_size);
    petrel_linereader_init(&c->lr, opts->max_line);
    petrel_buf_init(&c->in, STUB_INPUT_MAX);
    petrel_buf_init(&c->out, STUB_OUTPUT_MAX);
    proto->connect(c);
    after(c);
    return c;
}

static void run_job(struct petrel_conn *c, bool closing)
{
    c->job_pending = false;
    if (!c->delay && c->work != NULL)
        c->work(c->arg);
    c->done(c, c->arg, closing);
    if (!closing)
        after(c);
}

static void deliver(struct petrel_conn *c, enum petrel_lr_event ev, struct petrel_lr_item *it)
{
    switch (ev) {
    case PETREL_LR_LINE:
        c->line_crlf = it->crlf;
        if (c->hooks.unit != NULL)
            c->hooks.unit(c, c->hooks.ctx, it->data, it->len, true, it->crlf, false);
        c->proto->line(c, it->data, it->len);
        break;
    case PETREL_LR_CHUNK:
        if (c->hooks.unit != NULL)
            c->hooks.unit(c, c->hooks.ctx, it->data, it->len, false, false, it->last);
        c->proto->chunk(c, it->data, it->len, it->last);
        break;
    case PETREL_LR_TOO_LONG:
        c->line_crlf = it->crlf;
        if (c->hooks.unit != NULL)
            c->hooks.unit(c, c->hooks.ctx, NULL, 0, true, it->crlf, false);
        c->proto->line_too_long(c);
        break;
    case PETREL_LR_MORE:
        break;
    }
}

static void dispatch(struct petrel_conn *c, bool finish_jobs)
{
    for (;;) {
        if (c->job_pending) {
            if (!finish_jobs)
                return;
            run_job(c, false);
            continue;
        }
        /* Output "goes out" as the harness takes it: a module streaming a
         * body gets output_drained between units, every other turn, so
         * input also arrives while the body is going out (as in the core,
         * below max_output). */
        if (c->drain_wanted && !c->closing && !c->starttls &&
            (c->in.len == 0 || (c->turns++ & 1) != 0)) {
            c->drain_wanted = false;
            c->proto->output_drained(c);
            after(c);
            continue;
        }
        if (c->closing || c->starttls || c->in.len == 0)
            break;
        struct petrel_lr_item it;
        enum petrel_lr_event ev =
            petrel_linereader_next(&c->lr, (char *)petrel_buf_head(&c->in), c->in.len, &it);
        if (it.consumed > c->in.len)
            abort();
        if (ev != PETREL_LR_MORE)
            deliver(c, ev, &it);
        petrel_buf_consume(&c->in, it.consumed);
        if (ev != PETREL_LR_MORE)
            after(c);
        else if (it.consumed == 0 && (!c->drain_wanted || c->closing))
            break;
        else if (it.consumed == 0)
            c->turns |= 1; /* only part of a line to read: the body goes on */
    }
    if (c->starttls && !c->closing) {
        /* The reply went out, the handshake succeeded; what the client
         * sent before it never counts (RFC 3207 section 4.2). */
        petrel_buf_reset(&c->in);
        c->starttls = false;
        c->tls = true;
        c->proto->tls_ready(c, true);
        after(c);
    }
}

void fuzz_conn_input(struct petrel_conn *c, const void *data, size_t len, bool finish_jobs)
{
    if (!c->closing && !petrel_buf_append(&c->in, data, len))
        abort(); /* the harness feeds less than STUB_INPUT_MAX */
    dispatch(c, finish_jobs);
}

void fuzz_conn_free(struct petrel_conn *c)
{
    if (c->job_pending)
        run_job(c, true);
    petrel_login_drop(c);
    c->proto->close(c);
    petrel_buf_free(&c->in);
    petrel_buf_free(&c->out);
    free(c->session);
    free(c);
}

struct petrel_buf *fuzz_conn_output(struct petrel_conn *c) { return &c->out; }
size_t fuzz_conn_pending(const struct petrel_conn *c) { return c->in.len; }
bool fuzz_conn_closing(const struct petrel_conn *c) { return c->closing; }
bool fuzz_conn_job_pending(const struct petrel_conn *c) { return c->job_pending; }

/* --- the API a module calls --- */

bool petrel_conn_write(struct petrel_conn *c, const void *data, size_t len)
{
    if (c->closing)
        return false;
    if (!petrel_buf_append(&c->out, data, len))
        abort(); /* the harness takes the output after every unit */
    return true;
}

bool petrel_conn_printf(struct petrel_conn *c, const char *fmt, ...)
{
    if (c->closing)
        return false;
    va_list ap;
    va_start(ap, fmt);
    bool ok = petrel_buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
    if (!ok)
        abort();
    return true;
}

void petrel_conn_close(struct petrel_conn *c) { c->closing = true; }

void petrel_conn_want_drained(struct petrel_conn *c) { c->drain_wanted = true; }

/* The core's default for a listener. */
size_t petrel_conn_max_output(const struct petrel_conn *c)
{
    (void)c;
    return 256 * 1024;
}

bool petrel_conn_starttls(struct petrel_conn *c)
{
    if (!petrel_conn_can_starttls(c) || c->closing || c->starttls)
        return false;
    c->starttls = true;
    return true;
}

/* Compression is only recorded: the fuzzer's bytes stay plain after it. */
bool petrel_conn_start_deflate(struct petrel_conn *c, const void *held, size_t held_len)
{
    (void)held;
    (void)held_len;
    if (c->deflating || c->closing || c->starttls)
        return false;
    c->deflating = true;
    return true;
}
bool petrel_conn_deflating(const struct petrel_conn *c) { return c->deflating; }

bool petrel_conn_is_tls(const struct petrel_conn *c) { return c->tls; }
bool petrel_conn_can_starttls(const struct petrel_conn *c)
{
    return !c->tls && c->opts.can_starttls;
}
const char *petrel_conn_tls_sni(const struct petrel_conn *c)
{
    (void)c;
    return NULL;
}
const char *petrel_conn_tls_version(const struct petrel_conn *c)
{
    return c->tls ? "TLSv1.3" : NULL;
}
const char *petrel_conn_tls_cipher(const struct petrel_conn *c)
{
    return c->tls ? "TLS_AES_256_GCM_SHA384" : NULL;
}
bool petrel_conn_line_crlf(const struct petrel_conn *c) { return c->line_crlf; }
/* As the core: the unit being handed over is still in the buffer. */
bool petrel_conn_has_input(const struct petrel_conn *c) { return c->in.len > 0; }
/* Timing is not fuzzed: time never runs out here. */
void petrel_conn_transfer(struct petrel_conn *c, bool on)
{
    (void)c;
    (void)on;
}
void petrel_conn_set_timeout(struct petrel_conn *c, unsigned seconds)
{
    (void)c;
    (void)seconds;
}
/* Wakes are not delivered: single-threaded, nothing changes behind the
 * session's back. The waker only has to outlive its holders. */
struct petrel_conn_waker {
    int unused;
};
struct petrel_conn_waker *petrel_conn_waker_get(struct petrel_conn *c)
{
    (void)c;
    return petrel_calloc(1, sizeof(struct petrel_conn_waker));
}
void petrel_conn_wake(struct petrel_conn_waker *w) { (void)w; }
void petrel_conn_waker_release(struct petrel_conn_waker *w) { free(w); }
void petrel_conn_read_chunk(struct petrel_conn *c, size_t len)
{
    petrel_linereader_chunk(&c->lr, len);
}

void *petrel_conn_session(struct petrel_conn *c) { return c->session; }
uint64_t petrel_conn_id(const struct petrel_conn *c)
{
    (void)c;
    return 1;
}
const char *petrel_conn_peer(const struct petrel_conn *c)
{
    (void)c;
    return "192.0.2.1";
}
int petrel_conn_peer_port(const struct petrel_conn *c)
{
    (void)c;
    return 40000;
}
const char *petrel_conn_local(const struct petrel_conn *c)
{
    (void)c;
    return "192.0.2.25";
}
int petrel_conn_local_port(const struct petrel_conn *c)
{
    (void)c;
    return 25;
}
const void *petrel_conn_config(const struct petrel_conn *c) { return c->config; }

void petrel_conn_error_limits(const struct petrel_conn *c, struct petrel_error_limits *r)
{
    r->max_errors = c->opts.max_errors;
    r->max_auth_errors = c->opts.max_auth_errors;
}

void petrel_conn_log(struct petrel_conn *c, enum petrel_log_level level, const char *fmt, ...)
{
    (void)c, (void)level;
    char msg[1024]; /* formatted, so that the sanitizers see the arguments */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
}

bool petrel_conn_submit(struct petrel_conn *c, petrel_work_fn *work, petrel_done_fn *done,
                        void *arg)
{
    if (c->job_pending || c->closing)
        return false;
    if (c->opts.busy_every > 0 && ++c->submits % c->opts.busy_every == 0)
        return false; /* the pool's queue is full */
    c->job_pending = true;
    c->delay = false;
    c->work = work;
    c->done = done;
    c->arg = arg;
    return true;
}

bool petrel_conn_delay(struct petrel_conn *c, unsigned ms, petrel_done_fn *done, void *arg)
{
    if (c->job_pending || c->closing || ms > 60000)
        return false;
    c->job_pending = true;
    c->delay = true;
    c->work = NULL;
    c->done = done;
    c->arg = arg;
    return true;
}

/* Fire and forget (an abort's unlink): run at once. */
bool petrel_worker_submit(petrel_work_fn *work, void *arg)
{
    work(arg);
    return true;
}
