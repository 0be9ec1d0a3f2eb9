/* IMAP SEARCH (RFC 3501 section 6.4.4): the search keys compiled once per
 * command, then matched against each message. Text keys match decoded text
 * (base64 and quoted-printable bodies, RFC 2047 header words, charsets
 * converted to UTF-8), case-insensitively: the store's raw-byte search is
 * not enough for that. */
#ifndef PETREL_IMAP_SEARCH_H
#define PETREL_IMAP_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/storage.h>

#include "imap_arg.h"

struct imap_search;

enum imap_search_error {
    IMAP_SEARCH_OK,
    IMAP_SEARCH_BAD,        /* BAD <error>: syntax, unknown key, bad date or set */
    IMAP_SEARCH_BADCHARSET, /* NO [BADCHARSET (UTF-8 US-ASCII)] <error> */
};

/* SEARCH's arguments after the command name, "CHARSET x" included. */
enum imap_search_error imap_search_compile(const struct imap_arg *args, size_t count,
                                           struct imap_search **s_r, const char **error_r);
void imap_search_free(struct imap_search *s);

/* What matching needs beyond a message's metadata. */
#define IMAP_SEARCH_NEEDS_HEADER 1u /* the header block */
#define IMAP_SEARCH_NEEDS_FILE 2u   /* the whole message */
/* Not a need: a MODSEQ key is used, so the answer ends "(MODSEQ n)". */
#define IMAP_SEARCH_NEEDS_MODSEQ 4u
unsigned imap_search_needs(const struct imap_search *s);

/* One message as the session knows it. */
struct imap_search_msg {
    uint32_t seq, uid;
    uint32_t max_seq, max_uid; /* what '*' means in sequence sets */
    uint32_t flags;            /* PETREL_STORAGE_SEEN | ... */
    const char *keywords;      /* space-separated, "" when none */
    bool recent;
    uint64_t size;
    int64_t internal_date; /* seconds since the epoch */
    uint64_t modseq;
    const char *header; /* NEEDS_HEADER: the header block, else NULL */
    size_t header_len;
    int fd; /* NEEDS_FILE: the message, read from offset 0 (pread), else -1 */
};

/* S: keys known only when the command runs, compiled as UID sets filled
 * before matching: "$" (RFC 5182) and OLDER / YOUNGER (RFC 5032). */
bool imap_search_uses_saved(const struct imap_search *s);
bool imap_search_uses_within(const struct imap_search *s);
/* Every "$" key becomes these UIDs (ascending, apart, copied). */
void imap_search_bind_saved(struct imap_search *s, const struct petrel_storage_uid_range *r,
                            size_t n);
struct imap_search_date {
    uint32_t uid;
    int64_t internal_date;
};
/* Every OLDER / YOUNGER key becomes the UIDs of msgs (in UID order) whose
 * internal date is that many seconds before now or more / less. */
void imap_search_bind_within(struct imap_search *s, int64_t now,
                             const struct imap_search_date *msgs, size_t n);

/* 1: the message matches; 0: it does not; -1: it could not be read. */
int imap_search_match(const struct imap_search *s, const struct imap_search_msg *m);

/* --- F: the storage's full-text index (imap_search_fts.c) --- */
struct petrel_storage_ops;
struct petrel_folder;
/* Ask the index about each text key it can answer (on a worker thread,
 * before matching); returns what matching then still needs (a subset of
 * imap_search_needs). Keys it cannot answer are scanned as before. */
unsigned imap_search_fts(struct imap_search *s, const struct petrel_storage_ops *ops,
                         struct petrel_folder *folder);
void imap_search_fts_free(struct imap_search *s);
struct petrel_storage_uid_range;
/* After imap_search_fts: the UIDs every match is among (the shortest
 * answer of an indexed key that all the others are ANDed with), as
 * ascending ranges to load (*ranges_r malloc'ed; 0 ranges: nothing can
 * match); false when no key narrows the search, and every message is
 * looked at. */
bool imap_search_fts_narrow(const struct imap_search *s, struct petrel_storage_uid_range **ranges_r,
                            size_t *count_r);

#endif
