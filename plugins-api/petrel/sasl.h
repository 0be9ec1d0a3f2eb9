/* Server side of the SASL PLAIN (RFC 4616) and LOGIN mechanisms, without
 * I/O: a protocol module feeds the client's lines and sends the challenges
 * it is given, in its own framing ("+ " in IMAP, "334 " in SMTP). Every
 * client line is base64, decoded strictly (no blanks, canonical padding)
 * within size limits; "*" cancels; "=" is an empty initial response.
 * Identities with NULs or control characters are refused. */
#ifndef PETREL_SASL_H
#define PETREL_SASL_H

#include <stdbool.h>
#include <stddef.h>

#define PETREL_SASL_ID_MAX 255       /* authzid, authcid */
#define PETREL_SASL_PASSWORD_MAX 511 /* as PETREL_PASSWORD_MAX */
/* Longest client line accepted: base64 of the largest PLAIN message. */
#define PETREL_SASL_LINE_MAX 1364

enum petrel_sasl_mech {
    PETREL_SASL_PLAIN = 0,
    PETREL_SASL_LOGIN,
};

enum petrel_sasl_status {
    PETREL_SASL_CONTINUE = 0, /* send *challenge_r (base64, maybe ""), feed the next line */
    PETREL_SASL_DONE,         /* credentials ready: petrel_sasl_credentials() */
    PETREL_SASL_CANCELLED,    /* the client sent "*" */
    PETREL_SASL_ERROR,        /* malformed: *error_r says why (safe to log) */
};

struct petrel_sasl;

/* "PLAIN", "LOGIN" in any case. False if unknown. */
bool petrel_sasl_mech_parse(const char *name, enum petrel_sasl_mech *mech_r);
const char *petrel_sasl_mech_name(enum petrel_sasl_mech mech);

struct petrel_sasl *petrel_sasl_new(enum petrel_sasl_mech mech);
/* Wipes the password. */
void petrel_sasl_free(struct petrel_sasl *sasl);

/* Begin. initial is the initial response as sent ("=" for empty) or NULL
 * when the client gave none. */
enum petrel_sasl_status petrel_sasl_start(struct petrel_sasl *sasl, const char *initial,
                                          const char **challenge_r, const char **error_r);
/* One client line (without its line end); len shows embedded NULs. */
enum petrel_sasl_status petrel_sasl_step(struct petrel_sasl *sasl, const char *line, size_t len,
                                         const char **challenge_r, const char **error_r);

/* After DONE: the identities and the password, NUL-terminated, valid until
 * petrel_sasl_free. authzid is "" when the client gave none. */
struct petrel_sasl_credentials {
    const char *authzid;
    const char *authcid;
    const char *password;
};
bool petrel_sasl_credentials(const struct petrel_sasl *sasl, struct petrel_sasl_credentials *r);

/* Strict base64 decoding (RFC 4648, padded, no blanks, zero trailing
 * bits) into out of size bytes. Returns the decoded length, or -1. */
long petrel_sasl_base64_decode(const char *in, size_t len, unsigned char *out, size_t size);

#endif
