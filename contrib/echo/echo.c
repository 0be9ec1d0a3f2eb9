/* An example third-party Petrel module, built outside the Petrel tree
 * against the installed headers (pkg-config petrel). It serves a small
 * line protocol that exercises what the core offers a protocol module:
 * lines, STARTTLS, the worker pool, error limits, timeouts and refusals.
 *
 *   ECHO text      +OK text
 *   FORTUNE        +OK one of the configured fortunes
 *   SLOW ms        sleeps ms on a worker thread, then +OK slept ms
 *   DELAY ms       holds the connection ms without a thread, then +OK delayed ms
 *   WAKE ms        +OK at once; a worker wakes the connection after ms, which
 *                  then writes "* woken" (how IMAP IDLE learns of new mail)
 *   STARTTLS       +OK begin TLS, then the handshake
 *   INFO           +OK tls=yes|no peer=ADDRESS sni=NAME
 *   TIMER ms       +OK at once, then "* timer" after ms from a loop timer
 *   ECHO-FETCH host port [plain|tls|starttls] [noverify] [ca=FILE] [name=NAME]
 *              [showcert]
 *                  +OK at once; connects out, reads the server's first line
 *                  (with starttls: upgrades with STARTTLS and reads its
 *                  INFO line) and writes "* fetched LINE" (showcert: then
 *                  the size of the peer's certificates in DER), or
 *                  "* fetch failed REASON"
 *   ECHO-PROXY host port
 *                  connects out, then "+OK connected" and from then on
 *                  relays bytes both ways (what a front-end proxy does)
 *   STREAM n       n lines of 1 KiB, sent a part at a time as the client
 *                  reads (output_drained), then +OK streamed n
 *   TIMEOUT s      this connection's idle timeout becomes s seconds
 *   QUIT           +OK bye, then close
 *
 * It also shows the mail hooks (petrel/smtp.h): with blocked_recipients
 * set, RCPT TO one of them is refused at the smtp.rcpt hook; with stamp
 * set, every accepted message gets an "X-Echo-Stamp:" header at the
 * smtp.data hook. Hooks run on worker threads, so they read the settings
 * from a configuration generation they hold (petrel_ctx_config_ref).
 * With session_header on, it keeps a record per SMTP session in the
 * session slot, as a greylisting plugin would: made at smtp.mail, counted
 * at smtp.rcpt, shown at smtp.data in an "X-Echo-Session:" header, and
 * freed at smtp.disconnect with a log line.
 *
 * And an administration command (petrel/admin.h): `petrelctl echo stats`
 * shows its settings and, while the server runs, how many lines it has
 * echoed; with the server stopped petrelctl runs it in its own process,
 * where nothing has been echoed, and says so.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include <petrel/petrel.h>

#define SLOW_MAX_MS 10000

struct echo_config {
    char *greeting;
    char **fortunes;
    char **blocked_recipients;
    char *stamp;
    bool session_header;
};

struct fetch;

struct echo_session {
    unsigned errors;
    unsigned next_fortune;
    struct petrel_timer *timer; /* TIMER: removed when the session closes */
    struct fetch *fetch;        /* ECHO-FETCH or ECHO-PROXY in progress */
    unsigned long stream_left;  /* STREAM lines still to send */
    unsigned long stream_total;
};

static struct petrel_ctx *echo_ctx;
/* For `echo stats`: counted on every I/O thread. */
static atomic_ulong echo_echoed, echo_sessions;

static const struct petrel_setting echo_settings[] = {
    PETREL_SETTING_STRING(struct echo_config, greeting, "petrel echo ready"),
    PETREL_SETTING_STRLIST(struct echo_config, fortunes, NULL),
    PETREL_SETTING_STRLIST(struct echo_config, blocked_recipients, NULL),
    PETREL_SETTING_STRING(struct echo_config, stamp, ""),
    /* FIXED: its hooks are registered at init, and only when it is on, so
     * that without it MAIL costs no trip to a worker. */
    PETREL_SETTING_BOOL_F(struct echo_config, session_header, "false", PETREL_SETTING_FIXED),
    PETREL_SETTINGS_END,
};

