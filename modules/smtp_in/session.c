/* The SMTP session (RFC 5321): greeting, the command loop, HELO/EHLO,
 * STARTTLS and the small commands. MAIL and RCPT are in rcpt.c, DATA and
 * BDAT in data.c, AUTH in auth.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include <petrel/login.h>

#include "smtp_in.h"

/* Reply texts may come from hooks: one line of printable text. */
static void one_line(char *text)
{
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

void smtp_reply(struct petrel_conn *conn, int code, const char *enhanced, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    one_line(text);
    petrel_conn_printf(conn, "%d %s %s\r\n", code, enhanced, text);
}

void smtp_error(struct petrel_conn *conn, int code, const char *enhanced, const char *fmt, ...)
{
    struct smtp_session *s = petrel_conn_session(conn);
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    one_line(text);
    struct petrel_error_limits lim;
    petrel_conn_error_limits(conn, &lim);
    if (lim.max_errors > 0 && ++s->errors >= lim.max_errors) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "too many errors (%u), last: %d %s %s", s->errors,
                        code, enhanced, text);
        petrel_conn_printf(conn, "421 4.7.0 %s Error: too many errors\r\n", smtp_hostname);
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    petrel_conn_printf(conn, "%d %s %s\r\n", code, enhanced, text);
}

void smtp_reset(struct petrel_conn *conn, struct smtp_session *s)
{
    smtp_message_drop(conn, s);
    for (size_t i = 0; i < s->nrcpts; i++) {
        free(s->rcpts[i].address);
        free(s->rcpts[i].orcpt);
    }
    free(s->rcpts);
    free(s->env_rcpts);
    s->rcpts = NULL;
    s->env_rcpts = NULL;
    s->nrcpts = 0;
    s->in_mail = false;
    memset(&s->mail, 0, sizeof(s->mail));
}

void smtp_build_env(struct petrel_conn *conn, struct smtp_session *s)
{
    free(s->env_rcpts);
    s->env_rcpts = petrel_calloc(s->nrcpts + 1, sizeof(*s->env_rcpts));
    for (size_t i = 0; i < s->nrcpts; i++)
        s->env_rcpts[i] = (struct petrel_envelope_rcpt){s->rcpts[i].address, s->rcpts[i].orcpt,
                                                        s->rcpts[i].notify};
    bool tls = petrel_conn_is_tls(conn), authed = s->auth_user[0] != '\0';
    /* RFC 3848 and RFC 6531 section 3.7.3. */
    snprintf(s->protocol, sizeof(s->protocol), "%s%s%s%s",
             s->mail.smtputf8 ? "UTF8SMTP" : (s->ehlo ? "ESMTP" : "SMTP"), tls ? "S" : "",
             authed ? "A" : "", "");
    static const enum petrel_body bodies[] = {PETREL_BODY_7BIT, PETREL_BODY_7BIT,
                                              PETREL_BODY_8BITMIME, PETREL_BODY_BINARYMIME};
    static const enum petrel_dsn_ret rets[] = {PETREL_DSN_RET_DEFAULT, PETREL_DSN_RET_FULL,
                                               PETREL_DSN_RET_HDRS};
    s->env = (struct petrel_envelope){
        .mail_from = s->mail.from.address,
        .rcpts = s->env_rcpts,
        .nrcpts = s->nrcpts,
        .client_ip = petrel_conn_peer(conn),
        .helo = s->helo,
        .protocol = s->protocol,
        .auth_user = authed ? s->auth_user : NULL,
        .tls_cipher = petrel_conn_tls_cipher(conn),
        .tls_version = petrel_conn_tls_version(conn),
        .submission = s->submission || authed,
        .trusted = authed || s->relay_net, /* as dsn_limit in rcpt.c */
        .body = bodies[s->mail.body],
        .smtputf8 = s->mail.smtputf8,
        .ret = rets[s->mail.ret],
        .envid = s->mail.has_envid ? s->mail.envid : NULL,
        .smtp_origin = &s->origin,
        .requiretls = s->mail.requiretls,
    };
}

/* --- greeting --- */

