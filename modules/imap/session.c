/* The IMAP session (RFC 3501): greeting, the command reader driven by
 * lines and literal chunks, dispatch by state, pipelined input held while
 * an answer goes out over several turns, errors, timeouts. Commands are
 * in auth.c (login), mailbox.c, select.c, store.c, fetch.c, append.c and
 * idle.c; their blocking parts run as jobs (job.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/login.h>
#include <petrel/mem.h>

#include "imap.h"

void imap_log_refusal(struct petrel_conn *conn, struct imap_session *s, const char *status,
                      const char *text)
{
    /* Bounded, so that a client sending garbage cannot flood the log. */
    if (s->refusals_logged > IMAP_LOG_REFUSALS_MAX)
        return;
    if (s->refusals_logged++ == IMAP_LOG_REFUSALS_MAX)
        petrel_conn_log(conn, PETREL_LOG_INFO, "further refusals not logged");
    else
        petrel_conn_log(conn, PETREL_LOG_INFO, "refused (%s): %s", status, text);
}

/* Reply texts: one line of printable text, server-made (never a password
 * or literal), so the refusals can be logged as sent. */
__attribute__((format(printf, 5, 0))) static void vreply(struct petrel_conn *conn,
                                                         struct imap_session *s, const char *tag,
                                                         const char *status, const char *fmt,
                                                         va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    petrel_conn_printf(conn, "%s %s %s\r\n", tag, status, text);
    if (strcmp(status, "OK") != 0)
        imap_log_refusal(conn, s, status, text);
}

void imap_tagged(struct petrel_conn *conn, struct imap_session *s, const char *status,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(conn, s, s->tag[0] != '\0' ? s->tag : "*", status, fmt, ap);
    va_end(ap);
}

static void count_error(struct petrel_conn *conn, struct imap_session *s)
{
    struct petrel_error_limits lim;
    petrel_conn_error_limits(conn, &lim);
    if (lim.max_errors > 0 && ++s->errors >= lim.max_errors && s->state != IMAP_ST_LOGOUT) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "too many errors (%u): closing", s->errors);
        petrel_conn_printf(conn, "* BYE Too many errors, closing\r\n");
        s->state = IMAP_ST_LOGOUT;
        petrel_conn_close(conn);
    }
}

void imap_bad(struct petrel_conn *conn, struct imap_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(conn, s, s->tag[0] != '\0' ? s->tag : "*", "BAD", fmt, ap);
    va_end(ap);
    count_error(conn, s);
}

void imap_no(struct petrel_conn *conn, struct imap_session *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreply(conn, s, s->tag[0] != '\0' ? s->tag : "*", "NO", fmt, ap);
    va_end(ap);
}

void imap_set_timeout(struct petrel_conn *conn, const struct imap_session *s)
{
    if (s->state != IMAP_ST_NOAUTH)
        petrel_conn_set_timeout(conn, IMAP_AUTH_TIMEOUT);
}

static void imap_connect(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    s->cfg = petrel_conn_config(conn);
    s->spool_fd = -1;
    petrel_buf_init(&s->pending, IMAP_PENDING_MAX);
    petrel_buf_init(&s->spill, 2 * IMAP_OUT_MAX);
    /* Before login the listener's idle_timeout holds (short: 1m in the
     * snippet); a login sets 30 minutes. */
    struct petrel_buf caps;
    petrel_buf_init(&caps, 1024);
    imap_put_capabilities(conn, s, &caps);
    petrel_conn_printf(conn, "* OK [CAPABILITY %.*s] %s Petrel IMAP ready\r\n", (int)caps.len,
                       petrel_buf_head(&caps), imap_hostname);
    petrel_buf_free(&caps);
}

/* --- commands of every state --- */

static void cmd_logout(struct petrel_conn *conn, struct imap_session *s)
{
    petrel_conn_printf(conn, "* BYE Logging out\r\n");
    imap_tagged(conn, s, "OK", "LOGOUT completed");
    s->state = IMAP_ST_LOGOUT;
    petrel_conn_close(conn);
}

