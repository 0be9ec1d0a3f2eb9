/* The session-free pieces of CONDSTORE and QRESYNC (RFC 7162) that
 * several commands share: mod-sequence values from the wire, sorted UID
 * ranges, and VANISHED lines. */
#include <stdint.h>
#include <stdlib.h>

#include <petrel/mem.h>

#include "imap_modseq.h"

bool imap_parse_modseq(const struct imap_arg *arg, bool zero_ok, uint64_t *modseq_r)
{
    /* mod-sequence-value: 1*DIGIT, a positive 63-bit number; the "valzer"
     * form of UNCHANGEDSINCE and SEARCH MODSEQ allows 0. */
    if (arg->type != IMAP_ARG_ATOM || arg->len == 0 || arg->len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < arg->len; i++) {
        if (arg->str[i] < '0' || arg->str[i] > '9')
            return false;
        v = v * 10u + (uint64_t)(arg->str[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX || (v == 0 && !zero_ok))
        return false;
    *modseq_r = v;
    return true;
}

/* A VANISHED line holds at most this many bytes of set before a new line
 * starts, so that no line grows without bound. */
#define VANISHED_LINE 8000u

void imap_put_vanished(struct petrel_buf *out, bool earlier,
                       const struct petrel_storage_uid_range *r, size_t n)
{
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        if (line == 0 || out->len - line > VANISHED_LINE) {
            if (line != 0)
                petrel_buf_append(out, "\r\n", 2);
            petrel_buf_printf(out, "* VANISHED %s", earlier ? "(EARLIER) " : "");
            line = out->len;
        } else {
            petrel_buf_append(out, ",", 1);
        }
        if (r[i].lo == r[i].hi)
            petrel_buf_printf(out, "%u", r[i].lo);
        else
            petrel_buf_printf(out, "%u:%u", r[i].lo, r[i].hi);
    }
    if (line != 0)
        petrel_buf_append(out, "\r\n", 2);
}

void imap_uid_ranges_push(struct petrel_storage_uid_range **r, size_t *n, size_t *cap, uint32_t lo,
                          uint32_t hi)
{
    if (*n > 0 && (*r)[*n - 1].hi != UINT32_MAX && (*r)[*n - 1].hi + 1 >= lo) {
        if (hi > (*r)[*n - 1].hi)
            (*r)[*n - 1].hi = hi;
        return;
    }
    if (*n == *cap) {
        *cap = *cap == 0 ? 16 : *cap * 2;
        *r = petrel_reallocarray(*r, *cap, sizeof(**r));
    }
    (*r)[(*n)++] = (struct petrel_storage_uid_range){lo, hi};
}

size_t imap_uid_ranges_intersect(const struct petrel_storage_uid_range *a, size_t na,
                                 const struct petrel_storage_uid_set *b,
                                 struct petrel_storage_uid_range **out_r)
{
    /* Both sorted and disjoint (the store's ranges and a resolved set):
     * one pass over each. */
    struct petrel_storage_uid_range *out = NULL;
    size_t n = 0, cap = 0, i = 0, k = 0;
    while (i < na && k < b->count) {
        uint32_t lo = a[i].lo > b->ranges[k].lo ? a[i].lo : b->ranges[k].lo;
        uint32_t hi = a[i].hi < b->ranges[k].hi ? a[i].hi : b->ranges[k].hi;
        if (lo <= hi)
            imap_uid_ranges_push(&out, &n, &cap, lo, hi);
        if (a[i].hi < b->ranges[k].hi)
            i++;
        else
            k++;
    }
    *out_r = out;
    return n;
}
