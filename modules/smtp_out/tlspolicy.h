/* smtp_out's TLS policy per destination (docs/smtp_out.md, "TLS policy"):
 * the per-domain table (tls_policies), DANE (RFC 7672, dane.c and
 * dane_match.c), MTA-STS (RFC 8461, mtasts.c and mtasts_parse.c). Private
 * to this folder. The parsers and the matcher (mtasts_parse.c,
 * dane_match.c) do no I/O: unit tests and fuzzers drive them directly. */
#ifndef SMTP_OUT_TLSPOLICY_H
#define SMTP_OUT_TLSPOLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_TLSA_MAX 8           /* TLSA records kept per host */
#define SMTP_TLSA_DATA_MAX 1024   /* association data kept; longer: unusable */
#define SMTP_STS_MX_MAX 16        /* mx patterns kept from a policy */
#define SMTP_STS_NAME_MAX 254     /* a pattern or host name, with its NUL */
#define SMTP_STS_ID_MAX 33        /* the TXT id: 1-32 letters and digits */
#define SMTP_STS_BODY_MAX 65536   /* the policy file fetched */
#define SMTP_STS_MAX_AGE 31557600 /* RFC 8461 3.2: a year at most */
#define SMTP_CHAIN_MAX 10         /* certificates of the peer looked at */

/* --- MTA-STS text (mtasts_parse.c): no I/O --- */

enum smtp_sts_mode { SMTP_STS_NONE, SMTP_STS_TESTING, SMTP_STS_ENFORCE };

struct smtp_sts_policy {
    enum smtp_sts_mode mode;
    long long max_age; /* seconds, at most SMTP_STS_MAX_AGE */
    size_t nmx;
    char mx[SMTP_STS_MX_MAX][SMTP_STS_NAME_MAX]; /* lower case; "*.x" wildcards */
};

/* The policy file (RFC 8461 section 3.2). 0, or -1 with *error_r for a
 * policy that must not be used (no version, no mode, no max_age, no mx
 * for a mode other than none, a malformed field). */
int smtp_sts_parse_policy(const char *text, size_t len, struct smtp_sts_policy *p,
                          const char **error_r);
/* One TXT record of _mta-sts.<domain> (RFC 8461 section 3.1): 1 and the id
 * for a v=STSv1 record, 0 for a record of something else, -1 for an
 * STSv1 record without a valid id. */
int smtp_sts_parse_txt(const char *txt, size_t len, char id[SMTP_STS_ID_MAX]);
/* Whether host (an MX host name) matches one of the policy's mx patterns
 * (RFC 8461 section 4.1: "*." stands for exactly one leftmost label). */
bool smtp_sts_mx_match(const struct smtp_sts_policy *p, const char *host);
const char *smtp_sts_mode_name(enum smtp_sts_mode mode);

/* --- TLS-Required (tls_required.c): no I/O --- */

#define SMTP_HEADER_SCAN_MAX 65536 /* header bytes looked at for TLS-Required */

/* Whether the header block h (up to its empty line, or len) has a
 * "TLS-Required: No" field (RFC 8689 section 5), folded or not. */
bool smtp_tls_required_no(const char *h, size_t len);

/* --- TLSA matching (dane_match.c): no I/O --- */

struct smtp_tlsa {
    uint8_t usage, selector, matching;
    uint16_t len;
    unsigned char data[SMTP_TLSA_DATA_MAX];
};

struct smtp_der {
    const unsigned char *data;
    size_t len;
};

/* RFC 7672 section 3.1: DANE-TA(2) and DANE-EE(3), selector 0 or 1,
 * matching 0, 1 or 2, with data of the size the matching type gives. */
bool smtp_tlsa_usable(const struct smtp_tlsa *t);
/* Whether the peer's chain (DER, depth 0 first) satisfies one of the
 * usable records: DANE-EE by the certificate at depth 0 alone (no name or
 * date check, RFC 7672 3.1.1); DANE-TA by a certificate the peer sent at
 * depth 1 or more, which the one at depth 0 must chain to, valid for host
 * (RFC 7672 3.1.2, 3.2.2). *why_r says why not. */
bool smtp_dane_match(const struct smtp_tlsa *t, size_t nt, const struct smtp_der *chain,
                     size_t nchain, const char *host, const char **why_r);

#endif
