/* The queue's side of the transport contract (petrel/transport.h): a
 * retry's remote recipients that are due go to the transport, one message
 * a domain, and their results come back into the envelope. The queue
 * keeps everything else: the entry's lock, the files, the retry schedule
 * and the reports. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/transport.h>

#include "processing.h"

struct group {
    struct petrel_transport_msg msg;
    size_t *index; /* of each transport rcpt in env->rcpts */
    char *domain;
    bool srs;   /* forwarded copies: sent with the SRS sender */
    bool taken; /* the transport took it: done will come */
};

struct outbound {
    struct queue_envelope *env;
    char srs_from[SRS_ADDRESS_MAX + 1]; /* "": no copy goes out rewritten */
    struct group *groups;
    size_t ngroups;
    atomic_size_t left; /* groups still out */
    void (*resume)(void *arg, bool busy);
    void *arg;
};

static bool is_due_remote(const struct queue_rcpt *r)
{
    return r->route == ROUTE_REMOTE && (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED);
}

static const char *domain_of(const char *address)
{
    const char *at = strrchr(address, '@');
    return at != NULL ? at + 1 : "";
}

/* One message a domain and sender: a domain may get forwarded copies
 * (SRS sender) and recipients given as they are (the sender unchanged). */
static struct group *group_for(struct outbound *o, const struct queue_rcpt *r)
{
    const char *domain = domain_of(r->address);
    bool srs = r->forwarded && o->srs_from[0] != '\0';
    for (size_t i = 0; i < o->ngroups; i++)
        if (strcasecmp(o->groups[i].domain, domain) == 0 && o->groups[i].srs == srs)
            return &o->groups[i];
    struct group *g = &o->groups[o->ngroups++];
    g->srs = srs;
    g->domain = petrel_strdup(domain);
    for (char *p = g->domain; *p != '\0'; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    return g;
}

static void group_add(struct group *g, const struct queue_rcpt *r, size_t index, size_t max)
{
    if (g->msg.rcpts == NULL) {
        g->msg.rcpts = petrel_calloc(max, sizeof(*g->msg.rcpts));
        g->index = petrel_calloc(max, sizeof(*g->index));
    }
    struct petrel_transport_rcpt *t = &g->msg.rcpts[g->msg.nrcpts];
    t->address = r->address;
    t->orcpt = r->dsn_orcpt;
    t->notify = r->notify;
    t->status = PETREL_TRANSPORT_DEFERRED;
    g->index[g->msg.nrcpts++] = index;
}

/* Results into the envelope: what the transport said, recipient by
 * recipient. */
static void apply(struct outbound *o)
{
    for (size_t i = 0; i < o->ngroups; i++) {
        const struct group *g = &o->groups[i];
        for (size_t k = 0; k < g->msg.nrcpts; k++) {
            const struct petrel_transport_rcpt *t = &g->msg.rcpts[k];
            struct queue_rcpt *r = &o->env->rcpts[g->index[k]];
            if (!g->taken) { /* not tried: no attempt to count */
                queue_rcpt_set_reason(r, "451 4.3.2 the outbound transport is busy; "
                                         "tried again soon");
                continue;
            }
            queue_rcpt_set_next_hop(r, g->msg.relay[0] != '\0' ? g->msg.relay : g->domain);
            switch (t->status) {
            case PETREL_TRANSPORT_DELIVERED:
                /* A success report is the next hop's to send when it got
                 * NOTIFY with the recipient; else ours: "relayed" (RFC
                 * 3461 section 4.2). */
                r->state = t->notify_not_passed && (r->notify & PETREL_DSN_SUCCESS)
                               ? RCPT_SUCCESS
                               : RCPT_DELIVERED;
                break;
            case PETREL_TRANSPORT_FAILED:
                r->state = RCPT_FAILED;
                break;
            default:
                r->state = RCPT_DEFERRED;
                break;
            }
            queue_rcpt_set_reason(r, t->reason[0] != '\0' ? t->reason
                                                          : "451 4.4.0 no reason given by the "
                                                            "transport");
        }
    }
}

static void outbound_free(struct outbound *o)
{
    for (size_t i = 0; i < o->ngroups; i++) {
        free(o->groups[i].msg.rcpts);
        free(o->groups[i].index);
        free(o->groups[i].domain);
    }
    free(o->groups);
    free(o);
}

static void finish(void *arg)
{
    struct outbound *o = arg;
    apply(o);
    /* Busy (again in a moment, not an attempt) when something was not
     * taken and nothing the transport tried is waiting for a retry: then
     * only the untried recipients are left, and the back-off would make
     * them wait minutes for want of a free slot. */
    bool untried = false, retry_due = false;
    for (size_t i = 0; i < o->ngroups; i++) {
        const struct group *g = &o->groups[i];
        untried |= !g->taken;
        for (size_t k = 0; g->taken && k < g->msg.nrcpts; k++)
            retry_due |= g->msg.rcpts[k].status == PETREL_TRANSPORT_DEFERRED;
    }
    bool busy = untried && !retry_due;
    void (*resume)(void *, bool) = o->resume;
    void *resume_arg = o->arg;
    outbound_free(o);
    resume(resume_arg, busy);
}

/* The last group back hands the rest of the attempt to a worker: writing
 * the envelope blocks, and done may come on an I/O thread. */
static void group_done(struct petrel_transport_msg *msg)
{
    struct outbound *o = msg->owner;
    proc_sent_note(msg->queue_id, msg);
    if (atomic_fetch_sub(&o->left, 1) != 1)
        return;
    if (!petrel_worker_submit(finish, o)) {
        petrel_log(PETREL_LOG_WARNING, PROC_LOG,
                   "%s: no worker free for the outcome of delivery: recorded here", o->env->id);
        finish(o);
    }
}

bool proc_outbound_start(const struct proc_settings *set, struct queue_envelope *env, int data_fd,
                         void (*resume)(void *arg, bool busy), void *arg)
{
    size_t due = 0;
    bool forwarded = false;
    for (size_t i = 0; i < env->nrcpts; i++) {
        due += is_due_remote(&env->rcpts[i]);
        forwarded = forwarded || (is_due_remote(&env->rcpts[i]) && env->rcpts[i].forwarded);
    }
    const struct petrel_transport_ops *t = proc_env.transport;
    if (due == 0 || t == NULL)
        return false;
    struct outbound *o = petrel_calloc(1, sizeof(*o));
    o->env = env;
    o->resume = resume;
    o->arg = arg;
    if (forwarded && !proc_srs_sender(set, env, o->srs_from, sizeof(o->srs_from)))
        o->srs_from[0] = '\0';
    o->groups = petrel_calloc(due, sizeof(*o->groups));
    for (size_t i = 0; i < env->nrcpts; i++)
        if (is_due_remote(&env->rcpts[i]))
            group_add(group_for(o, &env->rcpts[i]), &env->rcpts[i], i, due);
    /* One count more than there are groups, dropped after the loop, so no
     * done can finish the attempt while groups are still being handed. */
    atomic_store(&o->left, o->ngroups + 1);
    for (size_t i = 0; i < o->ngroups; i++) {
        struct group *g = &o->groups[i];
        g->msg = (struct petrel_transport_msg){
            .queue_id = env->id,
            .domain = g->domain,
            .from = g->srs ? o->srs_from : env->from,
            .envid = env->envid,
            .ret = (enum petrel_dsn_ret)env->ret,
            .body = (enum petrel_body)env->body,
            .smtputf8 = env->smtputf8,
            .requiretls = env->requiretls,
            .attempts = env->attempts,
            .data_fd = data_fd,
            .size = env->size,
            .rcpts = g->msg.rcpts,
            .nrcpts = g->msg.nrcpts,
            .done = group_done,
            .owner = o,
        };
        g->taken = t->submit(&g->msg);
        if (!g->taken)
            atomic_fetch_sub(&o->left, 1);
    }
    if (atomic_fetch_sub(&o->left, 1) == 1)
        finish(o); /* everything back already (or nothing taken): on this worker */
    return true;
}
