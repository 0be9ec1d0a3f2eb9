/* PROXY protocol v1 and v2 (see proxyproto.h and HAProxy's
 * proxy-protocol.txt). The caller hands in every byte received so far; we
 * answer AGAIN while they can still begin a valid header and ERROR as soon
 * as they cannot, so a client that is not a proxy is dropped at once. Bytes
 * past len are never read. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxyproto.h"

/* v1: the spec's longest line, CRLF included. */
#define V1_MAX 107
/* v2: signature, version/command, family/transport, 16-bit length. */
#define V2_SIG_LEN 12
#define V2_HDR_LEN 16

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_TCP4 0x11
#define V2_TCP6 0x21

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                           0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

enum v1_proto {
    V1_TCP4,
    V1_TCP6,
    V1_UNKNOWN,
};

/* What a v1 line said, converted as its fields are checked. */
struct v1_fields {
    enum v1_proto proto;
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
};

static enum petrel_proxy_result fail(const char **error_r, const char *msg)
{
    if (error_r != NULL)
        *error_r = msg;
    return PETREL_PROXY_ERROR;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_xdigit(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Whether s[0..n) can still grow into a dotted quad: four decimal octets up
 * to 255, without the leading zeros the spec forbids. inet_pton has the
 * same rules; this only answers early for a partial line. */
static bool v4_prefix_ok(const char *s, size_t n)
{
    unsigned octets = 1, digits = 0, val = 0;

    for (size_t i = 0; i < n; i++) {
        if (is_digit(s[i])) {
            if (digits == 1 && val == 0)
                return false;
            val = val * 10 + (unsigned)(s[i] - '0');
            digits++;
            if (val > 255)
                return false;
        } else if (s[i] == '.') {
            if (digits == 0 || ++octets > 4)
                return false;
            digits = val = 0;
        } else {
            return false;
        }
    }
    return true;
}

/* Whether s[0..n) can still grow into an IPv6 address inet_pton accepts:
 * groups of one to four hex digits, at most eight, at most one "::" which
 * stands for at least one zero group (so seven groups at most around it),
 * and optionally a dotted quad in place of the last two groups. */
static bool v6_prefix_ok(const char *s, size_t n)
{
    size_t groups = 0, digits = 0, i = 0;
    bool gap = false;

    if (n > 0 && s[0] == ':') {
        /* A leading colon must be the first half of "::". */
        if (n > 1 && s[1] != ':')
            return false;
        gap = true;
        i = 2;
    }
    for (; i < n; i++) {
        if (is_xdigit(s[i])) {
            if (++digits > 4 || groups + 1 > (gap ? 7u : 8u))
                return false;
        } else if (s[i] == '.') {
            /* The quad fills two groups and ends the address. */
            if (gap ? groups > 5 : groups != 6)
                return false;
            return v4_prefix_ok(s + i - digits, n - i + digits);
        } else if (s[i] != ':') {
            return false;
        } else if (digits == 0) {
            /* Second colon of "::". */
            if (gap)
                return false;
            gap = true;
        } else {
            /* Another group must follow a single colon. */
            digits = 0;
            if (++groups > (gap ? 6u : 7u))
                return false;
        }
    }
    return true;
}

/* An address field; when whole, also convert it. The prefix check runs
 * even then because it refuses bytes inet_pton would never see, such as a
 * NUL that would cut the string short. */
static bool v1_addr(enum v1_proto proto, const char *f, size_t n, bool whole, uint8_t *out)
{
    char text[INET6_ADDRSTRLEN];
    bool v4 = proto == V1_TCP4;

    if (!(v4 ? v4_prefix_ok(f, n) : v6_prefix_ok(f, n)))
        return false;
    if (!whole)
        return true;
    if (n == 0 || n >= sizeof(text))
        return false;
    memcpy(text, f, n);
    text[n] = '\0';
    return inet_pton(v4 ? AF_INET : AF_INET6, text, out) == 1;
}

/* Decimal 0-65535 without sign or leading zero. */
static bool v1_port(const char *f, size_t n, bool whole, uint16_t *port_r)
{
    unsigned v = 0;

    if (n == 0)
        return !whole;
    if (f[0] == '0' && n > 1)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(f[i]))
            return false;
        v = v * 10 + (unsigned)(f[i] - '0');
        if (v > 65535)
            return false;
    }
    *port_r = (uint16_t)v;
    return true;
}

/* f is word, or when it is the unfinished last field, the start of it. */
static bool v1_word(const char *word, const char *f, size_t n, bool whole)
{
    size_t wlen = strlen(word);

    if (whole ? n != wlen : n > wlen)
        return false;
    return memcmp(word, f, n) == 0;
}

