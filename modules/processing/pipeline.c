/* The one way a message goes through processing: a short sequence of
 * stages, read top to bottom in stages[] below. It runs on a message that
 * SMTP commits (fresh: its client waits for the reply) and on a queue
 * entry the runner retries; a stage that does not apply to a retry is
 * skipped by the sequence, not written twice.
 *
 *   spool      fresh  the whole message reached the spool
 *   hop check  fresh  no more Received fields than max_hops (a loop)
 *   hooks      fresh  the smtp.data hook: its verdict, fields to add
 *   headers    both   fresh: those fields on top; retry: the header read back
 *   expansion  both   aliases and forwards into final recipients (expand.c)
 *   routing    both   which recipients are delivered now, which wait
 *   delivery   both   local recipients into the store (deliver.c)
 *   transport  retry  remote recipients to the transport (outbound.c): the
 *                     pass waits for its results without a thread, then
 *                     goes on
 *   record     both   reports (dsn.c), then the envelope written, rewritten
 *                     or removed: a fresh message is acknowledged only once
 *                     what is left of it is synced in the queue
 *   reply      fresh  what the client hears, and the message's log line
 *
 * A stage returns false when the message goes no further in this pass
 * (a fresh message's reply is then set). */
#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "processing.h"

/* Where the recipients stand after delivery: what the reply and the
 * first attempt's time are made of. */
struct tally {
    size_t done, failed, temp, open;
    const struct queue_rcpt *first_fail, *first_temp;
};

/* One message's pass through the stages. */
struct pass {
    const struct proc_settings *set;
    struct queue_envelope *env;
    struct proc_content content;
    time_t now;                       /* when the pass began: retry times count from it */
    struct petrel_queue_msg *msg;     /* fresh: the message; NULL on a retry */
    struct petrel_queue_reply *reply; /* fresh: the client's */
    struct petrel_buf add;            /* fresh: fields the smtp.data hook adds */
    struct petrel_buf header;         /* retry: the header block, from the data file */
    bool dedupe;                      /* retry: deliveries a crash left unrecorded? */
    bool deliver_now;                 /* routing's word to delivery */
    bool recorded;                    /* retry: the envelope says what happened */
    bool queued;                      /* fresh: an envelope was written */
    bool suspended;                   /* retry: waiting for the transport */
    bool transport_busy;              /* retry: the transport took nothing */
    /* retry: the two that must let go of a suspended pass before it goes
     * on, the thread that suspended it and the transport's answer, in
     * whichever order they come */
    atomic_int gate;
    size_t next; /* the stage to run next */
    struct tally tally;
    /* retry: told once the pass has ended, whether now or after the
     * transport */
    void (*finished)(void *arg, bool recorded);
    void *finished_arg;
};

static bool is_fresh(const struct pass *p) { return p->msg != NULL; }

/* --- replies --- */

static void reply_set(struct petrel_queue_reply *r, int code, const char *enhanced,
                      const char *text)
{
    r->code = code;
    petrel_strlcpy(r->enhanced, enhanced, sizeof(r->enhanced));
    petrel_strlcpy(r->text, text, sizeof(r->text));
}

/* "452 4.2.2 text" back into a reply. */
static void reply_from_reason(struct petrel_queue_reply *r, const char *reason, int fallback)
{
    int code = 0;
    char enh[12] = "";
    int used = 0;
    if (reason == NULL || sscanf(reason, "%3d %11s %n", &code, enh, &used) < 2 || code < 400 ||
        code > 599) {
        reply_set(r, fallback, fallback < 500 ? "4.3.0" : "5.3.0",
                  fallback < 500 ? "temporary failure" : "delivery failed");
        return;
    }
    reply_set(r, code, enh, reason + used);
}

static bool local_error(struct pass *p, const char *text)
{
    reply_set(p->reply, 451, "4.3.0", text);
    return false;
}

/* --- spool, hop check, hooks, headers --- */

static bool stage_spool(struct pass *p)
{
    if (!p->msg->io_error)
        return true;
    if (p->msg->no_space)
        reply_set(p->reply, 452, "4.3.1", "insufficient system storage, try again later");
    else
        reply_set(p->reply, 451, "4.3.0", "local error writing the message, try again later");
    return false;
}

