/* SMTP dot-stuffing for whatever sends a stored message as DATA (smtp_out,
 * a relay, a proxy): every line that starts with "." gets one more in
 * front (RFC 5321 section 4.5.2), and the data ends with CRLF "." CRLF.
 * Stored and queued messages have CRLF line ends, and smtp_in turns a bare
 * CR or LF into CRLF, so a client's "<CR>.<CR>" is a real "." line in the
 * queue: sent unstuffed, it would end the message early and run the rest
 * as commands at the next hop. Streaming: feed the message in any pieces.
 * Since ABI minor 4. */
#ifndef PETREL_DOTSTUFF_H
#define PETREL_DOTSTUFF_H

#include <stdbool.h>
#include <stddef.h>

#include <petrel/buf.h>

struct petrel_dotstuff {
    bool line_start; /* the next byte starts a line */
    bool crlf;       /* the bytes so far end in CRLF (or nothing was sent) */
    bool last_cr;    /* the last byte was a CR */
};

void petrel_dotstuff_init(struct petrel_dotstuff *d);
/* Append len bytes of the message, stuffed, to out. False when out is
 * full (its cap): nothing is lost from what was appended before. */
bool petrel_dotstuff_add(struct petrel_dotstuff *d, const char *data, size_t len,
                         struct petrel_buf *out);
/* Append the end of the data: a CRLF when the message does not end in
 * one, then ".\r\n". */
bool petrel_dotstuff_end(struct petrel_dotstuff *d, struct petrel_buf *out);

#endif
