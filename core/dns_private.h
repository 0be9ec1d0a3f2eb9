/* The resolver's pieces, each in its own file with no I/O except dns.c:
 * the answer parser (dns_parse.c), the shared cache (dns_cache.c), names
 * and the server list (dns_name.c). Exported from libpetrel for the unit
 * tests and the fuzzer only. */
#ifndef PETREL_CORE_DNS_PRIVATE_H
#define PETREL_CORE_DNS_PRIVATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/dns.h>

#define DNS_CLASS_IN 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_SOA 6
#define DNS_TYPE_OPT 41
#define DNS_HEADER_LEN 12
#define DNS_MAX_CNAMES 16 /* longer chains are refused, as by BIND */

/* A parsed answer: immutable once built, shared by the cache and every
 * result handed out, freed with the last reference. One allocation: the
 * records and every string they point to follow the header. */
struct dns_answer {
    atomic_uint refs;
    uint16_t type;
    int rcode;
    bool ad;
    bool has_soa; /* an SOA in the authority section (RFC 2308) */
    uint32_t ttl; /* positive: smallest TTL used; negative: the SOA's */
    const char *canonical;
    size_t count;
    struct petrel_dns_record *records;
};

/* Parse a reply to a question of qtype for qname (presentation form,
 * compared without case; NULL skips the check). NULL with error_r set if
 * it is malformed, truncated, answers another question or was not a reply;
 * the rcode is that of the header (and the OPT record's extension). */
struct dns_answer *petrel_dns_parse_answer(const unsigned char *msg, size_t len, uint16_t qtype,
                                           const char *qname, const char **error_r);
struct dns_answer *petrel_dns_answer_ref(struct dns_answer *a);
void petrel_dns_answer_unref(struct dns_answer *a);
/* What the answer means for the caller (OK, NODATA, NXDOMAIN, SERVFAIL). */
enum petrel_dns_status petrel_dns_answer_status(const struct dns_answer *a);

/* --- the cache (one for the process, a mutex around it) --- */

#define DNS_CACHE_MAX_TTL 86400u    /* seconds a positive answer is kept at most */
#define DNS_CACHE_MAX_NEG_TTL 3600u /* the same for NXDOMAIN / NODATA (RFC 2308 s.5) */

/* Entries at most; 0 turns the cache off. Shrinking drops the oldest. */
void petrel_dns_cache_configure(size_t max_entries);
/* Seconds to keep an answer: the TTL capped, the negative TTL for NXDOMAIN
 * and NODATA (none without an SOA), none for failures. */
uint32_t petrel_dns_cache_ttl(const struct dns_answer *a);
/* A reference to the cached answer for (type, name) if it has not expired
 * at now_ms (monotonic), with the seconds it has left; NULL otherwise.
 * name is a normalised name (petrel_dns_name_normalise). */
struct dns_answer *petrel_dns_cache_get(uint16_t type, const char *name, int64_t now_ms,
                                        uint32_t *ttl_left_r);
/* Keep a reference to a for petrel_dns_cache_ttl(a) seconds from now_ms. */
void petrel_dns_cache_put(uint16_t type, const char *name, struct dns_answer *a, int64_t now_ms);
size_t petrel_dns_cache_count(void);
/* Drop everything and free the table (process end). */
void petrel_dns_cache_free(void);

/* --- names and servers (dns_name.c) --- */

/* Check a name asked for and copy it lowercase, without the final dot, to
 * out (at least 254 bytes). False if it is not LDH labels plus '_'. */
bool petrel_dns_name_normalise(const char *name, char *out, size_t size);
/* The PTR name of an IPv4 or IPv6 address in text form. */
bool petrel_dns_reverse_name(const char *address, char *out, size_t size);
/* dnr.servers ("IP", "IP:port", "[IPv6]:port") as c-ares' CSV form; false
 * with error_r naming the bad entry (a static buffer: main thread). */
bool petrel_dns_servers_csv(char *const *servers, char *out, size_t size, const char **error_r);

/* --- the daemon's side (dns.c), on the main thread --- */

struct petrel_dnr_cfg;
/* After the loops are created, before they run. */
int petrel_dns_start(const struct petrel_dnr_cfg *dnr, const char **error_r);
/* At start and at each reload: servers (re-reading resolv.conf when
 * dnr.servers is empty), timeouts and cache size. Channels pick the new
 * settings up at their next lookup once idle. */
void petrel_dns_configure(const struct petrel_dnr_cfg *dnr);
/* After the loops have stopped, before they are freed. */
void petrel_dns_stop(void);

#endif
