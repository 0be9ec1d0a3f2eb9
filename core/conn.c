/* Connections: socket and TLS I/O, framing into lines and chunks, admission
 * by the rules, idle timeouts, back-pressure and the module-facing API. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/err.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/stats.h>

#include "conn_private.h"
#include "login_slot.h"
#include "proxyproto.h"
#include "server.h"
#include "tls.h"

#define IN_MIN 16384         /* input buffer cap beyond the line limit */
#define PROXY_TIMEOUT 10     /* seconds to send the PROXY header */
#define HANDSHAKE_TIMEOUT 30 /* seconds to finish a TLS handshake */
#define CLOSE_TIMEOUT 10     /* seconds to take the last queued bytes */
#define OUT_HARD_FACTOR 4    /* queued output beyond max_output * this closes */
#define DELAY_MAX_MS 60000

static atomic_uint_fast64_t next_id = 1;

static struct {
    struct petrel_counter *accepted, *current, *refused, *tls_ok, *tls_failed, *timeouts, *too_long,
        *bytes_in, *bytes_out, *overflow;
} stat;

void petrel_conn_stats_init(void)
{
    stat.accepted = petrel_counter("core.connections.accepted");
    stat.current = petrel_counter("core.connections.current");
    stat.refused = petrel_counter("core.connections.refused");
    stat.tls_ok = petrel_counter("core.tls.handshakes");
    stat.tls_failed = petrel_counter("core.tls.failures");
    stat.timeouts = petrel_counter("core.connections.timeouts");
    stat.too_long = petrel_counter("core.lines.too_long");
    stat.bytes_in = petrel_counter("core.bytes.in");
    stat.bytes_out = petrel_counter("core.bytes.out");
    stat.overflow = petrel_counter("core.output.overflows");
}

static void conn_destroy(struct petrel_conn *c);
/* Server stopping: say goodbye where idle. Forced: close now, or as soon
 * as a pending job returns. */
static void petrel_conn_shutdown(struct petrel_conn *c);
static void petrel_conn_abort(struct petrel_conn *c);

/* --- module-facing API --- */

void *petrel_conn_session(struct petrel_conn *c) { return c->session; }
uint64_t petrel_conn_id(const struct petrel_conn *c) { return c->id; }
const char *petrel_conn_peer(const struct petrel_conn *c) { return c->peer; }
int petrel_conn_peer_port(const struct petrel_conn *c) { return c->peer_port; }
const char *petrel_conn_local(const struct petrel_conn *c) { return c->local; }
int petrel_conn_local_port(const struct petrel_conn *c) { return c->local_port; }
const void *petrel_conn_config(const struct petrel_conn *c) { return c->scfg->settings; }
void *petrel_conn_derived(const struct petrel_conn *c) { return c->scfg->derived; }
bool petrel_conn_line_crlf(const struct petrel_conn *conn) { return conn->line_crlf; }