static bool stage_hop_check(struct pass *p)
{
    unsigned hops = p->msg->filter.hops;
    if (hops <= p->set->max_hops)
        return true;
    petrel_log(PETREL_LOG_WARNING, PROC_LOG, "%s: refused: %u Received fields, a mail loop?",
               p->msg->id, hops);
    reply_set(p->reply, 554, "5.4.6", "too many hops, a mail loop?");
    return false;
}

static bool verdict_reply(struct pass *p, enum petrel_verdict v, const char *reason)
{
    switch (v) {
    case PETREL_DENY:
        reply_set(p->reply, 550, "5.7.1", reason != NULL ? reason : "message refused");
        return false;
    case PETREL_DENY_SOFT:
        reply_set(p->reply, 451, "4.7.1",
                  reason != NULL ? reason : "message deferred, try again later");
        return false;
    case PETREL_DISCONNECT:
        reply_set(p->reply, 421, "4.7.0", reason != NULL ? reason : "closing connection");
        return false;
    default:
        return true;
    }
}

/* The smtp.data hook: a verdict, and header fields to put on top. */
static bool stage_hooks(struct pass *p)
{
    if (!petrel_hook_active(PETREL_HOOK_SMTP_DATA))
        return true;
    struct petrel_queue_msg *m = p->msg;
    struct petrel_envelope pub;
    struct petrel_envelope_rcpt *rcpts = proc_public_env(p->env, &pub);
    struct petrel_smtp_data_event ev = {
        .env = &pub,
        .queue_id = m->id,
        .header = petrel_buf_head(&m->header),
        .header_len = m->header.len,
        .size = m->size,
        .add_header = &p->add,
        .conn_id = m->origin != NULL ? m->origin->conn_id : 0,
        .session_slot = m->origin != NULL ? &m->origin->slot : NULL,
    };
    const char *reason = NULL;
    enum petrel_verdict v = petrel_hook_run(PETREL_HOOK_SMTP_DATA, &ev, &reason);
    free(rcpts);
    return verdict_reply(p, v, reason);
}

/* A fresh message gets the hook's fields on top; a queued one's header
 * block (for the deliver hook and reports) is read back from its file. */
static bool stage_headers(struct pass *p)
{
    if (!is_fresh(p)) {
        proc_read_header(&p->content, &p->header);
        p->content.header = petrel_buf_head(&p->header);
        p->content.header_len = p->header.len;
        return true;
    }
    if (!proc_message_prepend(p->msg, &p->add))
        return local_error(p, "local error writing the message, try again later");
    p->env->size = p->msg->out_len;
    proc_message_content(p->msg, &p->content);
    return true;
}

/* --- expansion, routing, delivery --- */

static bool stage_expansion(struct pass *p)
{
    proc_expand(p->set, p->env);
    return true;
}

/* Local recipients are delivered now, by a retry always and by a fresh
 * message with direct_delivery (else the runner does it). Remote ones go
 * to the transport on a retry (the first comes at once). */
static bool stage_routing(struct pass *p)
{
    p->deliver_now = !is_fresh(p) || p->set->direct_delivery;
    return true;
}

static bool stage_delivery(struct pass *p)
{
    if (p->deliver_now)
        proc_deliver_local(&p->content, p->env, p->dedupe);
    return true;
}

/* --- transport --- */

static void pass_resume(void *arg, bool busy);

/* A retry's remote recipients that are due go to the transport (smtp_out);
 * the pass waits for its word without a thread and goes on from record.
 * Without a transport they wait, saying so. */
static bool stage_transport(struct pass *p)
{
    if (p->dedupe) /* killed while a next hop took some? */
        proc_sent_apply(p->env);
    atomic_store(&p->gate, 2);
    p->suspended = true;
    if (proc_outbound_start(p->set, p->env, p->content.fd, pass_resume, p))
        return false;
    p->suspended = false;
    for (size_t i = 0; i < p->env->nrcpts; i++) {
        struct queue_rcpt *r = &p->env->rcpts[i];
        if (r->route == ROUTE_REMOTE && r->state == RCPT_PENDING && r->reason == NULL)
            queue_rcpt_set_reason(r, "451 4.4.0 waiting for outbound delivery (no transport "
                                     "module enabled)");
    }
    return true;
}

/* --- record --- */

