/* The POP3 command grammar (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH
 * RFC 5034). Pure functions over one command line, no I/O and no
 * allocation, so unit tests and the fuzzer drive them directly. A refusal
 * comes back as the text of the -ERR the client gets. */
#ifndef PETREL_POP3_PARSE_H
#define PETREL_POP3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 2449 section 4: a command line is at most 255 octets; arguments at
 * most 40. AUTH's initial response and PASS are longer in practice: they
 * are bounded by the SASL limits instead. */
#define POP3_ARG_MAX 40
#define POP3_USER_MAX 254 /* as PETREL_AUTH_USER_MAX */

enum pop3_verb {
    POP3_UNKNOWN = 0,
    POP3_USER,
    POP3_PASS,
    POP3_APOP,
    POP3_AUTH,
    POP3_STLS,
    POP3_CAPA,
    POP3_QUIT,
    POP3_STAT,
    POP3_LIST,
    POP3_RETR,
    POP3_DELE,
    POP3_NOOP,
    POP3_RSET,
    POP3_TOP,
    POP3_UIDL,
};

struct pop3_cmd {
    enum pop3_verb verb;
    /* USER: the name; PASS: the rest of the line (a password may hold
     * spaces); AUTH: the mechanism and the initial response (or NULL). */
    const char *arg[2];
    unsigned nargs;
    /* LIST, UIDL, RETR, DELE, TOP: the message number (0: none given, for
     * LIST and UIDL) and TOP's line count. */
    uint32_t msg, lines;
};

/* The verb of a line (terminator removed, NUL-terminated at line[len]),
 * case-insensitive, followed by the end or one space. */
enum pop3_verb pop3_parse_verb(const char *line, size_t len);

/* Parse a whole command into cmd; pointers in cmd point into line, which
 * is cut at spaces. False with *error_r (a static text for the -ERR) for
 * an unknown verb, a missing or extra argument, a bad number. */
bool pop3_parse(char *line, size_t len, struct pop3_cmd *cmd, const char **error_r);

/* A decimal number without sign or blanks, at most UINT32_MAX. */
bool pop3_parse_number(const char *s, uint32_t *n_r);

#endif
