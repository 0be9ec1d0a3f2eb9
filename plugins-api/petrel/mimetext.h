/* The searchable text of a message: the one extractor that IMAP SEARCH
 * scans and the storage's full-text index both read, so that the two can
 * never disagree (docs/fts.md). A message becomes a sequence of texts,
 * each valid UTF-8, case folded with petrel_fold():
 *
 *   - PETREL_MIMETEXT_FIELD: one field of the message's header, as
 *     "Name: value" with the value unfolded and RFC 2047 decoded;
 *   - PETREL_MIMETEXT_BODY: one text part (transfer decoded, converted
 *     to UTF-8, text/html reduced to its text), one field of an attached
 *     message's header ("Name: value"), or one attachment's file name.
 *
 * A match never spans two texts. Texts stream in pieces; the callback
 * says where each ends. Nothing here keeps a message in memory: buffers
 * are fixed and the text of one message is capped. No I/O but pread on
 * the caller's fd; callable from any thread. Since ABI minor 9. */
#ifndef PETREL_MIMETEXT_H
#define PETREL_MIMETEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Body text bytes given for one message; the rest is not looked at. */
#define PETREL_MIMETEXT_MAX_TEXT (64u * 1024u * 1024u)
/* Bytes of a message the MIME parse reads to find the parts. */
#define PETREL_MIMETEXT_MAX_PARSE (256ull * 1024u * 1024u)
/* Bytes of an attached message's header looked at. */
#define PETREL_MIMETEXT_MAX_HEADER (256u * 1024u)

/* Case folding of UTF-8 that keeps every length (so a match in the folded
 * text is a match in the text): ASCII, Latin-1, Latin Extended-A, Greek
 * and Cyrillic capitals to small letters. A lead byte waits in pending
 * until its continuation byte is seen. */
struct petrel_fold {
    unsigned char pending;
};
/* Fold len bytes of in to out (room for len + 1); returns the bytes written. */
size_t petrel_fold(struct petrel_fold *f, const char *in, size_t len, char *out);
size_t petrel_fold_end(struct petrel_fold *f, char *out);
/* A whole string folded into a new NUL-terminated one; free() it. */
char *petrel_fold_str(const char *s, size_t len);

enum petrel_mimetext_kind {
    PETREL_MIMETEXT_FIELD,
    PETREL_MIMETEXT_BODY,
};

struct petrel_mimetext_info {
    enum petrel_mimetext_kind kind;
    /* A header field (of the message or of an attached one): its name as
     * written, and the bytes of "Name: " before the value. NULL and 0 for
     * a part's text or a file name. */
    const char *field;
    size_t value_offset;
};

/* A piece of the current text; last: the text ends with it (a piece may
 * then be empty). Return false to stop the extraction. */
typedef bool petrel_mimetext_fn(void *ctx, const struct petrel_mimetext_info *info,
                                const char *data, size_t len, bool last);

/* The fields of a header block (up to its empty line) as FIELD texts,
 * each given whole. Returns false when fn stopped it. */
bool petrel_mimetext_header(const char *hdr, size_t len, petrel_mimetext_fn *fn, void *ctx);

/* The BODY texts of the message in fd, read with pread from offset 0.
 * header, when not NULL, is its header block: it spares a parse of the
 * file for a message that is one part. Returns -1 on a read error, else 0
 * (also when fn stopped it). */
int petrel_mimetext_body(int fd, const char *header, size_t header_len, petrel_mimetext_fn *fn,
                         void *ctx);

/* Unfolded raw fields of a header block, name and value apart (the value
 * neither decoded nor folded, cut at PETREL_MIME_DEFAULT_MAX_FIELD_SIZE).
 * Returns false when fn asked to stop. */
typedef bool petrel_header_field_fn(const char *name, size_t name_len, const char *value,
                                    size_t value_len, void *ctx);
bool petrel_header_fields(const char *hdr, size_t len, petrel_header_field_fn *fn, void *ctx);

/* One part's body bytes to text: transfer decoding, charset to UTF-8
 * (bytes that are not UTF-8 become U+FFFD), HTML to text when html, then
 * folding. Exposed for tests and for callers that hold the bytes. */
struct petrel_mimetext_part;
struct petrel_mimetext_part *petrel_mimetext_part_new(const char *encoding, const char *charset,
                                                      bool html, petrel_mimetext_fn *fn, void *ctx);
/* false once fn asked to stop. */
bool petrel_mimetext_part_feed(struct petrel_mimetext_part *p, const char *data, size_t len);
/* Ends the text (fn gets last = true unless it stopped) and frees p. */
bool petrel_mimetext_part_free(struct petrel_mimetext_part *p);

#endif
