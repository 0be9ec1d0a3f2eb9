/* Streaming MIME parser (RFC 2045, 2046, 2047, 2231, 5322). The parser is a
 * resumable state machine with no I/O: feed it a message in pieces of any
 * size and it builds the tree of parts with their headers decoded and the
 * offsets, sizes and line counts IMAP BODYSTRUCTURE needs. Bodies are only
 * counted, never kept, and every buffer is bounded by the limits: input that
 * exceeds them or is malformed still gives a best-effort tree. */
#ifndef PETREL_MIME_H
#define PETREL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Limits on what one parse may keep. A zero field takes its default. */
struct petrel_mime_limits {
    unsigned int max_depth; /* deepest part nesting (root = 0); default 16 */
    unsigned int max_parts; /* parts in the whole tree; default 1000 */
    size_t max_header_size; /* bytes of one part's header kept; default 256 KiB */
    size_t max_field_size;  /* bytes of one header field (with its folds) kept; 64 KiB */
    unsigned int reserved[4];
};

#define PETREL_MIME_DEFAULT_MAX_DEPTH 16
#define PETREL_MIME_DEFAULT_MAX_PARTS 1000
#define PETREL_MIME_DEFAULT_MAX_HEADER_SIZE (256 * 1024)
#define PETREL_MIME_DEFAULT_MAX_FIELD_SIZE (64 * 1024)

/* A Content-Type or Content-Disposition parameter. */
struct petrel_mime_param {
    char *name;  /* lower-cased, RFC 2231 section and '*' markers removed */
    char *value; /* RFC 2231 / RFC 2047 decoded; UTF-8 when the charset was known */
};

/* One entry of an address list, as IMAP ENVELOPE represents it. A group
 * "name: a@b, c@d;" becomes a start marker (mailbox = group name, host
 * NULL), its members, and an end marker (mailbox and host NULL). An address
 * without a domain has host "" so that it is never taken for a marker. */
struct petrel_mime_address {
    struct petrel_mime_address *next;
    char *name;    /* display name decoded to UTF-8, or NULL */
    char *route;   /* obsolete source route "@a,@b", or NULL */
    char *mailbox; /* local part, unquoted */
    char *host;    /* domain */
};

/* The envelope of a message. The strings are the header values as they were
 * (unfolded, surrounding blanks removed; NULL when the field is absent). The
 * lists are parsed; sender and reply_to default to a copy of from when their
 * field is absent (RFC 3501 ENVELOPE rule), so only the strings tell. */
struct petrel_mime_envelope {
    char *date, *subject, *from, *sender, *reply_to, *to, *cc, *bcc;
    char *in_reply_to, *message_id;
    struct petrel_mime_address *from_list, *sender_list, *reply_to_list;
    struct petrel_mime_address *to_list, *cc_list, *bcc_list;
};

/* A node of the tree. Offsets count bytes of the input exactly as fed (CRLF
 * or bare LF). The header includes the empty line that ends it; the body of
 * a multipart's child ends before the line break that precedes the next
 * boundary, which belongs to the boundary (RFC 2046 section 5.1.1). A
 * boundary line is "--boundary" or "--boundary--" followed by nothing but
 * blanks; it also ends a header that has no empty line. Content-* fields are
 * read with or without MIME-Version; no charset parameter is invented. */
struct petrel_mime_part {
    struct petrel_mime_part *parent;
    struct petrel_mime_part *children; /* first child */
    struct petrel_mime_part *next;     /* next sibling */
    unsigned int depth;                /* 0 for the root */

    char *type;    /* lower-cased; "text" by default ("message" in a digest) */
    char *subtype; /* lower-cased; "plain" by default ("rfc822" in a digest) */
    struct petrel_mime_param *params;
    unsigned int param_count;
    char *id;          /* Content-ID as written, or NULL */
    char *description; /* Content-Description decoded to UTF-8, or NULL */
    char *encoding;    /* Content-Transfer-Encoding, lower-cased; "7bit" by default */
    char *disposition; /* Content-Disposition type, lower-cased, or NULL */
    struct petrel_mime_param *disposition_params;
    unsigned int disposition_param_count;
    char *language; /* Content-Language as written, or NULL */
    char *location; /* Content-Location as written, or NULL */
    char *md5;      /* Content-MD5 as written, or NULL */

    uint64_t header_offset, header_size;
    uint64_t body_offset, body_size;
    /* Lines of the body: line feeds, plus one for a last line without one. */
    uint64_t body_lines;

    /* The envelope of this part's own header when that is a message
     * header: the root's, and that of the only child of a message/rfc822
     * part (the message it holds). NULL on other parts. A part that is
     * message/rfc822 can so be a message itself (the root) and hold one:
     * petrel_mime_part_embedded_envelope() gives the held one. */
    struct petrel_mime_envelope *envelope;
    /* Set on the root when a limit cut the parse short somewhere. */
    bool limits_hit;
};

struct petrel_mime_parser;

/* Start a parse; NULL limits means all defaults. */
struct petrel_mime_parser *petrel_mime_parser_new(const struct petrel_mime_limits *limits);
/* Give the next bytes of the message. Any split gives the same tree. */
void petrel_mime_parser_feed(struct petrel_mime_parser *p, const void *data, size_t len);
/* End of the message: close every open part and hand over the tree, which
 * the caller frees with petrel_mime_part_free(). Returns -1 only when called
 * twice. The parser still needs petrel_mime_parser_free(). */
int petrel_mime_parser_finish(struct petrel_mime_parser *p, struct petrel_mime_part **root_r,
                              const char **error_r);
/* Free a parser, and the tree too unless finish handed it over. */
void petrel_mime_parser_free(struct petrel_mime_parser *p);
/* Free a part and everything below it (call on the root). */
void petrel_mime_part_free(struct petrel_mime_part *part);

/* The envelope of the message a message/rfc822 part holds (NULL when it
 * holds none: another type, or an encoding other than 7bit/8bit/binary). */
const struct petrel_mime_envelope *
petrel_mime_part_embedded_envelope(const struct petrel_mime_part *part);

/* The value of a parameter by name (case-insensitive), or NULL. */
const char *petrel_mime_param_find(const struct petrel_mime_param *params, unsigned int count,
                                   const char *name);

/* Decode RFC 2047 encoded words in a header value to UTF-8. Blanks between
 * adjacent encoded words go (section 6.2); words with an unknown charset or
 * a broken encoding stay as written; other bytes that are not UTF-8 become
 * U+FFFD. The result has at most max_out bytes. Never NULL; free() it. */
char *petrel_mime_decode_header(const char *value, size_t max_out);

/* Convert len bytes in charset to UTF-8 (NUL-terminated, at most max_out
 * bytes), invalid input bytes becoming U+FFFD. NULL when the charset is
 * unknown, so the caller can keep the raw bytes. free() the result. */
char *petrel_charset_to_utf8(const char *charset, const char *data, size_t len, size_t max_out);

/* Parse an address list (From, To, ...): quoted strings, comments, angle
 * addresses, obsolete routes, groups, encoded-word display names. Garbage is
 * skipped. Stops after max_count entries (0: no limit), plus the end marker
 * of a group left open. NULL when empty. */
struct petrel_mime_address *petrel_mime_parse_addresses(const char *value, unsigned int max_count);
void petrel_mime_addresses_free(struct petrel_mime_address *list);

#endif
