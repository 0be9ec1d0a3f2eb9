/* What became of each recipient, and the log line and counters for it.
 * A temporary failure at one server is only tentative while another
 * server may still take the recipient (Postfix's "final server" rule):
 * it becomes the recipient's status when the attempt ends. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

void smtp_result_decide(struct smtp_job *job, size_t i, enum petrel_transport_status status,
                        const char *reason)
{
    struct petrel_transport_rcpt *r = &job->msg->rcpts[i];
    if (job->rs[i].decided)
        return;
    job->rs[i].decided = true;
    r->status = status;
    petrel_strlcpy(r->reason, reason, sizeof(r->reason));
}

__attribute__((format(printf, 3, 0))) static void vformat(char *out, size_t size, const char *fmt,
                                                          va_list ap)
{
    if (vsnprintf(out, size, fmt, ap) < 0)
        petrel_strlcpy(out, "451 4.3.0 internal error", size);
}

void smtp_result_soft_all(struct smtp_job *job, const char *fmt, ...)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vformat(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    petrel_strlcpy(job->last_reason, reason, sizeof(job->last_reason));
    for (size_t i = 0; i < job->msg->nrcpts; i++) {
        if (!job->rs[i].decided)
            petrel_strlcpy(job->msg->rcpts[i].reason, reason, sizeof(job->msg->rcpts[i].reason));
    }
}

void smtp_result_decide_all(struct smtp_job *job, enum petrel_transport_status status,
                            const char *fmt, ...)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    va_list ap;
    va_start(ap, fmt);
    vformat(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < job->msg->nrcpts; i++)
        smtp_result_decide(job, i, status, reason);
}

void smtp_result_reply(struct smtp_job *job, size_t i, const struct smtp_reply *r,
                       const char *command)
{
    char reason[PETREL_TRANSPORT_REASON_MAX];
    smtp_reply_reason(reason, sizeof(reason), r, command, job->peer);
    if (r->code >= 500)
        smtp_result_decide(job, i, PETREL_TRANSPORT_FAILED, reason);
    else if (r->code >= 400 && !job->rs[i].decided)
        petrel_strlcpy(job->msg->rcpts[i].reason, reason, sizeof(job->msg->rcpts[i].reason));
}

bool smtp_result_all_decided(const struct smtp_job *job)
{
    for (size_t i = 0; i < job->msg->nrcpts; i++) {
        if (!job->rs[i].decided)
            return false;
    }
    return true;
}

static const char *status_word(enum petrel_transport_status s)
{
    return s == PETREL_TRANSPORT_DELIVERED ? "sent"
           : s == PETREL_TRANSPORT_FAILED  ? "bounced"
                                           : "deferred";
}

void smtp_result_report(struct smtp_job *job)
{
    struct petrel_transport_msg *msg = job->msg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long ms = (long long)(now.tv_sec - job->started.tv_sec) * 1000 +
                   (now.tv_nsec - job->started.tv_nsec) / 1000000;
    for (size_t i = 0; i < msg->nrcpts; i++) {
        struct petrel_transport_rcpt *r = &msg->rcpts[i];
        if (!job->rs[i].decided) { /* tentative failures become the status now */
            job->rs[i].decided = true;
            /* A REQUIRETLS refusal that no later server lifted is final
             * (RFC 8689 section 4.2.1: returned, not retried). */
            if (r->reason[0] == '\0')
                petrel_strlcpy(r->reason,
                               job->last_reason[0] != '\0' ? job->last_reason
                                                           : "451 4.4.0 no server could be reached",
                               sizeof(r->reason));
            r->status = msg->requiretls && r->reason[0] == '5' ? PETREL_TRANSPORT_FAILED
                                                               : PETREL_TRANSPORT_DEFERRED;
        }
        petrel_counter_add(r->status == PETREL_TRANSPORT_DELIVERED ? smtp_out_sent
                           : r->status == PETREL_TRANSPORT_FAILED  ? smtp_out_bounced
                                                                   : smtp_out_deferred,
                           1);
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "%s: to=<%s>, relay=%s, delay=%lld.%02lld, tls=%s, status=%s (%s)",
                   msg->queue_id, r->address, msg->relay[0] != '\0' ? msg->relay : "none",
                   ms / 1000, ms % 1000 / 10, msg->tls[0] != '\0' ? msg->tls : "none",
                   status_word(r->status), r->reason);
    }
}
