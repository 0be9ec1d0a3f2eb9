/* What the next hop says: SMTP replies, one line at a time, and the EHLO
 * keywords in them. No I/O and no allocation, so the unit tests and the
 * fuzzer drive it directly. */
#ifndef SMTP_OUT_REPLY_H
#define SMTP_OUT_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>
#include <petrel/transport.h>

#define SMTP_REPLY_LINE_MAX 2048 /* longest reply line read (RFC 5321: 512) */
#define SMTP_REPLY_LINES_MAX 100 /* lines in one reply */
#define SMTP_REPLY_TEXT_MAX 400  /* the joined text kept for reasons and logs */
#define SMTP_REPLY_DOMAIN_MAX 255

struct smtp_reply {
    int code;          /* the three digits, once the first line is read */
    char enhanced[16]; /* "5.1.1" from the first line (RFC 3463), or "" */
    /* The lines' text joined with single spaces, their enhanced codes
     * dropped, anything but printable ASCII as '?', cut at
     * SMTP_REPLY_TEXT_MAX (truncated says so). */
    char text[SMTP_REPLY_TEXT_MAX + 1];
    size_t text_len;
    bool truncated;
    /* The first word of the first line: the peer's name in a greeting or
     * an EHLO reply (loop detection). */
    char domain[SMTP_REPLY_DOMAIN_MAX + 1];
    unsigned lines;
    bool done;
};

enum smtp_reply_step {
    SMTP_REPLY_MORE, /* a continuation line: feed the next */
    SMTP_REPLY_DONE, /* the last line: the reply is complete */
    SMTP_REPLY_BAD,  /* not a reply line (or too many lines): a protocol error */
};

void smtp_reply_init(struct smtp_reply *r);
/* Feed one line without its CRLF (len counts every byte, NULs too).
 * text_r, if not NULL, gets this line's text after "NNN-" / "NNN " (the
 * EHLO keyword lines), NUL-terminated when line is. After DONE or BAD,
 * smtp_reply_init before the next reply. */
enum smtp_reply_step smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len,
                                     const char **text_r);

/* The ESMTP extensions a server names in its EHLO reply. */
struct smtp_ehlo {
    bool pipelining, size, eightbitmime, smtputf8, dsn, starttls, chunking, binarymime;
    bool requiretls;                   /* RFC 8689 */
    bool auth, auth_plain, auth_login; /* AUTH (RFC 4954) and two of its mechanisms */
    uint64_t size_limit;               /* SIZE's argument; 0: none given (no limit) */
};
/* One EHLO reply line's text (not the first line's, which names the
 * server). Unknown keywords are ignored. */
void smtp_ehlo_keyword(struct smtp_ehlo *e, const char *text, size_t len);

/* A reason from a reply, as transport.h wants it: "550 5.1.1 text (in
 * reply to RCPT TO, from mx.example.org[192.0.2.1])", cut to fit out
 * (the text gives way, never the code or the context). A reply without an
 * enhanced code gets the class's "X.0.0". */
void smtp_reply_reason(char *out, size_t size, const struct smtp_reply *r, const char *command,
                       const char *peer);

/* Commands. Each appends one CRLF-terminated command to out and returns
 * false (out as it was) if a value cannot be sent: a control character in
 * an address, or out is full. */
struct petrel_transport_msg;
struct petrel_transport_rcpt;
bool smtp_cmd_mail(struct petrel_buf *out, const struct petrel_transport_msg *msg,
                   const struct smtp_ehlo *e);
bool smtp_cmd_rcpt(struct petrel_buf *out, const struct petrel_transport_rcpt *rcpt,
                   const struct smtp_ehlo *e);
/* Whether an address can go in MAIL FROM:<...> or RCPT TO:<...>: no
 * control characters (they would end the command at the next hop). */
bool smtp_addr_sendable(const char *address);
/* xtext (RFC 3461 section 4) of s. */
bool smtp_xtext(struct petrel_buf *out, const char *s);

#endif
