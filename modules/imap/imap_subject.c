/* RFC 5256 section 2.1, step by step on a decoded copy of the subject:
 * the text is [start, end) of one buffer and every step only moves the
 * two ends, so the whole work is linear in the subject's length. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>
#include <petrel/mime.h>

#include "imap_subject.h"

struct text {
    const char *b;
    size_t start, end;
};

/* "(fwd)" or one blank at the end (subj-trailer), as often as they come. */
static void strip_trailers(struct text *t, bool *reply)
{
    for (;;) {
        if (t->end > t->start && t->b[t->end - 1] == ' ') {
            t->end--;
        } else if (t->end - t->start >= 5 && strncasecmp(t->b + t->end - 5, "(fwd)", 5) == 0) {
            t->end -= 5;
            *reply = true;
        } else {
            return;
        }
    }
}

/* subj-blob = "[" *BLOBCHAR "]" *WSP at p: the position after it, or 0
 * when there is none (a blob never starts at 0 past the text's start). */
static size_t blob_end(const struct text *t, size_t p)
{
    if (p >= t->end || t->b[p] != '[')
        return 0;
    size_t q = p + 1;
    while (q < t->end && t->b[q] != '[' && t->b[q] != ']' && t->b[q] != '\0')
        q++;
    if (q >= t->end || t->b[q] != ']')
        return 0;
    q++;
    while (q < t->end && t->b[q] == ' ')
        q++;
    return q;
}

/* subj-leader = (*subj-blob subj-refwd) / WSP, with subj-refwd =
 * ("re" / ("fw" ["d"])) *WSP [subj-blob] ":". */
static bool strip_leader(struct text *t, bool *reply)
{
    if (t->start < t->end && t->b[t->start] == ' ') {
        t->start++;
        return true;
    }
    size_t p = t->start, q;
    while ((q = blob_end(t, p)) != 0)
        p = q;
    size_t left = t->end - p;
    if (left >= 2 && strncasecmp(t->b + p, "re", 2) == 0)
        p += 2;
    else if (left >= 2 && strncasecmp(t->b + p, "fw", 2) == 0)
        p += left >= 3 && (t->b[p + 2] == 'd' || t->b[p + 2] == 'D') ? 3 : 2;
    else
        return false;
    while (p < t->end && t->b[p] == ' ')
        p++;
    if ((q = blob_end(t, p)) != 0)
        p = q;
    if (p >= t->end || t->b[p] != ':')
        return false;
    t->start = p + 1;
    *reply = true;
    return true;
}

/* A leading blob goes when a non-blank subj-base is left after it. */
static bool strip_blob(struct text *t)
{
    size_t q = blob_end(t, t->start);
    if (q == 0 || q >= t->end)
        return false;
    t->start = q;
    return true;
}

/* Step 1: encoded words decoded, every run of white space one blank. */
static char *normalize(const char *value, size_t len, size_t *len_r)
{
    char *raw = petrel_malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        raw[i] = value[i] == '\0' ? ' ' : value[i];
    raw[len] = '\0';
    char *dec = petrel_mime_decode_header(raw, IMAP_SUBJECT_MAX);
    free(raw);
    size_t n = 0;
    for (size_t i = 0; dec[i] != '\0'; i++) {
        char c = dec[i] == '\t' || dec[i] == '\r' || dec[i] == '\n' ? ' ' : dec[i];
        if (c == ' ' && n > 0 && dec[n - 1] == ' ')
            continue;
        dec[n++] = c;
    }
    dec[n] = '\0';
    *len_r = n;
    return dec;
}

char *imap_base_subject(const char *value, size_t len, bool *reply_r)
{
    size_t n;
    char *buf = normalize(value, len, &n);
    struct text t = {buf, 0, n};
    bool reply = false;
    for (;;) {
        strip_trailers(&t, &reply);
        while (strip_leader(&t, &reply) || strip_blob(&t))
            continue;
        /* Step 6: "[fwd: base]" unwrapped, then again from step 2. */
        if (t.end - t.start >= 6 && strncasecmp(t.b + t.start, "[fwd:", 5) == 0 &&
            t.b[t.end - 1] == ']') {
            t.start += 5;
            t.end--;
            reply = true;
            continue;
        }
        break;
    }
    size_t out_len = t.end - t.start;
    memmove(buf, buf + t.start, out_len);
    buf[out_len] = '\0';
    *reply_r = reply;
    return buf;
}

int imap_casemap_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'a' && x <= 'z')
            x = (unsigned char)(x - 32);
        if (y >= 'a' && y <= 'z')
            y = (unsigned char)(y - 32);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return alen < blen ? -1 : alen > blen;
}
