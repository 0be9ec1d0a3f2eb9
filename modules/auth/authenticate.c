/* One login decision: lock-outs first (a source locked out, for every
 * account or for this one, is refused at once without checking anything;
 * the attempt is reserved against both at that moment), then the
 * auth.verify hook, then the userdb with a constant-time password check.
 * Every failure is counted (guard.c: a success refunds its reservation),
 * logged with its reason (never the password) and answered after
 * failure_delay, or later while the account is under attack. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <petrel/log.h>
#include <petrel/mem.h>
#include <petrel/module.h>
#include <petrel/password.h>
#include <petrel/stats.h>

#include "auth_private.h"

#define MODULE_NAME "auth"

struct auth_state auth_state;

long long auth_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Text from a client made safe for one log line. */
static void log_safe(const char *in, char *out, size_t size)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(in ? in : ""); *p && o + 5 < size; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            o += (size_t)snprintf(out + o, size - o, "\\x%02x", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

/* delay_ms: failures only. A refusal by a lock-out costs the server
 * nothing and is answered at once: the guard gives it no delay. */
static void set_result(struct petrel_auth_result *r, enum petrel_auth_status st, const char *reason,
                       unsigned delay_ms)
{
    r->status = st;
    petrel_strlcpy(r->reason, reason, sizeof(r->reason));
    r->delay_ms = st == PETREL_AUTH_FAILED ? delay_ms : 0;
}

/* The userdb's verdict for user/password: OK, FAILED with a reason, or
 * TEMPFAIL. The hash is computed even for an unknown user, so the time
 * taken does not tell who exists. */
static enum petrel_auth_status check_userdb(const char *user, const char *password,
                                            const char **reason_r)
{
    struct petrel_userdb_entry *e = NULL;
    const char *why = "user database unavailable";
    int found = auth_state.userdb->password(user, &e, &why);
    if (found == PETREL_USERDB_TEMPFAIL) {
        *reason_r = why;
        return PETREL_AUTH_TEMPFAIL;
    }
    bool match = petrel_password_verify(password, e != NULL ? e->hash : auth_state.dummy_hash);
    enum petrel_auth_status st = PETREL_AUTH_FAILED;
    if (found != PETREL_USERDB_FOUND)
        *reason_r = "unknown user";
    else if (!match)
        *reason_r = "bad password";
    else if (e->disabled)
        *reason_r = "account disabled";
    else
        st = PETREL_AUTH_OK;
    auth_state.userdb->entry_free(e);
    return st;
}

/* The hook's verdict, or the userdb's when no handler has an opinion. */
static enum petrel_auth_status decide(const struct petrel_auth_request *req, const char *user,
                                      char *user_r, const char **reason_r)
{
    struct petrel_auth_verify_event ev = {.request = req, .user = user};
    const char *hook_reason = NULL;
    switch (petrel_hook_run(PETREL_AUTH_HOOK, &ev, &hook_reason)) {
    case PETREL_OK:
        petrel_strlcpy(user_r, ev.user_r[0] != '\0' ? ev.user_r : user, PETREL_AUTH_USER_MAX + 1);
        return PETREL_AUTH_OK;
    case PETREL_DENY:
    case PETREL_DISCONNECT:
        *reason_r = hook_reason != NULL ? hook_reason : "denied by an auth.verify handler";
        return PETREL_AUTH_FAILED;
    case PETREL_DENY_SOFT:
        *reason_r = hook_reason != NULL ? hook_reason : "auth.verify handler unavailable";
        return PETREL_AUTH_TEMPFAIL;
    case PETREL_CONTINUE:
        break;
    }
    petrel_strlcpy(user_r, user, PETREL_AUTH_USER_MAX + 1);
    return check_userdb(user, req->password, reason_r);
}

static void log_outcome(const struct petrel_auth_request *req, const char *user,
                        const struct petrel_auth_result *r)
{
    static const char *const names[] = {"ok", "failed", "temporary failure", "rate-limited"};
    char u[200], ip[64], svc[32];
    log_safe(user, u, sizeof(u));
    log_safe(req->client_ip, ip, sizeof(ip));
    log_safe(req->service, svc, sizeof(svc));
    petrel_log(r->status == PETREL_AUTH_OK ? PETREL_LOG_INFO : PETREL_LOG_WARNING, MODULE_NAME,
               "login %s: service=%s ip=%s user=%s mech=%s tls=%s%s%s", names[r->status], svc, ip,
               u, req->mechanism != NULL ? req->mechanism : "-", req->tls ? "yes" : "no",
               r->status == PETREL_AUTH_OK ? "" : " reason=",
               r->status == PETREL_AUTH_OK ? "" : r->reason);
}

static void count(const char *name)
{
    /* Looked up per call: counters live for the process, lookups are cheap
     * next to a password hash. */
    petrel_counter_add(petrel_counter(name), 1);
}

/* The events of a settled attempt, each logged once when it starts. */
static void log_events(const char *user, const char *ipkey, const struct auth_guard_outcome *o)
{
    char u[200], k[200], net[AUTH_IP_KEY_MAX + 1];
    log_safe(user, u, sizeof(u));
    log_safe(ipkey, k, sizeof(k));
    if (o->net_locked) {
        auth_limits_net_key(k, net, sizeof(net));
        petrel_log(PETREL_LOG_WARNING, MODULE_NAME,
                   "too many failed logins from network %s: all of it refused for a while", net);
    }
    if (o->source_locked)
        petrel_log(PETREL_LOG_WARNING, MODULE_NAME,
                   "too many failed logins from %s: refused for a while", k);
    if (o->pair_locked)
        petrel_log(PETREL_LOG_WARNING, MODULE_NAME,
                   "too many failed logins for %s from %s: refused for a while", u, k);
    if (o->account_slowing)
        petrel_log(PETREL_LOG_WARNING, MODULE_NAME,
                   "many failed logins for %s: failures from addresses it has not logged in "
                   "from are slowed down for a while",
                   u);
    if (o->slowed)
        count("auth.slowed");
}

void auth_authenticate(const struct petrel_auth_request *req, struct petrel_auth_result *r)
{
    memset(r, 0, sizeof(*r));
    char user[PETREL_AUTH_USER_MAX + 1], ipkey[AUTH_IP_KEY_MAX + 1];
    const char *ip = req->client_ip != NULL ? req->client_ip : "-";
    struct petrel_auth_request rq = *req;
    rq.client_ip = ip;
    /* IPv6 clients are counted per /64, IPv4 ones per address. */
    auth_limits_ip_key(ip, ipkey, sizeof(ipkey));
    struct auth_guard_outcome out = {0};
    const char *reason = NULL;
    enum petrel_auth_status st;
    enum auth_guard_lock lock;
    /* One generation's limits for the whole attempt, reserve to settle. */
    struct petrel_config *gen = petrel_ctx_config_ref(auth_state.ctx);
    const struct auth_guard_config *gc = petrel_config_derived(gen, auth_state.ctx);
    if (req->authcid == NULL || req->password == NULL ||
        !auth_username_canonical(req->authcid, auth_state.primary, user, sizeof(user))) {
        petrel_strlcpy(user, "-", sizeof(user));
        st = PETREL_AUTH_FAILED;
        reason = "invalid user name";
        auth_guard_fail_source(&auth_state.guard, gc, ipkey, auth_now_ms(), &out);
    } else if ((lock = auth_guard_reserve(&auth_state.guard, gc, user, ipkey, auth_now_ms())) !=
               AUTH_GUARD_OPEN) {
        st = PETREL_AUTH_RATELIMITED;
        reason = lock == AUTH_GUARD_PAIR_LOCKED
                     ? "too many failed logins for this account from this address"
                 : lock == AUTH_GUARD_NET_LOCKED ? "too many failed logins from this network"
                                                 : "too many failed logins from this address";
    } else {
        st = decide(&rq, user, r->user, &reason);
        char z[PETREL_AUTH_USER_MAX + 1];
        /* No master users: an authzid must name the user that logged in. */
        if (st == PETREL_AUTH_OK && req->authzid != NULL && req->authzid[0] != '\0' &&
            (!auth_username_canonical(req->authzid, auth_state.primary, z, sizeof(z)) ||
             strcmp(z, r->user) != 0)) {
            st = PETREL_AUTH_FAILED;
            reason = "authorization identity differs from the user";
        }
        auth_guard_settle(&auth_state.guard, gc, user, ipkey, auth_now_ms(), st, &out);
    }
    petrel_config_unref(gen);
    set_result(r, st, st == PETREL_AUTH_OK ? "" : reason, out.delay_ms);
    if (st != PETREL_AUTH_OK)
        r->user[0] = '\0';
    log_events(user, ipkey, &out);
    count(st == PETREL_AUTH_OK         ? "auth.success"
          : st == PETREL_AUTH_FAILED   ? "auth.failure"
          : st == PETREL_AUTH_TEMPFAIL ? "auth.tempfail"
                                       : "auth.ratelimited");
    log_outcome(&rq, user, r);
}