/* RFC 2971: the server's identity; the client's is only logged. */
static void cmd_id(struct petrel_conn *conn, struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->count != 1 ||
        (cmd->args[0].type != IMAP_ARG_NIL && cmd->args[0].type != IMAP_ARG_LIST)) {
        imap_bad(conn, s, "ID takes a list or NIL");
        return;
    }
    petrel_conn_printf(conn, "* ID (\"name\" \"Petrel\" \"vendor\" \"Petrel\")\r\n");
    imap_tagged(conn, s, "OK", "ID completed");
}

static void cmd_namespace(struct petrel_conn *conn, struct imap_session *s)
{
    petrel_conn_printf(conn, "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
    imap_tagged(conn, s, "OK", "NAMESPACE completed");
}

static bool no_args(struct petrel_conn *conn, struct imap_session *s,
                    const struct imap_command *cmd)
{
    if (cmd->count == 0)
        return true;
    imap_bad(conn, s, "%s takes no arguments", cmd->name);
    return false;
}

static bool any_state(struct petrel_conn *conn, struct imap_session *s,
                      const struct imap_command *cmd)
{
    const char *n = cmd->name;
    if (strcmp(n, "CAPABILITY") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_capability(conn, s);
    } else if (strcmp(n, "NOOP") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_noop(conn, s);
    } else if (strcmp(n, "LOGOUT") == 0) {
        if (no_args(conn, s, cmd))
            cmd_logout(conn, s);
    } else if (strcmp(n, "ID") == 0) {
        cmd_id(conn, s, cmd);
    } else {
        return false;
    }
    return true;
}

static bool noauth_state(struct petrel_conn *conn, struct imap_session *s,
                         const struct imap_command *cmd)
{
    const char *n = cmd->name;
    if (strcmp(n, "STARTTLS") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_starttls(conn, s);
    } else if (strcmp(n, "LOGIN") == 0) {
        imap_cmd_login(conn, s, cmd);
    } else if (strcmp(n, "AUTHENTICATE") == 0) {
        imap_cmd_authenticate(conn, s, cmd);
    } else {
        return false;
    }
    return true;
}

static const char *const folder_cmds[] = {"CREATE",    "DELETE",      "RENAME",
                                          "SUBSCRIBE", "UNSUBSCRIBE", NULL};

static bool auth_state(struct petrel_conn *conn, struct imap_session *s,
                       const struct imap_command *cmd)
{
    const char *n = cmd->name;
    for (size_t i = 0; folder_cmds[i] != NULL; i++)
        if (strcmp(n, folder_cmds[i]) == 0) {
            imap_cmd_folder(conn, s, cmd);
            return true;
        }
    if (strcmp(n, "SELECT") == 0 || strcmp(n, "EXAMINE") == 0)
        imap_cmd_select(conn, s, cmd, n[0] == 'E');
    else if (strcmp(n, "LIST") == 0 || strcmp(n, "LSUB") == 0)
        imap_cmd_list(conn, s, cmd, n[1] == 'S');
    else if (strcmp(n, "STATUS") == 0)
        imap_cmd_status(conn, s, cmd);
    else if (strcmp(n, "GETQUOTAROOT") == 0)
        imap_cmd_getquotaroot(conn, s, cmd);
    else if (strcmp(n, "GETQUOTA") == 0)
        imap_cmd_getquota(conn, s, cmd);
    else if (strcmp(n, "SETQUOTA") == 0)
        imap_cmd_setquota(conn, s, cmd);
    else if (strcmp(n, "GETMETADATA") == 0 || strcmp(n, "SETMETADATA") == 0)
        imap_cmd_metadata(conn, s, cmd, n[0] == 'S');
    else if (strcmp(n, "APPEND") == 0)
        imap_cmd_append(conn, s, cmd);
    else if (strcmp(n, "COMPRESS") == 0)
        imap_cmd_compress(conn, s, cmd);
    else if (strcmp(n, "NAMESPACE") == 0) {
        if (no_args(conn, s, cmd))
            cmd_namespace(conn, s);
    } else if (strcmp(n, "ENABLE") == 0 && s->state == IMAP_ST_AUTH)
        imap_cmd_enable(conn, s, cmd); /* RFC 5161: the authenticated state only */
    else if (strcmp(n, "IDLE") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_idle(conn, s);
    } else
        return false;
    return true;
}

/* FETCH, STORE, COPY, MOVE, EXPUNGE (UIDPLUS), SEARCH: plain or after UID,
 * whose arguments then start one further. */
static bool message_cmd(struct petrel_conn *conn, struct imap_session *s,
                        const struct imap_command *cmd, const char *n, size_t argi, bool uid)
{
    if (strcmp(n, "FETCH") == 0)
        imap_cmd_fetch(conn, s, cmd, argi, uid);
    else if (strcmp(n, "STORE") == 0)
        imap_cmd_store(conn, s, cmd, argi, uid);
    else if (strcmp(n, "COPY") == 0 || strcmp(n, "MOVE") == 0)
        imap_cmd_copy(conn, s, cmd, argi, uid, n[0] == 'M');
    else if (strcmp(n, "EXPUNGE") == 0)
        imap_cmd_expunge(conn, s, cmd, argi, uid);
    else if (strcmp(n, "SEARCH") == 0)
        imap_cmd_search(conn, s, cmd, argi, uid);
    else if (strcmp(n, "SORT") == 0)
        imap_cmd_sort(conn, s, cmd, argi, uid);
    else if (strcmp(n, "THREAD") == 0)
        imap_cmd_thread(conn, s, cmd, argi, uid);
    else
        return false;
    return true;
}

static bool selected_state(struct petrel_conn *conn, struct imap_session *s,
                           const struct imap_command *cmd)
{
    const char *n = cmd->name;
    if (strcmp(n, "CHECK") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_noop(conn, s);
    } else if (strcmp(n, "CLOSE") == 0 || strcmp(n, "UNSELECT") == 0) {
        if (no_args(conn, s, cmd))
            imap_cmd_close(conn, s, n[0] == 'C');
    } else if (strcmp(n, "UID") == 0) {
        const char *sub = cmd->count > 0 ? imap_arg_astring(&cmd->args[0]) : NULL;
        char up[16] = "";
        for (size_t i = 0; sub != NULL && sub[i] != '\0' && i + 1 < sizeof(up); i++)
            up[i] = (char)(sub[i] >= 'a' && sub[i] <= 'z' ? sub[i] - 32 : sub[i]);
        if (sub == NULL || strlen(sub) >= sizeof(up) || !message_cmd(conn, s, cmd, up, 1, true))
            imap_bad(conn, s,
                     "UID takes FETCH, SEARCH, SORT, THREAD, STORE, COPY, MOVE or EXPUNGE");
    } else {
        return message_cmd(conn, s, cmd, n, 0, false);
    }
    return true;
}

static void dispatch(struct petrel_conn *conn, struct imap_session *s,
                     const struct imap_command *cmd)
{
    if (any_state(conn, s, cmd))
        return;
    if (s->state == IMAP_ST_NOAUTH && noauth_state(conn, s, cmd))
        return;
    if (s->state != IMAP_ST_NOAUTH && auth_state(conn, s, cmd))
        return;
    if (s->state == IMAP_ST_SELECTED && selected_state(conn, s, cmd))
        return;
    static const char *const known[] = {
        "STARTTLS", "LOGIN",        "AUTHENTICATE", "SELECT",      "EXAMINE",     "CREATE",
        "DELETE",   "RENAME",       "SUBSCRIBE",    "UNSUBSCRIBE", "LIST",        "LSUB",
        "STATUS",   "APPEND",       "NAMESPACE",    "ENABLE",      "IDLE",        "CHECK",
        "CLOSE",    "UNSELECT",     "EXPUNGE",      "FETCH",       "STORE",       "COPY",
        "MOVE",     "UID",          "COMPRESS",     "SEARCH",      "SORT",        "THREAD",
        "GETQUOTA", "GETQUOTAROOT", "SETQUOTA",     "GETMETADATA", "SETMETADATA", NULL};
    if (s->state != IMAP_ST_NOAUTH &&
        (strcmp(cmd->name, "LOGIN") == 0 || strcmp(cmd->name, "AUTHENTICATE") == 0)) {
        imap_bad(conn, s, "Already logged in");
        return;
    }
    if (s->state == IMAP_ST_SELECTED && strcmp(cmd->name, "ENABLE") == 0) {
        imap_bad(conn, s, "ENABLE only before SELECT (RFC 5161)");
        return;
    }
    for (size_t i = 0; known[i] != NULL; i++)
        if (strcmp(cmd->name, known[i]) == 0) {
            imap_bad(conn, s, "%s not allowed %s", cmd->name,
                     s->state == IMAP_ST_NOAUTH     ? "before login"
                     : s->state == IMAP_ST_SELECTED ? "now"
                     : s->state == IMAP_ST_AUTH     ? "without a selected mailbox"
                                                    : "now");
            return;
        }
    imap_bad(conn, s, "Unknown command");
}

/* --- the command reader --- */

static void parser_end(struct imap_session *s)
{
    imap_parser_free(s->parser);
    s->parser = NULL; /* an idle session keeps no reader memory */
}

static void parser_ensure(struct imap_session *s)
{
    if (s->parser != NULL)
        return;
    const struct imap_parse_limits limits = {
        .max_command = (size_t)s->cfg->max_command,
        /* Never above max_literal, which the reader checks only for the
         * literals it spools. */
        .max_literal_mem = s->cfg->max_literal < 65536 ? (size_t)s->cfg->max_literal : 65536u,
        .max_literal = (uint64_t)s->cfg->max_literal,
        .max_args = 100000,
        .max_depth = 32,
        .utf8_quoted = IMAP_UTF8_NAMES(s),
    };
    s->parser = imap_parser_new(&limits);
    imap_parser_set_sink(s->parser, imap_append_sink(s));
}

static void answer_bad(struct petrel_conn *conn, struct imap_session *s)
{
    petrel_strlcpy(s->tag, imap_parse_tag(s->parser), sizeof(s->tag));
    const char *error = imap_parse_error(s->parser);
    switch (imap_parse_error_code(s->parser)) {
    case IMAP_PARSE_ERR_TOOBIG:
        imap_no(conn, s, "[TOOBIG] %s", error);
        break;
    case IMAP_PARSE_ERR_LIMIT:
        imap_bad(conn, s, "[LIMIT] %s", error);
        break;
    default:
        imap_bad(conn, s, "%s", error);
        break;
    }
    imap_spool_close(s);
    parser_end(s);
}

static void literal_wanted(struct petrel_conn *conn, struct imap_session *s);

static void act(struct petrel_conn *conn, struct imap_session *s, enum imap_parse_status st)
{
    /* Read ahead during a long answer: nothing may be written inside it. */
    if ((st == IMAP_PARSE_DONE || st == IMAP_PARSE_BAD) && s->mode == IMAP_MODE_BUSY) {
        s->ready = true;
        s->ready_status = st;
        return;
    }
    switch (st) {
    case IMAP_PARSE_DONE: {
        const struct imap_command *cmd = imap_parse_command(s->parser);
        petrel_strlcpy(s->tag, cmd->tag, sizeof(s->tag));
        dispatch(conn, s, cmd);
        imap_spool_close(s);
        parser_end(s);
        break;
    }
    case IMAP_PARSE_LITERAL:
        literal_wanted(conn, s);
        break;
    case IMAP_PARSE_LINE:
        break;
    case IMAP_PARSE_BAD:
        answer_bad(conn, s);
        break;
    }
}

static void literal_wanted(struct petrel_conn *conn, struct imap_session *s)
{
    struct imap_literal_info info = imap_parse_literal_info(s->parser);
    const char *name = imap_parse_name(s->parser);
    /* A message before login would be read for nothing: refused at once
     * (the reader swallows a non-synchronising literal unreported). */
    if (s->state == IMAP_ST_NOAUTH && strcmp(name, "APPEND") == 0) {
        petrel_strlcpy(s->tag, imap_parse_tag(s->parser), sizeof(s->tag));
        imap_bad(conn, s, "APPEND not allowed before login");
        if (imap_parse_refuse(s->parser) == IMAP_PARSE_DONE) {
            parser_end(s);
            return;
        }
        s->refusing = true;
        info = imap_parse_literal_info(s->parser);
    } else if (info.sync) {
        petrel_conn_printf(conn, "+ Ready for literal data\r\n");
    }
    if (info.size == 0) {
        act(conn, s, imap_parse_literal(s->parser, "", 0));
        return;
    }
    if (s->draining) {
        s->literal_left = info.size; /* taken from the pending queue */
        return;
    }
    petrel_conn_read_chunk(conn, (size_t)info.size);
}

static void feed_line(struct petrel_conn *conn, struct imap_session *s, const char *line,
                      size_t len)
{
    parser_ensure(s);
    enum imap_parse_status st = imap_parse_line(s->parser, line, len);
    if (st == IMAP_PARSE_LINE && s->refusing) { /* the refused command's end */
        s->refusing = false;
        parser_end(s);
        return;
    }
    act(conn, s, st);
}

static void imap_chunk(struct petrel_conn *conn, const char *data, size_t len, bool last)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (s->parser == NULL || s->state == IMAP_ST_LOGOUT)
        return;
    enum imap_parse_status st = imap_parse_literal(s->parser, data, len);
    if (st != IMAP_PARSE_LITERAL || last)
        act(conn, s, st);
}

