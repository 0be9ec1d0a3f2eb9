/* Client address sets (see ipset.h). Pure parsing and matching, no I/O.
 *
 * Every address is 16 bytes; IPv4 lives in the v4-mapped block
 * ::ffff:0:0/96 so one memcmp orders and compares both families. That block
 * is treated as IPv4 throughout: an entry written in IPv6 notation ("::/0",
 * "::/64", "::1-::2:0:0:0") never matches an IPv4 client, because
 * petrel_ipset_add() cuts the mapped block out of it. Only "any"/"*", or an
 * IPv6 entry lying wholly inside the mapped block ("::ffff:0:0/96"), matches
 * IPv4 clients written that way. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <petrel/mem.h>

#include "ipset.h"

/* Longest entry accepted, blanks included; the longest meaningful one, a
 * range of two 45-character IPv6 addresses, is 91. */
#define IPRANGE_TEXT_MAX 128

enum range_kind {
    RANGE_ANY,
    RANGE_V4,
    RANGE_V6,
};

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The v4-mapped block and its neighbours, for cutting it out of IPv6
 * entries: ::fffe:ffff:ffff just below, ::1:0:0:0 just above. */
static const struct petrel_ipaddr mapped_lo = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0}};
static const struct petrel_ipaddr mapped_hi = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
static const struct petrel_ipaddr below_mapped = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff}};
static const struct petrel_ipaddr above_mapped = {{0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}};

static bool fail(const char **error_r, const char *msg)
{
    if (error_r != NULL)
        *error_r = msg;
    return false;
}

static void set_v4(struct petrel_ipaddr *r, const void *in4)
{
    memcpy(r->b, v4_mapped_prefix, sizeof(v4_mapped_prefix));
    memcpy(r->b + 12, in4, 4);
}

bool petrel_ipaddr_is_v4(const struct petrel_ipaddr *a)
{
    return memcmp(a->b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0;
}

int petrel_ipaddr_cmp(const struct petrel_ipaddr *a, const struct petrel_ipaddr *b)
{
    return memcmp(a->b, b->b, sizeof(a->b));
}

bool petrel_ipaddr_parse(const char *text, struct petrel_ipaddr *r)
{
    uint8_t bin[16];

    /* A colon means IPv6. inet_pton takes only strict dotted quads: no
     * leading zeros, so "010.0.0.1" is never read as octal, and no scope. */
    if (strchr(text, ':') != NULL) {
        if (inet_pton(AF_INET6, text, bin) != 1)
            return false;
        memcpy(r->b, bin, sizeof(r->b));
        return true;
    }
    if (inet_pton(AF_INET, text, bin) != 1)
        return false;
    set_v4(r, bin);
    return true;
}

bool petrel_ipaddr_from_sockaddr(const struct sockaddr *sa, struct petrel_ipaddr *r)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
        set_v4(r, &sin->sin_addr);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        /* A v4-mapped peer on a dual-stack socket is already in the form
         * petrel_ipaddr_is_v4() recognises. */
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
        memcpy(r->b, &sin6->sin6_addr, sizeof(r->b));
        return true;
    }
    return false;
}

static size_t put_hex(char *p, unsigned word)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = 0;

    for (int shift = 12; shift >= 0; shift -= 4) {
        if ((word >> shift) != 0 || shift == 0)
            p[n++] = digits[(word >> shift) & 0xf];
    }
    return n;
}

/* RFC 5952 by hand rather than inet_ntop: glibc prints "::1:2" as
 * "::0.1.0.2" (the deprecated IPv4-compatible form), and libcs differ. Lower
 * case, no leading zeros, "::" for the longest run of two or more zero
 * groups, the first such run on a tie. out has PETREL_IPADDR_STRLEN bytes. */
