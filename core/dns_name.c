/* Names the resolver is asked for, the PTR name of an address, and the
 * dnr.servers list: text checks with no I/O. */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "dns_private.h"

/* Letters, digits, '-' and '_' (service labels such as _25._tcp): nothing
 * that c-ares would read as an escape. */
bool petrel_dns_name_normalise(const char *name, char *out, size_t size)
{
    size_t n = strlen(name), label = 0;
    if (n > 0 && name[n - 1] == '.')
        n--;
    if (n == 0 || n > 253 || size <= n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
        out[i] = (char)tolower(c);
    }
    out[n] = '\0';
    return true;
}

bool petrel_dns_reverse_name(const char *address, char *out, size_t size)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, address, b) == 1)
        return petrel_snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
    if (inet_pton(AF_INET6, address, b) != 1)
        return false;
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, sizeof(mapped)) == 0)
        return petrel_snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", b[15], b[14], b[13], b[12]);
    static const char hex[] = "0123456789abcdef";
    if (size < 16 * 4 + sizeof("ip6.arpa"))
        return false;
    size_t o = 0;
    for (int i = 15; i >= 0; i--) {
        out[o++] = hex[b[i] & 0xf];
        out[o++] = '.';
        out[o++] = hex[b[i] >> 4];
        out[o++] = '.';
    }
    memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
    return true;
}

/* One entry: "IP", "IP:port", "[IPv6]" or "[IPv6]:port" into c-ares's
 * form ("IP:port", "[IPv6]:port"). */
static bool server_entry(const char *s, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *port = NULL;
    unsigned char bin[16];
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || (size_t)(close - s - 1) >= sizeof(host))
            return false;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return false;
    } else if (inet_pton(AF_INET6, s, bin) == 1) {
        if (!petrel_strlcpy(host, s, sizeof(host)))
            return false;
    } else {
        const char *colon = strchr(s, ':');
        size_t n = colon != NULL ? (size_t)(colon - s) : strlen(s);
        if (n >= sizeof(host))
            return false;
        memcpy(host, s, n);
        host[n] = '\0';
        port = colon != NULL ? colon + 1 : NULL;
    }
    bool v6 = inet_pton(AF_INET6, host, bin) == 1;
    if (!v6 && inet_pton(AF_INET, host, bin) != 1)
        return false;
    long p = 53;
    if (port != NULL) {
        char *end;
        p = strtol(port, &end, 10);
        if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
            return false;
    }
    return petrel_snprintf(out, size, v6 ? "[%s]:%ld" : "%s:%ld", host, p);
}

bool petrel_dns_servers_csv(char *const *servers, char *out, size_t size, const char **error_r)
{
    static char why[300];
    size_t o = 0;
    out[0] = '\0';
    for (; servers != NULL && *servers != NULL; servers++) {
        char one[INET6_ADDRSTRLEN + 16];
        if (!server_entry(*servers, one, sizeof(one))) {
            petrel_snprintf(why, sizeof(why), "'%.200s' is not IP, IP:port or [IPv6]:port",
                            *servers);
            *error_r = why;
            return false;
        }
        if (!petrel_snprintf(out + o, size - o, "%s%s", o > 0 ? "," : "", one)) {
            *error_r = "too many servers";
            return false;
        }
        o += strlen(out + o);
    }
    return true;
}