bool petrel_conn_has_input(const struct petrel_conn *conn)
{
    char b;
    return conn->in.len > 0 || (conn->ssl != NULL && SSL_pending(conn->ssl) > 0) ||
           recv(conn->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

bool petrel_conn_is_tls(const struct petrel_conn *c) { return c->ssl != NULL; }

bool petrel_conn_can_starttls(const struct petrel_conn *c)
{
    if (c->outbound != NULL)
        return c->ssl == NULL && c->state == PETREL_CONN_OPEN; /* our side asks */
    return c->ssl == NULL && c->lcfg->tls_mode == PETREL_TLS_STARTTLS;
}

const char *petrel_conn_tls_sni(const struct petrel_conn *c)
{
    return c->ssl != NULL ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *petrel_conn_tls_version(const struct petrel_conn *c)
{
    return c->ssl != NULL ? SSL_get_version(c->ssl) : NULL;
}

const char *petrel_conn_tls_cipher(const struct petrel_conn *c)
{
    return c->ssl != NULL ? SSL_get_cipher_name(c->ssl) : NULL;
}

void petrel_conn_error_limits(const struct petrel_conn *c, struct petrel_error_limits *r)
{
    r->max_errors = (unsigned)c->scfg->max_errors;
    r->max_auth_errors = (unsigned)c->scfg->max_auth_errors;
}

void petrel_conn_log(struct petrel_conn *c, enum petrel_log_level level, const char *fmt, ...)
{
    const char *module = c->module->name;
    if (!petrel_log_enabled(level, module))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    petrel_log(level, module, "conn %llu [%s]:%d: %s", (unsigned long long)c->id, c->peer,
               c->peer_port, msg);
}

/* Output not yet on the socket: queued, or compressed and waiting. */
static size_t out_pending(const struct petrel_conn *c)
{
    return c->out.len + (c->z != NULL ? petrel_conn_z_wire((struct petrel_conn *)c)->len : 0);
}

static bool closing(const struct petrel_conn *c)
{
    return c->state == PETREL_CONN_CLOSING || c->dead;
}

static void answered(struct petrel_conn *c);

/* A call from outside the connection's own turn (a timer, another
 * connection's callback) that needs the connection to act: it runs
 * before its loop sleeps. */
static void schedule(struct petrel_conn *c)
{
    if (c->in_run || c->scheduled || c->destroyed)
        return;
    c->scheduled = true;
    c->next_scheduled = c->thread->scheduled;
    c->thread->scheduled = c;
}

/* One pass over what was scheduled when it began: connections scheduled
 * meanwhile (two relayed to each other keep scheduling one another) wait
 * for the next turn, after epoll and the timers have had theirs. */
void petrel_conns_run_scheduled(struct petrel_loop *t)
{
    struct petrel_conn *list = t->scheduled;
    t->scheduled = NULL;
    while (list != NULL) {
        struct petrel_conn *c = list;
        list = c->next_scheduled;
        c->scheduled = false;
        if (!c->destroyed)
            petrel_conn_run(c);
    }
}

/* After queueing output: an answer, or past the limit, the end. */
static bool queued(struct petrel_conn *c, bool ok)
{
    if (!ok) {
        petrel_counter_add(stat.overflow, 1);
        petrel_conn_log(c, PETREL_LOG_WARNING, "output limit of %zu bytes exceeded: closing",
                        c->out.max);
        c->dead = true;
        schedule(c);
        return false;
    }
    answered(c);
    schedule(c);
    return true;
}

bool petrel_conn_write(struct petrel_conn *c, const void *data, size_t len)
{
    return !closing(c) && queued(c, petrel_buf_append(&c->out, data, len));
}

bool petrel_conn_printf(struct petrel_conn *c, const char *fmt, ...)
{
    if (closing(c))
        return false;
    va_list ap;
    va_start(ap, fmt);
    bool ok = petrel_buf_vprintf(&c->out, fmt, ap);
    va_end(ap);
    return queued(c, ok);
}

/* Deadlines count in milliseconds: a 1 s timeout is never 10 ms. */
static int64_t deadline_in(const struct petrel_conn *c, long long seconds)
{
    return c->thread->now_ms + (int64_t)seconds * 1000;
}

void petrel_conn_set_deadline(struct petrel_conn *c, long long seconds)
{
    c->timer.when = deadline_in(c, seconds);
    petrel_tnode_set(c->thread, &c->timer);
}

/* The client gets a full idle_timeout whenever the server answers, and
 * otherwise only the time its bytes pay for at min_data_rate (capped at a
 * full idle_timeout ahead): a command line or a message trickled a byte at
 * a time runs out instead of holding its session forever (Postfix's
 * smtpd_min_data_rate). Bytes the client takes from us pay the same way,
 * so neither draining a backlog of answers slowly nor a transfer made of
 * many small exchanges (petrel_conn_transfer) renews its time. */
static void reset_deadline(struct petrel_conn *c)
{
    c->timer.when = deadline_in(c, c->idle_timeout);
    c->slow_bytes = 0;
    c->slow_since = c->thread->now_ms;
}

static void answered(struct petrel_conn *c)
{
    if (!c->transfer && !c->delaying && c->state == PETREL_CONN_OPEN)
        reset_deadline(c);
}

static void earn_time(struct petrel_conn *c, size_t bytes)
{
    int64_t full = deadline_in(c, c->idle_timeout);
    if (c->lcfg->min_data_rate == 0) {
        c->timer.when = full;
        return;
    }
    int64_t earned = (int64_t)(bytes * 1000 / (uint64_t)c->lcfg->min_data_rate);
    c->timer.when = c->timer.when + earned < full ? c->timer.when + earned : full;
}

static void credit_deadline(struct petrel_conn *c, size_t got)
{
    c->slow_bytes += got;
    earn_time(c, got);
}

void petrel_conn_transfer(struct petrel_conn *c, bool on) { c->transfer = on; }

struct petrel_login **petrel_conn_login_slot(struct petrel_conn *c) { return &c->login; }
uint16_t *petrel_conn_login_errors(struct petrel_conn *c) { return &c->login_errors; }

void petrel_conn_set_timeout(struct petrel_conn *c, unsigned seconds)
{
    c->idle_timeout = seconds > 86400 * 30 ? 86400 * 30 : (int)seconds;
    if (c->state == PETREL_CONN_OPEN && !c->delaying) {
        reset_deadline(c);
        petrel_tnode_set(c->thread, &c->timer);
    }
}

void petrel_conn_want_drained(struct petrel_conn *c)
{
    c->drain_wanted = true;
    schedule(c);
}

size_t petrel_conn_max_output(const struct petrel_conn *c) { return (size_t)c->lcfg->max_output; }

void petrel_conn_close(struct petrel_conn *c)
{
    if (closing(c))
        return;
    if (c->state == PETREL_CONN_CONNECTING) {
        /* Nothing to send yet: gone when it runs, this turn. */
        petrel_outbound_note(c, "closed before it was open");
        c->dead = true;
    }
    if (!c->dead) {
        c->state = PETREL_CONN_CLOSING;
        petrel_conn_set_deadline(c, CLOSE_TIMEOUT);
    }
    schedule(c);
}

bool petrel_conn_starttls(struct petrel_conn *c)
{
    if (!petrel_conn_can_starttls(c) || closing(c) || c->starttls || c->z != NULL)
        return false;
    c->starttls = true;
    schedule(c);
    return true;
}

void petrel_conn_read_chunk(struct petrel_conn *c, size_t len)
{
    petrel_linereader_chunk(&c->lr, len);
}

/* --- worker jobs --- */

static void job_done_task(struct petrel_loop *t, void *arg)
{
    struct petrel_conn *c = arg;
    c->job_pending = false;
    c->done(c, c->job.arg, c->dead);
    if (c->destroyed)
        return; /* done ended it (an outbound connection that failed) */
    if (c->dead) {
        conn_destroy(c);
        return;
    }
    if (t->stopping && (c->state == PETREL_CONN_OPEN || c->state == PETREL_CONN_CONNECTING))
        petrel_conn_shutdown(c); /* runs the connection itself */
    else
        petrel_conn_run(c);
}

static void job_finish(struct petrel_job *job)
{
    struct petrel_conn *c = (struct petrel_conn *)((char *)job - offsetof(struct petrel_conn, job));
    petrel_iothread_post(c->thread, job_done_task, c);
}

bool petrel_conn_submit(struct petrel_conn *c, petrel_work_fn *work, petrel_done_fn *done,
                        void *arg)
{
    if (c->job_pending || closing(c))
        return false;
    c->job.work = work;
    c->job.arg = arg;
    c->job.limit = &c->module->job_limit;
    c->job.finish = job_finish;
    c->done = done;
    if (!petrel_workers_push(&c->job))
        return false;
    c->job_pending = true;
    return true;
}

/* --- delays: a job that needs no worker, ended by the timer --- */

bool petrel_conn_delay(struct petrel_conn *c, unsigned ms, petrel_done_fn *done, void *arg)
{
    if (c->job_pending || closing(c) || ms > DELAY_MAX_MS)
        return false;
    c->job_pending = true;
    c->delaying = true;
    c->done = done;
    c->job.arg = arg;
    c->delay_until = c->thread->now_ms + ms;
    c->timer.when = c->delay_until;
    petrel_tnode_set(c->thread, &c->timer);
    return true;
}

static void delay_finish(struct petrel_conn *c)
{
    c->delaying = false;
    if (!c->dead) {
        reset_deadline(c);
        petrel_tnode_set(c->thread, &c->timer);
    }
    job_done_task(c->thread, c);
}

/* --- wakers: other threads post a task to the connection's thread --- */

struct petrel_conn_waker {
    atomic_uint refs;
    atomic_bool queued; /* a wake task is on its way: coalesce */
    struct petrel_loop *thread;
    struct petrel_conn *conn; /* read and cleared only on that thread */
};

struct petrel_conn_waker *petrel_conn_waker_get(struct petrel_conn *c)
{
    if (c->waker == NULL) {
        c->waker = petrel_calloc(1, sizeof(*c->waker));
        atomic_init(&c->waker->refs, 1); /* the connection's own */
        c->waker->thread = c->thread;
        c->waker->conn = c;
    }
    atomic_fetch_add(&c->waker->refs, 1);
    return c->waker;
}

void petrel_conn_waker_release(struct petrel_conn_waker *w)
{
    if (w != NULL && atomic_fetch_sub(&w->refs, 1) == 1)
        free(w);
}

static void wake_task(struct petrel_loop *t, void *arg)
{
    struct petrel_conn_waker *w = arg;
    atomic_store(&w->queued, false);
    struct petrel_conn *c = w->conn;
    if (c != NULL && !c->dead && c->proto->wakeup != NULL) {
        c->wake_pending = true;
        if (!c->job_pending)
            petrel_conn_run(c); /* else when the job or delay ends */
    }
    petrel_conn_waker_release(w);
}

void petrel_conn_wake(struct petrel_conn_waker *w)
{
    if (atomic_exchange(&w->queued, true))
        return;
    atomic_fetch_add(&w->refs, 1);
    petrel_iothread_post(w->thread, wake_task, w);
}

/* --- epoll interest --- */

static bool want_read(const struct petrel_conn *c)
{
    if (c->dead || c->eof || c->job_pending || c->state == PETREL_CONN_CLOSING)
        return false;
    if (c->starttls && c->state == PETREL_CONN_OPEN)
        return false; /* nothing more is read until the handshake */
    /* Back-pressure: a client that does not read its answers stops being
     * read from; relayed, one whose partner does not read. */
    const struct petrel_conn *sink = c->relay != NULL ? c->relay : c;
    return sink->out.len < (size_t)sink->lcfg->max_output && c->in.len < c->in.max;
}

static void update_events(struct petrel_conn *c, bool tls_wants_write)
{
    unsigned ev = 0;
    if (want_read(c) || c->state == PETREL_CONN_HANDSHAKE)
        ev |= EPOLLIN;
    if (out_pending(c) > 0 || tls_wants_write)
        ev |= EPOLLOUT;
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(c->thread->epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        petrel_conn_log(c, PETREL_LOG_ERROR, "epoll_ctl: %s", strerror(errno));
    c->events = ev;
}

/* --- socket and TLS I/O --- */

/* Returns bytes read, 0 at EOF, -1 when the socket has nothing now, -2 on
 * error. */
ssize_t petrel_conn_recv(struct petrel_conn *c, char *buf, size_t size)
{
    if (c->ssl == NULL) {
        ssize_t n = read(c->fd, buf, size);
        if (n >= 0)
            return n;
        return errno == EAGAIN || errno == EINTR ? -1 : -2;
    }
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, (int)(size > INT32_MAX ? INT32_MAX : size));
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->tls_want_write = true;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        petrel_conn_log(c, PETREL_LOG_INFO, "TLS read: %s", petrel_tls_error());
        return -2;
    }
}

static ssize_t conn_send(struct petrel_conn *c, const char *buf, size_t len)
{
    if (c->ssl == NULL) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        return errno == EAGAIN || errno == EINTR ? -1 : -2;
    }
    ERR_clear_error();
    int n = SSL_write(c->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (n > 0)
        return n;
    int err = SSL_get_error(c->ssl, n);
    if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ)
        return -1;
    petrel_conn_log(c, PETREL_LOG_INFO, "TLS write: %s", petrel_tls_error());
    return -2;
}

/* Send what is queued. False if the connection broke. */
static bool conn_flush(struct petrel_conn *c)
{
    size_t sent = 0;
    struct petrel_buf *wire = c->z != NULL ? petrel_conn_z_wire(c) : &c->out;
    for (;;) {
        if (c->z != NULL && !petrel_conn_z_compress(c))
            return false;
        if (wire->len == 0)
            break;
        ssize_t n = conn_send(c, petrel_buf_head(wire), wire->len);
        if (n == -1)
            break;
        if (n < 0)
            return false;
        petrel_buf_consume(wire, (size_t)n);
        sent += (size_t)n;
    }
    if (sent > 0) {
        petrel_counter_add(stat.bytes_out, (int64_t)sent);
        if (c->state == PETREL_CONN_OPEN && !c->delaying)
            earn_time(c, sent);
        if (c->relay != NULL)
            schedule(c->relay); /* room again for what it relays to us */
    }
    if (c->out.len == 0)
        petrel_buf_release(&c->out);
    return true;
}

/* Read what the socket has, up to the input cap. False if it broke. Reads
 * go through the thread's scratch buffer so that the connection's own
 * grows only to what it holds: a client trickling a line costs bytes, not
 * a 16 KiB read buffer. */
static bool conn_fill(struct petrel_conn *c)
{
    size_t got = 0;
    petrel_conn_z_takeover(c);
    while (want_read(c) && c->z != NULL) {
        int r = petrel_conn_z_fill(c, &got);
        if (r < 0)
            return false;
        if (r == 0)
            break;
    }
    while (want_read(c) && c->z == NULL) {
        size_t room =
            c->in.max - c->in.len < PETREL_READ_STEP ? c->in.max - c->in.len : PETREL_READ_STEP;
        ssize_t n = petrel_conn_recv(c, c->thread->scratch, room);
        if (n == -1)
            break;
        if (n == -2)
            return false;
        if (n == 0) {
            c->eof = true;
            break;
        }
        petrel_buf_append(&c->in, c->thread->scratch, (size_t)n);
        got += (size_t)n;
    }
    if (got > 0) {
        petrel_counter_add(stat.bytes_in, (int64_t)got);
        credit_deadline(c, got);
    }
    return true;
}

/* --- the protocol module's side --- */

/* A chunk read whole with nothing after it: the client may be holding
 * the rest of its line back (Nagle) until this side ACKs the chunk, as
 * imaplib does after an IMAP literal; the kernel would delay that ACK by
 * 40 ms, the whole command with it. Asking for a quick ACK sends the
 * pending one now. */
static void ack_now(struct petrel_conn *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

static void deliver(struct petrel_conn *c, enum petrel_lr_event ev, struct petrel_lr_item *item)
{
    switch (ev) {
    case PETREL_LR_LINE:
        c->line_crlf = item->crlf;
        c->proto->line(c, item->data, item->len);
        break;
    case PETREL_LR_CHUNK:
        if (item->last && c->in.len == item->consumed)
            ack_now(c);
        if (c->proto->chunk != NULL)
            c->proto->chunk(c, item->data, item->len, item->last);
        break;
    case PETREL_LR_TOO_LONG:
        petrel_counter_add(stat.too_long, 1);
        petrel_conn_log(c, PETREL_LOG_INFO, "line longer than %lld bytes discarded",
                        c->lcfg->max_line);
        c->line_crlf = item->crlf; /* SMTP needs it for the line after */
        if (c->proto->line_too_long != NULL)
            c->proto->line_too_long(c);
        else
            petrel_conn_close(c);
        break;
    case PETREL_LR_MORE:
        break;
    }
}

/* Relayed: the input goes to the partner's output as it is, as far as
 * the partner's output limit allows. Bytes moving keep both alive. */
static void relay_move(struct petrel_conn *c)
{
    struct petrel_conn *p = c->relay;
    size_t max = (size_t)p->lcfg->max_output, n = c->in.len;
    if (p->out.len + n > max)
        n = p->out.len < max ? max - p->out.len : 0;
    c->partial = n < c->in.len; /* the rest waits for room, not for a read */
    if (n == 0 || closing(p))
        return;
    if (!petrel_buf_append(&p->out, petrel_buf_head(&c->in), n)) {
        p->dead = true;
        return;
    }
    petrel_buf_consume(&c->in, n);
    reset_deadline(c);
    reset_deadline(p);
    schedule(p);
}

bool petrel_conn_relay(struct petrel_conn *a, struct petrel_conn *b)
{
    if (a == b || a->thread != b->thread || a->relay != NULL || b->relay != NULL || a->z != NULL ||
        b->z != NULL || closing(a) || closing(b) || a->state != PETREL_CONN_OPEN ||
        b->state != PETREL_CONN_OPEN || a->job_pending || b->job_pending)
        return false;
    a->relay = b;
    b->relay = a;
    schedule(a); /* input already read goes over too */
    schedule(b);
    return true;
}

/* Hand complete input units to the module, one at a time, while it may take
 * them: not during a job, a pending STARTTLS or a close; relayed, to the
 * partner instead. */
static void conn_dispatch(struct petrel_conn *c)
{
    c->partial = false;
    if (c->wake_pending && c->relay == NULL && c->state == PETREL_CONN_OPEN && !c->dead &&
        !c->job_pending && !c->starttls) {
        c->wake_pending = false;
        c->proto->wakeup(c);
    }
    while (c->relay == NULL && c->state == PETREL_CONN_OPEN && !c->dead && !c->job_pending &&
           !c->starttls && c->out.len < (size_t)c->lcfg->max_output && c->in.len > 0) {
        struct petrel_lr_item item;
        enum petrel_lr_event ev =
            petrel_linereader_next(&c->lr, (char *)petrel_buf_head(&c->in), c->in.len, &item);
        if (ev != PETREL_LR_MORE)
            deliver(c, ev, &item);
        petrel_buf_consume(&c->in, item.consumed);
        if (ev == PETREL_LR_MORE) {
            c->partial = true;
            break;
        }
        if (petrel_conn_z_starting(c)) {
            /* The rest was compressed: inflated on the next fill. */
            petrel_conn_z_takeover(c);
            break;
        }
    }
    if (c->relay != NULL) /* from now on, or since a line asked for it */
        relay_move(c);
    if (c->starttls) {
        /* RFC 3207 4.2: nothing sent before the handshake may count. */
        petrel_buf_reset(&c->in);
    }
    if (c->in.len == 0)
        petrel_buf_release(&c->in);
}

void petrel_conn_open_session(struct petrel_conn *c)
{
    c->state = PETREL_CONN_OPEN;
    c->proto_open = true;
    reset_deadline(c);
    petrel_tnode_set(c->thread, &c->timer);
    if (c->proto->connect != NULL)
        c->proto->connect(c);
}

static void tls_ready(struct petrel_conn *c, bool ok)
{
    if (c->proto_open && c->proto->tls_ready != NULL) {
        c->proto->tls_ready(c, ok);
    }
    if (!ok)
        c->dead = true;
}

/* Drive the TLS handshake. Returns false if it failed. */
static bool conn_handshake(struct petrel_conn *c, bool *want_write_r)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1 && c->outbound != NULL && !petrel_outbound_verified(c)) {
        petrel_counter_add(stat.tls_failed, 1);
        tls_ready(c, false);
        return false;
    }
    if (r == 1) {
        petrel_counter_add(stat.tls_ok, 1);
        petrel_conn_log(c, PETREL_LOG_DEBUG, "TLS established: %s %s", SSL_get_version(c->ssl),
                        SSL_get_cipher_name(c->ssl));
        bool starttls = c->proto_open;
        c->state = PETREL_CONN_OPEN;
        c->timer.when = deadline_in(c, c->idle_timeout);
        petrel_tnode_set(c->thread, &c->timer); /* may be sooner than the handshake's */
        if (starttls)
            tls_ready(c, true);
        else
            petrel_conn_open_session(c);
        return true;
    }
    int err = SSL_get_error(c->ssl, r);
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
        *want_write_r = err == SSL_ERROR_WANT_WRITE;
        return true;
    }
    petrel_counter_add(stat.tls_failed, 1);
    const char *why = petrel_tls_error();
    petrel_conn_log(c, PETREL_LOG_INFO, "TLS handshake failed: %s", why);
    if (c->outbound != NULL)
        petrel_outbound_note(c, "TLS handshake failed: %s", why);
    tls_ready(c, false);
    return false;
}