static void format_v6(const struct petrel_ipaddr *a, char *out)
{
    unsigned words[8];
    size_t best = 8, best_len = 0, run = 0, pos = 0;

    for (size_t i = 0; i < 8; i++) {
        words[i] = (unsigned)a->b[2 * i] << 8 | a->b[2 * i + 1];
        run = words[i] == 0 ? run + 1 : 0;
        if (run > best_len) {
            best_len = run;
            best = i + 1 - run;
        }
    }
    if (best_len < 2)
        best = 8;
    for (size_t i = 0; i < 8; i++) {
        if (i == best) {
            out[pos++] = ':';
            out[pos++] = ':';
            i += best_len - 1;
            continue;
        }
        if (i > 0 && i != best + best_len)
            out[pos++] = ':';
        pos += put_hex(out + pos, words[i]);
    }
    out[pos] = '\0';
}

void petrel_ipaddr_format(const struct petrel_ipaddr *a, char *buf, size_t size)
{
    char text[PETREL_IPADDR_STRLEN];

    if (size == 0)
        return;
    if (petrel_ipaddr_is_v4(a))
        inet_ntop(AF_INET, a->b + 12, text, sizeof(text));
    else
        format_v6(a, text);
    petrel_strlcpy(buf, text, size);
}

/* Keep the first bits bits of a: in lo the rest is cleared, in hi set. */
static void apply_prefix(const struct petrel_ipaddr *a, unsigned bits, struct petrel_iprange *r)
{
    for (size_t i = 0; i < sizeof(a->b); i++) {
        unsigned keep = bits >= 8 ? 8 : bits;
        uint8_t mask = (uint8_t)(0xff00u >> keep);
        r->lo.b[i] = a->b[i] & mask;
        r->hi.b[i] = a->b[i] | (uint8_t)~mask;
        bits -= keep;
    }
}

/* Plain decimal, no sign and no leading zero, at most max. */
static bool parse_prefix_len(const char *text, unsigned max, unsigned *r)
{
    unsigned v = 0;

    if (text[0] == '\0' || (text[0] == '0' && text[1] != '\0'))
        return false;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (unsigned)(*p - '0');
        if (v > max)
            return false;
    }
    *r = v;
    return true;
}

static bool parse_cidr(char *addr, const char *len, struct petrel_iprange *r, const char **error_r)
{
    struct petrel_ipaddr a;
    unsigned bits;
    /* The notation, not the bytes, sets the prefix scale: "::ffff:0:0/96" is
     * an IPv6 prefix even though it names IPv4 addresses. */
    bool v6 = strchr(addr, ':') != NULL;

    if (!petrel_ipaddr_parse(addr, &a))
        return fail(error_r, "invalid IP address");
    if (!parse_prefix_len(len, v6 ? 128 : 32, &bits))
        return fail(error_r, "invalid prefix length");
    /* Host bits set ("192.0.2.5/24") are dropped, as routers do. */
    apply_prefix(&a, v6 ? bits : 96 + bits, r);
    return true;
}

