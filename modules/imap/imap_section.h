/* FETCH items that name a part of a message: BODY[section]<partial>,
 * BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT (RFC 3501 section
 * 6.4.5), BINARY[part]<partial>, BINARY.PEEK[...], BINARY.SIZE[part]
 * (RFC 3516). Parsing the item, naming it in the answer, and finding its bytes
 * in the message file with the part table of imap_msginfo.h. */
#ifndef PETREL_IMAP_SECTION_H
#define PETREL_IMAP_SECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/cte.h>

#include "imap_msginfo.h"

struct imap_section; /* parsed item (opaque) */

enum imap_section_result {
    IMAP_SECTION_OK,
    IMAP_SECTION_NOT_SECTION, /* another FETCH item (FLAGS, UID, ...) */
    IMAP_SECTION_BAD,         /* a section item with bad syntax: *error_r says why */
};

/* One FETCH item as the parser gave it (an atom, e.g.
 * "BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100>"). */
enum imap_section_result imap_section_parse(const char *item, size_t len,
                                            struct imap_section **sec_r, const char **error_r);
void imap_section_free(struct imap_section *sec);

/* Whether fetching it sets \Seen (BODY[...], BINARY[...] and RFC822,
 * RFC822.TEXT; not .PEEK, BINARY.SIZE nor RFC822.HEADER). */
bool imap_section_sets_seen(const struct imap_section *sec);
/* BINARY, BINARY.PEEK or BINARY.SIZE: its plan is DECODE or EMPTY. */
bool imap_section_is_binary(const struct imap_section *sec);
/* BINARY.SIZE: the answer is the decoded size, not the bytes. */
bool imap_section_is_size(const struct imap_section *sec);
/* The name the answer uses, e.g. "BODY[1.2.HEADER.FIELDS (FROM TO)]<0>"
 * (a partial shows its origin only), "RFC822.HEADER". */
const char *imap_section_name(const struct imap_section *sec);

/* Where the item's bytes come from. */
enum imap_section_kind {
    IMAP_SECTION_RANGE,  /* bytes offset..offset+length of the file, as they are */
    IMAP_SECTION_FILTER, /* a header block at offset..offset+length, to filter */
    IMAP_SECTION_EMPTY,  /* no such part: the answer is "" (RFC 3501) */
    IMAP_SECTION_DECODE, /* bytes offset..offset+length, decoded by cte */
};
struct imap_section_plan {
    enum imap_section_kind kind;
    uint64_t offset, length;
    enum petrel_cte_kind cte;
    bool unknown_cte; /* DECODE: the part's CTE is none the decoder knows */
};
void imap_section_resolve(const struct imap_section *sec, const struct imap_msginfo *mi,
                          struct imap_section_plan *plan_r);
/* FILTER: the header block's bytes, read whole, give the lines
 * HEADER.FIELDS (.NOT) keeps, with the closing empty line, appended to
 * out. */
void imap_section_filter(const struct imap_section *sec, const void *header, size_t len,
                         struct petrel_buf *out);
/* The partial <start.count> cut of a section of len bytes (for BINARY,
 * decoded bytes): what to send
 * of it (start may be past the end: then count is 0). Without a partial,
 * all of it. */
void imap_section_partial(const struct imap_section *sec, uint64_t len, uint64_t *start_r,
                          uint64_t *count_r);

#endif