bool petrel_conn_tls_begin(struct petrel_conn *c)
{
    c->ssl = c->outbound != NULL ? petrel_outbound_ssl(c) : SSL_new(c->lcfg->ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        petrel_conn_log(c, PETREL_LOG_ERROR, "TLS setup: %s", petrel_tls_error());
        return false;
    }
    if (c->outbound == NULL)
        SSL_set_accept_state(c->ssl);
    c->state = PETREL_CONN_HANDSHAKE;
    c->starttls = false;
    petrel_conn_set_deadline(c, HANDSHAKE_TIMEOUT);
    return true;
}

/* --- the PROXY protocol and admission --- */

/* Address as text and port of a socket address; zeroes if not IP. */
static void describe(const struct sockaddr *sa, struct petrel_ipaddr *ip, char *text, size_t size,
                     int *port)
{
    if (!petrel_ipaddr_from_sockaddr(sa, ip))
        memset(ip, 0, sizeof(*ip));
    petrel_ipaddr_format(ip, text, size);
    *port = sa->sa_family == AF_INET6  ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
            : sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
                                       : 0;
}

static void set_peer(struct petrel_conn *c, const struct sockaddr *sa)
{
    describe(sa, &c->peer_ip, c->peer, sizeof(c->peer), &c->peer_port);
}

