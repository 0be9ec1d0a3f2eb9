/* MTA-STS texts (RFC 8461): the TXT record of _mta-sts.<domain> and the
 * policy file of https://mta-sts.<domain>/.well-known/mta-sts.txt. Both
 * come from the network: no allocation, every copy bounded, fuzzed by
 * fuzz_mta_sts.c. */
#include <string.h>

#include "tlspolicy.h"

static bool is_wsp(char c) { return c == ' ' || c == '\t'; }
static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* A domain as an mx value may spell it: LDH labels of at most 63 octets,
 * with a leading "*." allowed (RFC 8461 3.2, sts-policy-mx-value). */
static bool valid_pattern(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '*' && s[1] == '.')
        s += 2, n -= 2;
    if (n == 0 || n >= SMTP_STS_NAME_MAX - 2 || s[0] == '.' || s[n - 1] == '.')
        return false;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((!is_alnum(s[i]) && s[i] != '-') || ++label > 63) {
            return false;
        }
    }
    return true;
}

/* Set one field; duplicates of single-valued fields keep the first (RFC
 * 8461 3.2). Unknown fields are extensions and are ignored. */
static int field(struct smtp_sts_policy *p, unsigned *seen, const char *key, size_t klen,
                 const char *val, size_t vlen, const char **error_r)
{
#define KEY(k) (klen == sizeof(k) - 1 && memcmp(key, k, klen) == 0)
#define VAL(v) (vlen == sizeof(v) - 1 && memcmp(val, v, vlen) == 0)
    if (KEY("version")) {
        if (!(*seen & 1) && !VAL("STSv1")) {
            *error_r = "version is not STSv1";
            return -1;
        }
        *seen |= 1;
    } else if (KEY("mode") && !(*seen & 2)) {
        *seen |= 2;
        if (VAL("enforce"))
            p->mode = SMTP_STS_ENFORCE;
        else if (VAL("testing"))
            p->mode = SMTP_STS_TESTING;
        else if (VAL("none"))
            p->mode = SMTP_STS_NONE;
        else {
            *error_r = "unknown mode";
            return -1;
        }
    } else if (KEY("max_age") && !(*seen & 4)) {
        *seen |= 4;
        long long age = 0;
        if (vlen == 0 || vlen > 10) {
            *error_r = "bad max_age";
            return -1;
        }
        for (size_t i = 0; i < vlen; i++) {
            if (val[i] < '0' || val[i] > '9') {
                *error_r = "bad max_age";
                return -1;
            }
            age = age * 10 + (val[i] - '0');
        }
        p->max_age = age > SMTP_STS_MAX_AGE ? SMTP_STS_MAX_AGE : age;
    } else if (KEY("mx")) {
        if (!valid_pattern(val, vlen)) {
            *error_r = "bad mx pattern";
            return -1;
        }
        /* Past the bound the extra patterns are dropped: with enforce,
         * hosts they name are refused (a deferral), never accepted
         * unchecked. */
        if (p->nmx < SMTP_STS_MX_MAX) {
            for (size_t i = 0; i < vlen; i++)
                p->mx[p->nmx][i] = lower(val[i]);
            p->mx[p->nmx++][vlen] = '\0';
        }
        *seen |= 8;
    }
    return 0;
#undef KEY
#undef VAL
}

int smtp_sts_parse_policy(const char *text, size_t len, struct smtp_sts_policy *p,
                          const char **error_r)
{
    memset(p, 0, sizeof(*p));
    unsigned seen = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        size_t next = end < len ? end + 1 : end;
        if (end > pos && text[end - 1] == '\r')
            end--;
        size_t colon = pos;
        while (colon < end && text[colon] != ':')
            colon++;
        if (end == pos) { /* a blank line (a final CRLF) */
            pos = next;
            continue;
        }
        if (colon == end || colon == pos) {
            *error_r = "a line without a field name";
            return -1;
        }
        size_t v = colon + 1, ve = end;
        while (v < ve && is_wsp(text[v]))
            v++;
        while (ve > v && is_wsp(text[ve - 1]))
            ve--;
        if (field(p, &seen, text + pos, colon - pos, text + v, ve - v, error_r) < 0)
            return -1;
        pos = next;
    }
    if (!(seen & 1) || !(seen & 2) || !(seen & 4)) {
        *error_r = !(seen & 1) ? "no version" : !(seen & 2) ? "no mode" : "no max_age";
        return -1;
    }
    if (p->mode != SMTP_STS_NONE && p->nmx == 0) {
        *error_r = "no mx";
        return -1;
    }
    return 0;
}

int smtp_sts_parse_txt(const char *txt, size_t len, char id[SMTP_STS_ID_MAX])
{
    static const char prefix[] = "v=STSv1";
    size_t n = sizeof(prefix) - 1;
    if (len < n || memcmp(txt, prefix, n) != 0 || (len > n && txt[n] != ';' && !is_wsp(txt[n])))
        return 0;
    id[0] = '\0';
    size_t pos = n;
    while (pos < len) { /* sts-ext and id fields, separated by ';' */
        while (pos < len && (is_wsp(txt[pos]) || txt[pos] == ';'))
            pos++;
        size_t end = pos;
        while (end < len && txt[end] != ';')
            end++;
        size_t fe = end;
        while (fe > pos && is_wsp(txt[fe - 1]))
            fe--;
        if (fe - pos > 3 && memcmp(txt + pos, "id=", 3) == 0 && id[0] == '\0') {
            size_t il = fe - pos - 3;
            if (il == 0 || il >= SMTP_STS_ID_MAX)
                return -1;
            for (size_t i = 0; i < il; i++) {
                if (!is_alnum(txt[pos + 3 + i]))
                    return -1;
                id[i] = txt[pos + 3 + i];
            }
            id[il] = '\0';
        }
        pos = end;
    }
    return id[0] != '\0' ? 1 : -1;
}

/* Case-insensitive equality of a host name (trailing dot ignored) with a
 * pattern of lower-case letters. */
static bool name_eq(const char *host, size_t hn, const char *pat, size_t pn)
{
    if (hn != pn)
        return false;
    for (size_t i = 0; i < hn; i++) {
        if (lower(host[i]) != pat[i])
            return false;
    }
    return true;
}

bool smtp_sts_mx_match(const struct smtp_sts_policy *p, const char *host)
{
    size_t hn = strnlen(host, SMTP_STS_NAME_MAX);
    if (hn > 0 && host[hn - 1] == '.')
        hn--;
    for (size_t i = 0; i < p->nmx && i < SMTP_STS_MX_MAX; i++) {
        const char *pat = p->mx[i];
        size_t pn = strnlen(pat, SMTP_STS_NAME_MAX);
        if (pn > 2 && pat[0] == '*' && pat[1] == '.') {
            const char *dot = memchr(host, '.', hn); /* one label, not empty */
            if (dot != NULL && dot > host &&
                name_eq(dot + 1, hn - (size_t)(dot + 1 - host), pat + 2, pn - 2))
                return true;
        } else if (name_eq(host, hn, pat, pn)) {
            return true;
        }
    }
    return false;
}

const char *smtp_sts_mode_name(enum smtp_sts_mode mode)
{
    return mode == SMTP_STS_ENFORCE ? "enforce" : mode == SMTP_STS_TESTING ? "testing" : "none";
}
