/* The TLS policy of a delivery (docs/smtp_out.md, "TLS policy"): which
 * level a domain has (tls_policies, else tls, else what MTA-STS says),
 * which level each of its MX hosts has (DANE decides per host by its
 * TLSA records), and the check of the peer once TLS is up. Everything runs
 * on the job's loop; nexthop.c and session.c call in at a few marked
 * places. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <petrel/log.h>
#include <petrel/mem.h>

#include "smtp_out.h"

enum smtp_tls_level smtp_out_tls_parse(const char *setting)
{
    static const char *const names[] = {"none", "may", "encrypt", "verify", "dane"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(setting, names[i]) == 0)
            return (enum smtp_tls_level)i;
    }
    return SMTP_TLS_MAY;
}

/* REQUIRETLS (RFC 8689): whatever the domain's policy, TLS with a
 * verified certificate; peer_ok then decides how the name is trusted. */
static void requiretls_floor(struct smtp_job *job)
{
    if (job->msg->requiretls && job->tlsp->level < SMTP_TLS_VERIFY)
        job->tlsp->level = SMTP_TLS_VERIFY;
}

/* Read once, in submit, on the queue's worker (a file read has no place
 * on an I/O loop); only the first SMTP_HEADER_SCAN_MAX bytes are looked
 * at. */
bool smtp_tlspolicy_header_waives(const struct petrel_transport_msg *m)
{
    if (m->requiretls) /* RFC 8689 section 4.1: the field is then ignored */
        return false;
    size_t want = m->size < SMTP_HEADER_SCAN_MAX ? (size_t)m->size : SMTP_HEADER_SCAN_MAX;
    char *h = petrel_malloc(want ? want : 1);
    ssize_t n = pread(m->data_fd, h, want, 0);
    bool no = n > 0 && smtp_tls_required_no(h, (size_t)n);
    free(h);
    return no;
}

void smtp_tlspolicy_init(struct smtp_job *job)
{
    const struct smtp_out_config *cfg = job->cfg;
    struct smtp_tls_state *t = job->tlsp;
    const struct smtp_tls_policy_conf *p = cfg->tls_policies.items;
    t->domain_level = smtp_out_tls_parse(cfg->tls);
    t->explicit_policy = false;
    for (size_t i = 0; i < cfg->tls_policies.count; i++) {
        if (strcasecmp(p[i].domain, job->msg->domain) == 0) {
            t->domain_level = smtp_out_tls_parse(p[i].policy);
            t->explicit_policy = true;
            break;
        }
    }
    /* RFC 8689 section 5: the sender may waive the domain's published
     * policies (MTA-STS, DANE), unless it also asked for REQUIRETLS
     * (section 4.1: the field is then ignored). tls and tls_policies are
     * the administrator's and still hold. */
    t->tls_optional = job->tls_waived;
    if (t->tls_optional) {
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "%s: TLS-Required: No: MTA-STS and DANE are not applied to %.250s",
                   job->msg->queue_id, job->msg->domain);
        if (t->domain_level == SMTP_TLS_DANE)
            t->domain_level = SMTP_TLS_MAY;
    }
    /* Until a host says more (an address literal never does): DANE
     * without validated DNS is opportunistic TLS (RFC 7672 2.2). */
    t->level = t->domain_level == SMTP_TLS_DANE ? SMTP_TLS_MAY : t->domain_level;
    requiretls_floor(job);
}

void smtp_tlspolicy_mx_answer(struct smtp_job *job, const struct petrel_dns_result *res)
{
    /* A validated NODATA makes the implicit MX secure too (RFC 7672 2.2.1). */
    job->tlsp->mx_ad =
        res->ad && (res->status == PETREL_DNS_OK || res->status == PETREL_DNS_NODATA);
}

bool smtp_tlspolicy_host_allowed(struct smtp_job *job)
{
    struct smtp_tls_state *t = job->tlsp;
    const char *host = job->mx[job->imx].host;
    if (!t->sts || t->policy.mode == SMTP_STS_NONE || smtp_sts_mx_match(&t->policy, host))
        return true;
    if (t->policy.mode == SMTP_STS_TESTING) {
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "MTA-STS testing: %.250s: MX host %.250s is not in the policy (delivered "
                   "anyway)",
                   job->msg->domain, host);
        return true;
    }
    snprintf(job->last_reason, sizeof(job->last_reason),
             "451 4.7.5 MTA-STS policy of %.200s does not list MX host %.250s", job->msg->domain,
             host);
    return false;
}