static void set_local(struct petrel_conn *c, const struct sockaddr *sa)
{
    struct petrel_ipaddr ignored;
    describe(sa, &ignored, c->local, sizeof(c->local), &c->local_port);
}

void petrel_conn_set_addresses(struct petrel_conn *c, const struct sockaddr *peer,
                               const struct sockaddr *local)
{
    set_peer(c, peer);
    set_local(c, local);
}

/* Rules at listener, service and global level, then flow control at the
 * deciding rule, the listener and the service. NULL if admitted. */
static const char *admit(struct petrel_conn *c, const struct petrel_rule **rule_r)
{
    const struct petrel_rules *levels[] = {&c->lcfg->rules, &c->scfg->rules, &c->cfg->rules};
    const struct petrel_rule *rule = petrel_rules_decide(levels, 3, &c->peer_ip);
    *rule_r = rule;
    if (rule != NULL && !rule->allow)
        return "denied by rule";
    const char *why = NULL;
    time_t now = c->thread->now;
    if (rule != NULL && rule->state != NULL)
        why = petrel_flow_acquire(rule->state, &rule->flow, &c->peer_ip, false, now, &c->holds[0]);
    /* server.exempt_networks lifts the listener's per-address limits (the
     * defaults) but not those of a rule the administrator wrote. */
    bool exempt = petrel_ipset_contains(&c->cfg->server.exempt_set, &c->peer_ip);
    if (why == NULL && petrel_flow_limited(&c->lcfg->flow))
        why = petrel_flow_acquire(c->listener->flow, &c->lcfg->flow, &c->peer_ip, exempt, now,
                                  &c->holds[1]);
    if (why == NULL) {
        long n = atomic_fetch_add(&c->module->connections, 1) + 1;
        c->service_counted = true;
        if (c->scfg->max_connections && n > c->scfg->max_connections)
            why = "too many connections to the service";
    }
    return why;
}

