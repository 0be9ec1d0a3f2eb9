/* Modified UTF-7 (imap_mutf7.h): UTF-16 code units in base64 with ','
 * for '/', between '&' and '-'; printable ASCII stands for itself and
 * '&' is "&-". */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "imap_mutf7.h"

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

static bool printable(uint32_t c) { return c >= 0x20 && c <= 0x7e; }

static bool put(struct petrel_buf *out, char c) { return petrel_buf_append(out, &c, 1); }

/* One code point from UTF-8 at s[*i], advancing *i; false if invalid. */
static bool utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp_r)
{
    unsigned char c = s[*i];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) {
        n = 0, cp = c, min = 0;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 1, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 2, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 3, cp = c & 0x07u, min = 0x10000;
    } else {
        return false;
    }
    if (len - *i - 1 < n)
        return false;
    for (size_t k = 1; k <= n; k++) {
        if ((s[*i + k] & 0xc0) != 0x80)
            return false;
        cp = cp << 6 | (s[*i + k] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return false;
    *i += n + 1;
    *cp_r = cp;
    return true;
}

struct b64_writer {
    uint32_t bits;
    unsigned nbits;
};

static bool b64_unit(struct b64_writer *w, uint16_t unit, struct petrel_buf *out)
{
    w->bits = (w->bits << 16 | unit) & 0xffffffu;
    w->nbits += 16;
    while (w->nbits >= 6) {
        w->nbits -= 6;
        if (!put(out, b64[(w->bits >> w->nbits) & 0x3f]))
            return false;
    }
    return true;
}

static bool b64_end(struct b64_writer *w, struct petrel_buf *out)
{
    if (w->nbits > 0 && !put(out, b64[(w->bits << (6 - w->nbits)) & 0x3f]))
        return false;
    w->nbits = 0;
    return put(out, '-');
}

bool imap_mutf7_encode(const char *utf8, size_t len, struct petrel_buf *out)
{
    const unsigned char *s = (const unsigned char *)utf8;
    struct b64_writer w = {0, 0};
    bool in_run = false;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        if (!utf8_next(s, len, &i, &cp) || cp == 0)
            return false;
        if (printable(cp)) {
            if (in_run && !b64_end(&w, out))
                return false;
            in_run = false;
            if (!put(out, (char)cp) || (cp == '&' && !put(out, '-')))
                return false;
            continue;
        }
        if (!in_run && !put(out, '&'))
            return false;
        in_run = true;
        if (cp >= 0x10000) {
            cp -= 0x10000;
            if (!b64_unit(&w, (uint16_t)(0xd800 | cp >> 10), out) ||
                !b64_unit(&w, (uint16_t)(0xdc00 | (cp & 0x3ff)), out))
                return false;
        } else if (!b64_unit(&w, (uint16_t)cp, out)) {
            return false;
        }
    }
    return !in_run || b64_end(&w, out);
}

static bool put_utf8(uint32_t cp, struct petrel_buf *out)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | (cp >> 12 & 0x3f));
        u[2] = (char)(0x80 | (cp >> 6 & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    return petrel_buf_append(out, u, n);
}

/* One UTF-16 unit of a run; *high holds a pending high surrogate. */
static bool run_unit(uint16_t unit, uint32_t *high, struct petrel_buf *out)
{
    if (*high != 0) {
        if (unit < 0xdc00 || unit > 0xdfff)
            return false;
        uint32_t cp = 0x10000 + ((*high - 0xd800) << 10) + (unit - 0xdc00u);
        *high = 0;
        return put_utf8(cp, out);
    }
    if (unit >= 0xd800 && unit <= 0xdbff) {
        *high = unit;
        return true;
    }
    if (unit >= 0xdc00 && unit <= 0xdfff)
        return false;
    /* Printable ASCII must stand for itself, and NUL names nothing. */
    if (unit == 0 || printable(unit))
        return false;
    return put_utf8(unit, out);
}

/* The run from s[*i] (after '&') to its '-'; *i is left after the '-'. */
static bool decode_run(const char *s, size_t len, size_t *i, struct petrel_buf *out)
{
    uint32_t bits = 0, high = 0;
    unsigned nbits = 0;
    size_t j = *i;
    for (; j < len && s[j] != '-'; j++) {
        const char *at = memchr(b64, s[j], 64);
        if (at == NULL)
            return false;
        bits = (bits << 6 | (uint32_t)(at - b64)) & 0xffffffu;
        nbits += 6;
        if (nbits >= 16) {
            nbits -= 16;
            if (!run_unit((uint16_t)(bits >> nbits), &high, out))
                return false;
        }
    }
    /* Canonical: fewer than 6 bits left over, all zero; no surrogate
     * waiting for its pair. */
    if (j == len || nbits >= 6 || (bits & ((1u << nbits) - 1)) != 0 || high != 0)
        return false;
    *i = j + 1;
    return true;
}

bool imap_mutf7_decode(const char *s, size_t len, struct petrel_buf *out)
{
    bool after_run = false;
    size_t i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)s[i];
        if (!printable(c))
            return false;
        if (c != '&') {
            if (!put(out, (char)c))
                return false;
            i++;
            after_run = false;
            continue;
        }
        i++;
        if (i < len && s[i] == '-') {
            if (!put(out, '&'))
                return false;
            i++;
            after_run = false;
            continue;
        }
        /* Two runs in a row are one run written twice. */
        if (after_run || !decode_run(s, len, &i, out))
            return false;
        after_run = true;
    }
    return true;
}

bool imap_utf8_valid(const char *s, size_t len, bool printable)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (!utf8_next(u, len, &i, &cp) || cp == 0 || (printable && (cp < 0x20 || cp == 0x7f)))
            return false;
    }
    return true;
}
