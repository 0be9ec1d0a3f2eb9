/* IMAP strings for the FETCH structure answers (RFC 3501 section 4.3):
 * appended to a capped buffer, quoted when safe, else as literals. A
 * writer that runs out of room says so, so that its caller can fall back
 * to a smaller answer instead of sending a cut one. */
#ifndef PETREL_IMAP_MIME_STR_H
#define PETREL_IMAP_MIME_STR_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/buf.h>

struct imap_mime_writer {
    struct petrel_buf *out;
    size_t str_max; /* bytes of one string kept (0: all) */
    bool full;      /* an append failed: the answer is incomplete */
};

void imap_mime_put(struct imap_mime_writer *w, const char *s, size_t len);
void imap_mime_put_cstr(struct imap_mime_writer *w, const char *s);
/* A string, or NIL for NULL. */
void imap_mime_put_nstring(struct imap_mime_writer *w, const char *s);
/* A string upper-cased (types, subtypes, parameter names, encodings). */
void imap_mime_put_upper(struct imap_mime_writer *w, const char *s);
void imap_mime_put_u64(struct imap_mime_writer *w, unsigned long long n);

#endif
