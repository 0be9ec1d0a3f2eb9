/* The POP3 session (RFC 1939): greeting, the command loop, the
 * AUTHORIZATION state's small commands (CAPA RFC 2449, STLS RFC 2595,
 * QUIT), pipelined commands that wait for a long answer, errors, timeouts.
 * Logins are in auth.c, the maildrop and TRANSACTION in maildrop.c, RETR
 * and TOP in retr.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/mem.h>

#include "pop3.h"

/* Reply texts: one line of printable text. */
__attribute__((format(printf, 3, 0))) static void
vreply(struct petrel_conn *conn, const char *status, const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    petrel_conn_printf(conn, "%s %s\r\n", status, text);
}

void pop3_ok(struct petrel_conn *conn, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(conn, "+OK", fmt, ap);
    va_end(ap);
}

void pop3_error(struct petrel_conn *conn, const char *fmt, ...)
{
    struct pop3_session *s = petrel_conn_session(conn);
    va_list ap;
    va_start(ap, fmt);
    vreply(conn, "-ERR", fmt, ap);
    va_end(ap);
    struct petrel_error_limits lim;
    petrel_conn_error_limits(conn, &lim);
    if (lim.max_errors > 0 && ++s->errors >= lim.max_errors) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "too many errors (%u): closing", s->errors);
        petrel_conn_printf(conn, "-ERR too many errors, closing\r\n");
        s->state = POP3_ST_QUIT;
        petrel_conn_close(conn);
    }
}

static void pop3_connect(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    s->cfg = petrel_conn_config(conn);
    petrel_buf_init(&s->pending, POP3_PENDING_MAX);
    /* No APOP timestamp: APOP needs the password in clear on the server. */
    petrel_conn_printf(conn, "+OK %s POP3 Petrel ready\r\n", pop3_hostname);
}

/* --- the AUTHORIZATION state's own commands --- */

static void cmd_capa(struct petrel_conn *conn, struct pop3_session *s)
{
    petrel_conn_printf(conn, "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
                             "AUTH-RESP-CODE\r\nPIPELINING\r\n");
    if (s->state == POP3_ST_AUTH && pop3_plaintext_ok(conn))
        petrel_conn_printf(conn, "USER\r\nSASL PLAIN LOGIN\r\n");
    if (s->state == POP3_ST_AUTH && !petrel_conn_is_tls(conn) && petrel_conn_can_starttls(conn))
        petrel_conn_printf(conn, "STLS\r\n");
    if (s->cfg->expire[0] != '\0')
        petrel_conn_printf(conn, "EXPIRE %s\r\n", s->cfg->expire);
    if (s->cfg->login_delay > 0)
        petrel_conn_printf(conn, "LOGIN-DELAY %lld\r\n", s->cfg->login_delay);
    petrel_conn_printf(conn, "IMPLEMENTATION Petrel\r\n.\r\n");
}

static void cmd_stls(struct petrel_conn *conn, struct pop3_session *s)
{
    if (petrel_conn_is_tls(conn)) {
        pop3_error(conn, "TLS already active");
        return;
    }
    if (!petrel_conn_can_starttls(conn)) {
        pop3_error(conn, "STLS not available");
        return;
    }
    s->user[0] = '\0';
    pop3_ok(conn, "Begin TLS negotiation");
    petrel_conn_starttls(conn);
}

static void pop3_tls_ready(struct petrel_conn *conn, bool ok)
{
    struct pop3_session *s = petrel_conn_session(conn);
    if (!ok)
        s->state = POP3_ST_QUIT;
    s->user[0] = '\0'; /* RFC 2595 section 4: nothing learnt before TLS counts */
}

static void cmd_quit(struct petrel_conn *conn, struct pop3_session *s)
{
    /* Before login: nothing to update (RFC 1939 section 4). */
    pop3_ok(conn, "Bye");
    s->state = POP3_ST_QUIT;
    petrel_conn_close(conn);
}

static void authorization(struct petrel_conn *conn, struct pop3_session *s,
                          const struct pop3_cmd *cmd)
{
    switch (cmd->verb) {
    case POP3_USER:
        pop3_cmd_user(conn, s, cmd);
        break;
    case POP3_PASS:
        pop3_cmd_pass(conn, s, cmd);
        break;
    case POP3_AUTH:
        pop3_cmd_auth(conn, s, cmd);
        break;
    case POP3_APOP:
        pop3_error(conn, "APOP not available");
        break;
    case POP3_STLS:
        cmd_stls(conn, s);
        break;
    case POP3_CAPA:
        cmd_capa(conn, s);
        break;
    case POP3_QUIT:
        cmd_quit(conn, s);
        break;
    default:
        pop3_error(conn, "log in first");
        break;
    }
}

/* A line the listener's max_line cut: kept in the pending queue as this
 * marker, so its -ERR comes in order. */
static const char too_long_mark[2] = {'\0', 'L'};