static void echo_connect(struct petrel_conn *conn)
{
    const struct echo_config *cfg = petrel_conn_config(conn);
    atomic_fetch_add(&echo_sessions, 1);
    petrel_conn_printf(conn, "+OK %s\r\n", cfg->greeting);
}

/* Count a protocol error; past the service's max_errors, hang up. */
static void echo_error(struct petrel_conn *conn, const char *text)
{
    struct echo_session *s = petrel_conn_session(conn);
    struct petrel_error_limits limits;
    petrel_conn_error_limits(conn, &limits);
    s->errors++;
    if (limits.max_errors != 0 && s->errors >= limits.max_errors) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "too many errors (%u): closing", s->errors);
        petrel_conn_printf(conn, "-ERR %s; too many errors, closing\r\n", text);
        petrel_conn_close(conn);
        return;
    }
    petrel_conn_printf(conn, "-ERR %s\r\n", text);
}

struct slow_job {
    long ms;
};

static void slow_work(void *arg)
{
    struct slow_job *job = arg;
    struct timespec ts = {job->ms / 1000, (job->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void slow_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct slow_job *job = arg;
    if (!closing)
        petrel_conn_printf(conn, "+OK slept %ld\r\n", job->ms);
    free(job);
}

static long parse_ms(struct petrel_conn *conn, const char *cmd, const char *arg)
{
    char *end;
    long ms = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || ms < 0 || ms > SLOW_MAX_MS) {
        char text[80];
        snprintf(text, sizeof(text), "%s takes milliseconds from 0 to %d", cmd, SLOW_MAX_MS);
        echo_error(conn, text);
        return -1;
    }
    return ms;
}

static void cmd_slow(struct petrel_conn *conn, const char *arg)
{
    long ms = parse_ms(conn, "SLOW", arg);
    if (ms < 0)
        return;
    struct slow_job *job = petrel_malloc(sizeof(*job));
    job->ms = ms;
    if (!petrel_conn_submit(conn, slow_work, slow_done, job)) {
        free(job);
        petrel_conn_printf(conn, "-ERR server busy, try again later\r\n");
    }
}

static void delay_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct slow_job *job = arg;
    if (!closing)
        petrel_conn_printf(conn, "+OK delayed %ld\r\n", job->ms);
    free(job);
}

static void cmd_delay(struct petrel_conn *conn, const char *arg)
{
    long ms = parse_ms(conn, "DELAY", arg);
    if (ms < 0)
        return;
    struct slow_job *job = petrel_malloc(sizeof(*job));
    job->ms = ms;
    if (!petrel_conn_delay(conn, (unsigned)ms, delay_done, job)) {
        free(job);
        echo_error(conn, "cannot delay now");
    }
}

/* The worker holds its own reference to the waker, so it may outlive the
 * connection safely. */
struct wake_job {
    long ms;
    struct petrel_conn_waker *waker;
};

