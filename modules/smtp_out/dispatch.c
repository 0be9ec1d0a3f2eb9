/* Taking work from the queue and handing it to the I/O loops within the
 * limits: max_connections jobs at once in all, a destination's limits
 * (limits.c: how many at once, and the least time between two starts)
 * per destination (the domain, or the relay host), and a bounded number
 * more waiting here (submit says false beyond, and the queue tries again
 * a second later: nothing is dropped). submit runs on a worker: it reads
 * the message's header for TLS-Required (a local file, which the loops
 * must not touch) and otherwise waits only for this module's lock, which
 * is held only for list updates. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_out.h"

/* Waiting jobs in all: enough to keep every connection busy until the
 * queue offers more (it retries a refused message a second later), and
 * bounded: a waiting job is about 4 KB (the 20 KB more an attempt needs
 * come when it starts), and the queue holds each message's file open. */
#define WAIT_MIN 256
#define WAIT_MAX 4096
#define WAIT_PER_CONNECTION 4

struct smtp_dest {
    struct smtp_dest *next;
    unsigned active, cached, waiting; /* jobs running, idle connections, jobs waiting */
    int64_t last_start;               /* monotonic ms of the last start (rate delay) */
    int64_t keep_until;               /* the rate delay counts from last_start until then */
    struct petrel_timer *timer;       /* starts the jobs its rate delay holds */
    char name[];                      /* lower case: a domain or a relay host */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct smtp_job *wait_head, *wait_tail;
static size_t nwaiting, nactive, ncached;
static struct smtp_job *registry; /* every job not yet done */
static struct smtp_dest *dests;   /* with jobs, idle connections or a rate delay running */
static unsigned next_loop;
_Atomic bool smtp_out_stopping; /* server stopping: finish, start nothing new */
static _Atomic bool stopped;    /* stop ran: the queue is gone, touch nothing */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct smtp_dest *dest_find(const char *name)
{
    for (struct smtp_dest *d = dests; d != NULL; d = d->next) {
        if (strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static struct smtp_dest *dest_get(const char *name)
{
    struct smtp_dest *d = dest_find(name);
    if (d == NULL) {
        size_t n = strlen(name) + 1;
        d = petrel_calloc(1, sizeof(*d) + n);
        memcpy(d->name, name, n);
        d->next = dests;
        dests = d;
    }
    return d;
}

/* Forget a destination nothing refers to and whose rate delay is over. */
static void dest_gc(void)
{
    int64_t now = now_ms();
    for (struct smtp_dest **p = &dests; *p != NULL;) {
        struct smtp_dest *d = *p;
        if (d->active == 0 && d->cached == 0 && d->waiting == 0 && d->timer == NULL &&
            d->keep_until <= now) {
            *p = d->next;
            free(d);
        } else {
            p = &d->next;
        }
    }
}

void smtp_dispatch_lock(void) { pthread_mutex_lock(&lock); }
void smtp_dispatch_unlock(void) { pthread_mutex_unlock(&lock); }

void smtp_dispatch_cached_add(const char *dest, int delta)
{
    struct smtp_dest *d = dest_get(dest);
    if (delta > 0) {
        d->cached++;
        ncached++;
    } else if (d->cached > 0) {
        d->cached--;
        ncached--;
    }
    dest_gc();
}

static struct smtp_job *take_startable(void);
static void post_all(struct smtp_job *start);

/* The rate delay of a destination is over: start what it held. */
static void rate_due(void *ctx)
{
    struct smtp_dest *d = ctx;
    pthread_mutex_lock(&lock);
    if (atomic_load(&stopped)) { /* stop removed the timer */
        pthread_mutex_unlock(&lock);
        return;
    }
    struct petrel_timer *t = d->timer;
    d->timer = NULL;
    struct smtp_job *start = take_startable();
    dest_gc();
    pthread_mutex_unlock(&lock);
    petrel_timer_remove(t);
    post_all(start);
}

/* Under the lock: whether the destination's rate delay holds job now;
 * then a timer starts it when the delay is over. */
static bool rate_held(struct smtp_job *job, int64_t now)
{
    struct smtp_dest *d = job->dest;
    int64_t due = d->last_start + job->limits.delay * 1000;
    if (job->limits.delay <= 0 || d->keep_until == 0 || now >= due)
        return false;
    if (d->timer == NULL)
        d->timer = petrel_timer_add(NULL, (unsigned)(due - now), false, rate_due, d);
    if (!job->rate_logged) { /* once a job, not once a scan */
        job->rate_logged = true;
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "%s: to %s: waiting %lld ms for the destination's rate delay (%llds)",
                   job->msg->queue_id, d->name, (long long)(due - now),
                   (long long)job->limits.delay);
    }
    return true;
}

/* Under the lock: whether job may start now, making room by closing an
 * idle connection if that is all that stands in the way. A job to a next
 * hop with an idle connection takes that connection's place; one held
 * up by max_connections alone takes over the oldest idle connection's
 * slot (and runs on its loop): once its addresses are known it uses that
 * connection if it goes to the same server, else closes it (cache.c). */
static bool startable(struct smtp_job *job, int64_t now)
{
    struct smtp_dest *d = job->dest;
    if (rate_held(job, now))
        return false;
    /* A REQUIRETLS message has its own connection, checked for it. */
    if (!job->msg->requiretls &&
        (job->loop = smtp_cache_reserve_locked(job->route.key, job)) != NULL)
        return true;
    if (d->active + d->cached >= (unsigned)job->limits.max && !smtp_cache_evict_locked(d->name))
        return false;
    if (nactive + ncached >= (size_t)job->cfg->max_connections &&
        (job->loop = smtp_cache_claim_locked(job)) == NULL)
        return false;
    return true;
}

/* Under the lock: move the waiting jobs the limits allow to *start, in
 * the order they came (a destination at its limit, or held by its rate
 * delay, does not hold up others). */
static struct smtp_job *take_startable(void)
{
    struct smtp_job *start = NULL, **tail = &start;
    struct smtp_job *prev = NULL, *job = wait_head;
    int64_t now = now_ms();
    while (job != NULL) {
        struct smtp_job *next = job->next;
        if (!startable(job, now)) {
            prev = job;
            job = next;
            continue;
        }
        if (prev != NULL)
            prev->next = next;
        else
            wait_head = next;
        if (wait_tail == job)
            wait_tail = prev;
        nwaiting--;
        struct smtp_dest *d = job->dest;
        d->waiting--;
        d->active++;
        d->last_start = now;
        if (d->keep_until < now + job->limits.delay * 1000 + 1)
            d->keep_until = now + job->limits.delay * 1000 + 1;
        nactive++;
        job->active = true;
        job->next = NULL;
        *tail = job;
        tail = &job->next;
        job = next;
    }
    return start;
}

static void post_all(struct smtp_job *start)
{
    while (start != NULL) {
        struct smtp_job *job = start;
        start = job->next;
        job->next = NULL;
        /* A message's jobs spread over the loops in turn, but one with a
         * cached connection reserved runs on that connection's loop; each
         * job then lives on its loop: its lookups, connections and done. */
        pthread_mutex_lock(&lock);
        unsigned i = next_loop++;
        pthread_mutex_unlock(&lock);
        petrel_loop_post(job->loop != NULL ? job->loop : petrel_loop_get(i), smtp_nexthop_start,
                         job);
    }
}

static size_t wait_max(const struct smtp_out_config *cfg)
{
    size_t c = (size_t)cfg->max_connections, n = c * WAIT_PER_CONNECTION;
    n = n < WAIT_MIN ? WAIT_MIN : n > WAIT_MAX ? WAIT_MAX : n;
    return n > c ? n : c;
}

/* Under the lock: whether one more job may wait, in all and for its
 * destination: no destination takes more than three quarters of the
 * room, one with a rate delay (where they wait longest) a quarter. A
 * message with recipients in several domains is refused only then. */
static bool may_wait(const struct smtp_out_config *cfg, const struct smtp_dest_limits *limits,
                     const struct smtp_dest *d)
{
    size_t all = wait_max(cfg);
    size_t mine = limits->delay > 0 ? all / 4 : all - all / 4;
    return nwaiting < all && (d == NULL || d->waiting < mine);
}

static struct smtp_job *job_new(struct petrel_transport_msg *msg, struct petrel_config *gen,
                                const struct smtp_out_config *cfg, const struct smtp_route *route,
                                const struct smtp_dest_limits *limits)
{
    struct smtp_job *job = petrel_calloc(1, sizeof(*job));
    job->msg = msg;
    job->gen = gen;
    job->cfg = cfg;
    job->route = *route;
    job->limits = *limits;
    clock_gettime(CLOCK_MONOTONIC, &job->started);
    job->rs = petrel_calloc(msg->nrcpts, sizeof(*job->rs));
    job->sent = petrel_calloc(msg->nrcpts, sizeof(*job->sent));
    for (size_t i = 0; i < msg->nrcpts; i++) {
        msg->rcpts[i].status = PETREL_TRANSPORT_DEFERRED;
        msg->rcpts[i].reason[0] = '\0';
    }
    msg->relay[0] = msg->tls[0] = '\0';
    return job;
}

bool smtp_out_submit(struct petrel_transport_msg *msg)
{
    if (atomic_load(&smtp_out_stopping) || msg->nrcpts == 0 || petrel_loop_get(0) == NULL)
        return false;
    struct petrel_config *gen = petrel_ctx_config_ref(smtp_out_ctx);
    const struct smtp_out_config *cfg = petrel_config_settings(gen, smtp_out_ctx);
    struct smtp_route route;
    struct smtp_dest_limits limits;
    bool waived = smtp_tlspolicy_header_waives(msg);
    smtp_route_for(cfg, msg->domain, smtp_out_have_creds, &route);
    smtp_limits_for(cfg, route.dest, &limits);
    pthread_mutex_lock(&lock);
    if (!may_wait(cfg, &limits, dest_find(route.dest))) {
        pthread_mutex_unlock(&lock);
        petrel_config_unref(gen);
        return false;
    }
    struct smtp_job *job = job_new(msg, gen, cfg, &route, &limits);
    job->tls_waived = waived;
    job->dest = dest_get(job->route.dest);
    job->dest->waiting++;
    job->reg_next = registry;
    if (registry != NULL)
        registry->reg_prev = job;
    registry = job;
    if (wait_tail != NULL)
        wait_tail->next = job;
    else
        wait_head = job;
    wait_tail = job;
    nwaiting++;
    struct smtp_job *start = take_startable();
    pthread_mutex_unlock(&lock);
    post_all(start);
    return true;
}

void smtp_dispatch_finish(struct smtp_job *job)
{
    if (atomic_load(&stopped))
        return; /* the queue has stopped: the message stays queued for next time */
    smtp_result_report(job);
    pthread_mutex_lock(&lock);
    smtp_cache_unreserve_locked(job);
    if (job->active) {
        nactive--;
        job->dest->active--;
    }
    dest_gc();
    if (job->reg_prev != NULL)
        job->reg_prev->reg_next = job->reg_next;
    else
        registry = job->reg_next;
    if (job->reg_next != NULL)
        job->reg_next->reg_prev = job->reg_prev;
    struct smtp_job *start = take_startable();
    pthread_mutex_unlock(&lock);
    post_all(start);

    struct petrel_transport_msg *msg = job->msg;
    petrel_config_unref(job->gen);
    petrel_buf_free(&job->out);
    free(job->chunk);
    free(job->mx);
    free(job->tlsp);
    free(job->sent);
    free(job->rs);
    free(job);
    msg->done(msg);
}

void smtp_dispatch_slot_freed(void)
{
    if (atomic_load(&stopped))
        return;
    pthread_mutex_lock(&lock);
    struct smtp_job *start = take_startable();
    pthread_mutex_unlock(&lock);
    post_all(start);
}

void smtp_dispatch_stop(void)
{
    atomic_store(&smtp_out_stopping, true);
    atomic_store(&stopped, true);
    pthread_mutex_lock(&lock);
    size_t left = 0;
    for (struct smtp_job *j = registry; j != NULL && left < 1000000; j = j->reg_next)
        left++;
    /* Jobs a rate delay holds stay in the queue: no timer starts them
     * (one already due finds stopped set and touches nothing), and the
     * destinations no job refers to go. */
    for (struct smtp_dest *d = dests; d != NULL; d = d->next) {
        petrel_timer_remove(d->timer);
        d->timer = NULL;
        d->keep_until = 0;
    }
    dest_gc();
    pthread_mutex_unlock(&lock);
    /* Jobs still here were waiting on the resolver when the loops
     * stopped, or waiting here; they stay listed (not freed) because
     * posts made for them may still run, and they do nothing once
     * stopped is set. */
    if (left > 0)
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "stopping with %zu deliveries unfinished: they stay in the queue", left);
}

bool smtp_dispatch_stopped(void) { return atomic_load(&stopped); }
