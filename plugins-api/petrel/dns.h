/* The resolver (DNR): MX, A, AAAA, TXT, PTR and TLSA lookups through the
 * name servers of dnr.servers (or /etc/resolv.conf), with a cache shared by
 * every thread. Since ABI minor 6.
 *
 * Threads: a lookup never blocks. Started on an I/O thread, it runs on
 * that thread's loop and fn is called there, never before
 * petrel_dns_lookup() returns (a cached answer too). Started anywhere else
 * (a worker, a module's init), it is posted to one of the loops and fn runs
 * on that loop's thread: a worker that needs the answer waits for it there,
 * bounded (see docs/modules.md). fn must not block either. Without a
 * running server (petrelctl, a unit test with no loops) fn is called at
 * once with status ERROR.
 *
 * Ownership: the result and everything it points to is valid until fn
 * returns; petrel_dns_result_dup() keeps a copy (cheap: the records are
 * shared and reference-counted) that any thread frees with
 * petrel_dns_result_free().
 *
 * Answers: the status tells permanent from temporary failures the way mail
 * needs it (NXDOMAIN and NODATA are answers, SERVFAIL, TIMEOUT and ERROR
 * are "try later"). CNAME chains are followed within the answer. ad is the
 * AD bit of the answer: set only when the name server validated it with
 * DNSSEC, and meaningful only when that server is trusted and reached over
 * a trusted path (a validating resolver on localhost), as for Postfix's
 * DANE support. */
#ifndef PETREL_DNS_H
#define PETREL_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The record types, by their DNS type numbers. */
enum petrel_dns_type {
    PETREL_DNS_A = 1,
    PETREL_DNS_PTR = 12,
    PETREL_DNS_MX = 15,
    PETREL_DNS_TXT = 16,
    PETREL_DNS_AAAA = 28,
    PETREL_DNS_TLSA = 52,
};

enum petrel_dns_status {
    PETREL_DNS_OK = 0,   /* records of the type asked for (count > 0) */
    PETREL_DNS_NODATA,   /* the name exists, without records of that type */
    PETREL_DNS_NXDOMAIN, /* the name does not exist */
    PETREL_DNS_SERVFAIL, /* the server failed or refused (rcode says which) */
    PETREL_DNS_TIMEOUT,  /* no answer within dnr.timeout x dnr.attempts */
    PETREL_DNS_ERROR,    /* bad name, malformed answer, network error */
};

/* DNS response codes (RFC 1035, 6895) as result.rcode may hold them. */
#define PETREL_DNS_RCODE_NOERROR 0
#define PETREL_DNS_RCODE_FORMERR 1
#define PETREL_DNS_RCODE_SERVFAIL 2
#define PETREL_DNS_RCODE_NXDOMAIN 3
#define PETREL_DNS_RCODE_NOTIMP 4
#define PETREL_DNS_RCODE_REFUSED 5
#define PETREL_DNS_RCODE_NONE (-1) /* no answer came (timeout, network error) */

/* Longest name in presentation form (253 octets, each escaped as \DDD at
 * worst), plus its NUL. */
#define PETREL_DNS_NAME_MAX 1017

struct petrel_dns_addr {
    int family; /* AF_INET or AF_INET6 */
    union {
        struct in_addr v4;
        struct in6_addr v6;
    } u;
};

struct petrel_dns_mx {
    uint16_t preference;
    const char *exchange; /* "" for the root: a null MX (RFC 7505) */
};

struct petrel_dns_txt {
    const unsigned char *data; /* the character-strings joined, as SPF, DKIM
                                * and MTA-STS read them; NUL-terminated too */
    size_t len;
};

struct petrel_dns_tlsa {
    uint8_t usage, selector, matching;
    const unsigned char *data; /* certificate association data */
    size_t len;
};

/* One record; the member named like the result's type is set (a for A and
 * AAAA). Names are in presentation form without the final dot, with any
 * byte other than a letter, digit, '-' or '_' escaped as \. or \DDD. */
struct petrel_dns_record {
    union {
        struct petrel_dns_addr a;
        struct petrel_dns_mx mx;
        struct petrel_dns_txt txt;
        const char *ptr;
        struct petrel_dns_tlsa tlsa;
    };
};

struct petrel_dns_result {
    enum petrel_dns_type type;
    const char *name; /* as asked (PTR: the in-addr.arpa / ip6.arpa name) */
    enum petrel_dns_status status;
    const char *error; /* why, for any status but OK (a short text) */
    int rcode;         /* the answer's RCODE, or PETREL_DNS_RCODE_NONE */
    /* Seconds the answer stays good: the smallest TTL of the records and
     * CNAMEs used; for NXDOMAIN and NODATA the negative TTL of RFC 2308
     * (0 without an SOA); counted down when it comes from the cache. */
    uint32_t ttl;
    bool ad;         /* DNSSEC-validated by the (trusted) resolver */
    bool from_cache; /* served from the cache, no query sent */
    bool null_mx;    /* MX: a single record with the root as exchange */
    /* The owner of the records once CNAMEs are followed (name otherwise). */
    const char *canonical;
    size_t count;
    /* MX sorted by preference (answer order among equals: the caller
     * shuffles them), everything else in answer order. */
    const struct petrel_dns_record *records;
    void *internal; /* the core's: the shared records */
};

typedef void petrel_dns_fn(const struct petrel_dns_result *result, void *ctx);
struct petrel_dns_lookup;

/* Look up name's records of type. Returns a handle for
 * petrel_dns_cancel() when called on an I/O thread; NULL elsewhere (such a
 * lookup cannot be cancelled: its fn always runs). A bad name or type is
 * reported through fn like any failure (status ERROR). Names are LDH
 * labels plus '_' (for _25._tcp. and _dmarc.), at most 253 octets, with or
 * without the final dot. */
struct petrel_dns_lookup *petrel_dns_lookup(enum petrel_dns_type type, const char *name,
                                            petrel_dns_fn *fn, void *ctx);
/* PTR lookup of an IPv4 or IPv6 address in text form ("192.0.2.1",
 * "2001:db8::1"; an IPv4-mapped IPv6 address is looked up as IPv4). */
struct petrel_dns_lookup *petrel_dns_lookup_ptr(const char *address, petrel_dns_fn *fn, void *ctx);
/* Drop a lookup whose fn has not run yet: fn will not be called. On the
 * I/O thread that started it (e.g. from a connection's close callback). */
void petrel_dns_cancel(struct petrel_dns_lookup *lookup);

/* Keep a result past its callback; free it on any thread. */
struct petrel_dns_result *petrel_dns_result_dup(const struct petrel_dns_result *result);
void petrel_dns_result_free(struct petrel_dns_result *result);

/* "MX", "NXDOMAIN"...: for logs. */
const char *petrel_dns_type_name(enum petrel_dns_type type);
const char *petrel_dns_status_name(enum petrel_dns_status status);
/* Parse "MX", "a", "tlsa"...; false if unknown. */
bool petrel_dns_type_parse(const char *text, enum petrel_dns_type *type_r);

/* Empty the cache (after a zone change; the admin's "dns flush"). Any
 * thread. */
void petrel_dns_cache_flush(void);

#endif
