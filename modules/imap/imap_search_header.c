/* Header fields for SEARCH: the Date: field's day, and the header-side
 * text match on the fields petrel_mimetext_header gives (unfolded, RFC
 * 2047 decoded, folded). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_search_private.h"

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
};

static bool match_field(void *ctx, const struct petrel_mimetext_info *info, const char *text,
                        size_t len, bool last)
{
    struct header_match *hm = ctx;
    (void)last; /* a field comes whole */
    for (unsigned i = 0; i < hm->s->needle_count; i++) {
        const struct search_needle *nd = &hm->s->needles[i];
        if (!((hm->want >> i) & 1u))
            continue;
        bool field = nd->where == SW_FIELD;
        if (field && strcasecmp(nd->field, info->field) != 0)
            continue;
        /* A field needle looks in the value, TEXT in "Name: value". */
        const char *hay = field ? text + info->value_offset : text;
        size_t hay_len = field ? len - info->value_offset : len;
        if (nd->len == 0 || memmem(hay, hay_len, nd->text, nd->len) != NULL) {
            *hm->hits |= 1ull << i;
            hm->want &= ~(1ull << i);
        }
    }
    return hm->want != 0;
}

void search_header_match(const struct imap_search *s, const char *hdr, size_t len, uint64_t want,
                         uint64_t *hits)
{
    struct header_match hm = {.s = s, .want = want & ~*hits, .hits = hits};
    if (hm.want != 0)
        petrel_mimetext_header(hdr, len, match_field, &hm);
}
