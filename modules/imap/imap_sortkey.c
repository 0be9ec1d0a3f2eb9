/* Sort keys from a header block (imap_sortkey.h). Record layout: "SK1",
 * the date (8 bytes, little-endian), a flags byte, then each string as a
 * 2-byte little-endian length and its bytes, in enum order. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>
#include <petrel/mime.h>

#include "imap_sortkey.h"
#include "imap_subject.h"

#define MAGIC "SK1"
#define FLAG_DATE 1u
#define FLAG_REPLY 2u
/* Bytes of one field's value looked at. */
#define FIELD_MAX 65536u

/* The fields we use, unfolded, as NUL-terminated copies (first one wins,
 * as for ENVELOPE). */
enum { F_DATE, F_SUBJECT, F_FROM, F_TO, F_CC, F_MSGID, F_REFS, F_IRT, F_COUNT };
static const char *const field_names[F_COUNT] = {"date", "subject",    "from",       "to",
                                                 "cc",   "message-id", "references", "in-reply-to"};

static char *unfold(const char *v, size_t n)
{
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    char *out = petrel_malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] != '\r' && v[i] != '\n')
            out[k++] = v[i] == '\0' ? ' ' : v[i];
    out[k] = '\0';
    return out;
}

static void read_fields(const char *hdr, size_t len, char *f[F_COUNT])
{
    size_t p = 0;
    while (p < len) {
        size_t line_end = p;
        while (line_end < len && hdr[line_end] != '\n')
            line_end++;
        if (line_end == p || (line_end == p + 1 && hdr[p] == '\r'))
            return; /* the empty line ends the header */
        /* The field runs on over continuation lines. */
        size_t end = line_end;
        while (end + 1 < len && (hdr[end + 1] == ' ' || hdr[end + 1] == '\t')) {
            end++;
            while (end < len && hdr[end] != '\n')
                end++;
        }
        const char *colon = memchr(hdr + p, ':', line_end - p);
        if (colon != NULL) {
            size_t nlen = (size_t)(colon - (hdr + p));
            while (nlen > 0 && (hdr[p + nlen - 1] == ' ' || hdr[p + nlen - 1] == '\t'))
                nlen--;
            for (int i = 0; i < F_COUNT; i++)
                if (f[i] == NULL && strlen(field_names[i]) == nlen &&
                    strncasecmp(hdr + p, field_names[i], nlen) == 0) {
                    size_t vstart = (size_t)(colon - hdr) + 1;
                    f[i] = unfold(hdr + vstart, (end < len ? end : len) - vstart);
                }
        }
        p = end + 1;
    }
}

/* --- dates (RFC 5322 section 3.3, obsolete forms included) --- */

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void skip_cfws(const char **p, const char *end)
{
    for (;;) {
        while (*p < end && (**p == ' ' || **p == '\t'))
            (*p)++;
        if (*p >= end || **p != '(')
            return;
        unsigned depth = 0;
        while (*p < end) {
            if (**p == '(')
                depth++;
            else if (**p == ')' && --depth == 0) {
                (*p)++;
                break;
            } else if (**p == '\\' && *p + 1 < end)
                (*p)++;
            (*p)++;
        }
    }
}

static bool read_num(const char **p, const char *end, unsigned min_digits, unsigned max_digits,
                     int64_t *v)
{
    unsigned n = 0;
    *v = 0;
    while (*p < end && isdigit((unsigned char)**p) && n < max_digits) {
        *v = *v * 10 + (**p - '0');
        (*p)++;
        n++;
    }
    return n >= min_digits;
}

static bool read_zone(const char *p, const char *end, int64_t *offset)
{
    *offset = 0;
    if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int64_t z;
        const char *q = p;
        if (!read_num(&p, end, 4, 4, &z) || p != q + 4)
            return false;
        *offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
        return true;
    }
    static const struct {
        const char *name;
        int hours;
    } zones[] = {{"UT", 0},   {"GMT", 0},  {"Z", 0},    {"EST", -5}, {"EDT", -4}, {"CST", -6},
                 {"CDT", -5}, {"MST", -7}, {"MDT", -6}, {"PST", -8}, {"PDT", -7}};
    size_t n = 0;
    while (p + n < end && isalpha((unsigned char)p[n]))
        n++;
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
        if (strlen(zones[i].name) == n && strncasecmp(p, zones[i].name, n) == 0) {
            *offset = zones[i].hours * 3600;
            return true;
        }
    return n > 0; /* other (military) zones: RFC 5322 says take them as +0000 */
}