static bool busy(const struct imap_session *s)
{
    return s->mode == IMAP_MODE_BUSY || s->state == IMAP_ST_LOGOUT;
}

/* A line the listener's max_line cut, held in order as this marker. */
static const char too_long_mark[2] = {'\0', 'L'};

static void too_long(struct petrel_conn *conn, struct imap_session *s)
{
    /* The rest of the command is lost with the line: drop what was read. */
    if (s->parser != NULL) {
        petrel_strlcpy(s->tag, imap_parse_tag(s->parser), sizeof(s->tag));
        imap_spool_close(s);
        parser_end(s);
    } else {
        s->tag[0] = '\0';
    }
    imap_bad(conn, s, "[LIMIT] Line too long");
}

/* Input that came while an answer was going out, kept as it came (line
 * terminators included) so literals in it are handed over whole. */
static void hold(struct petrel_conn *conn, struct imap_session *s, const char *line, size_t len)
{
    const char *end = petrel_conn_line_crlf(conn) ? "\r\n" : "\n";
    if (!petrel_buf_append(&s->pending, line, len) ||
        !petrel_buf_append(&s->pending, end, strlen(end))) {
        petrel_conn_log(conn, PETREL_LOG_INFO, "more than %u bytes of pipelined commands: closing",
                        IMAP_PENDING_MAX);
        petrel_conn_printf(conn, "* BYE Too much pipelined input\r\n");
        s->state = IMAP_ST_LOGOUT;
        petrel_conn_close(conn);
    }
}

