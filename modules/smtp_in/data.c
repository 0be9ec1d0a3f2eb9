/* The message: DATA (RFC 5321 section 4.1.1.4) and BDAT (RFC 3030).
 *
 * DATA ends only at <CRLF>.<CRLF>: a "." line counts only when it and the
 * line before it ended in CRLF, so a bare <LF>.<LF> or <CR>.<CR> inside
 * the message never ends it (SMTP smuggling). Bare LF and bare CR are
 * made CRLF, or the message refused, by the bare_lf setting; BDAT content
 * is not dot-stuffed but gets the same line-end policy, so what is stored
 * has CRLF line ends whichever way it came. NUL bytes,
 * over-long lines and over-size messages are read to the end and then
 * refused with a clear reply. Bytes gather in the session and a worker
 * hands them to the queue service every 256 KiB and at the end. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_in.h"

struct msg_job {
    struct petrel_queue_msg *msg;
    struct petrel_buf data;
    size_t budget; /* the session's, handed on with data */
    bool commit;
    bool ok;
    bool no_space; /* the queue said ENOSPC: 452 4.3.1 */
    struct petrel_queue_reply reply;
    uint64_t size;
};

static void abort_work(void *arg) { smtp_queue->abort(arg); }

void smtp_message_drop(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->msg != NULL && !petrel_worker_submit(abort_work, s->msg))
        smtp_queue->abort(s->msg); /* pool full: the unlink may block a little */
    s->msg = NULL;
    petrel_buf_free(&s->data); /* an idle session keeps no message buffer */
    petrel_membudget_drop(&s->budget, 0);
    s->size = 0;
    s->too_big = s->bad_eol = s->nul = s->long_line = s->write_failed = s->no_space = false;
    s->bdat = s->bdat_failed = s->bdat_last = s->bdat_end_due = s->bdat_cr = false;
    petrel_conn_transfer(conn, false);
}

static void bdat_end(struct petrel_conn *conn, struct smtp_session *s);

static void msg_work(void *arg)
{
    struct msg_job *j = arg;
    j->ok = j->data.len == 0 || smtp_queue->write(j->msg, petrel_buf_head(&j->data), j->data.len);
    j->no_space = !j->ok && errno == ENOSPC;
    if (!j->commit)
        return;
    if (j->ok) {
        smtp_queue->commit(j->msg, &j->reply);
    } else {
        smtp_queue->abort(j->msg);
        j->reply =
            j->no_space
                ? (struct petrel_queue_reply){452, "4.3.1", "insufficient system storage"}
                : (struct petrel_queue_reply){451, "4.3.0", "local error writing the message"};
    }
    j->msg = NULL;
}

static void msg_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct msg_job *j = arg;
    struct smtp_session *s = closing ? NULL : petrel_conn_session(conn);
    if (!j->commit && !closing)
        s->flushing = false;
    if (j->commit && !closing) {
        const struct petrel_queue_reply *r = &j->reply;
        petrel_conn_log(conn, PETREL_LOG_INFO, "message from=<%s> size=%llu: %d %s %s",
                        s->mail.from.address, (unsigned long long)j->size, r->code, r->enhanced,
                        r->text);
        smtp_reset(conn, s);
        smtp_reply(conn, r->code, r->enhanced, "%s", r->text);
        if (r->code == 421) {
            s->state = SMTP_ST_QUIT;
            petrel_conn_close(conn);
        }
    } else if (!j->commit && !closing && !j->ok) {
        s->write_failed = true; /* refused at the end */
        s->no_space = j->no_space;
    }
    petrel_buf_free(&j->data);
    petrel_membudget_drop(&j->budget, 0);
    free(j);
    if (s != NULL && s->bdat_end_due) {
        s->bdat_end_due = false;
        bdat_end(conn, s);
    }
}

/* Hand what has gathered to a worker; commit ends the message. */
static void flush(struct petrel_conn *conn, struct smtp_session *s, bool commit)
{
    struct msg_job *j = petrel_calloc(1, sizeof(*j));
    j->msg = s->msg;
    j->data = s->data;
    j->budget = s->budget;
    j->commit = commit;
    j->size = s->size;
    petrel_buf_init(&s->data, SMTP_BUFFER_MAX);
    s->budget = 0;
    if (commit)
        s->msg = NULL; /* the job owns it now */
    if (petrel_conn_submit(conn, msg_work, msg_done, j)) {
        s->flushing = !commit;
        return;
    }
    /* The pool is full: no message now. */
    if (commit) {
        s->msg = j->msg;
        smtp_reset(conn, s);
        smtp_reply(conn, 451, "4.3.2", "server busy, try again later");
    } else {
        s->write_failed = true;
    }
    petrel_buf_free(&j->data);
    petrel_membudget_drop(&j->budget, 0);
    free(j);
}

