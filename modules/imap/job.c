/* A command's blocking part on a worker (petrel_conn_submit): the work
 * builds the whole answer, untagged lines, the changes other sessions
 * made (RFC 3501 section 7: at a command's end) and the tagged line; the
 * I/O thread only sends it. While the job runs no input or wakeup reaches
 * the session, so the work may use the session's storage handles and
 * message table. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "imap.h"

struct imap_job *imap_job_new(struct imap_session *s, imap_job_fn *work)
{
    struct imap_job *j = petrel_calloc(1, sizeof(*j));
    j->s = s;
    j->work = work;
    petrel_buf_init(&j->out, (size_t)s->cfg->max_answer + IMAP_OUT_SLACK);
    petrel_strlcpy(j->tag, s->tag[0] != '\0' ? s->tag : "*", sizeof(j->tag));
    return j;
}

void imap_job_free(struct imap_job *j)
{
    if (j->free_arg != NULL)
        j->free_arg(j->arg);
    petrel_buf_free(&j->out);
    free(j);
}

__attribute__((format(printf, 3, 0))) static void status(struct imap_job *j, const char *word,
                                                         const char *fmt, va_list ap)
{
    char text[512];
    vsnprintf(text, sizeof(text), fmt, ap);
    for (unsigned char *p = (unsigned char *)text; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            *p = ' ';
    /* The tagged line goes last, after the updates: kept aside until then. */
    petrel_strlcpy(j->status, word, sizeof(j->status));
    petrel_strlcpy(j->text, text, sizeof(j->text));
}

void imap_job_ok(struct imap_job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status(j, "OK", fmt, ap);
    va_end(ap);
}

void imap_job_no(struct imap_job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status(j, "NO", fmt, ap);
    va_end(ap);
}

void imap_job_bad(struct imap_job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    status(j, "BAD", fmt, ap);
    va_end(ap);
}

void imap_job_storage_error(struct imap_job *j, int err, const char *what)
{
    const char *code;
    switch (err) {
    case PETREL_STORAGE_NOT_FOUND:
        code = "[NONEXISTENT] ";
        break;
    case PETREL_STORAGE_EXISTS:
        code = "[ALREADYEXISTS] ";
        break;
    case PETREL_STORAGE_OVER_QUOTA:
        code = "[OVERQUOTA] ";
        break;
    case PETREL_STORAGE_INVALID_NAME:
    case PETREL_STORAGE_INVALID_ARG:
        code = "[CANNOT] ";
        break;
    case PETREL_STORAGE_NOT_ALLOWED:
        code = "[CANNOT] ";
        break;
    case PETREL_STORAGE_TOO_LARGE:
        code = "[LIMIT] ";
        break;
    default:
        code = "[UNAVAILABLE] ";
        break;
    }
    imap_job_no(j, "%s%s: %s", code, what, imap_storage->strerror(err));
}

static void job_work(void *arg)
{
    struct imap_job *j = arg;
    j->work(j);
    struct imap_session *s = j->s;
    if (j->out.len > (size_t)s->cfg->max_answer) {
        /* Lines may be missing past the cap: send none of it. With a folder
         * selected, EXPUNGE or EXISTS lines may be among them, so the
         * client's sequence numbers cannot be kept right: BYE after. */
        j->too_big = true;
        j->bye = s->folder != NULL;
        petrel_buf_reset(&j->out);
        imap_job_no(j, "[LIMIT] Answer larger than %lld bytes", s->cfg->max_answer);
    } else if (j->sync && s->folder != NULL) {
        int err = imap_sync(s, &j->out, j->expunges);
        if (err != 0 && err != PETREL_STORAGE_NOT_FOUND)
            petrel_log(PETREL_LOG_WARNING, IMAP_LOG, "cannot sync %s: %s", s->folder_name,
                       imap_storage->strerror(err));
    }
    if (j->status[0] != '\0')
        petrel_buf_printf(&j->out, "%s %s %s\r\n", j->tag, j->status, j->text);
}

static void job_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct imap_job *j = arg;
    struct imap_session *s = petrel_conn_session(conn);
    if (!closing) {
        if (j->after != NULL)
            j->after(conn, j);
        imap_send(conn, s, &j->out);
        if (strcmp(j->status, "NO") == 0 || strcmp(j->status, "BAD") == 0)
            imap_log_refusal(conn, s, j->status, j->text);
        if (j->too_big)
            petrel_conn_log(conn, PETREL_LOG_WARNING, "answer larger than %lld bytes refused%s",
                            s->cfg->max_answer, j->bye ? ": closing" : "");
        if (j->bye && s->state != IMAP_ST_LOGOUT) {
            petrel_conn_printf(conn, "* BYE Answer too large, closing\r\n");
            s->state = IMAP_ST_LOGOUT;
            petrel_conn_close(conn);
        }
    }
    imap_job_free(j);
    if (!closing && s->fetch == NULL && s->mode == IMAP_MODE_BUSY && s->spill.len == 0)
        imap_command_end(conn, s);
}

bool imap_job_submit(struct petrel_conn *conn, struct imap_job *j)
{
    struct imap_session *s = j->s;
    /* In IDLE the lines go to idle.c; else they wait for the answer. */
    bool was_cmd = s->mode == IMAP_MODE_CMD;
    if (was_cmd)
        s->mode = IMAP_MODE_BUSY;
    if (!petrel_conn_submit(conn, job_work, job_done, j)) {
        if (was_cmd)
            s->mode = IMAP_MODE_CMD;
        if (j->untagged_only) {
            imap_log_refusal(conn, s, "busy", "IDLE update deferred: the worker queue is full");
        } else {
            petrel_conn_printf(conn, "%s NO [UNAVAILABLE] Server busy, try again later\r\n",
                               j->tag);
            imap_log_refusal(conn, s, "NO", "[UNAVAILABLE] server busy: the worker queue is full");
        }
        imap_job_free(j);
        return false;
    }
    return true;
}
