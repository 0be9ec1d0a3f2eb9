/* DANE for SMTP (RFC 7672): the TLSA records of _<port>._tcp.<MX host>,
 * asked for only when the domain's policy is dane and the MX answer was
 * DNSSEC-validated, kept with the job for the session to match
 * (dane_match.c). The lookup runs beside the host's address lookups and
 * reports through nexthop.c's callback. */
#include <stdio.h>
#include <string.h>

#include "smtp_out.h"

unsigned smtp_dane_start(struct smtp_job *job, petrel_dns_fn *fn)
{
    struct smtp_tls_state *t = job->tlsp;
    t->ntlsa = 0;
    t->host_ad = false;
    t->tlsa_error[0] = '\0';
    t->tlsa_state = SMTP_TLSA_NOT_ASKED;
    /* Without a validated MX answer the host name itself may be forged:
     * DANE does not apply (RFC 7672 2.2.2). */
    if (t->domain_level != SMTP_TLS_DANE || !t->mx_ad)
        return 0;
    char name[PETREL_DNS_NAME_MAX];
    int n = snprintf(name, sizeof(name), "_%lld._tcp.%s", job->cfg->port, job->mx[job->imx].host);
    if (n < 0 || (size_t)n >= sizeof(name))
        return 0;
    t->tlsa_state = SMTP_TLSA_ASKED;
    petrel_dns_lookup(PETREL_DNS_TLSA, name, fn, job);
    return 1;
}

void smtp_dane_tlsa_done(struct smtp_job *job, const struct petrel_dns_result *res)
{
    struct smtp_tls_state *t = job->tlsp;
    switch (res->status) {
    case PETREL_DNS_OK:
        break;
    case PETREL_DNS_NODATA:
    case PETREL_DNS_NXDOMAIN:
        t->tlsa_state = res->ad ? SMTP_TLSA_NONE : SMTP_TLSA_INSECURE;
        return;
    case PETREL_DNS_SERVFAIL:
    case PETREL_DNS_TIMEOUT:
    case PETREL_DNS_ERROR:
        t->tlsa_state = SMTP_TLSA_FAILED;
        snprintf(t->tlsa_error, sizeof(t->tlsa_error), "%s",
                 res->error != NULL ? res->error : petrel_dns_status_name(res->status));
        return;
    }
    if (!res->ad) {
        t->tlsa_state = SMTP_TLSA_INSECURE;
        return;
    }
    t->tlsa_state = SMTP_TLSA_RECORDS;
    for (size_t i = 0; i < res->count && t->ntlsa < SMTP_TLSA_MAX; i++) {
        const struct petrel_dns_tlsa *r = &res->records[i].tlsa;
        struct smtp_tlsa *k = &t->tlsa[t->ntlsa++];
        k->usage = r->usage;
        k->selector = r->selector;
        k->matching = r->matching;
        /* Longer data (a whole certificate, 3 0 0) is kept as unusable:
         * at worst the host gets mandatory TLS without a match. */
        k->len = r->len <= SMTP_TLSA_DATA_MAX ? (uint16_t)r->len : 0;
        memcpy(k->data, r->data, k->len);
    }
}
