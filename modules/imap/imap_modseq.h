/* CONDSTORE and QRESYNC (RFC 7162) helpers without a session:
 * mod-sequence values, sorted UID ranges and VANISHED lines. */
#ifndef PETREL_IMAP_MODSEQ_H
#define PETREL_IMAP_MODSEQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/storage.h>

#include "imap_arg.h"

/* A mod-sequence value (zero_ok: the "valzer" form); false when bad. */
bool imap_parse_modseq(const struct imap_arg *arg, bool zero_ok, uint64_t *modseq_r);
/* "* VANISHED [(EARLIER)] set" lines for sorted, disjoint ranges (none
 * when n is 0). */
void imap_put_vanished(struct petrel_buf *out, bool earlier,
                       const struct petrel_storage_uid_range *r, size_t n);
/* Append lo:hi to sorted ranges, merging with the last one. */
void imap_uid_ranges_push(struct petrel_storage_uid_range **r, size_t *n, size_t *cap, uint32_t lo,
                          uint32_t hi);
/* a and set intersected, into *out_r (malloc'ed); returns its count. */
size_t imap_uid_ranges_intersect(const struct petrel_storage_uid_range *a, size_t na,
                                 const struct petrel_storage_uid_set *set,
                                 struct petrel_storage_uid_range **out_r);

#endif