static void start_session(struct petrel_conn *c)
{
    const struct petrel_rule *rule;
    const char *why = admit(c, &rule);
    if (why != NULL) {
        petrel_counter_add(stat.refused, 1);
        petrel_log(PETREL_LOG_INFO, c->module->name, "conn %llu [%s]:%d refused on %s: %s%s%s",
                   (unsigned long long)c->id, c->peer, c->peer_port, c->listener->address, why,
                   rule ? " at " : "", rule ? rule->where : "");
        /* A TLS listener closes at once: a refused client is not worth a
         * handshake. */
        if (c->proto->refuse != NULL && c->lcfg->tls_mode != PETREL_TLS_IMPLICIT) {
            c->proto_open = true;
            c->proto->refuse(c, why);
        }
        c->state = PETREL_CONN_OPEN; /* so petrel_conn_close() below takes */
        petrel_conn_close(c);
        return;
    }
    petrel_log(PETREL_LOG_DEBUG, c->module->name, "conn %llu [%s]:%d accepted on %s",
               (unsigned long long)c->id, c->peer, c->peer_port, c->listener->address);
    if (c->lcfg->tls_mode == PETREL_TLS_IMPLICIT) {
        if (!petrel_conn_tls_begin(c))
            c->dead = true;
        return;
    }
    petrel_conn_open_session(c);
}