static bool parse_span(const char *lo, const char *hi, struct petrel_iprange *r,
                       const char **error_r)
{
    if (!petrel_ipaddr_parse(lo, &r->lo) || !petrel_ipaddr_parse(hi, &r->hi))
        return fail(error_r, "invalid IP address");
    if (petrel_ipaddr_is_v4(&r->lo) != petrel_ipaddr_is_v4(&r->hi))
        return fail(error_r, "range mixes IPv4 and IPv6");
    if (petrel_ipaddr_cmp(&r->lo, &r->hi) > 0)
        return fail(error_r, "range start is above its end");
    return true;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Copy text without surrounding blanks into buf (IPRANGE_TEXT_MAX + 1). */
static bool trim_copy(const char *text, char *buf, const char **error_r)
{
    size_t len = strnlen(text, IPRANGE_TEXT_MAX + 1);

    if (len > IPRANGE_TEXT_MAX)
        return fail(error_r, "address too long");
    while (len > 0 && is_blank(*text)) {
        text++;
        len--;
    }
    while (len > 0 && is_blank(text[len - 1]))
        len--;
    if (len == 0)
        return fail(error_r, "empty address");
    memcpy(buf, text, len);
    buf[len] = '\0';
    return true;
}

static bool parse_range(const char *text, struct petrel_iprange *r, enum range_kind *kind_r,
                        const char **error_r)
{
    char buf[IPRANGE_TEXT_MAX + 1];

    if (!trim_copy(text, buf, error_r))
        return false;
    if (strcmp(buf, "any") == 0 || strcmp(buf, "*") == 0) {
        memset(r->lo.b, 0, sizeof(r->lo.b));
        memset(r->hi.b, 0xff, sizeof(r->hi.b));
        *kind_r = RANGE_ANY;
        return true;
    }
    char *dash = strchr(buf, '-');
    char *slash = strchr(buf, '/');
    if (dash != NULL && slash != NULL)
        return fail(error_r, "a range cannot have a prefix length");
    if (dash != NULL) {
        *dash = '\0';
        if (!parse_span(buf, dash + 1, r, error_r))
            return false;
    } else if (slash != NULL) {
        *slash = '\0';
        if (!parse_cidr(buf, slash + 1, r, error_r))
            return false;
    } else {
        if (!petrel_ipaddr_parse(buf, &r->lo))
            return fail(error_r, "invalid IP address");
        r->hi = r->lo;
    }
    *kind_r = petrel_ipaddr_is_v4(&r->lo) && petrel_ipaddr_is_v4(&r->hi) ? RANGE_V4 : RANGE_V6;
    return true;
}

/* One interval, so "::/0" here spans the v4-mapped block too, exactly like
 * "any"; petrel_ipset_add() is where IPv6 entries lose that block. */
bool petrel_iprange_parse(const char *text, struct petrel_iprange *r, const char **error_r)
{
    enum range_kind kind;
    return parse_range(text, r, &kind, error_r);
}

static void push_range(struct petrel_ipset *set, const struct petrel_ipaddr *lo,
                       const struct petrel_ipaddr *hi)
{
    /* Sets are a handful of rule entries: growing by one is cheap enough. */
    set->ranges = petrel_reallocarray(set->ranges, set->count + 1, sizeof(*set->ranges));
    set->ranges[set->count].lo = *lo;
    set->ranges[set->count].hi = *hi;
    set->count++;
}

bool petrel_ipset_add(struct petrel_ipset *set, const char *text, const char **error_r)
{
    struct petrel_iprange r;
    enum range_kind kind;

    if (!parse_range(text, &r, &kind, error_r))
        return false;
    bool overlaps =
        petrel_ipaddr_cmp(&r.lo, &mapped_hi) <= 0 && petrel_ipaddr_cmp(&r.hi, &mapped_lo) >= 0;
    if (kind != RANGE_V6 || !overlaps) {
        push_range(set, &r.lo, &r.hi);
        return true;
    }
    /* An IPv6 entry never matches IPv4 clients (see the top of the file).
     * Prefixes nest and mixed ranges are refused, so an IPv6 entry that
     * touches the mapped block contains it: keep what lies either side. */
    if (petrel_ipaddr_cmp(&r.lo, &mapped_lo) < 0)
        push_range(set, &r.lo, &below_mapped);
    if (petrel_ipaddr_cmp(&r.hi, &mapped_hi) > 0)
        push_range(set, &above_mapped, &r.hi);
    return true;
}

bool petrel_ipset_contains(const struct petrel_ipset *set, const struct petrel_ipaddr *a)
{
    for (size_t i = 0; i < set->count; i++) {
        if (petrel_ipaddr_cmp(&set->ranges[i].lo, a) <= 0 &&
            petrel_ipaddr_cmp(a, &set->ranges[i].hi) <= 0)
            return true;
    }
    return false;
}

void petrel_ipset_free(struct petrel_ipset *set)
{
    free(set->ranges);
    set->ranges = NULL;
    set->count = 0;
}

bool petrel_ipset_contains_text(const struct petrel_ipset *set, const char *address)
{
    struct petrel_ipaddr a;
    /* A mapped peer is an IPv4 client: matched as one (see the top). */
    return set != NULL && address != NULL && petrel_ipaddr_parse(address, &a) &&
           petrel_ipset_contains(set, &a);
}