static void run_command(struct petrel_conn *conn, struct pop3_session *s, char *line, size_t len)
{
    if (len == sizeof(too_long_mark) && memcmp(line, too_long_mark, len) == 0) {
        pop3_error(conn, "line too long");
        return;
    }
    struct pop3_cmd cmd;
    const char *error;
    if (!pop3_parse(line, len, &cmd, &error)) {
        petrel_conn_log(conn, PETREL_LOG_DEBUG, "refused command: %s", error);
        pop3_error(conn, "%s", error);
        return;
    }
    if (s->state == POP3_ST_AUTH)
        authorization(conn, s, &cmd);
    else if (s->state == POP3_ST_TRANS && cmd.verb == POP3_CAPA)
        cmd_capa(conn, s);
    else if (s->state == POP3_ST_TRANS)
        pop3_transaction(conn, s, &cmd);
}

static bool busy(const struct pop3_session *s) { return s->stream != POP3_STREAM_NONE; }

/* Queue a line that came while an answer is going out. */
static void hold(struct petrel_conn *conn, struct pop3_session *s, const char *line, size_t len)
{
    if (!petrel_buf_append(&s->pending, line, len) || !petrel_buf_append(&s->pending, "\n", 1)) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "more than %u bytes of pipelined commands: closing",
                        POP3_PENDING_MAX);
        s->state = POP3_ST_QUIT;
        petrel_conn_close(conn);
    }
}

void pop3_resume(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    if (s->draining)
        return; /* the loop below goes on */
    s->draining = true;
    while (!busy(s) && s->state == POP3_ST_TRANS && s->pending.len > 0) {
        const char *head = petrel_buf_head(&s->pending);
        size_t len = (size_t)((const char *)memchr(head, '\n', s->pending.len) - head);
        char *line = petrel_malloc(len + 1);
        memcpy(line, head, len);
        line[len] = '\0';
        petrel_buf_consume(&s->pending, len + 1);
        run_command(conn, s, line, len);
        free(line);
    }
    if (s->pending.len == 0)
        petrel_buf_release(&s->pending);
    s->draining = false;
}

static void pop3_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct pop3_session *s = petrel_conn_session(conn);
    if (s->state == POP3_ST_QUIT)
        return;
    if (s->state == POP3_ST_SASL) {
        petrel_login_line(conn, line, len);
        return;
    }
    if (busy(s) || s->pending.len > 0) {
        hold(conn, s, line, len);
        return;
    }
    run_command(conn, s, line, len);
}

static void pop3_line_too_long(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    petrel_conn_log(conn, PETREL_LOG_INFO, "line too long");
    if (s->state == POP3_ST_QUIT)
        return;
    if (s->state == POP3_ST_SASL) { /* the exchange is over */
        petrel_login_cancel(conn);
        s->state = POP3_ST_AUTH;
        pop3_error(conn, "authentication line too long");
        return;
    }
    if (busy(s) || s->pending.len > 0) {
        hold(conn, s, too_long_mark, sizeof(too_long_mark));
        return;
    }
    pop3_error(conn, "line too long");
}

static void pop3_output_drained(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    if (s->stream == POP3_STREAM_LIST || s->stream == POP3_STREAM_UIDL)
        pop3_list_more(conn, s);
    else if (s->stream == POP3_STREAM_BODY)
        pop3_body_more(conn, s);
}

/* Timeouts and shutdowns end the session without the UPDATE state: the
 * messages marked deleted stay (RFC 1939 section 6). */
static void pop3_timeout(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    petrel_conn_log(conn, PETREL_LOG_INFO, "timeout: closing, nothing deleted");
    /* In the middle of a multi-line answer a line would read as its text. */
    if (s->stream == POP3_STREAM_NONE)
        petrel_conn_printf(conn, "-ERR Disconnected for inactivity\r\n");
    s->state = POP3_ST_QUIT;
}

static void pop3_shutdown(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    if (s->stream == POP3_STREAM_NONE)
        petrel_conn_printf(conn, "-ERR [SYS/TEMP] server shutting down, nothing deleted\r\n");
    s->state = POP3_ST_QUIT;
}

static void pop3_refuse(struct petrel_conn *conn, const char *reason)
{
    (void)reason;
    petrel_conn_printf(conn, "-ERR [SYS/PERM] access denied\r\n");
}

static void pop3_close(struct petrel_conn *conn)
{
    struct pop3_session *s = petrel_conn_session(conn);
    pop3_body_free(s);
    pop3_maildrop_close(s);
    petrel_buf_free(&s->pending);
}

const struct petrel_protocol pop3_protocol = {
    .name = "pop3",
    .session_size = sizeof(struct pop3_session),
    .connect = pop3_connect,
    .line = pop3_line,
    .line_too_long = pop3_line_too_long,
    .timeout = pop3_timeout,
    .refuse = pop3_refuse,
    .tls_ready = pop3_tls_ready,
    .close = pop3_close,
    .shutdown = pop3_shutdown,
    .output_drained = pop3_output_drained,
};
