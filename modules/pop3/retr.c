/* RETR and TOP (RFC 1939 sections 7 and 9): the message streamed from the
 * store a piece at a time, never whole in memory. A worker opens the
 * message and reads the next POP3_READ_BYTES, converted (pop3_body.c);
 * the I/O thread queues them and asks for the next piece once they have
 * gone out, so a slow client holds two buffers, not the message. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/storage.h>

#include "pop3.h"

struct pop3_body_job {
    struct petrel_folder *folder;
    uint32_t n, uid;
    uint64_t size;
    int fd;
    uint64_t file_size, offset;
    uint64_t sent; /* octets queued, for the counter */
    bool started, eof;
    int err;        /* opening: a storage error */
    int read_errno; /* reading */
    size_t piece;   /* octets read a job: converted, they fit the connection's output */
    struct pop3_body body;
    struct petrel_buf out; /* emptied and let go once written */
};

static void body_work(void *arg)
{
    struct pop3_body_job *j = arg;
    if (j->fd < 0) {
        j->err = pop3_storage->fetch_fd(j->folder, j->uid, &j->fd, &j->file_size);
        if (j->err != 0)
            return;
    }
    /* The read buffer lives for the job only: a slow reader's session
     * holds its converted piece, not this too. */
    char *in = petrel_malloc(j->piece);
    ssize_t n;
    do
        n = pread(j->fd, in, j->piece, (off_t)j->offset);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        j->read_errno = errno;
        free(in);
        return;
    }
    j->offset += (uint64_t)n;
    pop3_body_feed(&j->body, in, (size_t)n, &j->out);
    free(in);
    /* A Maildir file never changes: at its size it is over, without
     * another job to read nothing. */
    j->eof = n == 0 || j->offset >= j->file_size || j->body.done;
}

static void body_end(struct petrel_conn *conn, struct pop3_session *s)
{
    pop3_body_free(s);
    s->stream = POP3_STREAM_NONE;
    pop3_resume(conn);
}

static void body_done(struct petrel_conn *conn, void *arg, bool closing)
{
    struct pop3_body_job *j = arg;
    struct pop3_session *s = petrel_conn_session(conn);
    if (closing)
        return; /* close frees it */
    if (!j->started && j->err != 0) {
        bool gone = j->err == PETREL_STORAGE_NOT_FOUND;
        petrel_conn_log(conn, gone ? PETREL_LOG_INFO : PETREL_LOG_WARNING,
                        "cannot open message %u (UID %u): %s", j->n, j->uid,
                        pop3_storage->strerror(j->err));
        pop3_error(conn,
                   gone ? "Message %u was removed by another session"
                        : "[SYS/TEMP] Cannot read message %u, try again later",
                   j->n);
        body_end(conn, s);
        return;
    }
    if (j->read_errno != 0) { /* half sent: the client cannot tell where it stops */
        petrel_conn_log(conn, PETREL_LOG_WARNING, "reading message %u (UID %u) failed: %s: closing",
                        j->n, j->uid, strerror(j->read_errno));
        s->state = POP3_ST_QUIT;
        petrel_conn_close(conn);
        return;
    }
    if (!j->started)
        petrel_conn_printf(conn, "+OK %llu octets\r\n", (unsigned long long)j->size);
    j->started = true;
    petrel_conn_write(conn, petrel_buf_head(&j->out), j->out.len);
    j->sent += j->out.len;
    petrel_buf_free(&j->out); /* the connection has a copy */
    petrel_buf_init(&j->out, POP3_OUT_BYTES);
    if (!j->eof) {
        petrel_conn_want_drained(conn);
        return;
    }
    pop3_body_end(&j->body, &j->out);
    petrel_conn_write(conn, petrel_buf_head(&j->out), j->out.len);
    if (!j->body.top)
        s->msgs[j->n - 1].retrieved = true;
    petrel_counter_add(pop3_counters.retrieved, 1);
    petrel_counter_add(pop3_counters.retrieved_bytes, (int64_t)(j->sent + j->out.len));
    body_end(conn, s);
}

void pop3_body_more(struct petrel_conn *conn, struct pop3_session *s)
{
    if (petrel_conn_submit(conn, body_work, body_done, s->body))
        return;
    petrel_conn_log(conn, PETREL_LOG_WARNING, "no worker free in the middle of a message: closing");
    s->state = POP3_ST_QUIT;
    petrel_conn_close(conn);
}

void pop3_cmd_retr(struct petrel_conn *conn, struct pop3_session *s, const struct pop3_cmd *cmd)
{
    struct pop3_msg *m = pop3_msg_get(conn, s, cmd->msg);
    if (m == NULL)
        return;
    struct pop3_body_job *j = petrel_calloc(1, sizeof(*j));
    j->folder = s->folder;
    j->n = cmd->msg;
    j->uid = m->uid;
    j->size = m->size;
    j->fd = -1;
    /* Converted (CRLF, dot-stuffing) a piece may double: half the
     * connection's max_output at most, so it never closes for it. */
    size_t half = petrel_conn_max_output(conn) / 2;
    j->piece = half < POP3_READ_BYTES ? half : POP3_READ_BYTES;
    pop3_body_init(&j->body, cmd->verb == POP3_TOP, cmd->lines);
    petrel_buf_init(&j->out, POP3_OUT_BYTES);
    s->body = j;
    s->stream = POP3_STREAM_BODY;
    if (petrel_conn_submit(conn, body_work, body_done, j))
        return;
    pop3_body_free(s);
    s->stream = POP3_STREAM_NONE;
    pop3_error(conn, "[SYS/TEMP] Server busy, try again later");
}

void pop3_body_free(struct pop3_session *s)
{
    struct pop3_body_job *j = s->body;
    if (j == NULL)
        return;
    if (j->fd >= 0)
        close(j->fd);
    petrel_buf_free(&j->out);
    free(j);
    s->body = NULL;
}