bool imap_sortkey_date(const char *value, size_t len, int64_t *t_r)
{
    static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
    const char *p = value, *end = value + len;
    skip_cfws(&p, end);
    /* An optional day of the week. */
    const char *comma = memchr(p, ',', (size_t)(end - p));
    if (comma != NULL && comma - p <= 12)
        p = comma + 1;
    skip_cfws(&p, end);
    int64_t day, year, hour, min, sec = 0;
    if (!read_num(&p, end, 1, 2, &day))
        return false;
    skip_cfws(&p, end);
    if (end - p < 3)
        return false;
    unsigned month = 0;
    for (unsigned i = 0; i < 12; i++)
        if (strncasecmp(p, months + 3 * i, 3) == 0)
            month = i + 1;
    if (month == 0)
        return false;
    p += 3;
    skip_cfws(&p, end);
    const char *ys = p;
    if (!read_num(&p, end, 2, 4, &year))
        return false;
    if (p - ys == 2)
        year += year < 50 ? 2000 : 1900;
    else if (p - ys == 3)
        year += 1900;
    skip_cfws(&p, end);
    if (!read_num(&p, end, 1, 2, &hour) || p >= end || *p++ != ':' ||
        !read_num(&p, end, 1, 2, &min))
        return false;
    if (p < end && *p == ':') {
        p++;
        if (!read_num(&p, end, 1, 2, &sec))
            return false;
    }
    skip_cfws(&p, end);
    int64_t offset;
    if (!read_zone(p, end, &offset))
        offset = 0;
    if (day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60)
        return false;
    *t_r =
        days_from_civil(year, month, (unsigned)day) * 86400 + hour * 3600 + min * 60 + sec - offset;
    return true;
}

/* --- addresses and Message-IDs --- */

static const struct petrel_mime_address *first_address(const struct petrel_mime_address *a)
{
    while (a != NULL && a->host == NULL)
        a = a->next; /* group markers */
    return a;
}

/* "<id>" tokens of a value, brackets and blanks inside removed; each id
 * given to fn in order. */
typedef void id_fn(const char *id, size_t len, void *arg);
static void each_id(const char *v, id_fn *fn, void *arg)
{
    const char *p = v;
    while ((p = strchr(p, '<')) != NULL) {
        const char *close = strchr(p + 1, '>');
        if (close == NULL)
            return;
        const char *next_open = memchr(p + 1, '<', (size_t)(close - p - 1));
        if (next_open != NULL) {
            p = next_open;
            continue;
        }
        char id[1024];
        size_t n = 0;
        for (const char *q = p + 1; q < close && n + 1 < sizeof(id); q++)
            if (*q != ' ' && *q != '\t')
                id[n++] = *q;
        if (n > 0)
            fn(id, n, arg);
        p = close + 1;
    }
}

struct refs {
    char *ids[IMAP_SORTKEY_REFS_MAX];
    size_t lens[IMAP_SORTKEY_REFS_MAX];
    size_t n, first; /* a ring of the last ones */
    size_t total;
};

static void add_ref(const char *id, size_t len, void *arg)
{
    struct refs *r = arg;
    size_t slot = (r->first + r->n) % IMAP_SORTKEY_REFS_MAX;
    if (r->n == IMAP_SORTKEY_REFS_MAX) {
        free(r->ids[r->first]);
        slot = r->first;
        r->first = (r->first + 1) % IMAP_SORTKEY_REFS_MAX;
        r->n--;
    }
    r->ids[slot] = petrel_strndup(id, len);
    r->lens[slot] = len;
    r->n++;
}

static void first_id(const char *id, size_t len, void *arg)
{
    char **out = arg;
    if (*out == NULL)
        *out = petrel_strndup(id, len);
}

/* --- the record --- */

