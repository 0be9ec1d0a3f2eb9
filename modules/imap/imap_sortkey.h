/* A message's SORT and THREAD keys (RFC 5256), computed once from its
 * header and kept in the store's per-message cache: a compact record, so
 * that a SORT over a large folder reads one small value per message and
 * never the header again. */
#ifndef PETREL_IMAP_SORTKEY_H
#define PETREL_IMAP_SORTKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

#define IMAP_SORTKEY_CACHE_KEY "imap.sortkey"
/* Bytes kept of each string key: orders and groups alike below it. */
#define IMAP_SORTKEY_STR_MAX 512u
/* Message-IDs kept of References (the last ones: the parent is last),
 * and bytes of them. */
#define IMAP_SORTKEY_REFS_MAX 128u
#define IMAP_SORTKEY_REFS_BYTES 16384u

enum imap_sortkey_field {
    IMAP_SK_SUBJECT, /* base subject (RFC 5256 section 2.1) */
    IMAP_SK_FROM,    /* addr-mailbox of the first address */
    IMAP_SK_TO,
    IMAP_SK_CC,
    IMAP_SK_DISPLAYFROM, /* RFC 5957: display name, else mailbox@host */
    IMAP_SK_DISPLAYTO,
    IMAP_SK_MSGID, /* Message-ID without its brackets */
    IMAP_SK_REFS,  /* References (else In-Reply-To): ids, blank-separated */
    IMAP_SK_COUNT,
};

struct imap_sortkey {
    int64_t date;                   /* Date: in seconds since the epoch (UTC) */
    bool has_date;                  /* false: missing or unparsable (INTERNALDATE is used) */
    bool reply;                     /* the subject had a reply or forward marker */
    const char *str[IMAP_SK_COUNT]; /* into the record, not NUL-terminated */
    size_t len[IMAP_SK_COUNT];
};

/* The record of a header block, appended to out. */
void imap_sortkey_build(const char *hdr, size_t len, struct petrel_buf *out);
/* A record read back (pointers into rec); false when it is not one. */
bool imap_sortkey_parse(const char *rec, size_t len, struct imap_sortkey *k);
/* An RFC 5322 date-time to seconds since the epoch, UTC. */
bool imap_sortkey_date(const char *value, size_t len, int64_t *t_r);

#endif