static void append(struct petrel_conn *conn, struct smtp_session *s, const char *p, size_t n)
{
    if (s->too_big || s->write_failed)
        return;
    s->size += n;
    if (s->size > s->max_size) {
        s->too_big = true;
        petrel_buf_free(&s->data);
        petrel_membudget_drop(&s->budget, 0);
        return;
    }
    if (!petrel_buf_append(&s->data, p, n)) {
        s->too_big = true; /* cannot happen: the cap has room (SMTP_BUFFER_MAX) */
        return;
    }
    /* One write at a time: while one runs, input is paused, and what this
     * input unit still adds fits in the buffer's headroom. */
    if (!s->flushing && (s->data.len >= SMTP_FLUSH_BYTES ||
                         !petrel_membudget_hold(&s->budget, s->data.len, SMTP_FREE_BYTES)))
        flush(conn, s, false);
}

static bool refuse_reasons(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->write_failed && s->no_space)
        smtp_reply(conn, 452, "4.3.1", "insufficient system storage, try again later");
    else if (s->write_failed)
        smtp_reply(conn, 451, "4.3.0", "local error writing the message, try again later");
    else if (s->too_big)
        smtp_reply(conn, 552, "5.3.4", "message size exceeds fixed limit");
    else if (s->nul)
        smtp_reply(conn, 554, "5.6.0", "message contains NUL bytes");
    else if (s->long_line)
        smtp_reply(conn, 554, "5.6.0", "message has a line longer than the limit");
    else if (s->bad_eol)
        smtp_reply(conn, 554, "5.6.0", "message contains a bare CR or LF (RFC 5321 section 2.3.8)");
    else
        return false;
    petrel_conn_log(conn, PETREL_LOG_INFO, "message refused: %s",
                    s->write_failed ? "spool write failed"
                    : s->too_big    ? "too big"
                    : s->nul        ? "NUL bytes"
                    : s->long_line  ? "line too long"
                                    : "bare CR or LF");
    smtp_reset(conn, s);
    return true;
}

static bool transaction_ready(struct petrel_conn *conn, struct smtp_session *s)
{
    if (!s->in_mail) {
        smtp_error(conn, 503, "5.5.1", "need MAIL command");
        return false;
    }
    if (s->nrcpts == 0) {
        smtp_error(conn, 554, "5.5.1", "no valid recipients");
        return false;
    }
    return true;
}

/* --- DATA --- */

void smtp_cmd_data(struct petrel_conn *conn, struct smtp_session *s, const char *args)
{
    if (args[0] != '\0') {
        smtp_data_refused(conn, s, 501, "5.5.4", "syntax: DATA");
        return;
    }
    if (!s->in_mail) {
        smtp_data_refused(conn, s, 503, "5.5.1", "need MAIL command");
        return;
    }
    if (s->nrcpts == 0) {
        smtp_data_refused(conn, s, 554, "5.5.1", "no valid recipients");
        return;
    }
    smtp_message_drop(conn, s);
    s->msg = smtp_queue->begin(&s->env);
    s->prev_crlf = true;
    s->state = SMTP_ST_DATA;
    petrel_conn_printf(conn, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

void smtp_data_long_line(struct petrel_conn *conn, struct smtp_session *s)
{
    s->long_line = true;
    /* The dropped line's end counts for the next line's "." test. */
    s->prev_crlf = petrel_conn_line_crlf(conn);
}

/* One line of content, terminator removed: bare CRs inside it become line
 * ends (normalize) or mark the message (reject). */
static void content_line(struct petrel_conn *conn, struct smtp_session *s, const char *p, size_t n)
{
    const char *cr;
    while ((cr = memchr(p, '\r', n)) != NULL) {
        if (s->cfg->bare_lf[0] == 'r')
            s->bad_eol = true;
        append(conn, s, p, (size_t)(cr - p));
        append(conn, s, "\r\n", 2);
        n -= (size_t)(cr - p) + 1;
        p = cr + 1;
    }
    append(conn, s, p, n);
    append(conn, s, "\r\n", 2);
}

void smtp_data_line(struct petrel_conn *conn, struct smtp_session *s, char *line, size_t len)
{
    bool crlf = petrel_conn_line_crlf(conn);
    if (len == 1 && line[0] == '.' && crlf && s->prev_crlf) {
        s->state = SMTP_ST_CMD;
        if (!refuse_reasons(conn, s))
            flush(conn, s, true);
        return;
    }
    s->prev_crlf = crlf;
    if (!crlf && s->cfg->bare_lf[0] == 'r')
        s->bad_eol = true;
    if (memchr(line, '\0', len) != NULL)
        s->nul = true;
    if (len > 0 && line[0] == '.') /* dot-stuffing, RFC 5321 section 4.5.2 */
        line++, len--;
    content_line(conn, s, line, len);
}

/* --- BDAT --- */

static void bare_eol(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->cfg->bare_lf[0] == 'r')
        s->bad_eol = true;
    append(conn, s, "\r\n", 2);
}

/* BDAT content as it arrives: CRLF kept, a bare CR or LF made CRLF (or the
 * message marked). A CR that ends one part waits for the next byte, which
 * may be in the next part or the next chunk. */
static void chunk_content(struct petrel_conn *conn, struct smtp_session *s, const char *p, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (s->bdat_cr) {
            s->bdat_cr = false;
            if (p[i] == '\n') {
                append(conn, s, "\r\n", 2);
                start = i + 1;
                continue;
            }
            bare_eol(conn, s);
        }
        if (p[i] == '\r' || p[i] == '\n') {
            append(conn, s, p + start, i - start);
            start = i + 1;
            if (p[i] == '\r')
                s->bdat_cr = true;
            else
                bare_eol(conn, s);
        }
    }
    append(conn, s, p + start, n - start);
}