static void put_str(struct petrel_buf *out, const char *s, size_t len, size_t max)
{
    if (s == NULL)
        len = 0;
    if (len > max)
        len = max;
    unsigned char l[2] = {(unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    petrel_buf_append(out, l, 2);
    if (len > 0)
        petrel_buf_append(out, s, len);
}

static void put_addr(struct petrel_buf *out, const char *value, bool display)
{
    struct petrel_mime_address *list = value != NULL ? petrel_mime_parse_addresses(value, 8) : NULL;
    const struct petrel_mime_address *a = first_address(list);
    if (a == NULL) {
        put_str(out, NULL, 0, 0);
    } else if (!display) {
        put_str(out, a->mailbox, a->mailbox != NULL ? strlen(a->mailbox) : 0, IMAP_SORTKEY_STR_MAX);
    } else if (a->name != NULL && a->name[0] != '\0') {
        put_str(out, a->name, strlen(a->name), IMAP_SORTKEY_STR_MAX);
    } else {
        char spec[IMAP_SORTKEY_STR_MAX + 1];
        size_t n = 0;
        for (const char *p = a->mailbox; p != NULL && *p != '\0' && n < IMAP_SORTKEY_STR_MAX; p++)
            spec[n++] = *p;
        if (a->host != NULL && a->host[0] != '\0' && n < IMAP_SORTKEY_STR_MAX)
            spec[n++] = '@';
        for (const char *p = a->host; p != NULL && *p != '\0' && n < IMAP_SORTKEY_STR_MAX; p++)
            spec[n++] = *p;
        put_str(out, spec, n, IMAP_SORTKEY_STR_MAX);
    }
    petrel_mime_addresses_free(list);
}

void imap_sortkey_build(const char *hdr, size_t len, struct petrel_buf *out)
{
    char *f[F_COUNT] = {0};
    read_fields(hdr, len, f);
    int64_t date = 0;
    bool has_date = f[F_DATE] != NULL && imap_sortkey_date(f[F_DATE], strlen(f[F_DATE]), &date);
    bool reply = false;
    char *subject = imap_base_subject(f[F_SUBJECT] != NULL ? f[F_SUBJECT] : "",
                                      f[F_SUBJECT] != NULL ? strlen(f[F_SUBJECT]) : 0, &reply);
    petrel_buf_append(out, MAGIC, 3);
    unsigned char d[8];
    for (int i = 0; i < 8; i++)
        d[i] = (unsigned char)((uint64_t)date >> (8 * i));
    petrel_buf_append(out, d, 8);
    unsigned char flags = (unsigned char)((has_date ? FLAG_DATE : 0) | (reply ? FLAG_REPLY : 0));
    petrel_buf_append(out, &flags, 1);
    put_str(out, subject, strlen(subject), IMAP_SORTKEY_STR_MAX);
    free(subject);
    put_addr(out, f[F_FROM], false);
    put_addr(out, f[F_TO], false);
    put_addr(out, f[F_CC], false);
    put_addr(out, f[F_FROM], true);
    put_addr(out, f[F_TO], true);
    char *msgid = NULL;
    if (f[F_MSGID] != NULL)
        each_id(f[F_MSGID], first_id, &msgid);
    put_str(out, msgid, msgid != NULL ? strlen(msgid) : 0, IMAP_SORTKEY_STR_MAX);
    free(msgid);
    /* RFC 5256 section 3 (REFERENCES, step 1): References, or else the
     * first Message-ID of In-Reply-To. */
    struct refs r = {0};
    if (f[F_REFS] != NULL)
        each_id(f[F_REFS], add_ref, &r);
    if (r.n == 0 && f[F_IRT] != NULL) {
        char *irt = NULL;
        each_id(f[F_IRT], first_id, &irt);
        if (irt != NULL)
            add_ref(irt, strlen(irt), &r);
        free(irt);
    }
    struct petrel_buf joined;
    petrel_buf_init(&joined, IMAP_SORTKEY_REFS_BYTES + 1024 + 2);
    for (size_t i = 0; i < r.n; i++) {
        size_t k = (r.first + i) % IMAP_SORTKEY_REFS_MAX;
        if (joined.len + r.lens[k] + 1 <= IMAP_SORTKEY_REFS_BYTES) {
            if (joined.len > 0)
                petrel_buf_append(&joined, " ", 1);
            petrel_buf_append(&joined, r.ids[k], r.lens[k]);
        }
        free(r.ids[k]);
    }
    put_str(out, petrel_buf_head(&joined), joined.len, IMAP_SORTKEY_REFS_BYTES);
    petrel_buf_free(&joined);
    for (int i = 0; i < F_COUNT; i++)
        free(f[i]);
}

bool imap_sortkey_parse(const char *rec, size_t len, struct imap_sortkey *k)
{
    const unsigned char *p = (const unsigned char *)rec;
    if (len < 12 || memcmp(rec, MAGIC, 3) != 0)
        return false;
    uint64_t d = 0;
    for (int i = 0; i < 8; i++)
        d |= (uint64_t)p[3 + i] << (8 * i);
    k->date = (int64_t)d;
    k->has_date = (p[11] & FLAG_DATE) != 0;
    k->reply = (p[11] & FLAG_REPLY) != 0;
    size_t pos = 12;
    for (int i = 0; i < IMAP_SK_COUNT; i++) {
        if (len - pos < 2)
            return false;
        size_t n = (size_t)p[pos] | ((size_t)p[pos + 1] << 8);
        pos += 2;
        if (len - pos < n)
            return false;
        k->str[i] = rec + pos;
        k->len[i] = n;
        pos += n;
    }
    return pos == len;
}
