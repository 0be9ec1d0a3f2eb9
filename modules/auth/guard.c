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
#include <stdatomic.h>
#include <string.h>

#include <petrel/mem.h>

#include "auth_private.h"

void auth_guard_init(struct auth_guard *g, size_t size)
{
    auth_limits_init(&g->per_ip, size, 0, 1, 1);
    auth_limits_init(&g->per_pair, size, 0, 1, 1);
    auth_limits_init(&g->per_net, size, 0, 1, 1);
    auth_limits_init(&g->per_account, size, 0, 1, 1);
    auth_limits_init(&g->known, size, 0, 1, 1);
    atomic_store(&g->failure_delay_ms, 0);
    atomic_store(&g->max_failure_delay_ms, 0);
    atomic_store(&g->account_slow_after, 0);
}

static long long delay_cap(long long ms) { return ms < AUTH_DELAY_MAX_MS ? ms : AUTH_DELAY_MAX_MS; }

void auth_guard_set(struct auth_guard *g, const struct auth_guard_config *c)
{
    auth_limits_set(&g->per_ip, c->max_per_ip, c->window_ms, c->lockout_ms);
    auth_limits_set(&g->per_pair, c->max_per_pair, c->window_ms, c->lockout_ms);
    auth_limits_set(&g->per_net, c->max_per_net, c->window_ms, c->lockout_ms);
    auth_limits_set(&g->per_account, c->account_slow_after, c->window_ms, 0);
    auth_limits_set(&g->known, c->remember_ms > 0, c->remember_ms, 0);
    atomic_store(&g->failure_delay_ms, delay_cap(c->failure_delay_ms));
    atomic_store(&g->max_failure_delay_ms, delay_cap(c->max_failure_delay_ms));
    atomic_store(&g->account_slow_after, c->account_slow_after);
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

enum auth_guard_lock auth_guard_reserve(struct auth_guard *g, const char *user, const char *ipkey,
                                        long long now)
{
    char pair[AUTH_LIMIT_KEY_MAX + 1], net[AUTH_IP_KEY_MAX + 1];
    auth_limits_net_key(ipkey, net, sizeof(net));
    if (!pair_key(user, ipkey, pair))
        return AUTH_GUARD_SOURCE_LOCKED;
    if (!auth_limits_reserve(&g->per_net, net, now))
        return AUTH_GUARD_NET_LOCKED;
    enum auth_guard_lock lock = AUTH_GUARD_SOURCE_LOCKED;
    if (auth_limits_reserve(&g->per_ip, ipkey, now)) {
        if (auth_limits_reserve(&g->per_pair, pair, now))
            return AUTH_GUARD_OPEN;
        auth_limits_settle(&g->per_ip, ipkey, now, false);
        lock = AUTH_GUARD_PAIR_LOCKED;
    }
    auth_limits_settle(&g->per_net, net, now, false);
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
static void failure_delay(struct auth_guard *g, const char *user, const char *pair, long long now,
                          struct auth_guard_outcome *out)
{
    long long base = atomic_load(&g->failure_delay_ms);
    unsigned n = auth_limits_count(&g->per_account, user, now);
    unsigned max = atomic_load(&g->account_slow_after);
    out->delay_ms = (unsigned)base;
    out->account_slowing = max != 0 && n == max;
    if (max == 0 || n <= max || auth_limits_known(&g->known, pair, now))
        return;
    out->delay_ms = grown_delay(base, atomic_load(&g->max_failure_delay_ms), n - max);
    out->slowed = out->delay_ms > base;
}

void auth_guard_settle(struct auth_guard *g, const char *user, const char *ipkey, long long now,
                       enum petrel_auth_status st, struct auth_guard_outcome *out)
{
    char pair[AUTH_LIMIT_KEY_MAX + 1], net[AUTH_IP_KEY_MAX + 1];
    bool failed = st == PETREL_AUTH_FAILED;
    memset(out, 0, sizeof(*out));
    if (!pair_key(user, ipkey, pair))
        return;
    auth_limits_net_key(ipkey, net, sizeof(net));
    out->net_locked = auth_limits_settle(&g->per_net, net, now, failed);
    out->source_locked = auth_limits_settle(&g->per_ip, ipkey, now, failed);
    out->pair_locked = auth_limits_settle(&g->per_pair, pair, now, failed);
    if (failed) {
        failure_delay(g, user, pair, now, out);
    } else if (st == PETREL_AUTH_OK) {
        /* The source's failures stay: they may be against other accounts. */
        auth_limits_clear(&g->per_pair, pair);
        auth_limits_remember(&g->known, pair, now);
    }
}

void auth_guard_fail_source(struct auth_guard *g, const char *ipkey, long long now,
                            struct auth_guard_outcome *out)
{
    char net[AUTH_IP_KEY_MAX + 1];
    memset(out, 0, sizeof(*out));
    auth_limits_net_key(ipkey, net, sizeof(net));
    /* Counted against the source only while its block is open: a locked
     * block must not go on taking slots with lock-outs of its sources. */
    bool net_open = !auth_limits_locked(&g->per_net, net, now);
    out->net_locked = auth_limits_fail(&g->per_net, net, now);
    if (net_open)
        out->source_locked = auth_limits_fail(&g->per_ip, ipkey, now);
    out->delay_ms = (unsigned)atomic_load(&g->failure_delay_ms);
}