static void wake_work(void *arg)
{
    struct wake_job *job = arg;
    struct timespec ts = {job->ms / 1000, (job->ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    petrel_conn_wake(job->waker);
    petrel_conn_waker_release(job->waker);
    free(job);
}

static void cmd_wake(struct petrel_conn *conn, const char *arg)
{
    long ms = parse_ms(conn, "WAKE", arg);
    if (ms < 0)
        return;
    struct wake_job *job = petrel_malloc(sizeof(*job));
    job->ms = ms;
    job->waker = petrel_conn_waker_get(conn);
    if (!petrel_worker_submit(wake_work, job)) {
        petrel_conn_waker_release(job->waker);
        free(job);
        petrel_conn_printf(conn, "-ERR server busy, try again later\r\n");
        return;
    }
    petrel_conn_printf(conn, "+OK waking in %ld\r\n", ms);
}

static void echo_wakeup(struct petrel_conn *conn) { petrel_conn_printf(conn, "* woken\r\n"); }

static void cmd_fortune(struct petrel_conn *conn)
{
    const struct echo_config *cfg = petrel_conn_config(conn);
    struct echo_session *s = petrel_conn_session(conn);
    size_t n = 0;
    while (cfg->fortunes != NULL && cfg->fortunes[n] != NULL)
        n++;
    if (n == 0) {
        petrel_conn_printf(conn, "+OK no fortunes configured\r\n");
        return;
    }
    petrel_conn_printf(conn, "+OK %s\r\n", cfg->fortunes[s->next_fortune++ % n]);
}

/* --- TIMER: a one-shot loop timer tied to the session --- */

static void timer_fired(void *ctx)
{
    struct petrel_conn *conn = ctx;
    petrel_conn_printf(conn, "* timer\r\n");
}

static void cmd_timer(struct petrel_conn *conn, const char *arg)
{
    struct echo_session *s = petrel_conn_session(conn);
    long ms = parse_ms(conn, "TIMER", arg);
    if (ms < 0)
        return;
    /* Runs on this connection's loop, so it never races the session. */
    if (s->timer != NULL)
        petrel_timer_reset(s->timer, (unsigned)ms);
    else
        s->timer = petrel_timer_add(NULL, (unsigned)ms, false, timer_fired, conn);
    petrel_conn_printf(conn, "+OK timer in %ld\r\n", ms);
}

/* --- ECHO-FETCH: an outbound connection --- */

/* Shared by the client's session and the outbound connection's; both live
 * on the same loop (a connection is opened on the caller's), and each side
 * forgets the other when it closes. */
struct fetch {
    struct petrel_conn *client, *remote;
    bool starttls;
    bool proxy;    /* ECHO-PROXY: relay once connected */
    bool showcert; /* add the sizes of the peer's certificates */
    int step;      /* lines read from the remote so far */
};

struct fetch_session {
    struct fetch *fetch;
};

static struct fetch *fetch_of(struct petrel_conn *remote)
{
    return ((struct fetch_session *)petrel_conn_session(remote))->fetch;
}

static void fetch_end(struct fetch *f, const char *fmt, const char *text)
{
    if (f->client != NULL) {
        struct echo_session *s = petrel_conn_session(f->client);
        petrel_conn_printf(f->client, fmt, text);
        s->fetch = NULL;
        f->client = NULL;
    }
    if (f->remote != NULL)
        petrel_conn_close(f->remote);
}

static void fetch_connect(struct petrel_conn *conn)
{
    struct fetch *f = fetch_of(conn);
    if (!f->proxy || f->client == NULL)
        return;
    struct petrel_conn *client = f->client;
    petrel_conn_printf(client, "+OK connected\r\n");
    if (!petrel_conn_relay(client, conn)) {
        fetch_end(f, "* fetch failed %s\r\n", "cannot relay");
        return;
    }
    /* From here the core carries the bytes and closes each side after the
     * other: the sessions forget each other. */
    ((struct echo_session *)petrel_conn_session(client))->fetch = NULL;
    f->client = NULL;
}

static void fetch_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct fetch *f = fetch_of(conn);
    (void)len;
    if (f->starttls && f->step == 0) {
        petrel_conn_printf(conn, "STARTTLS\r\n"); /* after the greeting */
    } else if (f->starttls && f->step == 1) {
        if (strncmp(line, "+OK", 3) != 0 || !petrel_conn_starttls(conn)) {
            fetch_end(f, "* fetch failed STARTTLS refused: %s\r\n", line);
            return;
        }
    } else if (f->showcert) {
        /* What DANE would hash: the peer's own certificate and its chain. */
        char text[600];
        size_t used = (size_t)snprintf(text, sizeof(text), "%.400s certs=", line);
        struct petrel_buf der;
        petrel_buf_init(&der, 1 << 20);
        for (size_t depth = 0; used < sizeof(text) - 16; depth++) {
            petrel_buf_reset(&der);
            if (!petrel_conn_tls_peer_cert(conn, depth, &der))
                break;
            used += (size_t)snprintf(text + used, sizeof(text) - used, "%s%zu", depth ? "," : "",
                                     der.len);
        }
        petrel_buf_free(&der);
        fetch_end(f, "* fetched %s\r\n", text);
        return;
    } else {
        fetch_end(f, "* fetched %s\r\n", line);
        return;
    }
    f->step++;
}

static void fetch_tls_ready(struct petrel_conn *conn, bool ok)
{
    struct fetch *f = fetch_of(conn);
    const char *why = NULL;
    if (!ok) {
        petrel_conn_tls_verified(conn, &why);
        fetch_end(f, "* fetch failed TLS: %s\r\n", why != NULL ? why : "handshake failed");
        return;
    }
    petrel_conn_printf(conn, "INFO\r\n");
}

static void fetch_failed(struct petrel_conn *conn, const char *reason)
{
    struct fetch *f = fetch_of(conn);
    f->remote = NULL; /* already going */
    fetch_end(f, "* fetch failed %s\r\n", reason);
}

static void fetch_close(struct petrel_conn *conn)
{
    struct fetch *f = fetch_of(conn);
    f->remote = NULL;
    fetch_end(f, "* fetch failed %s\r\n", "closed by the server");
    free(f);
}

static void fetch_timeout(struct petrel_conn *conn)
{
    struct fetch *f = fetch_of(conn);
    fetch_end(f, "* fetch failed %s\r\n", "timed out");
}

static const struct petrel_protocol fetch_protocol = {
    .name = "echo-fetch",
    .session_size = sizeof(struct fetch_session),
    .connect = fetch_connect,
    .line = fetch_line,
    .timeout = fetch_timeout,
    .tls_ready = fetch_tls_ready,
    .connect_failed = fetch_failed,
    .close = fetch_close,
};

static void cmd_fetch(struct petrel_conn *conn, char *arg, bool proxy)
{
    struct echo_session *s = petrel_conn_session(conn);
    if (s->fetch != NULL) {
        echo_error(conn, "a fetch is already running");
        return;
    }
    struct petrel_connect how = {.connect_timeout = 5, .idle_timeout = 10, .tls_verify = true};
    bool starttls = false, showcert = false;
    char *save = NULL, *port = NULL;
    how.host = strtok_r(arg, " ", &save);
    port = strtok_r(NULL, " ", &save);
    how.port = port != NULL ? atoi(port) : 0;
    for (char *opt; (opt = strtok_r(NULL, " ", &save)) != NULL;) {
        if (strcasecmp(opt, "tls") == 0)
            how.tls = true;
        else if (strcasecmp(opt, "starttls") == 0)
            starttls = true;
        else if (strcasecmp(opt, "noverify") == 0)
            how.tls_verify = false;
        else if (strcasecmp(opt, "showcert") == 0)
            showcert = true;
        else if (strncasecmp(opt, "ca=", 3) == 0)
            how.tls_ca_file = opt + 3;
        else if (strncasecmp(opt, "name=", 5) == 0)
            how.tls_name = opt + 5;
        else if (strcasecmp(opt, "plain") != 0) {
            echo_error(conn, "ECHO-FETCH host port [plain|tls|starttls] [noverify] [ca=FILE] "
                             "[name=NAME] [showcert]");
            return;
        }
    }
    const char *error = "a host and a port are needed";
    struct petrel_conn *remote =
        how.host != NULL ? petrel_conn_connect(echo_ctx, &fetch_protocol, &how, &error) : NULL;
    if (remote == NULL) {
        echo_error(conn, error);
        return;
    }
    struct fetch *f = petrel_calloc(1, sizeof(*f));
    f->client = conn;
    f->remote = remote;
    f->starttls = starttls;
    f->proxy = proxy;
    f->showcert = showcert;
    ((struct fetch_session *)petrel_conn_session(remote))->fetch = f;
    s->fetch = f;
    if (!proxy)
        petrel_conn_printf(conn, "+OK fetching\r\n");
}

/* --- STREAM: a large answer, a part at a time --- */

#define STREAM_PART 16 /* lines per part: 16 KiB, far under the output limit */

static void echo_drained(struct petrel_conn *conn)
{
    struct echo_session *s = petrel_conn_session(conn);
    char line[1024];
    memset(line, 'x', sizeof(line) - 2);
    memcpy(line + sizeof(line) - 2, "\r\n", 2);
    for (int i = 0; i < STREAM_PART && s->stream_left > 0; i++, s->stream_left--)
        petrel_conn_write(conn, line, sizeof(line));
    if (s->stream_left > 0)
        petrel_conn_want_drained(conn); /* called again once this part is out */
    else
        petrel_conn_printf(conn, "+OK streamed %lu\r\n", s->stream_total);
}

static void cmd_stream(struct petrel_conn *conn, const char *arg)
{
    struct echo_session *s = petrel_conn_session(conn);
    char *end;
    unsigned long n = strtoul(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || n > 1024 * 1024) {
        echo_error(conn, "STREAM takes a number of lines up to 1048576");
        return;
    }
    s->stream_left = s->stream_total = n;
    echo_drained(conn);
}

static void cmd_timeout(struct petrel_conn *conn, const char *arg)
{
    char *end;
    long sec = strtol(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || sec < 1 || sec > 3600) {
        echo_error(conn, "TIMEOUT takes seconds from 1 to 3600");
        return;
    }
    petrel_conn_set_timeout(conn, (unsigned)sec);
    petrel_conn_printf(conn, "+OK timeout %ld\r\n", sec);
}

static void echo_line(struct petrel_conn *conn, char *line, size_t len)
{
    if (strlen(line) != len) {
        echo_error(conn, "NUL byte in command");
        return;
    }
    char *arg = strchr(line, ' ');
    if (arg != NULL)
        *arg++ = '\0';
    else
        arg = line + len;
    if (strcasecmp(line, "ECHO") == 0) {
        atomic_fetch_add(&echo_echoed, 1);
        petrel_conn_printf(conn, "+OK %s\r\n", arg);
    } else if (strcasecmp(line, "FORTUNE") == 0) {
        cmd_fortune(conn);
    } else if (strcasecmp(line, "SLOW") == 0) {
        cmd_slow(conn, arg);
    } else if (strcasecmp(line, "DELAY") == 0) {
        cmd_delay(conn, arg);
    } else if (strcasecmp(line, "WAKE") == 0) {
        cmd_wake(conn, arg);
    } else if (strcasecmp(line, "STARTTLS") == 0) {
        if (!petrel_conn_can_starttls(conn)) {
            echo_error(conn, petrel_conn_is_tls(conn) ? "already using TLS"
                                                      : "STARTTLS not offered here");
            return;
        }
        petrel_conn_printf(conn, "+OK begin TLS\r\n");
        petrel_conn_starttls(conn);
    } else if (strcasecmp(line, "INFO") == 0) {
        const char *sni = petrel_conn_tls_sni(conn);
        petrel_conn_printf(conn, "+OK tls=%s peer=%s sni=%s\r\n",
                           petrel_conn_is_tls(conn) ? "yes" : "no", petrel_conn_peer(conn),
                           sni ? sni : "-");
    } else if (strcasecmp(line, "TIMER") == 0) {
        cmd_timer(conn, arg);
    } else if (strcasecmp(line, "ECHO-FETCH") == 0) {
        cmd_fetch(conn, arg, false);
    } else if (strcasecmp(line, "ECHO-PROXY") == 0) {
        cmd_fetch(conn, arg, true);
    } else if (strcasecmp(line, "STREAM") == 0) {
        cmd_stream(conn, arg);
    } else if (strcasecmp(line, "TIMEOUT") == 0) {
        cmd_timeout(conn, arg);
    } else if (strcasecmp(line, "QUIT") == 0) {
        petrel_conn_printf(conn, "+OK bye\r\n");
        petrel_conn_close(conn);
    } else {
        echo_error(conn, "unknown command");
    }
}

static void echo_line_too_long(struct petrel_conn *conn) { echo_error(conn, "line too long"); }

static void echo_timeout(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "-ERR idle timeout, closing\r\n");
}