static bool v1_proto_field(const char *f, size_t n, bool whole, enum v1_proto *proto_r)
{
    static const char *const names[] = {"TCP4", "TCP6", "UNKNOWN"};
    bool ok = false;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (v1_word(names[i], f, n, whole)) {
            *proto_r = (enum v1_proto)i;
            ok = true;
        }
    }
    return ok;
}

static const char *v1_field(struct v1_fields *fl, size_t idx, const char *f, size_t n, bool whole)
{
    switch (idx) {
    case 0:
        return v1_word("PROXY", f, n, whole) ? NULL : "not a PROXY protocol header";
    case 1:
        return v1_proto_field(f, n, whole, &fl->proto) ? NULL : "unknown PROXY v1 protocol";
    case 2:
    case 3:
        return v1_addr(fl->proto, f, n, whole, idx == 2 ? fl->src : fl->dst)
                   ? NULL
                   : "invalid PROXY v1 address";
    case 4:
    case 5:
        return v1_port(f, n, whole, idx == 4 ? &fl->sport : &fl->dport) ? NULL
                                                                        : "invalid PROXY v1 port";
    default:
        return "too many fields in PROXY v1 header";
    }
}

/* After "UNKNOWN " anything up to the CRLF is to be ignored, but a lone CR
 * or LF still means a broken line. */
static const char *v1_unknown_rest(const char *s, size_t n)
{
    if (memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL)
        return "PROXY v1 line not ended by CRLF";
    return NULL;
}

/* Check s[0..n), a v1 line without its CRLF, field by field; fields are
 * separated by exactly one space. Until the CRLF has arrived (!complete)
 * the last field need only be the start of a valid one. */
static const char *v1_check(const char *s, size_t n, bool complete, struct v1_fields *fl)
{
    size_t idx = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != ' ')
            continue;
        bool whole = i < n || complete;
        const char *err = v1_field(fl, idx, s + start, i - start, whole);
        if (err != NULL)
            return err;
        if (idx == 1 && whole && fl->proto == V1_UNKNOWN)
            return v1_unknown_rest(s + i, n - i);
        idx++;
        start = i + 1;
    }
    if (complete && idx < 6)
        return "missing fields in PROXY v1 header";
    return NULL;
}

static void v1_fill(const struct v1_fields *fl, struct petrel_proxy_info *info)
{
    memset(info, 0, sizeof(*info));
    if (fl->proto == V1_UNKNOWN)
        return;
    info->has_addr = true;
    if (fl->proto == V1_TCP4) {
        struct sockaddr_in *src = (struct sockaddr_in *)&info->src;
        struct sockaddr_in *dst = (struct sockaddr_in *)&info->dst;
        src->sin_family = dst->sin_family = AF_INET;
        memcpy(&src->sin_addr, fl->src, 4);
        memcpy(&dst->sin_addr, fl->dst, 4);
        src->sin_port = htons(fl->sport);
        dst->sin_port = htons(fl->dport);
    } else {
        struct sockaddr_in6 *src = (struct sockaddr_in6 *)&info->src;
        struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&info->dst;
        src->sin6_family = dst->sin6_family = AF_INET6;
        memcpy(&src->sin6_addr, fl->src, 16);
        memcpy(&dst->sin6_addr, fl->dst, 16);
        src->sin6_port = htons(fl->sport);
        dst->sin6_port = htons(fl->dport);
    }
}

static enum petrel_proxy_result v1_parse(const uint8_t *data, size_t len,
                                         struct petrel_proxy_info *info, size_t *consumed_r,
                                         const char **error_r)
{
    const char *s = (const char *)data;
    size_t n = len < V1_MAX ? len : V1_MAX;
    const char *lf = memchr(s, '\n', n);
    struct v1_fields fl;
    const char *err;

    if (lf != NULL) {
        size_t end = (size_t)(lf - s);
        if (end == 0 || s[end - 1] != '\r')
            return fail(error_r, "PROXY v1 line not ended by CRLF");
        if ((err = v1_check(s, end - 1, true, &fl)) != NULL)
            return fail(error_r, err);
        v1_fill(&fl, info);
        *consumed_r = end + 1;
        return PETREL_PROXY_DONE;
    }
    if (n == V1_MAX)
        return fail(error_r, "PROXY v1 line too long");
    /* A CR can only be followed by the LF, so what precedes it must already
     * be a whole line. */
    if (n > 0 && s[n - 1] == '\r')
        err = v1_check(s, n - 1, true, &fl);
    else
        err = v1_check(s, n, false, &fl);
    return err != NULL ? fail(error_r, err) : PETREL_PROXY_AGAIN;
}

