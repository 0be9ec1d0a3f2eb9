/* TLS policy of the connection cache by address (cache.c): whether a
 * connection made for another destination will do. No I/O: unit-tested
 * (test_tlsreuse.c). */
#include <strings.h>

#include "smtp_out.h"

/* A connection made for another destination is as good as a new one only
 * when it has what the job's level would check on a new one (Postfix keys
 * its cache by TLS policy for the same reason): a verification is for
 * one MX host name, so a verified level takes a connection checked for
 * that very name; plaintext made under "none" may be plaintext where
 * STARTTLS is offered. */
bool smtp_tlspolicy_reuse_ok(const struct smtp_job *job, const struct smtp_conn_info *info)
{
    bool same_host = strcasecmp(info->host, job->mx[job->imx].host) == 0;
    if (job->msg->requiretls)
        return false;
    switch (job->tlsp->level) {
    case SMTP_TLS_NONE:
        return true;
    case SMTP_TLS_MAY:
        return info->tls || info->level >= SMTP_TLS_MAY;
    case SMTP_TLS_ENCRYPT:
        return info->tls;
    case SMTP_TLS_VERIFY:
    case SMTP_TLS_STS:
        return info->tls && info->ca_verified && same_host;
    case SMTP_TLS_DANE:
        return info->tls && info->dane && same_host;
    }
    return false;
}