static void greet(struct petrel_conn *conn, struct smtp_session *s)
{
    s->greeted = true;
    petrel_conn_printf(conn, "220 %s ESMTP Petrel\r\n", smtp_hostname);
}

static void delay_done(struct petrel_conn *conn, void *arg, bool closing)
{
    (void)arg;
    if (closing)
        return;
    struct smtp_session *s = petrel_conn_session(conn);
    /* RFC 5321 section 4.3.1: the client waits for the greeting. One that
     * does not is most likely a spam engine. */
    if (petrel_conn_has_input(conn)) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "refused: talked before the greeting");
        petrel_conn_printf(conn, "554 5.5.1 %s Error: you talked before the greeting\r\n",
                           smtp_hostname);
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    greet(conn, s);
}

struct connect_job {
    struct petrel_smtp_connect_event ev;
    enum petrel_verdict verdict;
    const char *reason;
    char reason_copy[200];
};

static void connect_work(void *arg)
{
    struct connect_job *j = arg;
    j->verdict = petrel_hook_run(PETREL_HOOK_SMTP_CONNECT, &j->ev, &j->reason);
    petrel_strlcpy(j->reason_copy, j->reason != NULL ? j->reason : "", sizeof(j->reason_copy));
}

static void start_greeting(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->cfg->greeting_delay > 0 &&
        petrel_conn_delay(conn, (unsigned)s->cfg->greeting_delay * 1000u, delay_done, NULL))
        return;
    greet(conn, s);
}

static void connect_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct connect_job *j = arg;
    struct smtp_session *s = petrel_conn_session(conn);
    enum petrel_verdict v = j->verdict;
    char reason[200];
    petrel_strlcpy(reason, j->reason_copy, sizeof(reason));
    free(j);
    if (closing)
        return;
    if (v == PETREL_DENY || v == PETREL_DISCONNECT || v == PETREL_DENY_SOFT) {
        bool soft = v == PETREL_DENY_SOFT;
        petrel_conn_log(conn, PETREL_LOG_INFO, "refused by the smtp.connect hook: %s", reason);
        smtp_reply(conn, soft ? 421 : 554, soft ? "4.7.0" : "5.7.1", "%s",
                   reason[0] ? reason : "access denied");
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    start_greeting(conn, s);
}

static void smtp_connect(struct petrel_conn *conn, bool submission)
{
    struct smtp_session *s = petrel_conn_session(conn);
    s->cfg = petrel_conn_config(conn);
    s->submission = submission;
    s->origin.conn_id = petrel_conn_id(conn);
    s->relay_net = petrel_ipset_contains_text(s->cfg->relay_networks, petrel_conn_peer(conn));
    s->max_size = (uint64_t)s->cfg->max_message_size;
    s->max_rcpts = (unsigned)s->cfg->max_recipients;
    if (submission && s->cfg->submission_max_message_size > 0)
        s->max_size = (uint64_t)s->cfg->submission_max_message_size;
    if (submission && s->cfg->submission_max_recipients > 0)
        s->max_rcpts = (unsigned)s->cfg->submission_max_recipients;
    petrel_buf_init(&s->data, SMTP_BUFFER_MAX);
    if (petrel_hook_active(PETREL_HOOK_SMTP_CONNECT)) {
        struct connect_job *j = petrel_calloc(1, sizeof(*j));
        j->ev = (struct petrel_smtp_connect_event){
            .client_ip = petrel_conn_peer(conn),
            .local_ip = petrel_conn_local(conn),
            .local_port = petrel_conn_local_port(conn),
            .service = submission ? "submission" : "smtp",
            .conn_id = s->origin.conn_id,
            .session_slot = &s->origin.slot,
        };
        if (petrel_conn_submit(conn, connect_work, connect_done, j))
            return;
        free(j);
    }
    start_greeting(conn, s);
}

static void connect_mx(struct petrel_conn *conn) { smtp_connect(conn, false); }
static void connect_submission(struct petrel_conn *conn) { smtp_connect(conn, true); }

/* --- commands --- */

