/* The SMTP command grammar (RFC 5321 section 4.1, with the parameters of
 * SIZE RFC 1870, 8BITMIME RFC 6152, SMTPUTF8 RFC 6531, DSN RFC 3461, AUTH
 * RFC 4954, CHUNKING RFC 3030 and REQUIRETLS RFC 8689). Pure functions over one command line,
 * no I/O and no allocation, so unit tests and the fuzzer drive them
 * directly. A refusal comes back as the reply the client gets. */
#ifndef PETREL_SMTP_PARSE_H
#define PETREL_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 section 4.5.3.1. */
#define SMTP_LOCAL_MAX 64   /* octets of a local part (quotes included) */
#define SMTP_DOMAIN_MAX 255 /* octets of a domain or address literal */
#define SMTP_PATH_MAX 256   /* octets of a path, brackets included */
/* RFC 3461: ENVID and ORCPT values, after xtext decoding. */
#define SMTP_ENVID_MAX 100
#define SMTP_ORCPT_MAX 500

/* A refusal: the reply code, the enhanced status code and a short text.
 * Static strings. */
struct smtp_reply {
    int code;             /* 501, 553, 555 ... */
    const char *enhanced; /* "5.5.4" */
    const char *text;     /* "syntax error in parameters" */
};

enum smtp_verb {
    SMTP_UNKNOWN = 0,
    SMTP_HELO,
    SMTP_EHLO,
    SMTP_MAIL,
    SMTP_RCPT,
    SMTP_DATA,
    SMTP_BDAT,
    SMTP_RSET,
    SMTP_NOOP,
    SMTP_QUIT,
    SMTP_VRFY,
    SMTP_EXPN,
    SMTP_HELP,
    SMTP_STARTTLS,
    SMTP_AUTH,
};

/* Split a command line (terminator removed, NUL-terminated at line[len]
 * as the connection hands it over) into its verb and the rest.
 * The verb is matched case-insensitively; "MAIL FROM:" and "RCPT TO:" are
 * recognised by their first word. args points into line, after the single
 * space that follows the verb (leading spaces skipped), or at "" when
 * there is none. Returns SMTP_UNKNOWN for an unknown or malformed verb
 * (NUL bytes, non-ASCII, longer than 16 octets). */
enum smtp_verb smtp_parse_verb(const char *line, size_t len, const char **args_r);

/* A mailbox from a reverse-path or forward-path. */
struct smtp_address {
    /* "local@domain" in canonical form: the local part unquoted when it is
     * a dot-atom, else quoted with only the necessary backslashes; the
     * domain in lower case (ASCII letters only); an address literal keeps
     * its brackets.
     * "" for the null path <>; "postmaster" for the special <Postmaster>. */
    char address[SMTP_PATH_MAX + 1];
    size_t local_len;    /* octets of the local part within address */
    bool null;           /* <> */
    bool postmaster;     /* <postmaster> without a domain (RCPT only) */
    bool domain_literal; /* [192.0.2.1] or [IPv6:...] */
    bool quoted;         /* the local part needed quotes */
    bool utf8;           /* non-ASCII octets (valid UTF-8) in the address */
};

/* DSN (RFC 3461). */
enum smtp_dsn_ret { SMTP_RET_NONE = 0, SMTP_RET_FULL, SMTP_RET_HDRS };
enum smtp_dsn_notify {
    SMTP_NOTIFY_NEVER = 1u << 0,
    SMTP_NOTIFY_SUCCESS = 1u << 1,
    SMTP_NOTIFY_FAILURE = 1u << 2,
    SMTP_NOTIFY_DELAY = 1u << 3,
};
enum smtp_body { SMTP_BODY_NONE = 0, SMTP_BODY_7BIT, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

struct smtp_mail {
    struct smtp_address from;
    uint64_t size;                  /* SIZE=, 0 when absent */
    enum smtp_body body;            /* BODY= */
    bool smtputf8;                  /* SMTPUTF8 */
    enum smtp_dsn_ret ret;          /* RET= */
    char envid[SMTP_ENVID_MAX + 1]; /* ENVID=, xtext-decoded; "" when absent */
    bool has_envid;
    /* AUTH=<mailbox> or AUTH=<>, xtext-decoded (RFC 4954 section 5);
     * accepted and otherwise ignored, as the RFC allows. */
    char auth[SMTP_PATH_MAX + 1];
    bool has_auth;
    bool requiretls; /* REQUIRETLS (RFC 8689): relay only over verified TLS */
};

struct smtp_rcpt {
    struct smtp_address to;
    unsigned notify; /* enum smtp_dsn_notify bits; 0 when absent */
    /* ORCPT=addr-type;xtext: the type ("rfc822", "utf-8") and the decoded
     * address; "" when absent. */
    char orcpt_type[16];
    char orcpt[SMTP_ORCPT_MAX + 1];
};

/* What the listener lets through; extensions not offered are refused as
 * unknown parameters (555 5.5.4). */
struct smtp_parse_opts {
    bool smtputf8; /* SMTPUTF8 offered */
    bool dsn;      /* DSN offered */
    bool chunking; /* BINARYMIME is only valid with CHUNKING (RFC 3030) */
    bool eightbit; /* 8BITMIME offered */
    /* REQUIRETLS (RFC 8689) is known (the requiretls setting); it is
     * accepted only when tls says the session is encrypted, and refused
     * with 530 5.7.10 otherwise (RFC 8689 section 4.1). */
    bool requiretls;
    bool tls;
};

/* The arguments of MAIL: "FROM:<path> [params]" (a space after the colon
 * is tolerated, as most servers do). Source routes ("<@a,@b:u@c>") are
 * refused (RFC 5321 section 3.6.1 lets a server decline them). A non-ASCII
 * address needs the SMTPUTF8 parameter (553 5.6.7). Returns false with
 * *err filled in. */
bool smtp_parse_mail(const char *args, const struct smtp_parse_opts *opts, struct smtp_mail *out,
                     struct smtp_reply *err);

/* The arguments of RCPT: "TO:<path> [params]". The null path is refused;
 * "<postmaster>" (any case) is allowed without a domain. utf8_ok says
 * whether the transaction's MAIL had SMTPUTF8 (else a non-ASCII address is
 * refused with 553 5.6.7). */
bool smtp_parse_rcpt(const char *args, const struct smtp_parse_opts *opts, bool utf8_ok,
                     struct smtp_rcpt *out, struct smtp_reply *err);

/* "BDAT <size> [LAST]" arguments (RFC 3030). size up to max (else 552
 * 5.3.4 is the caller's reply; this only checks syntax and overflow). */
bool smtp_parse_bdat(const char *args, uint64_t *size_r, bool *last_r, struct smtp_reply *err);

/* The domain or address literal of HELO/EHLO, which goes into the
 * Received: field: one word that is a host name (letters, digits, hyphens
 * and underscores in dot-separated labels) or an address literal
 * ("[192.0.2.1]", "[IPv6:2001:db8::1]"). Anything else, HELO and EHLO
 * alike, is refused with 501 5.5.2. ehlo only names the command in the
 * reply. */
bool smtp_parse_helo(const char *args, bool ehlo, char *out, size_t size, struct smtp_reply *err);

/* Encode s as xtext (RFC 3461 section 4) into out; false if it does not
 * fit. For writing ENVID and ORCPT back out in DSNs and relayed mail. */
bool smtp_xtext_encode(const char *s, char *out, size_t size);

#endif
