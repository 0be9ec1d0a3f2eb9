/* Modified UTF-7 (RFC 3501 section 5.1.3), the folder names of IMAP4rev1
 * on the wire, to and from the UTF-8 the store keeps. Decoding takes only
 * the canonical form, what encoding gives, so that a folder has exactly
 * one wire name. */
#ifndef PETREL_IMAP_MUTF7_H
#define PETREL_IMAP_MUTF7_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/buf.h>

/* UTF-8 to modified UTF-7, appended to out. False for invalid UTF-8
 * (overlong forms, surrogates, past U+10FFFF, cut sequences), NUL, or
 * when out's cap is reached; out then holds a partial result. */
bool imap_mutf7_encode(const char *utf8, size_t len, struct petrel_buf *out);
/* Modified UTF-7 to UTF-8, appended to out. False for bytes outside
 * printable ASCII, a "&" run that is unterminated, holds bad base64,
 * non-zero padding bits or a needless character, encodes a printable
 * ASCII character or NUL, holds an unpaired surrogate, or follows another
 * run directly; or when out's cap is reached. */
bool imap_mutf7_decode(const char *s, size_t len, struct petrel_buf *out);
/* Whether s is valid UTF-8 without NUL (printable: and without other C0
 * controls and DEL): the quoted strings and folder names IMAP4rev2 and
 * UTF8=ACCEPT take. */
bool imap_utf8_valid(const char *s, size_t len, bool printable);

#endif
