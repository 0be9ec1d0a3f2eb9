/* Header fields for SEARCH: unfolding, the Date: field's day, and the
 * header-side text match (RFC 2047 words decoded, folded). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>
#include <petrel/mime.h>

#include "imap_search_private.h"

/* One unfolded field is cut here; the core MIME parser keeps as much. */
#define FIELD_MAX PETREL_MIME_DEFAULT_MAX_FIELD_SIZE
#define NAME_MAX_LEN 256u

struct field_acc {
    char name[NAME_MAX_LEN];
    size_t name_len;
    char *value;
    size_t value_len;
    bool open;
};

static void acc_append(struct field_acc *a, const char *s, size_t len)
{
    size_t room = FIELD_MAX - a->value_len;
    if (len > room)
        len = room;
    memcpy(a->value + a->value_len, s, len);
    a->value_len += len;
}

static bool acc_emit(struct field_acc *a, search_field_fn *fn, void *ctx)
{
    if (!a->open)
        return true;
    a->open = false;
    a->value[a->value_len] = '\0';
    return fn(a->name, a->name_len, a->value, a->value_len, ctx);
}

/* A field line "name: value": false when it has no colon (skipped). */
static bool acc_start(struct field_acc *a, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return false;
    size_t n = (size_t)(colon - line);
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= NAME_MAX_LEN)
        return false;
    memcpy(a->name, line, n);
    a->name[n] = '\0';
    a->name_len = n;
    a->value_len = 0;
    a->open = true;
    const char *v = colon + 1;
    size_t vlen = len - (size_t)(v - line);
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    acc_append(a, v, vlen);
    return true;
}

bool search_header_fields(const char *hdr, size_t len, search_field_fn *fn, void *ctx)
{
    struct field_acc a = {.open = false};
    a.value = petrel_malloc(FIELD_MAX + 1);
    bool go_on = true;
    size_t pos = 0;
    while (pos < len && go_on) {
        const char *line = hdr + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - line) : len - pos;
        pos += line_len + (nl != NULL ? 1 : 0);
        if (line_len > 0 && line[line_len - 1] == '\r')
            line_len--;
        if (line_len == 0)
            break; /* the end of the header */
        if (line[0] == ' ' || line[0] == '\t') {
            if (a.open)
                acc_append(&a, line, line_len); /* unfolding keeps the blank */
            continue;
        }
        go_on = acc_emit(&a, fn, ctx);
        if (go_on)
            acc_start(&a, line, line_len);
    }
    if (go_on)
        go_on = acc_emit(&a, fn, ctx);
    free(a.value);
    return go_on;
}

/* ---- the Date: field ---- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static unsigned month_days(int64_t y, unsigned m)
{
    static const unsigned days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return days[m - 1] + (m == 2 && leap ? 1u : 0u);
}

static size_t skip_blanks(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

static size_t read_number(const char *s, size_t len, size_t i, unsigned max_digits, unsigned *n_r,
                          unsigned *digits_r)
{
    unsigned n = 0, k = 0;
    while (i < len && k < max_digits && s[i] >= '0' && s[i] <= '9') {
        n = n * 10 + (unsigned)(s[i] - '0');
        i++;
        k++;
    }
    *n_r = n;
    *digits_r = k;
    return i;
}

/* "[Day,] d Mon yyyy ...": the rest (time, zone) does not change the day
 * as written, which is the day RFC 3501 SENT* compares. */
bool search_sent_day(const char *v, size_t len, int64_t *days_r)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    size_t i = skip_blanks(v, len, 0);
    const char *comma = memchr(v + i, ',', len - i);
    if (comma != NULL && (size_t)(comma - v) - i <= 9)
        i = (size_t)(comma - v) + 1;
    i = skip_blanks(v, len, i);
    unsigned day, digits, year, ydigits;
    i = read_number(v, len, i, 2, &day, &digits);
    if (digits == 0)
        return false;
    i = skip_blanks(v, len, i);
    if (i + 3 > len)
        return false;
    unsigned month = 0;
    for (unsigned m = 0; m < 12; m++)
        if (strncasecmp(v + i, months + 3 * m, 3) == 0)
            month = m + 1;
    if (month == 0)
        return false;
    i = skip_blanks(v, len, i + 3);
    read_number(v, len, i, 4, &year, &ydigits);
    if (ydigits < 2)
        return false;
    if (ydigits == 2)
        year += year < 50 ? 2000 : 1900; /* RFC 5322 obsolete two-digit years */
    else if (ydigits == 3)
        year += 1900;
    if (day < 1 || day > month_days(year, month))
        return false;
    *days_r = days_from_civil(year, month, day);
    return true;
}

/* ---- matching ---- */

struct header_match {
    const struct imap_search *s;
    uint64_t want;
    uint64_t *hits;
    bool in_body;
};

static bool needle_applies(const struct search_needle *nd, const char *name, bool in_body)
{
    if (in_body)
        return nd->where != SW_FIELD;
    return nd->where == SW_TEXT || (nd->where == SW_FIELD && strcasecmp(nd->field, name) == 0);
}

static bool match_field(const char *name, size_t name_len, const char *value, size_t value_len,
                        void *ctx)
{
    struct header_match *hm = ctx;
    uint64_t applies = 0;
    for (unsigned i = 0; i < hm->s->needle_count; i++)
        if ((hm->want >> i) & 1u && needle_applies(&hm->s->needles[i], name, hm->in_body))
            applies |= 1ull << i;
    if (applies == 0)
        return true;
    (void)value_len;
    char *decoded = petrel_mime_decode_header(value, FIELD_MAX);
    size_t dlen = strlen(decoded);
    /* "name: value" folded, so that TEXT sees the field as a whole. */
    char *line = petrel_malloc(name_len + 2 + dlen + 1);
    memcpy(line, name, name_len);
    memcpy(line + name_len, ": ", 2);
    memcpy(line + name_len + 2, decoded, dlen);
    free(decoded);
    char *folded = search_fold_str(line, name_len + 2 + dlen);
    free(line);
    size_t total = name_len + 2 + dlen;
    for (unsigned i = 0; i < hm->s->needle_count; i++) {
        const struct search_needle *nd = &hm->s->needles[i];
        if (!((applies >> i) & 1u))
            continue;
        const char *hay = nd->where == SW_FIELD ? folded + name_len + 2 : folded;
        size_t hay_len = nd->where == SW_FIELD ? dlen : total;
        if (nd->len == 0 || memmem(hay, hay_len, nd->text, nd->len) != NULL) {
            *hm->hits |= 1ull << i;
            hm->want &= ~(1ull << i);
        }
    }
    free(folded);
    return hm->want != 0;
}

void search_header_match(const struct imap_search *s, const char *hdr, size_t len, uint64_t want,
                         uint64_t *hits, bool in_body)
{
    struct header_match hm = {.s = s, .want = want & ~*hits, .hits = hits, .in_body = in_body};
    if (hm.want != 0)
        search_header_fields(hdr, len, match_field, &hm);
}
