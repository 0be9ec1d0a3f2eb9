/* The ENVELOPE of a message header (RFC 3501 section 7.4.2). */
#ifndef PETREL_IMAP_ENVELOPE_H
#define PETREL_IMAP_ENVELOPE_H

#include <petrel/mime.h>

#include "imap_mime_str.h"

/* Addresses written per address list; more are left out (a header with
 * thousands of recipients would otherwise make a huge answer). */
#define IMAP_ENVELOPE_MAX_ADDRESSES 100

/* Write the envelope of env (NULL: every field NIL). RFC 2047 encoded words
 * are left as they are, as RFC 3501 asks. */
void imap_envelope_write(struct imap_mime_writer *w, const struct petrel_mime_envelope *env);

#endif
