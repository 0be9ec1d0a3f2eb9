/* IMAP sequence sets: see imap_seqset.h. */
#include "imap_seqset.h"

#include <stdlib.h>

#include <petrel/mem.h>

/* One number: 1..2^32-1 without leading zeros beyond the digits
 * (nz-number), or '*'. Advances *pos. */
static bool parse_number(const char *s, size_t len, size_t *pos, uint32_t *n_r)
{
    size_t i = *pos;
    if (i < len && s[i] == '*') {
        *pos = i + 1;
        *n_r = IMAP_SEQ_STAR;
        return true;
    }
    if (i >= len || s[i] < '1' || s[i] > '9')
        return false;
    uint64_t n = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        n = n * 10 + (uint64_t)(s[i] - '0');
        if (n > UINT32_MAX)
            return false;
        i++;
    }
    *pos = i;
    *n_r = (uint32_t)n;
    return true;
}

enum imap_seqset_result imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set)
{
    set->ranges = NULL;
    set->count = 0;
    set->saved = false;
    set->sorted = false;
    if (len == 1 && s[0] == '$') {
        set->saved = true;
        return IMAP_SEQSET_OK;
    }
    size_t cap = 0, pos = 0;
    for (;;) {
        struct imap_seq_range r;
        if (!parse_number(s, len, &pos, &r.lo))
            goto syntax;
        r.hi = r.lo;
        if (pos < len && s[pos] == ':') {
            pos++;
            if (!parse_number(s, len, &pos, &r.hi))
                goto syntax;
        }
        if (set->count == IMAP_SEQSET_MAX_RANGES) {
            imap_seqset_free(set);
            return IMAP_SEQSET_LIMIT;
        }
        if (set->count == cap) {
            cap = cap == 0 ? 4 : cap * 2;
            set->ranges = petrel_reallocarray(set->ranges, cap, sizeof(*set->ranges));
        }
        set->ranges[set->count++] = r;
        if (pos == len)
            return IMAP_SEQSET_OK;
        if (s[pos] != ',')
            goto syntax;
        pos++;
    }
syntax:
    imap_seqset_free(set);
    return IMAP_SEQSET_SYNTAX;
}

void imap_seqset_free(struct imap_seqset *set)
{
    free(set->ranges);
    set->ranges = NULL;
    set->count = 0;
}

/* A range with '*' replaced and its ends in order. */
static void range_bounds(const struct imap_seq_range *r, uint32_t star, uint32_t *lo_r,
                         uint32_t *hi_r)
{
    uint32_t a = r->lo == IMAP_SEQ_STAR ? star : r->lo;
    uint32_t b = r->hi == IMAP_SEQ_STAR ? star : r->hi;
    *lo_r = a < b ? a : b;
    *hi_r = a < b ? b : a;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
    if (n == 0 || n > star)
        return false;
    if (set->sorted) {
        size_t lo = 0, hi = set->count;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (set->ranges[mid].hi < n)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo < set->count && set->ranges[lo].lo <= n;
    }
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo, hi;
        range_bounds(&set->ranges[i], star, &lo, &hi);
        if (n >= lo && n <= hi)
            return true;
    }
    return false;
}

static int cmp_range(const void *a, const void *b)
{
    const struct petrel_storage_uid_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

size_t imap_seqset_resolve(const struct imap_seqset *set, uint32_t star,
                           struct petrel_storage_uid_range **out_r)
{
    *out_r = NULL;
    if (star == 0 || set->count == 0)
        return 0;
    struct petrel_storage_uid_range *out = petrel_reallocarray(NULL, set->count, sizeof(*out));
    size_t n = 0;
    for (size_t i = 0; i < set->count; i++) {
        uint32_t lo, hi;
        range_bounds(&set->ranges[i], star, &lo, &hi);
        if (lo > star)
            continue;
        out[n].lo = lo;
        out[n].hi = hi > star ? star : hi;
        n++;
    }
    qsort(out, n, sizeof(*out), cmp_range);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && (uint64_t)out[i].lo <= (uint64_t)out[m - 1].hi + 1) {
            if (out[i].hi > out[m - 1].hi)
                out[m - 1].hi = out[i].hi;
        } else {
            out[m++] = out[i];
        }
    }
    if (m == 0) {
        free(out);
        return 0;
    }
    *out_r = out;
    return m;
}