static void echo_refuse(struct petrel_conn *conn, const char *reason)
{
    petrel_conn_printf(conn, "-ERR access denied: %s\r\n", reason);
}

static void echo_tls_ready(struct petrel_conn *conn, bool ok)
{
    /* Nothing from before the handshake survives; the client speaks first. */
    struct echo_session *s = petrel_conn_session(conn);
    s->errors = 0;
}

/* What the session holds that outlives a callback: its timer, and the
 * link to a fetch still running (which then reports to nobody). */
static void echo_close(struct petrel_conn *conn)
{
    struct echo_session *s = petrel_conn_session(conn);
    petrel_timer_remove(s->timer);
    if (s->fetch != NULL) {
        s->fetch->client = NULL;
        if (s->fetch->remote != NULL)
            petrel_conn_close(s->fetch->remote);
    }
}

static void echo_shutdown(struct petrel_conn *conn)
{
    petrel_conn_printf(conn, "-ERR server shutting down\r\n");
}

static const struct petrel_protocol echo_protocol = {
    .name = "echo",
    .session_size = sizeof(struct echo_session),
    .connect = echo_connect,
    .line = echo_line,
    .line_too_long = echo_line_too_long,
    .timeout = echo_timeout,
    .refuse = echo_refuse,
    .tls_ready = echo_tls_ready,
    .shutdown = echo_shutdown,
    .wakeup = echo_wakeup,
    .close = echo_close,
    .output_drained = echo_drained,
};