static void tally(const struct queue_envelope *env, struct tally *t)
{
    *t = (struct tally){0};
    for (size_t i = 0; i < env->nrcpts; i++) {
        const struct queue_rcpt *r = &env->rcpts[i];
        if (r->state == RCPT_DELIVERED || r->state == RCPT_SUCCESS)
            t->done++;
        else if (r->state == RCPT_FAILED) {
            t->failed++;
            t->first_fail = t->first_fail ? t->first_fail : r;
        } else if (r->state == RCPT_DEFERRED || r->state == RCPT_EXPAND) {
            t->temp++;
            t->first_temp = t->first_temp ? t->first_temp : r;
        } else
            t->open++;
    }
}

/* A fresh message with nothing delivered and nothing left to try: the
 * client hears why, nothing is kept and no report is needed. */
static bool refused_outright(const struct pass *p)
{
    const struct tally *t = &p->tally;
    return is_fresh(p) && t->done == 0 && t->open == 0 && (t->temp == 0 || t->failed == 0);
}

/* A retry past lifetime: what is still open fails (and is reported). */
static void expire(struct pass *p)
{
    if (p->now - p->env->arrival < p->set->lifetime)
        return;
    for (size_t i = 0; i < p->env->nrcpts; i++) {
        struct queue_rcpt *r = &p->env->rcpts[i];
        if (strchr("EPT", r->state) == NULL)
            continue;
        char reason[200];
        snprintf(reason, sizeof(reason), "550 5.4.7 delivery time expired (%s)",
                 r->reason != NULL ? r->reason : "not tried");
        r->state = RCPT_FAILED;
        queue_rcpt_set_reason(r, reason);
    }
}

/* The data must be durable before a report or an envelope refers to it. */
static bool keep_data(struct pass *p)
{
    if (!proc_message_durable(p->msg)) {
        petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: cannot sync the data file: %s", p->msg->id,
                   strerror(errno));
        return local_error(p, "local error writing the message, try again later");
    }
    proc_message_content(p->msg, &p->content); /* now in the data file */
    return true;
}

static long long backoff(const struct proc_settings *set, unsigned attempts)
{
    long long d = set->retry_min;
    for (unsigned i = 1; i < attempts && d < set->retry_max; i++)
        d *= 2;
    return d < set->retry_max ? d : set->retry_max;
}

/* A fresh message is tried again at once, or after retry_min if its
 * first try was deferred; a retry backs off. */
static void schedule_next(struct pass *p)
{
    struct queue_envelope *env = p->env;
    if (is_fresh(p)) {
        env->next_attempt = p->msg->arrival + (p->tally.temp > 0 ? p->set->retry_min : 0);
        return;
    }
    if (p->transport_busy) { /* not an attempt: again in a moment */
        env->next_attempt = (int64_t)p->now + 1;
        return;
    }
    env->attempts++;
    env->next_attempt = (int64_t)p->now + backoff(p->set, env->attempts);
}

static bool write_envelope(struct pass *p)
{
    schedule_next(p);
    if (queue_envelope_write(proc_env.queue, "active", p->env, p->set->fsync) == 0) {
        if (is_fresh(p)) {
            p->queued = true;
            proc_message_keep_data(p->msg);
            proc_runner_kick();
        }
        return true;
    }
    petrel_log(PETREL_LOG_ERROR, PROC_LOG, "%s: cannot %s the envelope: %s", p->env->id,
               is_fresh(p) ? "write" : "update", strerror(errno));
    if (is_fresh(p))
        return local_error(p, "local error queueing the message, try again later");
    p->recorded = false; /* the runner remembers: the next attempt looks in the mailbox */
    return false;
}

/* Nothing left of a queue entry: both of its files go. */
static void remove_entry(struct pass *p)
{
    const char *id = p->env->id;
    char path[PATH_MAX], data[PATH_MAX];
    if (queue_path(path, sizeof(path), proc_env.queue, "active", id) &&
        queue_path(data, sizeof(data), proc_env.queue, "data", id)) {
        unlink(path);
        unlink(data);
    }
    petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: removed from the queue", id);
}

static bool stage_record(struct pass *p)
{
    tally(p->env, &p->tally);
    if (refused_outright(p))
        return true;
    if (!is_fresh(p))
        expire(p);
    else if (queue_envelope_open_count(p->env) > 0 && !keep_data(p))
        return false;
    proc_dsn(&p->content, p->env); /* a report not queued leaves its recipient open */
    if (queue_envelope_open_count(p->env) > 0) {
        if (is_fresh(p))
            return write_envelope(p);
        proc_dsn_delay(&p->content, p->env, p->now);
        if (!write_envelope(p))
            return false;
    } else if (!is_fresh(p)) {
        remove_entry(p);
    }
    if (!is_fresh(p))
        proc_sent_clear(p->env->id); /* the envelope (or its absence) says it all */
    return true;
}