/* One step of the held input: a literal's bytes or a line. False when
 * what is held is not a whole line. */
static bool replay_one(struct petrel_conn *conn, struct imap_session *s)
{
    const char *head = petrel_buf_head(&s->pending);
    if (s->literal_left > 0) {
        size_t n = s->pending.len < s->literal_left ? s->pending.len : (size_t)s->literal_left;
        char *copy = petrel_malloc(n);
        memcpy(copy, head, n);
        /* Held input may hold a password (LOGIN): wiped once used. */
        explicit_bzero((char *)head, n);
        petrel_buf_consume(&s->pending, n);
        s->literal_left -= n;
        imap_chunk(conn, copy, n, s->literal_left == 0);
        explicit_bzero(copy, n);
        free(copy);
        return true;
    }
    const char *nl = memchr(head, '\n', s->pending.len);
    if (nl == NULL)
        return false;
    size_t len = (size_t)(nl - head), used = len + 1;
    if (len > 0 && head[len - 1] == '\r')
        len--;
    char *line = petrel_malloc(len + 1); /* not strndup: a line may hold NULs */
    memcpy(line, head, len);
    line[len] = '\0';
    explicit_bzero((char *)head, used);
    petrel_buf_consume(&s->pending, used);
    if (s->mode == IMAP_MODE_IDLE)
        imap_idle_line(conn, s, line, len);
    else if (len == sizeof(too_long_mark) && memcmp(line, too_long_mark, len) == 0)
        too_long(conn, s);
    else
        feed_line(conn, s, line, len);
    explicit_bzero(line, len);
    free(line);
    return true;
}

