/* Alias and forward expansion. Each recipient as received becomes the
 * accounts and remote addresses it stands for. An address met twice in
 * one message is delivered once, which also ends loops (a -> b -> a); a
 * recipient whose expansion ends in nothing but loops fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "processing.h"

#define MAX_DEPTH 16

struct work {
    char *address;
    size_t origin; /* index of the recipient as received, in the old array */
    unsigned depth;
};

struct expansion {
    const struct proc_settings *set;
    struct queue_envelope *env; /* receives the final recipients */
    struct queue_rcpt *old;     /* the recipients before expansion */
    struct work *todo;
    size_t ntodo, cap;
    size_t *produced; /* final recipients per origin */
    size_t total;
    char **visited; /* addresses met while expanding the current origin */
    size_t nvisited, vcap;
};

/* An address met again while expanding one recipient is a loop edge. */
static bool visit(struct expansion *x, const char *address)
{
    for (size_t i = 0; i < x->nvisited; i++)
        if (strcasecmp(x->visited[i], address) == 0)
            return false;
    if (x->nvisited == x->vcap) {
        x->vcap = x->vcap ? x->vcap * 2 : 16;
        x->visited = petrel_reallocarray(x->visited, x->vcap, sizeof(char *));
    }
    x->visited[x->nvisited++] = petrel_strdup(address);
    return true;
}

static bool seen(const struct queue_envelope *env, const char *address)
{
    for (size_t i = 0; i < env->nrcpts; i++)
        if (env->rcpts[i].state != RCPT_EXPAND && strcasecmp(env->rcpts[i].address, address) == 0)
            return true;
    return false;
}

static void push(struct expansion *x, const char *address, size_t origin, unsigned depth)
{
    if (x->ntodo == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 16;
        x->todo = petrel_reallocarray(x->todo, x->cap, sizeof(*x->todo));
    }
    x->todo[x->ntodo++] = (struct work){petrel_strdup(address), origin, depth};
}

static struct queue_rcpt * final(struct expansion *x, size_t origin, char state, char route,
                                 const char *address)
{
    const struct queue_rcpt *o = &x->old[origin];
    x->produced[origin]++;
    x->total++;
    return queue_envelope_add(x->env, state, route, o->notify, address, o->original, o->dsn_orcpt);
}

/* An SRS address of ours stands for the address it was made from: the
 * original sender, or the forwarder before us. One that does not check
 * out is looked up as any other (smtp_in refused it at RCPT already). */
static bool srs_original(struct expansion *x, const struct work *w)
{
    char original[SRS_ADDRESS_MAX + 1];
    if (!srs_is_srs(w->address) ||
        proc_srs_reverse(x->set, w->address, original, sizeof(original)) != SRS_OK)
        return false;
    push(x, original, w->origin, w->depth + 1);
    return true;
}

static bool domain_is_local(const char *address)
{
    const char *at = strrchr(address, '@');
    return at == NULL || proc_env.userdb->domain_is_local(at + 1);
}

/* One address: final, more work, or a failure of its origin. */
static void expand_one(struct expansion *x, const struct work *w)
{
    if (!visit(x, w->address))
        return;
    if (seen(x->env, w->address)) { /* reached through another recipient too */
        x->produced[w->origin]++;
        return;
    }
    if (w->depth > MAX_DEPTH || x->total >= x->set->max_expansion) {
        struct queue_rcpt *r = final(x, w->origin, RCPT_FAILED, ROUTE_NONE, w->address);
        queue_rcpt_set_reason(r, "554 5.4.6 too many aliases or forwards, a loop?");
        return;
    }
    if (!domain_is_local(w->address)) {
        /* Below the top: through an alias or a forward of ours. */
        final(x, w->origin, RCPT_PENDING, ROUTE_REMOTE, w->address)->forwarded = w->depth > 0;
        return;
    }
    if (srs_original(x, w))
        return;
    struct petrel_userdb_entry *e = NULL;
    const char *error = NULL;
    int found = proc_env.userdb->lookup(w->address, &e, &error);
    if (found == PETREL_USERDB_TEMPFAIL) {
        char reason[200];
        snprintf(reason, sizeof(reason), "451 4.3.0 account database unavailable: %s",
                 error != NULL ? error : "error");
        queue_rcpt_set_reason(final(x, w->origin, RCPT_EXPAND, ROUTE_NONE, w->address), reason);
        return;
    }
    if (found != PETREL_USERDB_FOUND) {
        struct queue_rcpt *r = final(x, w->origin, RCPT_FAILED, ROUTE_NONE, w->address);
        queue_rcpt_set_reason(r, "550 5.1.1 no such user here");
        return;
    }
    if (e->kind == PETREL_USERDB_ACCOUNT && (e->ntargets == 0 || e->keep)) {
        if (seen(x->env, e->address)) /* the canonical account, reached again */
            x->produced[w->origin]++;
        else
            proc_account_learn(final(x, w->origin, RCPT_PENDING, ROUTE_LOCAL, e->address), e);
    }
    for (size_t i = 0; i < e->ntargets; i++)
        push(x, e->targets[i], w->origin, w->depth + 1);
    proc_env.userdb->entry_free(e);
}

void proc_account_learn(struct queue_rcpt *r, const struct petrel_userdb_entry *e)
{
    r->account = (struct queue_account){true, e->quota_bytes, e->quota_messages};
}

void proc_expand(const struct proc_settings *set, struct queue_envelope *env)
{
    size_t n = env->nrcpts, pending = 0;
    for (size_t i = 0; i < n; i++)
        pending += env->rcpts[i].state == RCPT_EXPAND;
    if (pending == 0)
        return;
    struct expansion x = {.set = set, .env = env, .old = env->rcpts};
    x.produced = petrel_calloc(n, sizeof(size_t));
    /* Final recipients already known stay (and count as seen). */
    env->rcpts = NULL, env->nrcpts = 0, env->cap = 0;
    for (size_t i = 0; i < n; i++) {
        struct queue_rcpt *o = &x.old[i];
        if (o->state != RCPT_EXPAND) {
            struct queue_rcpt *r = queue_envelope_add(env, o->state, o->route, o->notify,
                                                      o->address, o->original, o->dsn_orcpt);
            queue_rcpt_set_reason(r, o->reason);
            queue_rcpt_set_next_hop(r, o->next_hop);
            r->forwarded = o->forwarded;
            r->account = o->account;
            x.produced[i] = 1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (x.old[i].state != RCPT_EXPAND)
            continue;
        push(&x, x.old[i].address, i, 0);
        /* Depth first, so one recipient's targets stay together. */
        while (x.ntodo > 0) {
            struct work w = x.todo[--x.ntodo];
            expand_one(&x, &w);
            free(w.address);
        }
        while (x.nvisited > 0)
            free(x.visited[--x.nvisited]);
        if (x.produced[i] == 0) {
            struct queue_rcpt *r =
                queue_envelope_add(env, RCPT_FAILED, ROUTE_NONE, x.old[i].notify, x.old[i].address,
                                   x.old[i].original, x.old[i].dsn_orcpt);
            queue_rcpt_set_reason(r, "554 5.4.6 alias or forwarding loop");
            petrel_log(PETREL_LOG_WARNING, PROC_LOG, "%s: %s: alias or forwarding loop", env->id,
                       x.old[i].address);
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(x.old[i].address);
        free(x.old[i].original);
        free(x.old[i].dsn_orcpt);
        free(x.old[i].reason);
        free(x.old[i].next_hop);
    }
    free(x.old);
    free(x.todo);
    free(x.visited);
    free(x.produced);
}
