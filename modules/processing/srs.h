/* The Sender Rewriting Scheme (Shevek's SRS, the format of libsrs2 and
 * postsrsd): the envelope sender of a forwarded copy becomes an address
 * of the forwarder's, which a reply (a bounce) can be turned back from.
 *
 *   SRS0=HHHH=TT=orig-domain=orig-local@srs-domain
 *   SRS1=HHHH=first-forwarder==HHHH=TT=orig-domain=orig-local@srs-domain
 *
 * TT is the day (days since the epoch, mod 1024) in two base32
 * characters; HHHH the first four characters of the base64 HMAC-SHA1, keyed
 * with a secret, of the case-folded fields that follow it. A sender that
 * is already another forwarder's SRS0 or SRS1 address becomes SRS1, so
 * the chain does not grow.
 *
 * No I/O and no allocation: unit tests and the fuzzer drive it directly
 * (srs_proc.c is the processing module's use of it). */
#ifndef PETREL_PROCESSING_SRS_H
#define PETREL_PROCESSING_SRS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define SRS_ADDRESS_MAX 254 /* octets of an address, RFC 5321 path less brackets */
#define SRS_HASH_LEN 4
#define SRS_DAY 86400
#define SRS_DAYS 1024 /* the timestamp wraps after this many days */

enum srs_result {
    SRS_OK = 0,
    SRS_NOT_SRS,   /* reverse: not an SRS address of this domain */
    SRS_MALFORMED, /* missing or empty fields, bad characters */
    SRS_BAD_HASH,  /* signed with no key we have, or altered */
    SRS_EXPIRED,   /* the timestamp is older than the limit, or in the future */
    SRS_TOO_LONG,  /* the result would not fit in SRS_ADDRESS_MAX octets */
};

/* The keys that sign and verify: keys[0] signs, every one verifies (key
 * rotation). Each key is used as its bytes. */
struct srs_keys {
    const char *const *keys;
    size_t nkeys;
};

/* The SRS form of sender ("local@domain", not empty) at srs_domain, into
 * out (at least SRS_ADDRESS_MAX + 1 bytes): SRS0 for a plain address,
 * SRS1 for an SRS0 or SRS1 one. now: the time of signing. */
enum srs_result srs_forward(const struct srs_keys *k, const char *sender, const char *srs_domain,
                            time_t now, char *out, size_t size);

/* The address an SRS address of srs_domain stands for, into out: the
 * original sender for SRS0, the previous forwarder's SRS0 address for
 * SRS1. The hash is checked case-insensitively (some hops fold case);
 * an SRS0 timestamp must be at most max_days old. SRS_NOT_SRS for an
 * address of another domain or whose local part is not SRS0/SRS1. */
enum srs_result srs_reverse(const struct srs_keys *k, const char *address, const char *srs_domain,
                            unsigned max_days, time_t now, char *out, size_t size);

/* Whether the local part of address starts as an SRS address does. */
bool srs_is_srs(const char *address);

/* A few words for logs: "bad hash", "expired or future timestamp". */
const char *srs_result_text(enum srs_result r);

#endif
