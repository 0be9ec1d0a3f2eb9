/* The connection cache: after a transaction, a session to a next hop is
 * kept open and idle for the next message to the same next hop instead of
 * QUIT (Postfix's connection cache), for connection_reuse_time seconds
 * and connection_reuse_limit messages. An idle connection counts against
 * max_connections and max_per_destination like a job; dispatch.c reserves
 * one for a job to the same next hop (and runs the job on its loop), or
 * evicts one to make room. The list is under dispatch.c's lock; the
 * connection itself is touched only on its own loop. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

struct smtp_cached {
    struct smtp_cached *next;
    struct petrel_loop *loop;
    struct smtp_job *reserved; /* the job this one is kept for: its slot is the job's */
    bool evicted;              /* to be closed by sweep on its loop: no slot any more */
    char key[SMTP_OUT_HOST_MAX + 32];
    char domain[SMTP_OUT_HOST_MAX]; /* whose max_per_destination it counts in */
    struct smtp_cached_session s;
};

static struct smtp_cached *cached; /* newest first */

static void unlink_locked(struct smtp_cached *c)
{
    for (struct smtp_cached **p = &cached; *p != NULL; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            return;
        }
    }
}

/* The entry no longer holds a slot of its own. */
static void release_locked(struct smtp_cached *c)
{
    if (c->reserved == NULL && !c->evicted)
        smtp_dispatch_cached_add(c->domain, -1);
}

static void sweep(void *arg)
{
    (void)arg;
    struct petrel_loop *loop = petrel_loop_current();
    struct smtp_cached *mine = NULL;
    smtp_dispatch_lock();
    for (struct smtp_cached **p = &cached; *p != NULL;) {
        struct smtp_cached *c = *p;
        if (c->evicted && c->loop == loop) {
            *p = c->next;
            c->next = mine;
            mine = c;
        } else {
            p = &c->next;
        }
    }
    smtp_dispatch_unlock();
    while (mine != NULL) {
        struct smtp_cached *c = mine;
        mine = c->next;
        smtp_session_attach(c->s.conn, NULL, NULL);
        petrel_conn_write(c->s.conn, "QUIT\r\n", 6);
        petrel_conn_close(c->s.conn);
        free(c);
    }
}

static void evict_locked(struct smtp_cached *c)
{
    release_locked(c);
    c->evicted = true;
    petrel_loop_post(c->loop, sweep, NULL);
}

struct petrel_loop *smtp_cache_reserve_locked(const char *key, struct smtp_job *job)
{
    struct smtp_cached *best = NULL;
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (c->reserved == NULL && !c->evicted && strcmp(c->key, key) == 0)
            best = c; /* the oldest: the newest may outlive it */
    }
    if (best == NULL)
        return NULL;
    release_locked(best);
    best->reserved = job;
    return best->loop;
}

bool smtp_cache_evict_locked(const char *domain)
{
    struct smtp_cached *oldest = NULL;
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (c->reserved == NULL && !c->evicted &&
            (domain == NULL || strcmp(c->domain, domain) == 0))
            oldest = c;
    }
    if (oldest == NULL)
        return false;
    evict_locked(oldest);
    return true;
}

void smtp_cache_flush(void)
{
    smtp_dispatch_lock();
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (!c->evicted)
            evict_locked(c);
    }
    smtp_dispatch_unlock();
}

bool smtp_cache_put(struct smtp_job *job, bool rset)
{
    const struct smtp_out_config *cfg = job->cfg;
    /* A session chosen with the domain's policies waived (TLS-Required:
     * No) may not carry the next message, which did not waive them. */
    if (cfg->connection_reuse_time == 0 || job->saw_421 || job->conn == NULL ||
        job->tlsp.tls_optional || job->conn_msgs + 1 >= (unsigned)cfg->connection_reuse_limit ||
        atomic_load(&smtp_out_stopping))
        return false;
    struct smtp_cached *c = petrel_calloc(1, sizeof(*c));
    c->loop = petrel_loop_current();
    petrel_strlcpy(c->key, job->route.key, sizeof(c->key));
    petrel_strlcpy(c->domain, job->msg->domain, sizeof(c->domain));
    c->s.conn = job->conn;
    c->s.ehlo = job->ehlo;
    c->s.rset = rset;
    c->s.messages = job->conn_msgs + 1;
    petrel_strlcpy(c->s.peer, job->peer, sizeof(c->s.peer));
    petrel_strlcpy(c->s.relay, job->msg->relay, sizeof(c->s.relay));
    petrel_strlcpy(c->s.tls, job->msg->tls, sizeof(c->s.tls));
    smtp_session_attach(job->conn, NULL, c);
    petrel_conn_set_timeout(job->conn, (unsigned)cfg->connection_reuse_time);
    smtp_dispatch_lock();
    c->next = cached;
    cached = c;
    smtp_dispatch_cached_add(c->domain, +1);
    smtp_dispatch_unlock();
    return true;
}

struct smtp_cached *smtp_cache_take(struct smtp_job *job)
{
    struct petrel_loop *loop = petrel_loop_current();
    struct smtp_cached *found = NULL;
    smtp_dispatch_lock();
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (c->loop != loop || c->evicted || strcmp(c->key, job->route.key) != 0)
            continue;
        if (c->reserved == job) {
            found = c;
            break;
        }
        if (c->reserved == NULL && found == NULL)
            found = c;
    }
    if (found != NULL) {
        unlink_locked(found);
        release_locked(found); /* the job has a slot of its own */
    }
    smtp_dispatch_unlock();
    return found;
}

const struct smtp_cached_session *smtp_cache_session(const struct smtp_cached *c) { return &c->s; }

void smtp_cache_free(struct smtp_cached *c) { free(c); }

void smtp_cache_closed(struct smtp_cached *c)
{
    smtp_dispatch_lock();
    unlink_locked(c);
    bool had_slot = c->reserved == NULL && !c->evicted;
    release_locked(c);
    smtp_dispatch_unlock();
    free(c);
    if (had_slot)
        smtp_dispatch_slot_freed();
}