static void cmd_helo(struct petrel_conn *conn, struct smtp_session *s, const char *args, bool ehlo)
{
    struct smtp_reply err;
    char name[256];
    if (!smtp_parse_helo(args, ehlo, name, sizeof(name), &err)) {
        char shown[128]; /* what the client said, cut short and made printable */
        petrel_strlcpy(shown, args, sizeof(shown));
        one_line(shown);
        petrel_conn_log(conn, PETREL_LOG_INFO, "%s refused: %s: %s", ehlo ? "EHLO" : "HELO",
                        err.text, shown);
        smtp_error(conn, err.code, err.enhanced, "%s", err.text);
        return;
    }
    smtp_reset(conn, s);
    petrel_strlcpy(s->helo, name, sizeof(s->helo));
    s->ehlo = ehlo;
    if (!ehlo) {
        petrel_conn_printf(conn, "250 %s\r\n", smtp_hostname);
        return;
    }
    bool tls = petrel_conn_is_tls(conn);
    petrel_conn_printf(conn, "250-%s Hello %s [%s]\r\n", smtp_hostname, name,
                       petrel_conn_peer(conn));
    petrel_conn_printf(conn, "250-PIPELINING\r\n250-SIZE %llu\r\n250-8BITMIME\r\n",
                       (unsigned long long)s->max_size);
    petrel_conn_printf(conn, "250-ENHANCEDSTATUSCODES\r\n");
    if (!tls && petrel_conn_can_starttls(conn))
        petrel_conn_printf(conn, "250-STARTTLS\r\n");
    if (smtp_auth_offered(conn, s))
        petrel_conn_printf(conn, "250-AUTH PLAIN LOGIN\r\n");
    if (s->cfg->smtputf8)
        petrel_conn_printf(conn, "250-SMTPUTF8\r\n");
    if (s->cfg->chunking)
        petrel_conn_printf(conn, "250-CHUNKING\r\n");
    if (s->cfg->dsn)
        petrel_conn_printf(conn, "250-DSN\r\n");
    /* RFC 8689 section 4: only where the MAIL parameter may be used. */
    if (tls && s->cfg->requiretls)
        petrel_conn_printf(conn, "250-REQUIRETLS\r\n");
    petrel_conn_printf(conn, "250 HELP\r\n");
}

static void cmd_starttls(struct petrel_conn *conn, struct smtp_session *s, const char *args)
{
    if (args[0] != '\0') {
        smtp_error(conn, 501, "5.5.4", "syntax: STARTTLS");
        return;
    }
    if (petrel_conn_is_tls(conn)) {
        smtp_error(conn, 503, "5.5.1", "TLS already active");
        return;
    }
    if (!petrel_conn_can_starttls(conn)) {
        smtp_error(conn, 454, "4.7.0", "TLS not available");
        return;
    }
    smtp_reset(conn, s);
    smtp_reply(conn, 220, "2.0.0", "Ready to start TLS");
    petrel_conn_starttls(conn);
}

static void smtp_tls_ready(struct petrel_conn *conn, bool ok)
{
    struct smtp_session *s = petrel_conn_session(conn);
    if (!ok) {
        s->state = SMTP_ST_QUIT;
        return;
    }
    /* RFC 3207 section 4.2: forget everything learnt before TLS. */
    s->helo[0] = '\0';
    s->ehlo = false;
    s->auth_user[0] = '\0';
}

struct refused_data {
    int code;
    const char *enhanced, *text;
};

static void refuse_data(struct petrel_conn *conn, struct smtp_session *s,
                        const struct refused_data *r, bool pipelined)
{
    smtp_error(conn, r->code, r->enhanced, "%s", r->text);
    if (!pipelined || s->state != SMTP_ST_CMD)
        return; /* the client waits, or the error count closed the session */
    petrel_conn_log(conn, PETREL_LOG_INFO,
                    "DATA refused with input behind it: discarding up to the end of data");
    s->state = SMTP_ST_DISCARD;
    s->prev_crlf = true;
}

/* A client that sent more without waiting for DATA's reply (RFC 2920
 * section 3.1 puts DATA last in a group) sent its message, whose lines
 * must not run as commands. Looking before the reply goes out means a
 * client that waits can never have answered it yet; during a line
 * callback the core still counts that line as input, hence the delay. */
