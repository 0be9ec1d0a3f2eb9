/* The lock-out model: penalise the source of failed logins, not the
 * account they name. A source (IPv4 address, IPv6 /64) is locked out for
 * every account after max_per_ip failures, and for one account after
 * max_per_pair failures against it; its network block (IPv4 /24, IPv6
 * /48) after max_per_net failures from all of its sources, so that one
 * holder of a block cannot fill the tables with lock-outs. An account's
 * failures from all sources only slow further failures down, and never
 * for a source that has logged in to it recently: failures lock out only
 * the sources they come from (docs/auth.md). No I/O here: the caller
 * logs. */
#include <string.h>

#include <petrel/mem.h>

#include "auth_private.h"

void auth_guard_init(struct auth_guard *g, size_t size)
{
    auth_limits_init(&g->per_ip, size);
    auth_limits_init(&g->per_pair, size);
    auth_limits_init(&g->per_net, size);
    auth_limits_init(&g->per_account, size);
    auth_limits_init(&g->known, size);
}

static long long delay_cap(long long ms) { return ms < AUTH_DELAY_MAX_MS ? ms : AUTH_DELAY_MAX_MS; }

/* What each table enforces, from the one configuration c of this call. */
static struct auth_limit_params lockouts(const struct auth_guard_config *c, unsigned max)
{
    return (struct auth_limit_params){max, c->window_ms, c->lockout_ms};
}

static struct auth_limit_params counted(const struct auth_guard_config *c)
{
    return (struct auth_limit_params){c->account_slow_after, c->window_ms, 0};
}

static struct auth_limit_params remembered(const struct auth_guard_config *c)
{
    return (struct auth_limit_params){c->remember_ms > 0, c->remember_ms, 0};
}

void auth_guard_free(struct auth_guard *g)
{
    auth_limits_free(&g->per_ip);
    auth_limits_free(&g->per_pair);
    auth_limits_free(&g->per_net);
    auth_limits_free(&g->per_account);
    auth_limits_free(&g->known);
}

/* "user ipkey": neither holds a blank, so no two pairs share a key. The
 * buffer always has room (AUTH_LIMIT_KEY_MAX); false would mean a bug. */
static bool pair_key(const char *user, const char *ipkey, char *out)
{
    return petrel_snprintf(out, AUTH_LIMIT_KEY_MAX + 1, "%s %s", user, ipkey);
}

enum auth_guard_lock auth_guard_reserve(struct auth_guard *g, const struct auth_guard_config *c,
                                        const char *user, const char *ipkey, long long now)
{
    char pair[AUTH_LIMIT_KEY_MAX + 1], net[AUTH_IP_KEY_MAX + 1];
    struct auth_limit_params ip = lockouts(c, c->max_per_ip), pr = lockouts(c, c->max_per_pair),
                             nt = lockouts(c, c->max_per_net);
    auth_limits_net_key(ipkey, net, sizeof(net));
    if (!pair_key(user, ipkey, pair))
        return AUTH_GUARD_SOURCE_LOCKED;
    if (!auth_limits_reserve(&g->per_net, &nt, net, now))
        return AUTH_GUARD_NET_LOCKED;
    enum auth_guard_lock lock = AUTH_GUARD_SOURCE_LOCKED;
    if (auth_limits_reserve(&g->per_ip, &ip, ipkey, now)) {
        if (auth_limits_reserve(&g->per_pair, &pr, pair, now))
            return AUTH_GUARD_OPEN;
        auth_limits_settle(&g->per_ip, &ip, ipkey, now, false);
        lock = AUTH_GUARD_PAIR_LOCKED;
    }
    auth_limits_settle(&g->per_net, &nt, net, now, false);
    return lock;
}

/* failure_delay doubled for each failure past the account's threshold,
 * capped at max_failure_delay (never below failure_delay). */
static unsigned grown_delay(long long base, long long cap, unsigned excess)
{
    long long d = base;
    if (cap < base)
        cap = base;
    for (unsigned i = 0; i < excess && d < cap; i++)
        d *= 2;
    return (unsigned)(d < cap ? d : cap);
}

/* The delay for a failure of user from the pair: grown while the account
 * is past its threshold, unless the pair is known-good. */
static void failure_delay(struct auth_guard *g, const struct auth_guard_config *c, const char *user,
                          const char *pair, long long now, struct auth_guard_outcome *out)
{
    struct auth_limit_params acc = counted(c), known = remembered(c);
    long long base = delay_cap(c->failure_delay_ms);
    unsigned n = auth_limits_count(&g->per_account, &acc, user, now);
    unsigned max = c->account_slow_after;
    out->delay_ms = (unsigned)base;
    out->account_slowing = max != 0 && n == max;
    if (max == 0 || n <= max || auth_limits_known(&g->known, &known, pair, now))
        return;
    out->delay_ms = grown_delay(base, delay_cap(c->max_failure_delay_ms), n - max);
    out->slowed = out->delay_ms > base;
}

void auth_guard_settle(struct auth_guard *g, const struct auth_guard_config *c, const char *user,
                       const char *ipkey, long long now, enum petrel_auth_status st,
                       struct auth_guard_outcome *out)
{
    char pair[AUTH_LIMIT_KEY_MAX + 1], net[AUTH_IP_KEY_MAX + 1];
    struct auth_limit_params ip = lockouts(c, c->max_per_ip), pr = lockouts(c, c->max_per_pair),
                             nt = lockouts(c, c->max_per_net), known = remembered(c);
    bool failed = st == PETREL_AUTH_FAILED;
    memset(out, 0, sizeof(*out));
    if (!pair_key(user, ipkey, pair))
        return;
    auth_limits_net_key(ipkey, net, sizeof(net));
    out->net_locked = auth_limits_settle(&g->per_net, &nt, net, now, failed);
    out->source_locked = auth_limits_settle(&g->per_ip, &ip, ipkey, now, failed);
    out->pair_locked = auth_limits_settle(&g->per_pair, &pr, pair, now, failed);
    if (failed) {
        failure_delay(g, c, user, pair, now, out);
    } else if (st == PETREL_AUTH_OK) {
        /* The source's failures stay: they may be against other accounts. */
        auth_limits_clear(&g->per_pair, pair);
        auth_limits_remember(&g->known, &known, pair, now);
    }
}

void auth_guard_fail_source(struct auth_guard *g, const struct auth_guard_config *c,
                            const char *ipkey, long long now, struct auth_guard_outcome *out)
{
    char net[AUTH_IP_KEY_MAX + 1];
    struct auth_limit_params ip = lockouts(c, c->max_per_ip), nt = lockouts(c, c->max_per_net);
    memset(out, 0, sizeof(*out));
    auth_limits_net_key(ipkey, net, sizeof(net));
    /* Counted against the source only while its block is open: a locked
     * block must not go on taking slots with lock-outs of its sources. */
    bool net_open = !auth_limits_locked(&g->per_net, &nt, net, now);
    out->net_locked = auth_limits_fail(&g->per_net, &nt, net, now);
    if (net_open)
        out->source_locked = auth_limits_fail(&g->per_ip, &ip, ipkey, now);
    out->delay_ms = (unsigned)delay_cap(c->failure_delay_ms);
}
