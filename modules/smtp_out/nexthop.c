/* The next hop of a domain (RFC 5321 section 5.1): its MX hosts by
 * preference (equal ones shuffled), the domain itself when it has no MX
 * (the implicit MX), none at all for a null MX (RFC 7505); then each
 * host's addresses, A and AAAA through the core's resolver, tried in turn
 * until a server has taken or refused every recipient. Everything runs on
 * the job's loop; the resolver calls back there. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

static void resolve_host(struct smtp_job *job);

/* xorshift: only for shuffling equal MX hosts and picking a family. */
static uint32_t rnd(void *ctx)
{
    static _Thread_local uint32_t state;
    (void)ctx;
    if (state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state = (uint32_t)ts.tv_nsec ^ (uint32_t)(uintptr_t)&state ^ 0x9e3779b9u;
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

static bool stopped_or_stopping(struct smtp_job *job)
{
    if (smtp_dispatch_stopped())
        return true;
    if (!atomic_load(&smtp_out_stopping))
        return false;
    smtp_result_soft_all(job, "451 4.3.2 the mail system is shutting down");
    smtp_dispatch_finish(job);
    return true;
}

static void finish(struct smtp_job *job) { smtp_dispatch_finish(job); }

/* The name looked up: the domain, or the relay host. */
static const char *target(const struct smtp_job *job)
{
    return job->route.relay ? job->route.addr.host : job->msg->domain;
}

/* What would bounce mail by MX only defers it through a relay host: a
 * misconfigured relay must not return mail to its senders. */
static enum petrel_transport_status hard(const struct smtp_job *job)
{
    return job->route.relay ? PETREL_TRANSPORT_DEFERRED : PETREL_TRANSPORT_FAILED;
}

/* "[192.0.2.1]" or "[IPv6:2001:db8::1]": no lookup (RFC 5321 4.1.3). */
static bool literal(struct smtp_job *job, const char *domain)
{
    size_t n = strlen(domain);
    char text[SMTP_OUT_HOST_MAX];
    if (domain[0] != '[' || n < 3 || domain[n - 1] != ']' || n - 2 >= sizeof(text))
        return false;
    memcpy(text, domain + 1, n - 2);
    text[n - 2] = '\0';
    struct petrel_dns_addr a = {0};
    enum smtp_family fam = smtp_out_family(job->cfg->address_family);
    if (strncasecmp(text, "IPv6:", 5) == 0 && inet_pton(AF_INET6, text + 5, &a.u.v6) == 1)
        a.family = AF_INET6;
    else if (inet_pton(AF_INET, text, &a.u.v4) == 1)
        a.family = AF_INET;
    if (a.family == 0 || (fam == SMTP_FAMILY_IPV4 && a.family != AF_INET) ||
        (fam == SMTP_FAMILY_IPV6 && a.family != AF_INET6)) {
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "550 5.1.2 %.300s: unusable address literal", domain);
        finish(job);
        return true;
    }
    petrel_strlcpy(job->mx[0].host, domain, sizeof(job->mx[0].host));
    job->nmx = 1;
    job->addrs[0] = a;
    job->naddrs = 1;
    smtp_nexthop_next(job);
    return true;
}

static void mx_done(const struct petrel_dns_result *res, void *ctx)
{
    struct smtp_job *job = ctx;
    const char *domain = target(job);
    if (stopped_or_stopping(job))
        return;
    smtp_tlspolicy_mx_answer(job, res);     /* TLS policy: DANE needs a validated MX */
    if (res->status == PETREL_DNS_NODATA) { /* no MX: the domain is its own (implicit) MX */
        petrel_strlcpy(job->mx[0].host, domain, sizeof(job->mx[0].host));
        job->nmx = 1;
        resolve_host(job);
        return;
    }
    if (res->status == PETREL_DNS_NXDOMAIN) {
        smtp_result_decide_all(job, hard(job),
                               "550 5.1.2 domain %.300s not found (MX lookup: NXDOMAIN)", domain);
        finish(job);
        return;
    }
    if (res->status != PETREL_DNS_OK) {
        smtp_result_soft_all(job, "451 4.4.3 cannot look up the MX hosts of %.250s: %.150s", domain,
                             res->error != NULL ? res->error : "lookup failed");
        finish(job);
        return;
    }
    if (res->null_mx) {
        smtp_result_decide_all(
            job, hard(job), "556 5.1.10 %.300s does not accept mail (null MX, RFC 7505)", domain);
        finish(job);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < res->count && n < SMTP_OUT_MX_MAX; i++) {
        const struct petrel_dns_mx *mx = &res->records[i].mx;
        if (mx->exchange[0] == '\0' || strlen(mx->exchange) >= SMTP_OUT_HOST_MAX)
            continue; /* a root among real hosts, or a name no host has */
        job->mx[n].preference = mx->preference;
        petrel_strlcpy(job->mx[n].host, mx->exchange, sizeof(job->mx[n].host));
        n++;
    }
    smtp_mx_order(job->mx, n, rnd, NULL);
    bool self;
    n = smtp_mx_trim_self(job->mx, n, smtp_out_hostname, job->cfg->helo_name, &self);
    if (n == 0) {
        smtp_result_decide_all(job, hard(job),
                               self ? "554 5.4.6 mail for %.300s loops back to myself"
                                    : "554 5.4.4 %.300s has no usable MX host",
                               domain);
        finish(job);
        return;
    }
    job->nmx = n < (size_t)job->cfg->max_mx ? n : (size_t)job->cfg->max_mx;
    resolve_host(job);
}

static void addr_done(const struct petrel_dns_result *res, void *ctx)
{
    struct smtp_job *job = ctx;
    job->dns_pending--;
    if (smtp_dispatch_stopped())
        return;
    if (res->type == PETREL_DNS_TLSA) {
        smtp_dane_tlsa_done(job, res); /* TLS policy: the host's TLSA records (dane.c) */
    } else if (res->status == PETREL_DNS_OK) {
        job->tlsp->host_ad |= res->ad; /* TLS policy: the host's zone is signed */
        bool v6 = res->type == PETREL_DNS_AAAA;
        struct petrel_dns_addr *to = v6 ? job->got6 : job->got4;
        size_t *n = v6 ? &job->n6 : &job->n4;
        for (size_t i = 0; i < res->count && *n < SMTP_OUT_ADDRS_MAX; i++)
            to[(*n)++] = res->records[i].a;
    } else if (res->status != PETREL_DNS_NODATA && res->status != PETREL_DNS_NXDOMAIN) {
        job->dns_soft = true;
        snprintf(job->last_reason, sizeof(job->last_reason),
                 "451 4.4.3 cannot look up the address of %.250s: %.150s", job->mx[job->imx].host,
                 res->error != NULL ? res->error : "lookup failed");
    }
    if (job->dns_pending > 0 || stopped_or_stopping(job))
        return;
    if (!smtp_tlspolicy_host_ready(job)) { /* TLS policy: a TLSA lookup failed */
        smtp_result_soft_all(job, "%s", job->last_reason);
        job->imx++;
        resolve_host(job);
        return;
    }
    enum smtp_family pref = smtp_out_family(job->cfg->address_preference);
    job->naddrs = smtp_addr_order(job->addrs, SMTP_OUT_ADDRS_MAX, job->got4, job->n4, job->got6,
                                  job->n6, pref, (rnd(NULL) & 1) != 0);
    job->iaddr = 0;
    if (job->naddrs > 0) {
        smtp_nexthop_next(job);
        return;
    }
    bool implicit =
        !job->route.relay && job->nmx == 1 && strcasecmp(job->mx[0].host, job->msg->domain) == 0;
    if (implicit && !job->dns_soft) {
        smtp_result_decide_all(job, PETREL_TRANSPORT_FAILED,
                               "550 5.4.4 %.300s has no MX and no usable address record",
                               job->msg->domain);
        finish(job);
        return;
    }
    if (!job->dns_soft)
        snprintf(job->last_reason, sizeof(job->last_reason),
                 "451 4.4.4 MX host %.300s has no usable address record", job->mx[job->imx].host);
    smtp_result_soft_all(job, "%s", job->last_reason);
    job->imx++;
    resolve_host(job);
}

static void resolve_host(struct smtp_job *job)
{
    /* TLS policy: MTA-STS in enforce mode skips hosts it does not list. */
    while (job->imx < job->nmx && !smtp_tlspolicy_host_allowed(job)) {
        smtp_result_soft_all(job, "%s", job->last_reason);
        job->imx++;
    }
    if (job->imx >= job->nmx) {
        finish(job);
        return;
    }
    enum smtp_family fam = smtp_out_family(job->cfg->address_family);
    const char *host = job->mx[job->imx].host;
    job->n4 = job->n6 = job->naddrs = job->iaddr = 0;
    job->dns_soft = false;
    job->dns_pending = fam == SMTP_FAMILY_ANY ? 2 : 1;
    job->dns_pending += smtp_dane_start(job, addr_done); /* TLS policy: TLSA (dane.c) */
    /* Both lookups are started before either answers: callbacks never
     * run inside petrel_dns_lookup. */
    if (fam != SMTP_FAMILY_IPV4)
        petrel_dns_lookup(PETREL_DNS_AAAA, host, addr_done, job);
    if (fam != SMTP_FAMILY_IPV6)
        petrel_dns_lookup(PETREL_DNS_A, host, addr_done, job);
}

/* A relay host in brackets: no MX lookup; an address is used as it is. */
static void relay_direct(struct smtp_job *job)
{
    const char *host = job->route.addr.host;
    struct petrel_dns_addr a = {0};
    petrel_strlcpy(job->mx[0].host, host, sizeof(job->mx[0].host));
    job->nmx = 1;
    if (inet_pton(AF_INET6, host, &a.u.v6) == 1)
        a.family = AF_INET6;
    else if (inet_pton(AF_INET, host, &a.u.v4) == 1)
        a.family = AF_INET;
    if (a.family == 0) {
        resolve_host(job);
        return;
    }
    job->addrs[0] = a;
    job->naddrs = 1;
    job->iaddr = 0;
    smtp_nexthop_next(job);
}

static void lookup_mx(struct smtp_job *job)
{
    petrel_dns_lookup(PETREL_DNS_MX, target(job), mx_done, job);
}

/* The next hop from the start, by DNS (after a cached connection, if
 * one was tried, left recipients over). A relay host is ours: MTA-STS is
 * the destination's word, asked only when going there by MX. */
static void lookup(struct smtp_job *job)
{
    job->imx = job->nmx = job->naddrs = job->iaddr = 0;
    if (job->route.relay && !job->route.addr.mx)
        relay_direct(job);
    else if (job->route.relay)
        lookup_mx(job);
    else if (!literal(job, job->msg->domain))
        smtp_mtasts_begin(job, lookup_mx); /* TLS policy: MTA-STS first (mtasts.c) */
}

void smtp_nexthop_start(void *arg)
{
    struct smtp_job *job = arg;
    if (stopped_or_stopping(job))
        return;
    job->mx = petrel_calloc(SMTP_OUT_MX_MAX, sizeof(*job->mx));
    job->tlsp = petrel_calloc(1, sizeof(*job->tlsp));
    smtp_tlspolicy_init(job); /* TLS policy: tls_policies, else tls (tlspolicy.c) */
    if (smtp_session_resume(job))
        return;
    lookup(job);
}

void smtp_nexthop_next(struct smtp_job *job)
{
    if (smtp_result_all_decided(job)) {
        finish(job);
        return;
    }
    if (stopped_or_stopping(job))
        return;
    if (job->reused) { /* the cached connection did not take everything */
        job->reused = false;
        lookup(job);
        return;
    }
    while (job->iaddr < job->naddrs) {
        if (job->attempts >= SMTP_OUT_ATTEMPTS_MAX) {
            finish(job);
            return;
        }
        /* An idle connection to the same server first (cache.c), unless
         * one was just used there. */
        bool fresh = job->addr_reused;
        job->addr_reused = false;
        if ((!fresh && smtp_session_reuse_addr(job)) ||
            smtp_session_open(job, job->mx[job->imx].host))
            return;
        smtp_result_soft_all(job, "%s", job->last_reason);
    }
    job->imx++;
    if (job->imx < job->nmx && job->mx[job->imx].host[0] != '[') {
        resolve_host(job);
        return;
    }
    finish(job);
}

static void next_posted(void *arg)
{
    struct smtp_job *job = arg;
    if (!smtp_dispatch_stopped())
        smtp_nexthop_next(job);
}

void smtp_nexthop_post_next(struct smtp_job *job)
{
    petrel_loop_post(petrel_loop_current(), next_posted, job);
}