static void bdat_end(struct petrel_conn *conn, struct smtp_session *s)
{
    uint64_t got = s->size;
    if (s->bdat_failed) {
        s->bdat_failed = false;
        return; /* answered when the command was refused */
    }
    if (refuse_reasons(conn, s))
        return;
    if (s->bdat_last) {
        petrel_conn_transfer(conn, false); /* the final answer renews the time */
        flush(conn, s, true);
        return;
    }
    smtp_reply(conn, 250, "2.0.0", "%llu octets received", (unsigned long long)got);
}

/* A chunk's bytes are all in: end the message's last line if that was a
 * bare CR, then answer once no write runs. */
static void chunk_end(struct petrel_conn *conn, struct smtp_session *s)
{
    if (s->bdat_last && s->bdat_cr && !s->bdat_failed) {
        s->bdat_cr = false;
        bare_eol(conn, s); /* may start a write */
    }
    if (s->flushing)
        s->bdat_end_due = true; /* after the write this part started */
    else
        bdat_end(conn, s);
}

void smtp_cmd_bdat(struct petrel_conn *conn, struct smtp_session *s, const char *args)
{
    uint64_t size;
    bool last;
    struct smtp_reply err;
    if (!smtp_parse_bdat(args, &size, &last, &err)) {
        /* The chunk's length is unknown: its bytes would be read as
         * commands. Nothing sensible is left to do but hang up. */
        smtp_reply(conn, err.code, err.enhanced, "%s", err.text);
        petrel_conn_log(conn, PETREL_LOG_INFO, "bad BDAT command: closing");
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    if (!s->cfg->chunking) {
        smtp_reply(conn, 502, "5.5.1", "BDAT not available");
        s->state = SMTP_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    bool ok = s->bdat || transaction_ready(conn, s);
    if (ok && !s->bdat) {
        smtp_message_drop(conn, s);
        s->msg = smtp_queue->begin(&s->env);
        s->bdat = true;
        /* Each chunk's 250 must not give a fresh idle_timeout: a message
         * sent a byte per chunk would never run out of time. */
        petrel_conn_transfer(conn, true);
    }
    s->bdat_failed = !ok; /* the chunk is still read, then dropped */
    s->bdat_last = last;
    if (ok && size > s->max_size - (s->size < s->max_size ? s->size : s->max_size))
        s->too_big = true;
    if (size == 0) {
        chunk_end(conn, s);
        return;
    }
    petrel_conn_read_chunk(conn, (size_t)size);
}

void smtp_chunk(struct petrel_conn *conn, const char *data, size_t len, bool last)
{
    struct smtp_session *s = petrel_conn_session(conn);
    if (!s->bdat_failed && !s->too_big) {
        if (s->mail.body == SMTP_BODY_BINARYMIME) {
            append(conn, s, data, len);
        } else {
            if (memchr(data, '\0', len) != NULL)
                s->nul = true;
            chunk_content(conn, s, data, len);
        }
    } else if (s->too_big) {
        s->size += len;
    }
    if (last)
        chunk_end(conn, s);
}