/* Read the PROXY header and not one byte past it: what follows may be a
 * TLS ClientHello that OpenSSL must read from the socket itself. Peek, then
 * take only the header's bytes (all of them while it is incomplete). */
static void read_proxy_header(struct petrel_conn *c)
{
    size_t room;
    char *space = petrel_buf_space(&c->in, PETREL_PROXY_MAX, &room);
    if (c->in.len + room > PETREL_PROXY_MAX)
        room = c->in.len < PETREL_PROXY_MAX ? PETREL_PROXY_MAX - c->in.len : 0;
    ssize_t n = room > 0 ? recv(c->fd, space, room, MSG_PEEK) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        c->dead = true; /* closed, failed, or longer than any valid header */
        return;
    }
    struct petrel_proxy_info info;
    size_t used = 0;
    const char *why = NULL;
    enum petrel_proxy_result r = petrel_proxy_parse((const uint8_t *)petrel_buf_head(&c->in),
                                                    c->in.len + (size_t)n, &info, &used, &why);
    if (r == PETREL_PROXY_ERROR) {
        petrel_conn_log(c, PETREL_LOG_WARNING, "bad PROXY protocol header: %s",
                        why ? why : "invalid");
        c->dead = true;
        return;
    }
    /* The parser saw in.len + n bytes, so the header ends within them. */
    size_t take = (size_t)n;
    if (r == PETREL_PROXY_DONE && used >= c->in.len && used - c->in.len < take)
        take = used - c->in.len;
    if (read(c->fd, space, take) != (ssize_t)take) {
        c->dead = true;
        return;
    }
    petrel_buf_commit(&c->in, take);
    petrel_counter_add(stat.bytes_in, (int64_t)take);
    if (r == PETREL_PROXY_AGAIN)
        return;
    petrel_buf_reset(&c->in);
    if (info.has_addr) {
        set_peer(c, (struct sockaddr *)&info.src);
        set_local(c, (struct sockaddr *)&info.dst);
    }
    start_session(c);
}

/* --- the connection's life --- */

/* Input already read, into the buffer or OpenSSL's, that the module could
 * take now. No socket event announces it: after the output cap held the
 * module back and the peer then took everything at once, or when a TLS
 * record did not fit the input buffer. */
static bool input_waiting(const struct petrel_conn *c)
{
    if (c->state != PETREL_CONN_OPEN || c->dead || c->job_pending || c->starttls)
        return false;
    /* Relayed to a partner that is full: its flush schedules us. */
    if (c->relay != NULL && c->relay->out.len >= (size_t)c->relay->lcfg->max_output)
        return false;
    return (c->in.len > 0 && !c->partial) ||
           (c->ssl != NULL && !c->eof && SSL_pending(c->ssl) > 0) || petrel_conn_z_input_waiting(c);
}

/* One turn: handshake or read, hand input to the module, send output, and
 * decide whether to go on. */
static void conn_turn(struct petrel_conn *c);

void petrel_conn_run(struct petrel_conn *c)
{
    if (!c->dead && c->state == PETREL_CONN_CONNECTING)
        return; /* conn_connect.c drives it until it is connected */
    bool nested = c->in_run;
    c->in_run = true;
    conn_turn(c);
    if (!c->destroyed)
        c->in_run = nested;
}