bool smtp_tlspolicy_host_ready(struct smtp_job *job)
{
    struct smtp_tls_state *t = job->tlsp;
    const char *host = job->mx[job->imx].host;
    size_t usable = 0;
    for (size_t i = 0; i < t->ntlsa; i++)
        usable += smtp_tlsa_usable(&t->tlsa[i]);
    bool sts_enforce = t->sts && t->policy.mode == SMTP_STS_ENFORCE;
    switch (t->tlsa_state) {
    case SMTP_TLSA_FAILED:
        snprintf(job->last_reason, sizeof(job->last_reason),
                 "451 4.7.5 TLSA lookup of _%lld._tcp.%.250s failed: %.120s", job->cfg->port, host,
                 t->tlsa_error);
        return false;
    case SMTP_TLSA_INSECURE:
        if (t->host_ad) { /* the host's zone is signed: the answer should have been */
            snprintf(job->last_reason, sizeof(job->last_reason),
                     "451 4.7.5 TLSA answer for _%lld._tcp.%.250s is not DNSSEC-validated",
                     job->cfg->port, host);
            return false;
        }
        break;
    case SMTP_TLSA_RECORDS:
        /* Records but none usable: mandatory TLS without authentication,
         * as Postfix does (RFC 7672 2.2). */
        t->level = usable > 0 ? SMTP_TLS_DANE : SMTP_TLS_ENCRYPT;
        requiretls_floor(job);
        return true;
    case SMTP_TLSA_NOT_ASKED:
    case SMTP_TLSA_ASKED:
    case SMTP_TLSA_NONE:
        break;
    }
    /* No DANE for this host: MTA-STS (RFC 8461 2: DANE first), else the
     * domain's level, where dane means may. */
    if (sts_enforce)
        t->level = SMTP_TLS_STS;
    else
        t->level = t->domain_level == SMTP_TLS_DANE ? SMTP_TLS_MAY : t->domain_level;
    requiretls_floor(job);
    return true;
}

enum smtp_tls_level smtp_tlspolicy_level(const struct smtp_job *job) { return job->tlsp->level; }

static bool sts_testing(const struct smtp_job *job)
{
    return job->tlsp->sts && job->tlsp->policy.mode == SMTP_STS_TESTING &&
           job->tlsp->level < SMTP_TLS_DANE;
}

const char *smtp_tlspolicy_required(struct smtp_job *job)
{
    switch (job->tlsp->level) {
    case SMTP_TLS_NONE:
    case SMTP_TLS_MAY:
        if (sts_testing(job))
            petrel_log(PETREL_LOG_INFO, "smtp_out",
                       "MTA-STS testing: %.250s: %s offers no STARTTLS (delivered anyway)",
                       job->msg->domain, job->peer);
        return NULL;
    case SMTP_TLS_ENCRYPT:
    case SMTP_TLS_VERIFY:
        return "TLS is required";
    case SMTP_TLS_DANE:
        return "TLS is required by DANE";
    case SMTP_TLS_STS:
        return "MTA-STS: TLS is required";
    }
    return NULL;
}

/* DANE: the peer's chain against the host's TLSA records. */
static bool dane_ok(struct smtp_job *job, struct petrel_conn *conn, const char **why_r)
{
    struct petrel_buf der;
    struct smtp_der chain[SMTP_CHAIN_MAX];
    size_t offs[SMTP_CHAIN_MAX], n = 0;
    petrel_buf_init(&der, 256 * 1024); /* ten certificates of any sane size */
    for (; n < SMTP_CHAIN_MAX; n++) {
        offs[n] = der.len;
        if (!petrel_conn_tls_peer_cert(conn, n, &der))
            break;
        chain[n].len = der.len - offs[n];
    }
    for (size_t i = 0; i < n; i++)
        chain[i].data = (const unsigned char *)petrel_buf_head(&der) + offs[i];
    bool ok =
        smtp_dane_match(job->tlsp->tlsa, job->tlsp->ntlsa, chain, n, job->mx[job->imx].host, why_r);
    petrel_buf_free(&der);
    return ok;
}