static int echo_check(const void *config, const char **error_r)
{
    const struct echo_config *cfg = config;
    if (strlen(cfg->greeting) > 200 || strpbrk(cfg->greeting, "\r\n") != NULL) {
        *error_r = "greeting must be one line of at most 200 characters";
        return -1;
    }
    if (strlen(cfg->stamp) > 200 || strpbrk(cfg->stamp, "\r\n") != NULL) {
        *error_r = "stamp must be one line of at most 200 characters";
        return -1;
    }
    return 0;
}

/* --- mail hooks --- */

/* Hooks run on worker threads: each takes the current configuration
 * generation for its whole run (hook_data is the module's ctx), so a
 * reload can never change the settings under it. */

/* What the hooks keep in an SMTP session's slot (session_header). */
struct echo_smtp_record {
    unsigned long serial; /* this process's count of recorded sessions */
    uint64_t conn_id;     /* as smtp.mail saw it */
    unsigned mails, rcpts;
    bool other_conn; /* a later event of the slot named another connection */
};

static atomic_ulong echo_smtp_serial;

/* The session's record, made on first use: the slot is NULL when a session
 * starts, and only this module sets it. */
static struct echo_smtp_record *smtp_record(void **slot, uint64_t conn_id)
{
    struct echo_smtp_record *r = *slot;
    if (r == NULL) {
        r = petrel_calloc(1, sizeof(*r));
        r->serial = atomic_fetch_add(&echo_smtp_serial, 1) + 1;
        r->conn_id = conn_id;
        *slot = r;
    }
    r->other_conn = r->other_conn || r->conn_id != conn_id;
    return r;
}