static void conn_turn(struct petrel_conn *c)
{
    bool tls_wants_write = false;
    c->tls_want_write = false;
    if (!c->dead && c->state == PETREL_CONN_PROXY)
        read_proxy_header(c);
    if (!c->dead && c->state == PETREL_CONN_HANDSHAKE && !conn_handshake(c, &tls_wants_write))
        c->dead = true;
    if (!c->dead && c->state == PETREL_CONN_OPEN) {
        if (!conn_fill(c))
            c->dead = true;
        conn_dispatch(c);
        tls_wants_write |= c->tls_want_write;
    }
    if (!c->dead && !conn_flush(c))
        c->dead = true;
    /* A module streaming a large body queues its next part: once a turn,
     * so one fast socket cannot hold the loop. */
    bool drained_again = false;
    if (!c->dead && c->drain_wanted && out_pending(c) == 0 && c->state == PETREL_CONN_OPEN &&
        !c->job_pending && !c->starttls && c->proto->output_drained != NULL) {
        c->drain_wanted = false;
        c->proto->output_drained(c);
        if (!c->dead && !conn_flush(c))
            c->dead = true;
        drained_again = c->drain_wanted && out_pending(c) == 0;
    }
    if (!c->dead && c->starttls && c->out.len == 0 && c->state == PETREL_CONN_OPEN) {
        if (!petrel_conn_tls_begin(c) || !conn_handshake(c, &tls_wants_write))
            c->dead = true;
    }
    if (!c->dead && out_pending(c) == 0 &&
        (c->state == PETREL_CONN_CLOSING ||
         (c->eof && !c->job_pending && !input_waiting(c) && (c->relay == NULL || c->in.len == 0))))
        c->dead = true;
    if (c->dead) {
        if (!c->job_pending)
            conn_destroy(c);
        else if (c->job_pending && c->events != 0) {
            epoll_ctl(c->thread->epfd, EPOLL_CTL_DEL, c->fd, NULL);
            c->events = 0;
        }
        return;
    }
    /* Between exchanges a compressed connection gives zlib's memory back. */
    if (c->z != NULL && !c->job_pending && !c->drain_wanted && c->in.len == 0)
        petrel_conn_z_rest(c);
    /* Input left over while the module was busy is handled on the next turn:
     * when its job returns, or when the socket turns writable, which it
     * is at once if input waits for nothing else. */
    update_events(c, tls_wants_write || input_waiting(c) || drained_again);
}

static void petrel_conn_event(struct petrel_conn *c, unsigned events)
{
    if (c->destroyed)
        return; /* an event from the same batch as its destruction */
    if (c->state == PETREL_CONN_CONNECTING && !c->dead) {
        petrel_outbound_event(c, events);
        return;
    }
    if (events & (EPOLLERR | EPOLLHUP) && !(events & EPOLLIN)) {
        petrel_conn_log(c, PETREL_LOG_DEBUG, "socket closed");
        c->dead = true;
    }
    petrel_conn_run(c);
}

static void petrel_conn_timeout(struct petrel_conn *c)
{
    if (c->delaying) {
        delay_finish(c);
        return;
    }
    if (c->dead) {
        petrel_conn_run(c);
        return;
    }
    if (c->state == PETREL_CONN_CONNECTING) {
        petrel_outbound_timeout(c);
        return;
    }
    petrel_counter_add(stat.timeouts, 1);
    if (c->state == PETREL_CONN_HANDSHAKE && c->outbound != NULL)
        petrel_outbound_note(c, "TLS handshake timed out");
    if (c->state == PETREL_CONN_OPEN && c->job_pending) {
        petrel_conn_set_deadline(c, c->idle_timeout); /* busy, not idle */
        return;
    }
    if (c->state != PETREL_CONN_OPEN) {
        petrel_conn_log(c, PETREL_LOG_INFO, "timed out %s",
                        c->state == PETREL_CONN_PROXY       ? "waiting for the PROXY header"
                        : c->state == PETREL_CONN_HANDSHAKE ? "in the TLS handshake"
                                                            : "sending its last output");
        c->dead = true;
        petrel_conn_run(c);
        return;
    }
    if (c->slow_bytes > 0)
        petrel_conn_log(c, PETREL_LOG_INFO,
                        "too slow: %llu bytes in %llds without an answer, under min_data_rate "
                        "%lld bytes/s: closing",
                        (unsigned long long)c->slow_bytes,
                        (long long)((c->thread->now_ms - c->slow_since) / 1000),
                        c->lcfg->min_data_rate);
    else
        petrel_conn_log(c, PETREL_LOG_INFO, "idle for %ds: closing", c->idle_timeout);
    if (c->proto->timeout != NULL && c->relay == NULL) /* no text inside a relayed stream */
        c->proto->timeout(c);
    petrel_conn_close(c);
    petrel_conn_run(c);
}

static void petrel_conn_shutdown(struct petrel_conn *c)
{
    if (c->job_pending)
        return; /* asked again when its job returns */
    if (c->state == PETREL_CONN_OPEN && c->proto_open && !c->dead) {
        if (c->proto->shutdown != NULL && c->relay == NULL)
            c->proto->shutdown(c);
        petrel_conn_close(c);
    } else if (c->state != PETREL_CONN_CLOSING) {
        if (c->outbound != NULL && !c->proto_open)
            petrel_outbound_note(c, "the server is stopping");
        c->dead = true;
    }
    petrel_conn_run(c);
}

void petrel_conns_shutdown(struct petrel_loop *t)
{
    for (struct petrel_conn *c = t->conns, *next; c != NULL; c = next) {
        next = c->next;
        petrel_conn_shutdown(c);
    }
}

void petrel_conns_abort(struct petrel_loop *t)
{
    for (struct petrel_conn *c = t->conns, *next; c != NULL; c = next) {
        next = c->next;
        petrel_conn_abort(c);
    }
}

static void petrel_conn_abort(struct petrel_conn *c)
{
    if (c->outbound != NULL && !c->proto_open)
        petrel_outbound_note(c, "the server is stopping");
    c->dead = true;
    if (c->delaying) {
        delay_finish(c); /* done sees closing, then the connection goes */
        return;
    }
    petrel_conn_run(c);
}

static void conn_event(struct petrel_loop *t, struct petrel_evsrc *src, unsigned events)
{
    (void)t;
    petrel_conn_event((struct petrel_conn *)src, events);
}

static void conn_timeout(struct petrel_tnode *n)
{
    petrel_conn_timeout((struct petrel_conn *)((char *)n - offsetof(struct petrel_conn, timer)));
}