/* Run the held input while nothing else is going on. */
static void resume(struct petrel_conn *conn, struct imap_session *s)
{
    if (s->draining)
        return; /* the loop below goes on */
    s->draining = true;
    while (!busy(s) && s->spill.len == 0 &&
           (s->mode == IMAP_MODE_CMD || s->mode == IMAP_MODE_IDLE) && s->pending.len > 0)
        if (!replay_one(conn, s))
            break;
    s->draining = false;
    if (s->literal_left > 0 && s->pending.len == 0 && s->parser != NULL) {
        size_t n = (size_t)s->literal_left;
        s->literal_left = 0;
        petrel_conn_read_chunk(conn, n); /* the rest of it from the socket */
    }
    if (s->pending.len == 0)
        petrel_buf_release(&s->pending);
}

void imap_command_end(struct petrel_conn *conn, struct imap_session *s)
{
    if (s->mode == IMAP_MODE_BUSY)
        s->mode = IMAP_MODE_CMD;
    if (s->ready && s->mode == IMAP_MODE_CMD && s->state != IMAP_ST_LOGOUT) {
        s->ready = false;
        act(conn, s, s->ready_status);
    }
    resume(conn, s);
}

/* Whether a line may be read ahead while an answer goes out: not when it
 * waits for a "+" (a synchronising literal: the "+" cannot go inside the
 * answer), nor before login (refusals answer at once). */