static void record_tls(struct smtp_job *job, struct petrel_conn *conn, bool verified,
                       const char *how)
{
    const char *version = petrel_conn_tls_version(conn), *cipher = petrel_conn_tls_cipher(conn);
    snprintf(job->msg->tls, sizeof(job->msg->tls), "%s %s, %s (%.120s)",
             version != NULL ? version : "TLS", cipher != NULL ? cipher : "",
             verified ? "verified" : "not verified", how);
}

/* RFC 8689 section 4.2.1 for a REQUIRETLS message: the certificate
 * matches the TLSA records (DANE), or is CA-verified for the MX host name
 * when that name is trustworthy: the MX answer was DNSSEC-validated, an
 * MTA-STS policy in enforce mode lists it, or it is a relay host from our
 * own settings. A refusal is a tentative 5xx: another MX host may do,
 * else the message is returned (result.c). */
static bool requiretls_peer_ok(struct smtp_job *job, struct petrel_conn *conn, bool verified,
                               const char *why)
{
    const struct smtp_tls_state *t = job->tlsp;
    const char *host = job->mx[job->imx].host;
    if (t->level == SMTP_TLS_DANE) {
        if (dane_ok(job, conn, &why)) {
            record_tls(job, conn, true, "dane");
            return true;
        }
        record_tls(job, conn, false, why);
        smtp_result_soft_all(job, "550 5.7.10 REQUIRETLS: DANE: TLSA mismatch for %s: %.200s",
                             job->peer, why);
        return false;
    }
    /* An address has no name to verify the certificate for. */
    unsigned char bin[16];
    bool named =
        host[0] != '[' && inet_pton(AF_INET, host, bin) != 1 && inet_pton(AF_INET6, host, bin) != 1;
    const char *how = t->level == SMTP_TLS_STS                  ? "mta-sts"
                      : job->route.relay && !job->route.addr.mx ? "relay host"
                      : t->mx_ad                                ? "ca, dnssec mx"
                                                                : NULL;
    if (!named) {
        verified = false;
        why = "no host name to verify";
    }
    record_tls(job, conn, verified, verified ? (how != NULL ? how : "ca") : why);
    if (!verified) {
        smtp_result_soft_all(job,
                             "550 5.7.10 REQUIRETLS: TLS certificate of %s not verified: %.200s",
                             job->peer, why);
        return false;
    }
    if (how == NULL) {
        smtp_result_soft_all(job,
                             "550 5.7.10 REQUIRETLS: the MX host name %.250s is not authenticated "
                             "(no DNSSEC, MTA-STS or DANE)",
                             host);
        return false;
    }
    return true;
}

bool smtp_tlspolicy_peer_ok(struct smtp_job *job, struct petrel_conn *conn)
{
    const char *why = NULL;
    bool verified = petrel_conn_tls_verified(conn, &why);
    if (why == NULL)
        why = "unknown";
    if (job->msg->requiretls)
        return requiretls_peer_ok(job, conn, verified, why);
    switch (job->tlsp->level) {
    case SMTP_TLS_DANE:
        if (dane_ok(job, conn, &why)) {
            record_tls(job, conn, true, "dane");
            return true;
        }
        record_tls(job, conn, false, why);
        smtp_result_soft_all(job, "451 4.7.5 DANE: TLSA mismatch for %s: %.200s", job->peer, why);
        return false;
    case SMTP_TLS_STS:
        record_tls(job, conn, verified, verified ? "mta-sts" : why);
        if (verified)
            return true;
        smtp_result_soft_all(job, "451 4.7.5 MTA-STS: TLS certificate of %s not verified: %.200s",
                             job->peer, why);
        return false;
    case SMTP_TLS_VERIFY:
        record_tls(job, conn, verified, verified ? "ca" : why);
        if (verified)
            return true;
        smtp_result_soft_all(job, "451 4.7.5 TLS certificate of %s not verified: %.200s", job->peer,
                             why);
        return false;
    case SMTP_TLS_NONE:
    case SMTP_TLS_MAY:
    case SMTP_TLS_ENCRYPT:
        break;
    }
    record_tls(job, conn, verified, verified ? "ca" : why);
    if (!verified && sts_testing(job))
        petrel_log(PETREL_LOG_INFO, "smtp_out",
                   "MTA-STS testing: %.250s: certificate of %s not verified: %.200s (delivered "
                   "anyway)",
                   job->msg->domain, job->peer, why);
    return true;
}
