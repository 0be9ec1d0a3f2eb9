/* libFuzzer target for the MTA-STS texts (RFC 8461): the input is a
 * policy file as an HTTPS server sends it, and also a TXT record as DNS
 * gives it. Whatever arrives: a policy accepted has a known mode, max_age
 * within a year, at most SMTP_STS_MX_MAX patterns, each NUL-terminated,
 * lower case and within bounds, and at least one unless the mode is
 * none; an id is 1-32 letters and digits; matching a host never reads
 * past either string. The input is also a message header block for the
 * TLS-Required field, which must not read past it either. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tlspolicy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_policy(const struct smtp_sts_policy *p)
{
    if (p->mode != SMTP_STS_NONE && p->mode != SMTP_STS_TESTING && p->mode != SMTP_STS_ENFORCE)
        abort();
    if (p->max_age < 0 || p->max_age > SMTP_STS_MAX_AGE || p->nmx > SMTP_STS_MX_MAX)
        abort();
    if (p->mode != SMTP_STS_NONE && p->nmx == 0)
        abort();
    for (size_t i = 0; i < p->nmx; i++) {
        size_t n = strnlen(p->mx[i], SMTP_STS_NAME_MAX);
        if (n == 0 || n == SMTP_STS_NAME_MAX)
            abort();
        for (size_t k = 0; k < n; k++) {
            if (p->mx[i][k] >= 'A' && p->mx[i][k] <= 'Z')
                abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct smtp_sts_policy p;
    const char *error = NULL;
    if (smtp_sts_parse_policy(text, size, &p, &error) == 0) {
        check_policy(&p);
        static const char *const hosts[] = {"mx1.example.net", "a.b.example.net", "example.net",
                                            ".example.net",    "*.example.net",   ""};
        for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
            (void)smtp_sts_mx_match(&p, hosts[i]);
        /* the first pattern as a host, and each pattern matches itself
         * unless it is a wildcard */
        for (size_t i = 0; i < p.nmx; i++) {
            if (p.mx[i][0] != '*' && !smtp_sts_mx_match(&p, p.mx[i]))
                abort();
        }
    } else if (error == NULL) {
        abort();
    }
    char id[SMTP_STS_ID_MAX];
    int r = smtp_sts_parse_txt(text, size, id);
    if (r > 0) {
        size_t n = strnlen(id, SMTP_STS_ID_MAX);
        if (n == 0 || n >= SMTP_STS_ID_MAX)
            abort();
    } else if (r < -1) {
        abort();
    }
    /* An exact copy, so ASan sees a read past the end. */
    char *h = malloc(size ? size : 1);
    if (h != NULL) {
        if (size)
            memcpy(h, data, size);
        (void)smtp_tls_required_no(h, size);
        free(h);
    }
    return 0;
}
