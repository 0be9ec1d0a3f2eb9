/* SEARCH internals shared by its files (never leaves modules/imap): the
 * compiled key tree, the text needles, and the decoding pipeline that text
 * keys are matched through. */
#ifndef PETREL_IMAP_SEARCH_PRIVATE_H
#define PETREL_IMAP_SEARCH_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_search.h"
#include "imap_seqset.h"

/* Limits of one SEARCH command: the hit bits of the text keys fit one
 * uint64_t, and the sliding window keeps the longest needle minus one. */
#define SEARCH_MAX_NEEDLES 64u
#define SEARCH_MAX_NEEDLE_LEN 1024u
#define SEARCH_MAX_DEPTH 32u
#define SEARCH_MAX_NODES 4096u
/* Work on one message: decoded text bytes matched (the rest is not looked
 * at) and header bytes read when the caller gave the file only. */
#define SEARCH_MAX_TEXT_BYTES (64u * 1024u * 1024u)
#define SEARCH_MAX_HEADER_BYTES (256u * 1024u)
/* Bytes of a message the MIME parse reads to find the parts. */
#define SEARCH_MAX_PARSE_BYTES (256ull * 1024u * 1024u)
/* Bytes read from the file at once. */
#define SEARCH_READ_CHUNK (64u * 1024u)

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
    SK_TEXT, /* a needle: HEADER field, BODY or TEXT */
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

struct imap_search {
    struct search_node *root;
    struct search_needle needles[SEARCH_MAX_NEEDLES];
    unsigned needle_count;
    size_t node_count;
    bool sent_keys;               /* SENT*: the Date: header is needed */
    bool uses_saved, uses_within; /* S: late nodes to fill */
};

/* ---- text (imap_search_text.c) ---- */

/* Case folding of UTF-8 that keeps every length: ASCII, Latin-1, Latin
 * Extended-A, Greek and Cyrillic capitals to small letters. A lead byte
 * waits in pending until its continuation byte is seen. */
struct search_fold {
    unsigned char pending;
};
/* Fold len bytes of in to out (room for len + 1); returns the bytes written. */
size_t search_fold(struct search_fold *f, const char *in, size_t len, char *out);
size_t search_fold_end(struct search_fold *f, char *out);
/* A whole string folded into a new NUL-terminated one. */
char *search_fold_str(const char *s, size_t len);

/* Finds the needles of a mask in a stream of folded text, across pieces. */
struct search_matcher {
    const struct imap_search *s;
    uint64_t want; /* needles still looked for */
    uint64_t *hits;
    size_t keep; /* longest wanted needle - 1 */
    size_t len;
    uint64_t budget; /* text bytes this message may still match */
    char buf[SEARCH_MAX_NEEDLE_LEN + 8192];
};
void search_matcher_init(struct search_matcher *mt, const struct imap_search *s, uint64_t want,
                         uint64_t *hits);
void search_matcher_feed(struct search_matcher *mt, const char *data, size_t len);
/* The end of one text (a field, a part): a match may not span it. */
void search_matcher_end(struct search_matcher *mt);
bool search_matcher_done(const struct search_matcher *mt);

/* One body part's bytes: transfer decoding, charset to UTF-8, folding. */
struct search_part;
struct search_part *search_part_new(const char *encoding, const char *charset,
                                    struct search_matcher *mt);
void search_part_feed(struct search_part *p, const char *data, size_t len);
void search_part_free(struct search_part *p); /* ends the text too */

/* ---- header (imap_search_header.c) ---- */

/* Each field of a header block unfolded, name and value apart. Returns
 * false when the callback asked to stop. */
typedef bool search_field_fn(const char *name, size_t name_len, const char *value, size_t value_len,
                             void *ctx);
bool search_header_fields(const char *hdr, size_t len, search_field_fn *fn, void *ctx);
/* The day (days since 1970-01-01) of an RFC 5322 date, in its own zone. */
bool search_sent_day(const char *value, size_t len, int64_t *days_r);
/* Match the needles of want against a header block, every field decoded
 * (RFC 2047) and folded: SW_FIELD needles in their field, SW_TEXT in every
 * "name: value"; in_body (an attached message's header): SW_BODY and
 * SW_TEXT in every field, SW_FIELD nowhere. */
void search_header_match(const struct imap_search *s, const char *hdr, size_t len, uint64_t want,
                         uint64_t *hits, bool in_body);

/* ---- body (imap_search_body.c) ---- */

/* Match the needles of want against the text of every body part of the
 * message in fd. header, when not NULL, is its header block (it spares a
 * parse of the file for a message that is one part). -1: read error. */
int search_body_match(const struct imap_search *s, int fd, const char *header, size_t header_len,
                      uint64_t want, uint64_t *hits);

#endif
