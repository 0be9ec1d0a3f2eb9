/* Content-Transfer-Encoding decoding (RFC 2045 section 6): base64 and
 * quoted-printable decoded, 7bit, 8bit and binary passed through. The one
 * decoder the core's search text (petrel/mimetext.h) and IMAP BINARY use,
 * so they never disagree on a body's bytes. Streaming: feed the encoded
 * bytes in pieces of any size, the output is the same for every split; the
 * state is this struct, nothing is allocated. Decoding is lenient, as RFC
 * 2045 asks of readers: bytes outside the base64 alphabet are skipped and
 * base64 ends at its first '='; a broken QP escape goes through as
 * written. Damage is only reported (petrel_cte_end), never fatal. No I/O;
 * callable from any thread. Since ABI minor 10. */
#ifndef PETREL_CTE_H
#define PETREL_CTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <petrel/buf.h>

enum petrel_cte_kind {
    PETREL_CTE_IDENTITY, /* 7bit, 8bit, binary */
    PETREL_CTE_BASE64,
    PETREL_CTE_QP,
};

struct petrel_cte {
    enum petrel_cte_kind kind;
    uint32_t b64_acc;
    unsigned b64_bits;
    unsigned b64_count; /* sextets of the current quantum */
    bool b64_end;       /* '=' seen: the rest is ignored */
    unsigned qp_state;  /* 0 text, 1 after '=', 2 after "=X", 3 after "=\r" */
    char qp_hex;
    bool damaged; /* input that is not what the encoding allows */
};

/* Start decoding by the encoding's name (case-insensitive; NULL is 7bit,
 * the default). False for an encoding the decoder does not know (the
 * decoder is then identity, so a caller that goes on gets raw bytes). */
bool petrel_cte_init(struct petrel_cte *d, const char *encoding);
/* Whether petrel_cte_init would know the name. */
bool petrel_cte_known(const char *encoding);

/* Decode len bytes of in to out, which has room for len + 2 bytes (the
 * output is never longer); returns the bytes written. */
size_t petrel_cte_decode(struct petrel_cte *d, const char *in, size_t len, char *out);
/* The end of the input: out (room for 2 bytes) gets what a QP escape cut
 * by the end stands for ("=" or "=X", as written); *len_r its length.
 * Returns false when the input was damaged anywhere (garbage in base64
 * other than blanks and line ends, a quantum cut short, bytes after the
 * padding, a broken QP escape); the output is still what it is. */
bool petrel_cte_end(struct petrel_cte *d, char *out, size_t *len_r);

/* The same, appended to a capped buffer: false when out is full (what
 * was appended before stays). */
bool petrel_cte_decode_buf(struct petrel_cte *d, const char *in, size_t len,
                           struct petrel_buf *out);

#endif
