/* Rule decisions and flow-control counters. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "rules.h"

#define PEER_BUCKETS 256

struct peer_entry {
    struct peer_entry *next;
    struct petrel_ipaddr ip;
    long long current;
    time_t window_start;
    long long window_count;
};

struct petrel_flow_state {
    pthread_mutex_t lock;
    atomic_int refs;
    long long current;
    time_t window_start;
    long long window_count;
    struct peer_entry *peers[PEER_BUCKETS];
};

struct petrel_flow_state *petrel_flow_state_new(void)
{
    struct petrel_flow_state *st = petrel_calloc(1, sizeof(*st));
    pthread_mutex_init(&st->lock, NULL);
    atomic_init(&st->refs, 1);
    return st;
}

void petrel_flow_state_ref(struct petrel_flow_state *st) { atomic_fetch_add(&st->refs, 1); }

void petrel_flow_state_unref(struct petrel_flow_state *st)
{
    if (st == NULL || atomic_fetch_sub(&st->refs, 1) != 1)
        return;
    for (size_t i = 0; i < PEER_BUCKETS; i++) {
        while (st->peers[i] != NULL) {
            struct peer_entry *e = st->peers[i];
            st->peers[i] = e->next;
            free(e);
        }
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

const struct petrel_rule *petrel_rules_decide(const struct petrel_rules *const *levels,
                                              size_t nlevels, const struct petrel_ipaddr *peer)
{
    for (size_t l = 0; l < nlevels; l++) {
        const struct petrel_rule *best = NULL;
        for (size_t i = 0; levels[l] != NULL && i < levels[l]->n; i++) {
            const struct petrel_rule *r = &levels[l]->v[i];
            if (!r->enable || !petrel_ipset_contains(&r->set, peer))
                continue;
            if (best == NULL || r->priority < best->priority ||
                (r->priority == best->priority && !r->allow))
                best = r;
        }
        if (best != NULL)
            return best;
    }
    return NULL;
}

static size_t peer_hash(const struct petrel_ipaddr *a)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < sizeof(a->b); i++)
        h = (h ^ a->b[i]) * 16777619u;
    return h % PEER_BUCKETS;
}

/* An IPv6 client counts by its /64: one subscriber or host usually has a
 * whole /64, and counting single addresses would let it open 2^64 times
 * the limit. */
static struct petrel_ipaddr peer_key(const struct petrel_ipaddr *ip)
{
    struct petrel_ipaddr k = *ip;
    if (!petrel_ipaddr_is_v4(ip))
        memset(k.b + 8, 0, 8);
    return k;
}

/* Find the peer's entry, dropping idle expired ones met on the way. */
static struct peer_entry *peer_get(struct petrel_flow_state *st, const struct petrel_ipaddr *peer,
                                   time_t now, long long interval, bool create)
{
    struct petrel_ipaddr key = peer_key(peer);
    const struct petrel_ipaddr *ip = &key;
    struct peer_entry **p = &st->peers[peer_hash(ip)];
    while (*p != NULL) {
        struct peer_entry *e = *p;
        if (memcmp(&e->ip, ip, sizeof(*ip)) == 0)
            return e;
        if (e->current == 0 && now - e->window_start >= interval) {
            *p = e->next;
            free(e);
            continue;
        }
        p = &e->next;
    }
    if (!create)
        return NULL;
    struct peer_entry *e = petrel_calloc(1, sizeof(*e));
    e->ip = *ip;
    e->window_start = now;
    *p = e;
    return e;
}

static void window_roll(time_t *start, long long *count, time_t now, long long interval)
{
    if (now - *start >= interval) {
        *start = now;
        *count = 0;
    }
}

const char *petrel_flow_acquire(struct petrel_flow_state *st, const struct petrel_flow *f,
                                const struct petrel_ipaddr *peer, bool peer_exempt, time_t now,
                                struct petrel_flow_hold *hold)
{
    const char *why = NULL;
    bool track = !peer_exempt && (f->peer_max_connections || f->peer_max_interval_connections);
    pthread_mutex_lock(&st->lock);
    window_roll(&st->window_start, &st->window_count, now, f->time_interval);
    struct peer_entry *e = track ? peer_get(st, peer, now, f->peer_time_interval, true) : NULL;
    if (e != NULL)
        window_roll(&e->window_start, &e->window_count, now, f->peer_time_interval);
    if (f->max_connections && st->current >= f->max_connections)
        why = "too many connections";
    else if (f->max_interval_connections && st->window_count >= f->max_interval_connections)
        why = "too many connections in the time interval";
    else if (e != NULL && f->peer_max_connections && e->current >= f->peer_max_connections)
        why = "too many connections from this address";
    else if (e != NULL && f->peer_max_interval_connections &&
             e->window_count >= f->peer_max_interval_connections)
        why = "too many connections from this address in the time interval";
    if (why == NULL) {
        st->current++;
        st->window_count++;
        if (e != NULL) {
            e->current++;
            e->window_count++;
        }
        petrel_flow_state_ref(st);
        hold->st = st;
        hold->peer_tracked = e != NULL;
    }
    pthread_mutex_unlock(&st->lock);
    return why;
}

void petrel_flow_release(struct petrel_flow_hold *hold, const struct petrel_ipaddr *peer)
{
    struct petrel_flow_state *st = hold->st;
    if (st == NULL)
        return;
    pthread_mutex_lock(&st->lock);
    st->current--;
    if (hold->peer_tracked) {
        struct peer_entry *e = peer_get(st, peer, 0, 0, false);
        if (e != NULL && e->current > 0)
            e->current--;
    }
    pthread_mutex_unlock(&st->lock);
    hold->st = NULL;
    petrel_flow_state_unref(st);
}