/* --- reply --- */

static bool stage_reply(struct pass *p)
{
    const struct tally *t = &p->tally;
    if (refused_outright(p)) {
        if (t->temp == 0)
            reply_from_reason(p->reply, t->first_fail != NULL ? t->first_fail->reason : NULL, 550);
        else
            reply_from_reason(p->reply, t->first_temp != NULL ? t->first_temp->reason : NULL, 451);
        return false;
    }
    char text[80];
    snprintf(text, sizeof(text), "Ok: queued as %s", p->msg->id);
    reply_set(p->reply, 250, "2.0.0", text);
    const struct queue_envelope *env = p->env;
    petrel_log(PETREL_LOG_INFO, PROC_LOG,
               "%s: from=<%s> size=%llu nrcpt=%zu delivered=%zu failed=%zu queued=%zu", env->id,
               env->from, (unsigned long long)p->msg->out_len, env->nrcpts, t->done, t->failed,
               p->queued ? queue_envelope_open_count(env) : 0);
    return true;
}

/* --- the sequence --- */

#define FRESH 1u
#define RETRY 2u

typedef bool stage_fn(struct pass *p);

static const struct stage {
    stage_fn *run;
    unsigned on; /* FRESH, RETRY or both */
} stages[] = {
    {stage_spool, FRESH},
    {stage_hop_check, FRESH},
    {stage_hooks, FRESH},
    {stage_headers, FRESH | RETRY},
    {stage_expansion, FRESH | RETRY},
    {stage_routing, FRESH | RETRY},
    {stage_delivery, FRESH | RETRY},
    {stage_transport, RETRY},
    {stage_record, FRESH | RETRY},
    {stage_reply, FRESH},
};

static void run_stages(struct pass *p)
{
    unsigned kind = is_fresh(p) ? FRESH : RETRY;
    while (p->next < sizeof(stages) / sizeof(stages[0])) {
        const struct stage *s = &stages[p->next++];
        if ((s->on & kind) != 0 && !s->run(p))
            return;
    }
}

void proc_pipeline_commit(struct petrel_queue_msg *m, struct petrel_queue_reply *reply)
{
    struct pass p = {.set = m->set, .env = &m->env, .now = time(NULL), .msg = m, .reply = reply};
    petrel_buf_init(&p.add, PROC_HEADER_MAX);
    run_stages(&p);
    petrel_buf_free(&p.add);
    if (reply->code >= 400)
        petrel_log(PETREL_LOG_INFO, PROC_LOG, "%s: from=<%s> refused: %d %s %s", m->id, m->env.from,
                   reply->code, reply->enhanced, reply->text);
}

/* A retry's pass has ended, now or after the transport. */
static void retry_end(struct pass *p)
{
    void (*finished)(void *, bool) = p->finished;
    void *arg = p->finished_arg;
    bool recorded = p->recorded;
    petrel_buf_free(&p->header);
    free(p);
    finished(arg, recorded);
}

/* The last of the two to let go of a suspended pass runs the rest. */
static void pass_release(struct pass *p)
{
    if (atomic_fetch_sub(&p->gate, 1) != 1)
        return;
    p->suspended = false;
    run_stages(p);
    if (!p->suspended)
        retry_end(p);
    else
        pass_release(p); /* suspended again: this thread lets go */
}

static void pass_resume(void *arg, bool busy)
{
    struct pass *p = arg;
    p->transport_busy = busy;
    pass_release(p);
}

void proc_pipeline_retry(const struct proc_settings *set, struct queue_envelope *env, int data_fd,
                         bool dedupe, void (*finished)(void *arg, bool recorded), void *arg)
{
    struct pass *p = petrel_calloc(1, sizeof(*p));
    *p = (struct pass){
        .set = set,
        .env = env,
        .content = {.set = set, .id = env->id, .env = env, .fd = data_fd, .len = env->size},
        .now = time(NULL),
        .dedupe = dedupe,
        .recorded = true,
        .finished = finished,
        .finished_arg = arg,
    };
    petrel_buf_init(&p->header, PROC_HEADER_MAX);
    run_stages(p);
    if (p->suspended)
        pass_release(p);
    else
        retry_end(p);
}
