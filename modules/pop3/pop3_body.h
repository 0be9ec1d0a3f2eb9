/* A stored message as RETR and TOP send it (RFC 1939 section 3): every
 * line ends in CRLF (a bare LF of a file another program wrote gets its
 * CR), a line that starts with "." gets one more in front, and the
 * multi-line answer ends with "." CRLF. TOP stops after the header and n
 * lines of the body. No I/O: the message is fed in any pieces. */
#ifndef PETREL_POP3_BODY_H
#define PETREL_POP3_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

struct pop3_body {
    bool line_start; /* the next byte starts a line */
    bool last_cr;    /* the last byte fed was a CR */
    bool in_header;
    bool top;        /* stop after the header and lines_left body lines */
    bool done;       /* TOP: everything wanted has been sent */
    size_t line_len; /* bytes of the current line so far */
    uint32_t lines_left;
};

void pop3_body_init(struct pop3_body *b, bool top, uint32_t lines);
/* Append len bytes of the message, converted, to out; out must have room
 * for twice len plus 2 (every byte may become two). Returns the bytes
 * taken: fewer than len once TOP has all it wants (b->done). */
size_t pop3_body_feed(struct pop3_body *b, const char *data, size_t len, struct petrel_buf *out);
/* The end: a CRLF if the last line had none, then "." CRLF. */
void pop3_body_end(struct pop3_body *b, struct petrel_buf *out);

#endif
