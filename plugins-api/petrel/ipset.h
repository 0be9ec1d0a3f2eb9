/* Address sets: what a PETREL_SETTING_IPSET setting holds (petrel/setting.h).
 * The list an administrator writes ("192.0.2.0/24", "2001:db8::/32",
 * "192.0.2.10-192.0.2.20", "any") is parsed once per configuration
 * generation by the core's own parser, the one its rules and
 * exempt_networks use, so a module matches a client without parsing
 * anything. A set belongs to its generation: immutable, readable from any
 * thread while the generation is held. IPv4 clients, also when they come
 * as IPv4-mapped IPv6, match IPv4 entries only (see docs/modules.md). Since
 * ABI minor 6. */
#ifndef PETREL_IPSET_H
#define PETREL_IPSET_H

#include <stdbool.h>

struct petrel_ipset;

/* Whether address ("192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1", as
 * petrel_conn_peer() gives it) lies in set. False for text that is not an
 * address and for a NULL set. */
bool petrel_ipset_contains_text(const struct petrel_ipset *set, const char *address);

#endif