/* Families we take addresses from need this much address block; anything
 * else that the spec defines (UNSPEC, UNIX, DGRAM) keeps the socket's own
 * addresses, as HAProxy does. */
static size_t v2_addr_len(uint8_t fam)
{
    if (fam == V2_TCP4)
        return 12;
    if (fam == V2_TCP6)
        return 36;
    return 0;
}

static void v2_fill(uint8_t cmd, uint8_t fam, const uint8_t *p, struct petrel_proxy_info *info)
{
    memset(info, 0, sizeof(*info));
    if (cmd != V2_CMD_PROXY || v2_addr_len(fam) == 0)
        return;
    info->has_addr = true;
    if (fam == V2_TCP4) {
        struct sockaddr_in *src = (struct sockaddr_in *)&info->src;
        struct sockaddr_in *dst = (struct sockaddr_in *)&info->dst;
        src->sin_family = dst->sin_family = AF_INET;
        memcpy(&src->sin_addr, p, 4);
        memcpy(&dst->sin_addr, p + 4, 4);
        /* Ports are already in network order, as sin_port wants them. */
        memcpy(&src->sin_port, p + 8, 2);
        memcpy(&dst->sin_port, p + 10, 2);
    } else {
        struct sockaddr_in6 *src = (struct sockaddr_in6 *)&info->src;
        struct sockaddr_in6 *dst = (struct sockaddr_in6 *)&info->dst;
        src->sin6_family = dst->sin6_family = AF_INET6;
        memcpy(&src->sin6_addr, p, 16);
        memcpy(&dst->sin6_addr, p + 16, 16);
        memcpy(&src->sin6_port, p + 32, 2);
        memcpy(&dst->sin6_port, p + 34, 2);
    }
}

/* Checks of the fixed 16-byte part that the bytes so far allow. */
static const char *v2_check_fixed(const uint8_t *data, size_t len)
{
    size_t n = len < V2_SIG_LEN ? len : V2_SIG_LEN;

    if (memcmp(data, v2_sig, n) != 0)
        return "not a PROXY protocol header";
    if (len <= 12)
        return NULL;
    if (data[12] >> 4 != 2)
        return "unsupported PROXY protocol version";
    uint8_t cmd = data[12] & 0x0f;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return "unknown PROXY v2 command";
    /* LOCAL ignores the family byte; for PROXY the spec says to refuse
     * values it does not define. */
    if (len <= 13 || cmd == V2_CMD_LOCAL)
        return NULL;
    if (data[13] >> 4 > 3 || (data[13] & 0x0f) > 2)
        return "unknown PROXY v2 address family";
    if (len < V2_HDR_LEN)
        return NULL;
    if (((size_t)data[14] << 8 | data[15]) < v2_addr_len(data[13]))
        return "PROXY v2 address block too short";
    return NULL;
}

static enum petrel_proxy_result v2_parse(const uint8_t *data, size_t len,
                                         struct petrel_proxy_info *info, size_t *consumed_r,
                                         const char **error_r)
{
    const char *err = v2_check_fixed(data, len);

    if (err != NULL)
        return fail(error_r, err);
    if (len < V2_HDR_LEN)
        return PETREL_PROXY_AGAIN;
    size_t total = V2_HDR_LEN + ((size_t)data[14] << 8 | data[15]);
    if (total > PETREL_PROXY_MAX)
        return fail(error_r, "PROXY v2 header too long");
    if (len < total)
        return PETREL_PROXY_AGAIN;
    /* TLVs after the addresses (ALPN, TLS details, CRC) are not used, so
     * they are skipped unchecked. */
    v2_fill(data[12] & 0x0f, data[13], data + V2_HDR_LEN, info);
    *consumed_r = total;
    return PETREL_PROXY_DONE;
}

enum petrel_proxy_result petrel_proxy_parse(const uint8_t *data, size_t len,
                                            struct petrel_proxy_info *info, size_t *consumed_r,
                                            const char **error_r)
{
    if (len == 0)
        return PETREL_PROXY_AGAIN;
    if (data[0] == 'P')
        return v1_parse(data, len, info, consumed_r, error_r);
    if (data[0] == v2_sig[0])
        return v2_parse(data, len, info, consumed_r, error_r);
    return fail(error_r, "not a PROXY protocol header");
}
