/* SEARCH internals shared by its files (never leaves modules/imap): the
 * compiled key tree, the text needles, and the decoding pipeline that text
 * keys are matched through. */
#ifndef PETREL_IMAP_SEARCH_PRIVATE_H
#define PETREL_IMAP_SEARCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/mimetext.h>

#include "imap_search.h"
#include "imap_seqset.h"

/* Limits of one SEARCH command: the hit bits of the text keys fit one
 * uint64_t, and the sliding window keeps the longest needle minus one. */
#define SEARCH_MAX_NEEDLES 64u
#define SEARCH_MAX_NEEDLE_LEN 1024u
#define SEARCH_MAX_DEPTH 32u
#define SEARCH_MAX_NODES 4096u
/* Header bytes read when the caller gave the file only. */
#define SEARCH_MAX_HEADER_BYTES (256u * 1024u)

enum search_kind {
    SK_ALL,
    SK_FLAG,   /* flag set */
    SK_UNFLAG, /* flag clear */
    SK_KEYWORD,
    SK_UNKEYWORD,
    SK_RECENT,
    SK_NEW,
    SK_OLD,
    SK_LARGER,
    SK_SMALLER,
    SK_BEFORE,
    SK_ON,
    SK_SINCE,
    SK_SENTBEFORE,
    SK_SENTON,
    SK_SENTSINCE,
    SK_SEQ,
    SK_UID,
    SK_MODSEQ, /* RFC 7162: MODSEQ at least num */
    SK_TEXT,   /* a needle: HEADER field, BODY or TEXT */
    SK_AND,
    SK_OR,
    SK_NOT,
};

struct search_node {
    enum search_kind kind;
    uint32_t flag;
    uint64_t num;
    int64_t days;
    char *keyword;
    unsigned needle;
    struct imap_seqset set;
    struct search_node **kids;
    size_t kid_count;
    /* S: an SK_UID node whose set is filled before matching: "$" (RFC
     * 5182) or OLDER / YOUNGER num seconds (RFC 5032). */
    enum search_late { SL_NONE, SL_SAVED, SL_OLDER, SL_YOUNGER } late;
};

enum search_where {
    SW_FIELD, /* one header field (FROM, SUBJECT, HEADER name) */
    SW_BODY,  /* the text of the body parts */
    SW_TEXT,  /* header and body */
};

struct search_needle {
    enum search_where where;
    char *field; /* SW_FIELD: the field name */
    char *text;  /* case-folded UTF-8 */
    size_t len;
};

/* What the storage's full-text index answered (imap_search_fts.c). */
struct search_fts {
    uint64_t exact;                     /* needles answered: a UID matches iff it is listed */
    uint64_t filter;                    /* needles narrowed: a UID not listed does not match */
    uint32_t *uids[SEARCH_MAX_NEEDLES]; /* ascending */
    size_t count[SEARCH_MAX_NEEDLES];
};

struct imap_search {
    struct search_node *root;
    struct search_fts *fts; /* NULL: every text key scans */
    struct search_needle needles[SEARCH_MAX_NEEDLES];
    unsigned needle_count;
    size_t node_count;
    bool sent_keys;               /* SENT*: the Date: header is needed */
    bool uses_saved, uses_within; /* S: late nodes to fill */
};

/* ---- text (imap_search_text.c) ---- */

/* A string folded as the texts are (petrel_fold), new and NUL-terminated. */
char *search_fold_str(const char *s, size_t len);

/* Finds the needles of a mask in the texts of petrel_mimetext, each text
 * in pieces: the window keeps the longest needle minus one byte, so a
 * match across two pieces is found, never one across two texts. */
struct search_matcher {
    const struct imap_search *s;
    uint64_t want; /* needles still looked for */
    uint64_t *hits;
    size_t keep; /* longest wanted needle - 1 */
    size_t len;
    char buf[SEARCH_MAX_NEEDLE_LEN + 8192];
};
void search_matcher_init(struct search_matcher *mt, const struct imap_search *s, uint64_t want,
                         uint64_t *hits);
void search_matcher_feed(struct search_matcher *mt, const char *data, size_t len);
/* The end of one text (a field, a part): a match may not span it. */
void search_matcher_end(struct search_matcher *mt);
bool search_matcher_done(const struct search_matcher *mt);
/* A petrel_mimetext_fn feeding the matcher given as ctx. */
bool search_matcher_text(void *ctx, const struct petrel_mimetext_info *info, const char *data,
                         size_t len, bool last);

/* ---- header (imap_search_header.c) ---- */

/* The day (days since 1970-01-01) of an RFC 5322 date, in its own zone. */
bool search_sent_day(const char *value, size_t len, int64_t *days_r);
/* Match the needles of want against the fields of a header block:
 * SW_FIELD needles in the value of their field, SW_TEXT in every
 * "Name: value". */
void search_header_match(const struct imap_search *s, const char *hdr, size_t len, uint64_t want,
                         uint64_t *hits);

/* ---- the index (imap_search_fts.c) ---- */

/* The needles of uid the index decided: known gets their bits, hits those
 * that match. */
void search_fts_apply(const struct search_fts *f, uint32_t uid, uint64_t *known, uint64_t *hits);

/* ---- body (imap_search_body.c) ---- */

/* Match the needles of want (SW_BODY and SW_TEXT) against the body texts
 * of the message in fd. header, when not NULL, is its header block (it
 * spares a parse of the file for a message that is one part). -1: read
 * error. */
int search_body_match(const struct imap_search *s, int fd, const char *header, size_t header_len,
                      uint64_t want, uint64_t *hits);

#endif
