/* The order in which the next hop's hosts and addresses are tried. No I/O:
 * nexthop.c feeds it what the resolver found. */
#include <string.h>
#include <strings.h>

#include "smtp_out.h"

void smtp_mx_order(struct smtp_mx *mx, size_t n, uint32_t (*rnd)(void *ctx), void *ctx)
{
    /* Insertion sort: stable, and n is at most SMTP_OUT_MX_MAX. */
    for (size_t i = 1; i < n; i++) {
        struct smtp_mx t = mx[i];
        size_t j = i;
        for (; j > 0 && mx[j - 1].preference > t.preference; j--)
            mx[j] = mx[j - 1];
        mx[j] = t;
    }
    /* Fisher-Yates within each run of equal preference, so that equal
     * hosts share the load (RFC 5321 section 5.1). */
    for (size_t start = 0; start < n;) {
        size_t end = start + 1;
        while (end < n && mx[end].preference == mx[start].preference)
            end++;
        for (size_t i = end - 1; i > start; i--) {
            size_t k = start + rnd(ctx) % (uint32_t)(i - start + 1);
            struct smtp_mx t = mx[i];
            mx[i] = mx[k];
            mx[k] = t;
        }
        start = end;
    }
}

bool smtp_is_myself(const char *name, const char *myname, const char *helo_name)
{
    if (name == NULL || name[0] == '\0')
        return false;
    return (myname != NULL && myname[0] != '\0' && strcasecmp(name, myname) == 0) ||
           (helo_name != NULL && helo_name[0] != '\0' && strcasecmp(name, helo_name) == 0);
}

size_t smtp_mx_trim_self(struct smtp_mx *mx, size_t n, const char *myname, const char *helo_name,
                         bool *self_r)
{
    *self_r = false;
    for (size_t i = 0; i < n; i++) {
        if (smtp_is_myself(mx[i].host, myname, helo_name)) {
            *self_r = true;
            size_t keep = 0;
            while (keep < n && mx[keep].preference < mx[i].preference)
                keep++;
            return keep; /* sorted: the more preferred ones are in front */
        }
    }
    return n;
}

size_t smtp_addr_order(struct petrel_dns_addr *out, size_t max, const struct petrel_dns_addr *v4,
                       size_t n4, const struct petrel_dns_addr *v6, size_t n6,
                       enum smtp_family preference, bool v6_first)
{
    const struct petrel_dns_addr *first = v4, *second = v6;
    size_t nfirst = n4, nsecond = n6;
    if (preference == SMTP_FAMILY_IPV6 || (preference == SMTP_FAMILY_ANY && v6_first)) {
        first = v6, second = v4;
        nfirst = n6, nsecond = n4;
    }
    size_t n = 0, i = 0, j = 0;
    while (n < max && (i < nfirst || j < nsecond)) {
        bool take_first = i < nfirst && (preference != SMTP_FAMILY_ANY || j >= nsecond || i <= j);
        if (take_first)
            out[n++] = first[i++];
        else
            out[n++] = second[j++];
    }
    return n;
}
