/* relay_networks: a few CIDR blocks, parsed where they are used (once per
 * connection), so each configuration generation needs no derived state. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "smtp_in.h"

struct net {
    int family;
    unsigned char addr[16];
    unsigned prefix;
};

static bool parse(const char *text, struct net *n)
{
    char buf[64];
    if (!petrel_strlcpy(buf, text, sizeof(buf)))
        return false;
    char *slash = strchr(buf, '/');
    if (slash != NULL)
        *slash++ = '\0';
    n->family = strchr(buf, ':') != NULL ? AF_INET6 : AF_INET;
    unsigned max = n->family == AF_INET6 ? 128 : 32;
    if (inet_pton(n->family, buf, n->addr) != 1)
        return false;
    n->prefix = max;
    if (slash != NULL) {
        char *end;
        unsigned long p = strtoul(slash, &end, 10);
        if (*slash == '\0' || *end != '\0' || p > max)
            return false;
        n->prefix = (unsigned)p;
    }
    return true;
}

static bool in_net(const struct net *n, const unsigned char *addr)
{
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, full) != 0)
        return false;
    unsigned char mask = (unsigned char)(0xff00u >> rest);
    return rest == 0 || (n->addr[full] & mask) == (addr[full] & mask);
}

bool smtp_net_check(char *const *list, const char **bad_r)
{
    struct net n;
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (!parse(list[i], &n)) {
            *bad_r = list[i];
            return false;
        }
    return true;
}

bool smtp_net_match(char *const *list, const char *ip)
{
    unsigned char addr[16];
    int family = strchr(ip, ':') != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(family, ip, addr) != 1)
        return false;
    struct net n;
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (parse(list[i], &n) && n.family == family && in_net(&n, addr))
            return true;
    return false;
}