static void refused_data_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct refused_data *r = arg;
    if (!closing)
        refuse_data(conn, petrel_conn_session(conn), r, petrel_conn_has_input(conn));
    free(r);
}

void smtp_data_refused(struct petrel_conn *conn, struct smtp_session *s, int code,
                       const char *enhanced, const char *text)
{
    struct refused_data *r = petrel_malloc(sizeof(*r));
    *r = (struct refused_data){code, enhanced, text};
    if (petrel_conn_delay(conn, 0, refused_data_done, r))
        return;
    refuse_data(conn, s, r, false);
    free(r);
}

/* A discarded line: the end of data as DATA sees it (RFC 5321 section
 * 4.1.1.4, CRLF on both sides), so that what DATA would have taken as
 * content is never taken as commands. */
static void discard_line(struct petrel_conn *conn, struct smtp_session *s, const char *line,
                         size_t len)
{
    bool crlf = petrel_conn_line_crlf(conn);
    if (len == 1 && line[0] == '.' && crlf && s->prev_crlf)
        s->state = SMTP_ST_CMD;
    s->prev_crlf = crlf;
}

static bool needs_helo(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->helo[0] != '\0')
        return false;
    smtp_error(conn, 503, "5.5.1", "send HELO or EHLO first");
    return true;
}

static void smtp_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct smtp_session *s = petrel_conn_session(conn);
    switch (s->state) {
    case SMTP_ST_DATA:
        smtp_data_line(conn, s, line, len);
        return;
    case SMTP_ST_AUTH:
        smtp_auth_line(conn, s, line, len);
        return;
    case SMTP_ST_DISCARD:
        discard_line(conn, s, line, len);
        return;
    case SMTP_ST_QUIT:
        return;
    case SMTP_ST_CMD:
        break;
    }
    const char *args;
    enum smtp_verb verb = smtp_parse_verb(line, len, &args);
    if (s->bdat && verb != SMTP_BDAT && verb != SMTP_RSET && verb != SMTP_QUIT &&
        verb != SMTP_NOOP) {
        /* RFC 3030 section 2: only BDAT (or RSET) may follow a BDAT that
         * was not LAST. */
        smtp_reset(conn, s);
        if (verb == SMTP_DATA)
            smtp_data_refused(conn, s, 503, "5.5.1",
                              "BDAT transfer not finished, transaction aborted");
        else
            smtp_error(conn, 503, "5.5.1", "BDAT transfer not finished, transaction aborted");
        return;
    }
    switch (verb) {
    case SMTP_EHLO:
    case SMTP_HELO:
        cmd_helo(conn, s, args, verb == SMTP_EHLO);
        break;
    case SMTP_MAIL:
        if (!needs_helo(conn, s))
            smtp_cmd_mail(conn, s, args);
        break;
    case SMTP_RCPT:
        smtp_cmd_rcpt(conn, s, args);
        break;
    case SMTP_DATA:
        smtp_cmd_data(conn, s, args);
        break;
    case SMTP_BDAT:
        smtp_cmd_bdat(conn, s, args);
        break;
    case SMTP_RSET:
        smtp_reset(conn, s);
        smtp_reply(conn, 250, "2.0.0", "Ok");
        break;
    case SMTP_NOOP:
        smtp_reply(conn, 250, "2.0.0", "Ok");
        break;
    case SMTP_QUIT:
        smtp_reply(conn, 221, "2.0.0", "Bye");
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        break;
    case SMTP_VRFY:
        /* RFC 5321 section 3.5.3: say nothing about which users exist. */
        smtp_reply(conn, 252, "2.5.0", "Cannot VRFY user, but will accept message");
        break;
    case SMTP_EXPN:
        smtp_error(conn, 502, "5.5.1", "EXPN not available");
        break;
    case SMTP_HELP:
        smtp_reply(conn, 214, "2.0.0", "See RFC 5321");
        break;
    case SMTP_STARTTLS:
        cmd_starttls(conn, s, args);
        break;
    case SMTP_AUTH:
        if (!needs_helo(conn, s))
            smtp_cmd_auth(conn, s, (char *)args);
        break;
    case SMTP_UNKNOWN:
    default:
        petrel_conn_log(conn, PETREL_LOG_DEBUG, "unknown command");
        smtp_error(conn, 500, "5.5.2", "command not recognized");
        break;
    }
}