static enum petrel_verdict mail_hook(void *data, void *event, const char **reason_r)
{
    const struct petrel_smtp_mail_event *ev = event;
    smtp_record(ev->session_slot, ev->conn_id)->mails++;
    return PETREL_CONTINUE;
}

static enum petrel_verdict disconnect_hook(void *data, void *event, const char **reason_r)
{
    const struct petrel_smtp_disconnect_event *ev = event;
    struct echo_smtp_record *r = *ev->session_slot;
    petrel_log(PETREL_LOG_INFO, "echo", "smtp session %lu (conn %llu) ended after %u messages",
               r->serial, (unsigned long long)ev->conn_id, r->mails);
    free(r);
    *ev->session_slot = NULL;
    return PETREL_CONTINUE;
}

static enum petrel_verdict rcpt_hook(void *data, void *event, const char **reason_r)
{
    struct petrel_ctx *ctx = data;
    const struct petrel_smtp_rcpt_event *ev = event;
    enum petrel_verdict v = PETREL_CONTINUE;
    struct petrel_config *gen = petrel_ctx_config_ref(ctx);
    const struct echo_config *cfg = petrel_config_settings(gen, ctx);
    if (cfg->session_header)
        smtp_record(ev->session_slot, ev->conn_id)->rcpts++;
    for (size_t i = 0; cfg->blocked_recipients != NULL && cfg->blocked_recipients[i] != NULL; i++)
        if (strcasecmp(cfg->blocked_recipients[i], ev->rcpt) == 0)
            v = PETREL_DENY;
    petrel_config_unref(gen);
    if (v == PETREL_DENY)
        *reason_r = "recipient blocked by the echo example module";
    return v;
}

