/* Taking work from the queue and handing it to the I/O loops within the
 * limits: max_connections jobs at once in all, max_per_destination per
 * domain, and at most max_connections more waiting here (submit says
 * false beyond, and the queue tries again later: nothing is dropped).
 * submit runs on a worker and never blocks but for this module's lock,
 * which is held only for list updates. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>

#include "smtp_out.h"

struct smtp_dest {
    struct smtp_dest *next;
    unsigned active, cached; /* jobs, and idle connections in the cache */
    char domain[];           /* lower case, as the queue gives it */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct smtp_job *wait_head, *wait_tail;
static size_t nwaiting, nactive, ncached;
static struct smtp_job *registry; /* every job not yet done */
static struct smtp_dest *dests;   /* domains with a job running: at most nactive */
static unsigned next_loop;
_Atomic bool smtp_out_stopping; /* server stopping: finish, start nothing new */
static _Atomic bool stopped;    /* stop ran: the queue is gone, touch nothing */

static struct smtp_dest *dest_find(const char *domain)
{
    for (struct smtp_dest *d = dests; d != NULL; d = d->next) {
        if (strcmp(d->domain, domain) == 0)
            return d;
    }
    return NULL;
}

static struct smtp_dest *dest_get(const char *domain)
{
    struct smtp_dest *d = dest_find(domain);
    if (d == NULL) {
        size_t n = strlen(domain) + 1;
        d = petrel_calloc(1, sizeof(*d) + n);
        memcpy(d->domain, domain, n);
        d->next = dests;
        dests = d;
    }
    return d;
}

static void dest_add(const char *domain) { dest_get(domain)->active++; }

/* Forget a domain with neither jobs nor idle connections. */
static void dest_gc(void)
{
    for (struct smtp_dest **p = &dests; *p != NULL;) {
        struct smtp_dest *d = *p;
        if (d->active == 0 && d->cached == 0) {
            *p = d->next;
            free(d);
        } else {
            p = &d->next;
        }
    }
}

static void dest_drop(const char *domain)
{
    struct smtp_dest *d = dest_find(domain);
    if (d != NULL && d->active > 0)
        d->active--;
    dest_gc();
}

void smtp_dispatch_lock(void) { pthread_mutex_lock(&lock); }
void smtp_dispatch_unlock(void) { pthread_mutex_unlock(&lock); }

void smtp_dispatch_cached_add(const char *domain, int delta)
{
    struct smtp_dest *d = dest_get(domain);
    if (delta > 0) {
        d->cached++;
        ncached++;
    } else if (d->cached > 0) {
        d->cached--;
        ncached--;
    }
    dest_gc();
}

/* Under the lock: whether job may start now, making room by closing an
 * idle connection if that is all that stands in the way. A job to a next
 * hop with an idle connection takes that connection's place. */
static bool startable(struct smtp_job *job)
{
    if ((job->loop = smtp_cache_reserve_locked(job->route.key, job)) != NULL)
        return true;
    struct smtp_dest *d = dest_find(job->msg->domain);
    if (d != NULL && d->active + d->cached >= (unsigned)job->cfg->max_per_destination &&
        !smtp_cache_evict_locked(job->msg->domain))
        return false;
    if (nactive + ncached >= (size_t)job->cfg->max_connections && !smtp_cache_evict_locked(NULL))
        return false;
    return true;
}

/* Under the lock: move the waiting jobs the limits allow to *start, in
 * the order they came (a domain at its limit does not hold up others). */
static struct smtp_job *take_startable(void)
{
    struct smtp_job *start = NULL, **tail = &start;
    struct smtp_job *prev = NULL, *job = wait_head;
    while (job != NULL) {
        struct smtp_job *next = job->next;
        if (!startable(job)) {
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
        dest_add(job->msg->domain);
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

bool smtp_out_submit(struct petrel_transport_msg *msg)
{
    if (atomic_load(&smtp_out_stopping) || msg->nrcpts == 0 || petrel_loop_get(0) == NULL)
        return false;
    struct petrel_config *gen = petrel_ctx_config_ref(smtp_out_ctx);
    const struct smtp_out_config *cfg = petrel_config_settings(gen, smtp_out_ctx);
    pthread_mutex_lock(&lock);
    if (nwaiting >= (size_t)cfg->max_connections) {
        pthread_mutex_unlock(&lock);
        petrel_config_unref(gen);
        return false;
    }
    struct smtp_job *job = petrel_calloc(1, sizeof(*job));
    job->msg = msg;
    job->gen = gen;
    job->cfg = cfg;
    smtp_route_for(cfg, msg->domain, smtp_out_have_creds, &job->route);
    clock_gettime(CLOCK_MONOTONIC, &job->started);
    job->rs = petrel_calloc(msg->nrcpts, sizeof(*job->rs));
    job->sent = petrel_calloc(msg->nrcpts, sizeof(*job->sent));
    for (size_t i = 0; i < msg->nrcpts; i++) {
        msg->rcpts[i].status = PETREL_TRANSPORT_DEFERRED;
        msg->rcpts[i].reason[0] = '\0';
    }
    msg->relay[0] = msg->tls[0] = '\0';
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
    if (job->active) {
        nactive--;
        dest_drop(job->msg->domain);
    }
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
    pthread_mutex_unlock(&lock);
    /* Jobs still here were waiting on the resolver when the loops
     * stopped; they stay listed (not freed) because posts made for them
     * may still run, and they do nothing once stopped is set. */
    if (left > 0)
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "stopping with %zu deliveries unfinished: they stay in the queue", left);
}

bool smtp_dispatch_stopped(void) { return atomic_load(&stopped); }