static void smtp_line_too_long(struct petrel_conn *conn)
{
    struct smtp_session *s = petrel_conn_session(conn);
    if (s->state == SMTP_ST_DATA) {
        smtp_data_long_line(conn, s);
        return;
    }
    if (s->state == SMTP_ST_DISCARD) {
        s->prev_crlf = petrel_conn_line_crlf(conn);
        return;
    }
    if (s->state == SMTP_ST_AUTH) { /* the exchange is over */
        petrel_login_cancel(conn);
        s->state = SMTP_ST_CMD;
        smtp_error(conn, 501, "5.5.2", "authentication line too long");
        return;
    }
    smtp_error(conn, 500, "5.5.2", "line too long");
}

static void smtp_timeout(struct petrel_conn *conn)
{
    struct smtp_session *s = petrel_conn_session(conn);
    petrel_conn_log(conn, PETREL_LOG_INFO, "timeout %s",
                    s->state == SMTP_ST_DATA ? "during DATA" : "waiting for a command");
    petrel_conn_printf(conn, "421 4.4.2 %s Error: timeout exceeded\r\n", smtp_hostname);
    s->state = SMTP_ST_QUIT;
}

static void smtp_refuse(struct petrel_conn *conn, const char *reason)
{
    (void)reason;
    petrel_conn_printf(conn, "554 5.7.1 %s Error: access denied\r\n", smtp_hostname);
}

static void smtp_shutdown(struct petrel_conn *conn)
{
    struct smtp_session *s = petrel_conn_session(conn);
    petrel_conn_printf(conn, "421 4.3.2 %s Service shutting down\r\n", smtp_hostname);
    s->state = SMTP_ST_QUIT;
}

/* The session's end, for a slot a hook handler set: its owner frees it at
 * smtp.disconnect, on a worker like every handler. */
static void disconnect_work(void *arg)
{
    struct petrel_smtp_origin *o = arg;
    struct petrel_smtp_disconnect_event ev = {o->conn_id, &o->slot};
    const char *reason; /* the verdict means nothing here */
    petrel_hook_run(PETREL_HOOK_SMTP_DISCONNECT, &ev, &reason);
    free(o);
}

static void end_slot(struct smtp_session *s)
{
    if (s->origin.slot == NULL || !petrel_hook_active(PETREL_HOOK_SMTP_DISCONNECT))
        return;
    struct petrel_smtp_origin *o = petrel_malloc(sizeof(*o));
    *o = s->origin;
    s->origin.slot = NULL;
    /* With the pool's queue full (or the pool gone at shutdown) the handler
     * runs here: a free, which is all it is for, does not block. */
    if (!petrel_worker_submit(disconnect_work, o))
        disconnect_work(o);
}

static void smtp_close(struct petrel_conn *conn)
{
    struct smtp_session *s = petrel_conn_session(conn);
    end_slot(s);
    smtp_reset(conn, s);
    petrel_buf_free(&s->data);
}

const struct petrel_protocol smtp_protocol_mx = {
    .name = "smtp",
    .session_size = sizeof(struct smtp_session),
    .connect = connect_mx,
    .line = smtp_line,
    .chunk = smtp_chunk,
    .line_too_long = smtp_line_too_long,
    .timeout = smtp_timeout,
    .refuse = smtp_refuse,
    .tls_ready = smtp_tls_ready,
    .close = smtp_close,
    .shutdown = smtp_shutdown,
};

const struct petrel_protocol smtp_protocol_submission = {
    .name = "submission",
    .session_size = sizeof(struct smtp_session),
    .connect = connect_submission,
    .line = smtp_line,
    .chunk = smtp_chunk,
    .line_too_long = smtp_line_too_long,
    .timeout = smtp_timeout,
    .refuse = smtp_refuse,
    .tls_ready = smtp_tls_ready,
    .close = smtp_close,
    .shutdown = smtp_shutdown,
};
