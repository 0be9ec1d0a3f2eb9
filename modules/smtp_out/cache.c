/* The connection cache: after a transaction, a session to a next hop is
 * kept open and idle for the next message to the same next hop instead of
 * QUIT (Postfix's connection cache), for connection_reuse_time seconds
 * and connection_reuse_limit messages. An idle connection counts against
 * max_connections and its destination's limit like a job; dispatch.c
 * reserves one for a job to the same next hop (and runs the job on its
 * loop), or evicts one to make room, or lets a job waiting for
 * max_connections claim one. Once a job knows its addresses, it may also
 * take an idle connection to the same server made for another
 * destination, when that is safe (smtp_cache_take_addr), as Postfix looks
 * its cache up by address too. The list is under dispatch.c's lock; the
 * connection itself is touched only on its own loop. */
#include <netinet/in.h>
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
    char dest[SMTP_OUT_HOST_MAX]; /* whose limit it counts in */
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
        smtp_dispatch_cached_add(c->dest, -1);
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

/* The oldest idle connection (of dest, if not NULL) nobody reserved. */
static struct smtp_cached *oldest_locked(const char *dest)
{
    struct smtp_cached *oldest = NULL;
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (c->reserved == NULL && !c->evicted && (dest == NULL || strcmp(c->dest, dest) == 0))
            oldest = c;
    }
    return oldest;
}

bool smtp_cache_evict_locked(const char *dest)
{
    struct smtp_cached *oldest = oldest_locked(dest);
    if (oldest == NULL)
        return false;
    evict_locked(oldest);
    return true;
}

struct petrel_loop *smtp_cache_claim_locked(struct smtp_job *job)
{
    struct smtp_cached *oldest = oldest_locked(NULL);
    if (oldest == NULL)
        return NULL;
    release_locked(oldest);
    oldest->reserved = job;
    return oldest->loop;
}

void smtp_cache_unreserve_locked(struct smtp_job *job)
{
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (c->reserved == job && !c->evicted)
            evict_locked(c);
    }
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
        job->tlsp->tls_optional || job->conn_msgs + 1 >= (unsigned)cfg->connection_reuse_limit ||
        atomic_load(&smtp_out_stopping))
        return false;
    struct smtp_cached *c = petrel_calloc(1, sizeof(*c));
    c->loop = petrel_loop_current();
    petrel_strlcpy(c->key, job->route.key, sizeof(c->key));
    petrel_strlcpy(c->dest, job->route.dest, sizeof(c->dest));
    c->s.conn = job->conn;
    c->s.info = job->info;
    /* How TLS went, for a job of another destination to judge. */
    const char *why;
    c->s.info.tls = petrel_conn_is_tls(job->conn);
    c->s.info.ca_verified = c->s.info.tls && petrel_conn_tls_verified(job->conn, &why);
    c->s.info.dane = c->s.info.tls && job->info.level == SMTP_TLS_DANE;
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
    smtp_dispatch_cached_add(c->dest, +1);
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
    bool had_slot = found != NULL && found->reserved == NULL;
    if (found != NULL) {
        unlink_locked(found);
        release_locked(found); /* the job has a slot of its own */
        found->reserved = NULL;
        smtp_cache_unreserve_locked(job); /* a claim elsewhere it does not use */
    }
    smtp_dispatch_unlock();
    if (had_slot) /* the cached connection's slot: a waiting job may start */
        smtp_dispatch_slot_freed();
    return found;
}

static bool same_server(const struct smtp_conn_info *a, const struct smtp_conn_info *b)
{
    if (a->addr.family != b->addr.family || a->port != b->port)
        return false;
    if (a->addr.family == AF_INET6 ? memcmp(&a->addr.u.v6, &b->addr.u.v6, 16) != 0
                                   : a->addr.u.v4.s_addr != b->addr.u.v4.s_addr)
        return false;
    /* The same way of connecting and the same name and address of ours:
     * the server sees the client it would see on a new connection. */
    return a->implicit_tls == b->implicit_tls && a->auth == b->auth &&
           strcmp(a->helo, b->helo) == 0 && strcmp(a->bind, b->bind) == 0;
}

static bool usable_locked(const struct smtp_cached *c, const struct smtp_job *job,
                          const struct smtp_conn_info *want)
{
    return !c->evicted && (c->reserved == NULL || c->reserved == job) &&
           same_server(&c->s.info, want) && smtp_tlspolicy_reuse_ok(job, &c->s.info) &&
           smtp_session_fits(&c->s.ehlo, job->msg);
}

struct smtp_cached *smtp_cache_take_addr(struct smtp_job *job, const struct smtp_conn_info *want,
                                         struct petrel_loop **there)
{
    struct petrel_loop *loop = petrel_loop_current();
    struct smtp_cached *found = NULL;
    *there = NULL;
    smtp_dispatch_lock();
    for (struct smtp_cached *c = cached; c != NULL; c = c->next) {
        if (usable_locked(c, job, want) && (found == NULL || c->loop == loop))
            found = c; /* one on this loop saves the job a move */
    }
    if (found == NULL) {
        smtp_dispatch_unlock();
        return NULL;
    }
    bool had_slot = found->reserved == NULL; /* the job has a slot of its own */
    release_locked(found);
    found->reserved = NULL;
    smtp_cache_unreserve_locked(job); /* a claim it does not use */
    found->reserved = job;
    if (found->loop == loop)
        unlink_locked(found);
    else
        *there = found->loop;
    smtp_dispatch_unlock();
    if (had_slot)
        smtp_dispatch_slot_freed();
    return *there == NULL ? found : NULL;
}

struct smtp_cached *smtp_cache_take_reserved(struct smtp_job *job)
{
    struct petrel_loop *loop = petrel_loop_current();
    struct smtp_cached *found = NULL;
    smtp_dispatch_lock();
    for (struct smtp_cached *c = cached; c != NULL && found == NULL; c = c->next) {
        if (c->reserved == job && !c->evicted && c->loop == loop)
            found = c;
    }
    if (found != NULL)
        unlink_locked(found);
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