static enum petrel_verdict data_hook(void *data, void *event, const char **reason_r)
{
    (void)reason_r;
    struct petrel_ctx *ctx = data;
    const struct petrel_smtp_data_event *ev = event;
    struct petrel_config *gen = petrel_ctx_config_ref(ctx);
    const struct echo_config *cfg = petrel_config_settings(gen, ctx);
    if (cfg->stamp[0] != '\0')
        petrel_buf_printf(ev->add_header, "X-Echo-Stamp: %s (queue id %s)\r\n", cfg->stamp,
                          ev->queue_id);
    if (cfg->session_header && ev->session_slot != NULL) {
        const struct echo_smtp_record *r = smtp_record(ev->session_slot, ev->conn_id);
        petrel_buf_printf(ev->add_header,
                          "X-Echo-Session: session=%lu conn=%llu mails=%u rcpts=%u%s\r\n",
                          r->serial, (unsigned long long)ev->conn_id, r->mails, r->rcpts,
                          r->other_conn ? " other-conn" : "");
    }
    petrel_config_unref(gen);
    return PETREL_CONTINUE;
}

static int echo_init(struct petrel_ctx *ctx, const void *config, const char **error_r)
{
    if (petrel_protocol_register(ctx, &echo_protocol) < 0 ||
        petrel_hook_register(ctx, PETREL_HOOK_SMTP_RCPT, 100, rcpt_hook, ctx) < 0 ||
        petrel_hook_register(ctx, PETREL_HOOK_SMTP_DATA, 100, data_hook, ctx) < 0) {
        *error_r = "cannot register the echo protocol and hooks";
        return -1;
    }
    const struct echo_config *cfg = config;
    if (cfg->session_header &&
        (petrel_hook_register(ctx, PETREL_HOOK_SMTP_MAIL, 100, mail_hook, ctx) < 0 ||
         petrel_hook_register(ctx, PETREL_HOOK_SMTP_DISCONNECT, 100, disconnect_hook, ctx) < 0)) {
        *error_r = "cannot register the echo session hooks";
        return -1;
    }
    echo_ctx = ctx;
    return 0;
}

/* --- administration --- */

/* One row: the settings petrelctl read (online: the running generation),
 * and the counters, which exist only in the running server. */
static int echo_stats(struct petrel_admin_call *call, int argc, char **argv)
{
    if (argc != 0)
        return petrel_admin_usage(call);
    const struct echo_config *cfg = petrel_admin_config(call);
    size_t nfortunes = 0;
    while (cfg->fortunes != NULL && cfg->fortunes[nfortunes] != NULL)
        nfortunes++;
    bool online = petrel_admin_online(call);
    petrel_admin_str(call, "server", online ? "running" : "stopped");
    petrel_admin_str(call, "greeting", cfg->greeting);
    petrel_admin_int(call, "fortunes", (int64_t)nfortunes);
    if (online) {
        petrel_admin_int(call, "sessions", (int64_t)atomic_load(&echo_sessions));
        petrel_admin_int(call, "echoed", (int64_t)atomic_load(&echo_echoed));
    } else {
        petrel_admin_str(call, "sessions", NULL);
        petrel_admin_str(call, "echoed", NULL);
    }
    petrel_admin_row_end(call);
    return 0;
}

static const struct petrel_admin_command echo_admin[] = {
    {"echo stats", "", "the echo module's settings and counters",
     PETREL_ADMIN_ONLINE | PETREL_ADMIN_OFFLINE, echo_stats},
    {NULL, NULL, NULL, 0, NULL},
};

PETREL_MODULE(.name = "echo", .version = "1.0", .settings = echo_settings,
              .config_size = sizeof(struct echo_config), .check = echo_check, .init = echo_init,
              .admin = echo_admin);
