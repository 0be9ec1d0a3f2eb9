/* Client address sets for rules and PROXY-protocol sources: single
 * addresses, CIDR blocks and "a-b" ranges, IPv4 and IPv6. Addresses are kept
 * as 16 bytes, IPv4 as IPv4-mapped IPv6, so one comparison serves both. */
#ifndef PETREL_CORE_IPSET_H
#define PETREL_CORE_IPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <petrel/ipset.h>

struct petrel_ipaddr {
    uint8_t b[16];
};

/* Longest text petrel_ipaddr_format() writes, NUL included. */
#define PETREL_IPADDR_STRLEN 46

bool petrel_ipaddr_parse(const char *text, struct petrel_ipaddr *r);
/* AF_INET and AF_INET6 (an IPv4-mapped IPv6 peer becomes IPv4). */
bool petrel_ipaddr_from_sockaddr(const struct sockaddr *sa, struct petrel_ipaddr *r);
bool petrel_ipaddr_is_v4(const struct petrel_ipaddr *a);
/* Dotted quad for IPv4, RFC 5952 text for IPv6. */
void petrel_ipaddr_format(const struct petrel_ipaddr *a, char *buf, size_t size);
int petrel_ipaddr_cmp(const struct petrel_ipaddr *a, const struct petrel_ipaddr *b);

struct petrel_iprange {
    struct petrel_ipaddr lo, hi; /* inclusive */
};

/* "any" or "*" (every address), "192.0.2.1", "192.0.2.0/24",
 * "192.0.2.10-192.0.2.20", "2001:db8::/32", "2001:db8::1-2001:db8::ff".
 * Surrounding blanks are ignored. error_r gets a static message. */
bool petrel_iprange_parse(const char *text, struct petrel_iprange *r, const char **error_r);

struct petrel_ipset {
    struct petrel_iprange *ranges;
    size_t count;
};

bool petrel_ipset_add(struct petrel_ipset *set, const char *text, const char **error_r);
bool petrel_ipset_contains(const struct petrel_ipset *set, const struct petrel_ipaddr *a);
void petrel_ipset_free(struct petrel_ipset *set);

#endif