static bool read_ahead(const struct imap_session *s, const char *line, size_t len)
{
    if (s->mode != IMAP_MODE_BUSY || s->state == IMAP_ST_NOAUTH || s->pending.len > 0 || s->ready ||
        s->refusing)
        return false;
    return len < 2 || line[len - 1] != '}' || line[len - 2] == '+';
}

static void imap_line(struct petrel_conn *conn, char *line, size_t len)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (s->state == IMAP_ST_LOGOUT)
        return;
    if (s->mode == IMAP_MODE_SASL) {
        petrel_login_line(conn, line, len);
        return;
    }
    if (s->mode == IMAP_MODE_IDLE && s->spill.len == 0 && s->pending.len == 0) {
        imap_idle_line(conn, s, line, len);
        return;
    }
    if (read_ahead(s, line, len)) {
        feed_line(conn, s, line, len); /* a LITERAL+ message goes to its spool now */
        return;
    }
    if (busy(s) || s->pending.len > 0 || s->ready || s->spill.len > 0) {
        hold(conn, s, line, len);
        resume(conn, s);
        return;
    }
    feed_line(conn, s, line, len);
}

static void imap_line_too_long(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    petrel_conn_log(conn, PETREL_LOG_INFO, "line too long");
    if (s->state == IMAP_ST_LOGOUT)
        return;
    if (s->mode == IMAP_MODE_SASL) { /* the exchange is over */
        petrel_login_cancel(conn);
        s->mode = IMAP_MODE_CMD;
        imap_bad(conn, s, "Authentication line too long");
        return;
    }
    if (busy(s) || s->pending.len > 0 || s->ready) {
        hold(conn, s, too_long_mark, sizeof(too_long_mark));
        return;
    }
    too_long(conn, s);
}

