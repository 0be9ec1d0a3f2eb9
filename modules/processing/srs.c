/* SRS addresses: signing and checking (srs.h). The layout and the hash
 * are libsrs2's, so an address signed here can be checked by postsrsd
 * with the same secret and the other way round. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "srs.h"

static const char base32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* libsrs2 takes '=', '+' or '-' after SRS0/SRS1 (and writes '='). */
static bool is_sep(char c) { return c == '=' || c == '+' || c == '-'; }

static bool has_prefix(const char *local, char digit)
{
    return strncasecmp(local, "SRS", 3) == 0 && local[3] == digit && is_sep(local[4]);
}

bool srs_is_srs(const char *address)
{
    return has_prefix(address, '0') || has_prefix(address, '1');
}

/* A field of an address we take apart: not empty, and nothing that would
 * need quoting once it stands alone in an address. */
static bool field_ok(const char *p, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= 0x20 || c == 0x7f || strchr("@<>\"\\", c) != NULL)
            return false;
    }
    return true;
}

/* The first SRS_HASH_LEN characters of base64(HMAC-SHA1(key, the
 * lower-case concatenation of parts)). */
static bool hash(const char *key, const char *const *parts, size_t nparts,
                 char out[SRS_HASH_LEN + 1])
{
    unsigned char data[2 * SRS_ADDRESS_MAX];
    size_t len = 0;
    for (size_t i = 0; i < nparts; i++)
        for (const char *p = parts[i]; *p != '\0'; p++) {
            if (len == sizeof(data))
                return false;
            data[len++] = (unsigned char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (HMAC(EVP_sha1(), key, (int)strlen(key), data, len, md, &mdlen) == NULL)
        return false;
    unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
    EVP_EncodeBlock(b64, md, (int)mdlen);
    memcpy(out, b64, SRS_HASH_LEN);
    out[SRS_HASH_LEN] = '\0';
    return true;
}

static void fold(char *dst, const char *src)
{
    for (size_t i = 0; i < SRS_HASH_LEN; i++)
        dst[i] = src[i] >= 'A' && src[i] <= 'Z' ? (char)(src[i] - 'A' + 'a') : src[i];
}

/* Whether given (SRS_HASH_LEN characters) is the hash of parts under one
 * of the keys. Case-insensitive, as libsrs2 allows: some hops fold the
 * case of local parts; in constant time, so a forger learns nothing of
 * how near a guess came. */
static bool hash_ok(const struct srs_keys *k, const char *given, const char *const *parts,
                    size_t nparts)
{
    char g[SRS_HASH_LEN];
    fold(g, given);
    bool ok = false;
    for (size_t i = 0; i < k->nkeys; i++) {
        char h[SRS_HASH_LEN + 1], f[SRS_HASH_LEN];
        if (!hash(k->keys[i], parts, nparts, h))
            continue;
        fold(f, h);
        ok |= CRYPTO_memcmp(f, g, SRS_HASH_LEN) == 0;
    }
    return ok;
}

static unsigned today(time_t now)
{
    return (unsigned)((now > 0 ? (uint64_t)now : 0) / SRS_DAY % SRS_DAYS);
}

static int stamp_value(const char *tt)
{
    int v = 0;
    for (int i = 0; i < 2; i++) {
        const char *c = strchr(base32, tt[i] >= 'a' && tt[i] <= 'z' ? tt[i] - 32 : tt[i]);
        if (tt[i] == '\0' || c == NULL)
            return -1;
        v = v * 32 + (int)(c - base32);
    }
    return tt[2] == '\0' ? v : -1;
}

/* address split at its last '@' into local (a copy) and domain. */
static bool split(const char *address, char local[SRS_ADDRESS_MAX + 1], const char **domain)
{
    const char *at = strrchr(address, '@');
    size_t len = strlen(address);
    if (at == NULL || at == address || at[1] == '\0' || len > SRS_ADDRESS_MAX)
        return false;
    memcpy(local, address, (size_t)(at - address));
    local[at - address] = '\0';
    *domain = at + 1;
    return true;
}

/* Cut s at its first '=': s is the field before it, the result what
 * follows (NULL if there is none). */
static char *cut(char *s)
{
    char *eq = strchr(s, '=');
    if (eq == NULL)
        return NULL;
    *eq = '\0';
    return eq + 1;
}

/* What snprintf made of the result. */
static enum srs_result put(size_t size, int n)
{
    return n < 0 || (size_t)n >= size || n > SRS_ADDRESS_MAX ? SRS_TOO_LONG : SRS_OK;
}

enum srs_result srs_forward(const struct srs_keys *k, const char *sender, const char *srs_domain,
                            time_t now, char *out, size_t size)
{
    char local[SRS_ADDRESS_MAX + 1], h[SRS_HASH_LEN + 1];
    const char *domain;
    if (k->nkeys == 0 || srs_domain[0] == '\0')
        return SRS_MALFORMED;
    if (!split(sender, local, &domain))
        return strlen(sender) > SRS_ADDRESS_MAX ? SRS_TOO_LONG : SRS_MALFORMED;
    /* The hash covers the fields run together: a domain with '=' in it
     * would make two addresses hash alike. */
    if (!field_ok(domain, strlen(domain)) || strchr(domain, '=') != NULL)
        return SRS_MALFORMED;
    if (!srs_is_srs(local)) {
        if (!field_ok(local, strlen(local)))
            return SRS_MALFORMED;
        char tt[3] = {base32[today(now) >> 5], base32[today(now) & 31], '\0'};
        const char *parts[] = {tt, domain, local};
        if (!hash(k->keys[0], parts, 3, h))
            return SRS_TOO_LONG;
        return put(size,
                   snprintf(out, size, "SRS0=%s=%s=%s=%s@%s", h, tt, domain, local, srs_domain));
    }
    /* Another forwarder's address: SRS1 naming the first forwarder, with
     * what follows it (from its separator on) kept as it is. */
    const char *host = domain, *user = local + 4;
    if (has_prefix(local, '1')) {
        char *rest = cut(local + 5);
        host = rest;
        user = rest != NULL ? cut(rest) : NULL;
        if (user == NULL || !field_ok(host, strlen(host)))
            return SRS_MALFORMED;
    }
    if (!is_sep(user[0]) || !field_ok(user + 1, strlen(user + 1)))
        return SRS_MALFORMED;
    const char *parts[] = {host, user};
    if (!hash(k->keys[0], parts, 2, h))
        return SRS_TOO_LONG;
    return put(size, snprintf(out, size, "SRS1=%s=%s=%s@%s", h, host, user, srs_domain));
}

static enum srs_result reverse0(const struct srs_keys *k, char *local, unsigned max_days,
                                time_t now, char *out, size_t size)
{
    char *given = local + 5, *tt = cut(given), *domain = tt != NULL ? cut(tt) : NULL,
         *user = domain != NULL ? cut(domain) : NULL;
    if (user == NULL || strlen(given) != SRS_HASH_LEN || !field_ok(domain, strlen(domain)) ||
        !field_ok(user, strlen(user)))
        return SRS_MALFORMED;
    int then = stamp_value(tt);
    if (then < 0)
        return SRS_MALFORMED;
    const char *parts[] = {tt, domain, user};
    if (!hash_ok(k, given, parts, 3))
        return SRS_BAD_HASH;
    /* Days since it was signed, modulo the wrap: a stamp from the future
     * looks almost SRS_DAYS old. */
    unsigned age = (today(now) + SRS_DAYS - (unsigned)then) % SRS_DAYS;
    if (age > max_days)
        return SRS_EXPIRED;
    return put(size, snprintf(out, size, "%s@%s", user, domain));
}

static enum srs_result reverse1(const struct srs_keys *k, char *local, char *out, size_t size)
{
    char *given = local + 5, *host = cut(given), *user = host != NULL ? cut(host) : NULL;
    if (user == NULL || strlen(given) != SRS_HASH_LEN || !field_ok(host, strlen(host)) ||
        !is_sep(user[0]) || !field_ok(user + 1, strlen(user + 1)))
        return SRS_MALFORMED;
    const char *parts[] = {host, user};
    if (!hash_ok(k, given, parts, 2))
        return SRS_BAD_HASH;
    return put(size, snprintf(out, size, "SRS0%s@%s", user, host));
}

enum srs_result srs_reverse(const struct srs_keys *k, const char *address, const char *srs_domain,
                            unsigned max_days, time_t now, char *out, size_t size)
{
    char local[SRS_ADDRESS_MAX + 1];
    const char *domain;
    if (!srs_is_srs(address))
        return SRS_NOT_SRS;
    if (!split(address, local, &domain))
        return SRS_MALFORMED;
    if (strcasecmp(domain, srs_domain) != 0)
        return SRS_NOT_SRS;
    return has_prefix(local, '0') ? reverse0(k, local, max_days, now, out, size)
                                  : reverse1(k, local, out, size);
}

const char *srs_result_text(enum srs_result r)
{
    switch (r) {
    case SRS_OK:
        return "ok";
    case SRS_NOT_SRS:
        return "not an SRS address";
    case SRS_MALFORMED:
        return "malformed";
    case SRS_BAD_HASH:
        return "bad hash";
    case SRS_EXPIRED:
        return "expired or future timestamp";
    default:
        return "too long";
    }
}
