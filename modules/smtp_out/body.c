/* Sending the message: read from the queue file a part at a time as the
 * output drains (never the whole message in memory), dot-stuffed for DATA
 * (petrel/dotstuff.h) or as it is after "BDAT size LAST" (RFC 3030, for
 * BINARYMIME). The final reply then gets data_timeout. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <petrel/mem.h>

#include "smtp_out.h"

static void read_failed(struct smtp_job *job, const char *why)
{
    /* Closing without the end of data makes the server drop what it has;
     * another server would read the same file: defer for the queue. */
    for (size_t k = 0; k < job->nsent; k++) {
        size_t i = job->sent[k];
        if (job->rs[i].accepted)
            smtp_result_decide(job, i, PETREL_TRANSPORT_DEFERRED,
                               "451 4.3.0 cannot read the queued message");
    }
    smtp_result_soft_all(job, "451 4.3.0 cannot read the queued message: %s", why);
    smtp_session_end(job, false);
}

static void finish_body(struct smtp_job *job)
{
    job->dot_sent = true;
    job->state = SMTP_S_DOT;
    petrel_conn_set_timeout(job->conn, (unsigned)job->cfg->data_timeout);
}

void smtp_body_drained(struct smtp_job *job)
{
    const struct petrel_transport_msg *msg = job->msg;
    bool bdat = msg->body == PETREL_BODY_BINARYMIME;
    size_t want = msg->size - job->body_off < SMTP_OUT_CHUNK ? (size_t)(msg->size - job->body_off)
                                                             : SMTP_OUT_CHUNK;
    ssize_t n = 0;
    if (want > 0) {
        do
            n = pread(msg->data_fd, job->chunk, want, (off_t)job->body_off);
        while (n < 0 && errno == EINTR);
        if (n <= 0) {
            read_failed(job, n < 0 ? strerror(errno) : "shorter than its size");
            return;
        }
    }
    job->body_off += (uint64_t)n;
    petrel_buf_reset(&job->out);
    bool ok = bdat ? petrel_buf_append(&job->out, job->chunk, (size_t)n)
                   : petrel_dotstuff_add(&job->stuff, job->chunk, (size_t)n, &job->out);
    bool last = job->body_off >= msg->size;
    if (ok && last && !bdat)
        ok = petrel_dotstuff_end(&job->stuff, &job->out);
    if (!ok) { /* cannot happen: the buffer holds a stuffed chunk twice over */
        read_failed(job, "output buffer full");
        return;
    }
    if (job->out.len > 0 && !petrel_conn_write(job->conn, petrel_buf_head(&job->out), job->out.len))
        return; /* closing: on_close decides */
    if (last)
        finish_body(job);
    else
        petrel_conn_want_drained(job->conn);
}

void smtp_body_start(struct smtp_job *job, bool bdat)
{
    job->body_off = 0;
    petrel_dotstuff_init(&job->stuff);
    if (job->chunk == NULL)
        job->chunk = petrel_malloc(SMTP_OUT_CHUNK);
    job->state = SMTP_S_BODY;
    if (bdat) /* one chunk: the size is known, and no reply comes before LAST */
        smtp_session_write(job, "BDAT %llu LAST\r\n", (unsigned long long)job->msg->size);
    smtp_body_drained(job);
}