struct petrel_conn *petrel_conn_new(struct petrel_loop *t, struct petrel_ctx *module,
                                    const struct petrel_protocol *proto,
                                    const struct petrel_listener_cfg *lcfg,
                                    const struct petrel_service_cfg *scfg,
                                    struct petrel_config *cfg)
{
    struct petrel_conn *c = petrel_calloc(1, sizeof(*c));
    c->ev.handle = conn_event;
    c->timer.fire = conn_timeout;
    c->timer.idx = SIZE_MAX;
    c->id = atomic_fetch_add(&next_id, 1);
    c->fd = -1;
    c->thread = t;
    c->cfg = cfg;
    c->lcfg = lcfg;
    c->scfg = scfg;
    c->proto = proto;
    c->module = module;
    c->idle_timeout = (int)lcfg->idle_timeout; /* a duration setting: days at most */
    size_t in_max = (size_t)lcfg->max_line + 2;
    petrel_buf_init(&c->in, in_max < IN_MIN ? IN_MIN : in_max);
    petrel_buf_init(&c->out, (size_t)lcfg->max_output * OUT_HARD_FACTOR);
    petrel_linereader_init(&c->lr, (size_t)lcfg->max_line);
    if (proto->session_size > 0)
        c->session = petrel_calloc(1, proto->session_size);
    c->next = t->conns;
    if (t->conns != NULL)
        t->conns->prev = c;
    t->conns = c;
    atomic_fetch_add(&t->nconns, 1);
    atomic_fetch_add(&petrel_server.nconns, 1);
    petrel_counter_add(stat.current, 1);
    return c;
}

/* Output is gathered into whole answers and sent once a turn, so Nagle's
 * algorithm only adds a delayed-ACK wait (40 ms) between an answer and the
 * next one a protocol sends unasked. */
void petrel_conn_nodelay(struct petrel_conn *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Register the connection's socket with its loop for events. */
bool petrel_conn_watch(struct petrel_conn *c, unsigned events)
{
    struct epoll_event e = {.events = events, .data.ptr = c};
    if (epoll_ctl(c->thread->epfd, EPOLL_CTL_ADD, c->fd, &e) < 0) {
        petrel_conn_log(c, PETREL_LOG_ERROR, "epoll add: %s", strerror(errno));
        return false;
    }
    c->events = events;
    return true;
}

void petrel_conn_accept(struct petrel_loop *t, struct petrel_listener *l, int fd,
                        const struct sockaddr *peer, const struct sockaddr *local)
{
    pthread_rwlock_rdlock(&petrel_server.gen_lock);
    struct petrel_conn *c = petrel_conn_new(t, l->module, l->proto, l->cfg, l->svc,
                                            petrel_config_ref(petrel_server.cfg));
    pthread_rwlock_unlock(&petrel_server.gen_lock);
    atomic_fetch_add(&l->refs, 1);
    c->listener = l;
    c->fd = fd;
    petrel_conn_nodelay(c);
    petrel_conn_set_addresses(c, peer, local);
    petrel_counter_add(stat.accepted, 1);
    if (!petrel_conn_watch(c, EPOLLIN)) {
        c->dead = true;
        conn_destroy(c);
        return;
    }
    if (c->lcfg->proxy_protocol && petrel_ipset_contains(&c->lcfg->proxy_set, &c->peer_ip)) {
        c->state = PETREL_CONN_PROXY;
        petrel_conn_set_deadline(c, PROXY_TIMEOUT);
        return;
    }
    start_session(c);
    petrel_conn_run(c);
}

static void conn_destroy(struct petrel_conn *c)
{
    struct petrel_loop *t = c->thread;
    if (c->outbound != NULL)
        petrel_outbound_ending(c); /* connect_failed, if it never opened */
    if (c->relay != NULL) {
        /* The partner sends what it has from us, then closes too. */
        c->relay->relay = NULL;
        petrel_conn_close(c->relay);
        c->relay = NULL;
    }
    petrel_login_drop(c);
    if (c->proto_open && c->proto->close != NULL)
        c->proto->close(c);
    if (c->waker != NULL) {
        c->waker->conn = NULL;
        petrel_conn_waker_release(c->waker);
    }
    petrel_log(PETREL_LOG_DEBUG, c->module->name, "conn %llu [%s]:%d closed",
               (unsigned long long)c->id, c->peer, c->peer_port);
    for (size_t i = 0; i < sizeof(c->holds) / sizeof(c->holds[0]); i++)
        petrel_flow_release(&c->holds[i], &c->peer_ip);
    if (c->service_counted)
        atomic_fetch_sub(&c->module->connections, 1);
    petrel_tnode_remove(t, &c->timer);
    if (c->ssl != NULL) {
        if (SSL_is_init_finished(c->ssl))
            SSL_shutdown(c->ssl); /* best effort close_notify */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd); /* also drops it from epoll */
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    petrel_buf_free(&c->in);
    petrel_buf_free(&c->out);
    petrel_conn_z_free(c);
    free(c->session);
    petrel_config_unref(c->cfg);
    if (c->listener != NULL)
        petrel_listener_unref(c->listener);
    petrel_outbound_free(c->outbound);
    c->destroyed = true;
    c->next = t->graveyard;
    t->graveyard = c;
    atomic_fetch_sub(&t->nconns, 1);
    atomic_fetch_sub(&petrel_server.nconns, 1);
    petrel_counter_add(stat.current, -1);
}

void petrel_conn_bury(struct petrel_loop *t)
{
    while (t->graveyard != NULL) {
        struct petrel_conn *c = t->graveyard;
        t->graveyard = c->next;
        free(c);
    }
}
