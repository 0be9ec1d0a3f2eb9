/* Per-destination limits (docs/smtp_out.md, "Limits per destination"):
 * which destination_limits entry applies to a destination, what it sets,
 * and the settings check of the list. No I/O: unit-tested. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp_out.h"

#define DELAY_MAX 3600 /* seconds: as destination_rate_delay's range */

bool smtp_limits_parse_delay(const char *s, long long *secs_r)
{
    long long v = 0;
    size_t i = 0;
    for (; s[i] >= '0' && s[i] <= '9' && i < 8; i++)
        v = v * 10 + (s[i] - '0');
    if (i == 0 || i == 8)
        return false;
    if (s[i] != '\0') {
        const char *units = "smh";
        static const long long scale[] = {1, 60, 3600};
        const char *u = strchr(units, s[i] | 0x20);
        if (u == NULL || s[i + 1] != '\0')
            return false;
        v *= scale[u - units];
    }
    if (v > DELAY_MAX)
        return false;
    *secs_r = v;
    return true;
}

/* "example.com" matches itself (no case); ".example.com" every name
 * below it, not itself. */
static size_t match(const char *pattern, const char *dest)
{
    if (pattern[0] != '.')
        return strcasecmp(pattern, dest) == 0 ? strlen(pattern) + 1 : 0;
    size_t p = strlen(pattern), d = strlen(dest);
    return d > p && strcasecmp(dest + d - p, pattern) == 0 ? p : 0;
}

void smtp_limits_for(const struct smtp_out_config *cfg, const char *dest,
                     struct smtp_dest_limits *out)
{
    out->max = cfg->max_per_destination;
    out->delay = cfg->destination_rate_delay;
    const struct smtp_dest_limit_conf *e = cfg->destination_limits.items, *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cfg->destination_limits.count; i++) {
        size_t n = match(e[i].domain, dest); /* the exact name, else the longest suffix */
        if (n > best_len) {
            best = &e[i];
            best_len = n;
        }
    }
    if (best == NULL)
        return;
    if (best->max_connections > 0)
        out->max = best->max_connections;
    long long d;
    if (best->rate_delay != NULL && smtp_limits_parse_delay(best->rate_delay, &d))
        out->delay = d;
}

/* A domain as tls_policies takes it, with an optional leading dot. */
static bool name_ok(const char *s, bool (*valid)(const char *))
{
    return valid(s[0] == '.' ? s + 1 : s);
}

int smtp_limits_check(const struct smtp_out_config *cfg, bool (*valid_name)(const char *),
                      char *err, size_t errsize)
{
    const struct smtp_dest_limit_conf *e = cfg->destination_limits.items;
    long long d;
    for (size_t i = 0; i < cfg->destination_limits.count; i++) {
        const char *dom = e[i].domain;
        if (!name_ok(dom, valid_name)) {
            snprintf(err, errsize,
                     "destination_limits: \"%.100s\" is not a domain name (or .domain for its "
                     "subdomains)",
                     dom);
            return -1;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcasecmp(e[k].domain, dom) == 0) {
                snprintf(err, errsize, "destination_limits: domain \"%.100s\" is listed twice",
                         dom);
                return -1;
            }
        }
        if (e[i].max_connections > cfg->max_connections) {
            snprintf(err, errsize,
                     "destination_limits: max_connections of \"%.100s\" cannot exceed "
                     "max_connections (%lld)",
                     dom, cfg->max_connections);
            return -1;
        }
        if (e[i].rate_delay != NULL && !smtp_limits_parse_delay(e[i].rate_delay, &d)) {
            snprintf(err, errsize,
                     "destination_limits: rate_delay of \"%.100s\" must be a duration from 0 "
                     "to 1h (\"1s\", \"2m\")",
                     dom);
            return -1;
        }
    }
    return 0;
}