void imap_send(struct petrel_conn *conn, struct imap_session *s, struct petrel_buf *text)
{
    size_t max = petrel_conn_max_output(conn);
    if (s->spill.len == 0 && text->len <= max) {
        petrel_conn_write(conn, petrel_buf_head(text), text->len);
        return;
    }
    if (!petrel_buf_append(&s->spill, petrel_buf_head(text), text->len)) {
        petrel_conn_log(conn, PETREL_LOG_WARNING, "answer larger than %u bytes: closing",
                        2 * IMAP_OUT_MAX);
        s->state = IMAP_ST_LOGOUT;
        petrel_conn_close(conn);
        return;
    }
    petrel_conn_want_drained(conn);
}

/* The next part of a spilled answer; true while some is left. */
static bool spill_more(struct petrel_conn *conn, struct imap_session *s)
{
    size_t max = petrel_conn_max_output(conn);
    size_t n = s->spill.len < max ? s->spill.len : max;
    petrel_conn_write(conn, petrel_buf_head(&s->spill), n);
    petrel_buf_consume(&s->spill, n);
    if (s->spill.len > 0) {
        petrel_conn_want_drained(conn);
        return true;
    }
    petrel_buf_release(&s->spill);
    return false;
}

static void imap_output_drained(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (s->spill.len > 0 && spill_more(conn, s))
        return;
    if (s->fetch != NULL)
        imap_fetch_more(conn, s);
    else if (s->mode == IMAP_MODE_BUSY)
        imap_command_end(conn, s);
    else
        resume(conn, s); /* IDLE's held lines */
}

static void imap_timeout(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    petrel_conn_log(conn, PETREL_LOG_INFO, "timeout: closing");
    if (s->fetch == NULL)
        petrel_conn_printf(conn, "* BYE Disconnected for inactivity\r\n");
    s->state = IMAP_ST_LOGOUT;
}

static void imap_shutdown(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (s->fetch == NULL)
        petrel_conn_printf(conn, "* BYE [UNAVAILABLE] Server shutting down\r\n");
    s->state = IMAP_ST_LOGOUT;
}

static void imap_refuse(struct petrel_conn *conn, const char *reason)
{
    (void)reason;
    petrel_conn_printf(conn, "* BYE Access denied\r\n");
}

static void imap_tls_ready(struct petrel_conn *conn, bool ok)
{
    struct imap_session *s = petrel_conn_session(conn);
    if (!ok)
        s->state = IMAP_ST_LOGOUT;
}

static void imap_close(struct petrel_conn *conn)
{
    struct imap_session *s = petrel_conn_session(conn);
    imap_fetch_free(s);
    imap_spool_close(s);
    parser_end(s);
    imap_session_release(s);
    imap_session_end_user(s);
    petrel_buf_free(&s->pending);
    petrel_buf_free(&s->spill);
}

const struct petrel_protocol imap_protocol = {
    .name = "imap",
    .session_size = sizeof(struct imap_session),
    .connect = imap_connect,
    .line = imap_line,
    .chunk = imap_chunk,
    .line_too_long = imap_line_too_long,
    .timeout = imap_timeout,
    .refuse = imap_refuse,
    .tls_ready = imap_tls_ready,
    .close = imap_close,
    .shutdown = imap_shutdown,
    .wakeup = imap_wakeup,
    .output_drained = imap_output_drained,
};
