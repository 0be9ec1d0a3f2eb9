/* The arguments of one IMAP command as the parser (imap_parse.c) hands
 * them to the command code, the SEARCH compiler and the FETCH item parser:
 * a tree of atoms, strings and parenthesised lists (RFC 3501 section 9).
 * Everything points into memory the parser owns and frees after the
 * command. */
#ifndef PETREL_IMAP_ARG_H
#define PETREL_IMAP_ARG_H

#include <stdbool.h>
#include <stddef.h>

enum imap_arg_type {
    /* An atom, also "\Seen", "1:*", "BODY.PEEK[HEADER.FIELDS (From To)]<0.100>":
     * a '[' in an atom opens a section that runs to the matching ']' and may
     * hold blanks and parentheses; a "<...>" right after it belongs to it. */
    IMAP_ARG_ATOM,
    /* A quoted string (escapes removed) or a literal {n} / ~{n}. */
    IMAP_ARG_STRING,
    IMAP_ARG_NIL,  /* the atom NIL, unquoted, any case */
    IMAP_ARG_LIST, /* ( ... ) */
};

struct imap_arg {
    enum imap_arg_type type;
    /* ATOM, STRING: the bytes, NUL-terminated; a literal may hold NUL and
     * 8-bit bytes, so use len. NULL for NIL and LIST. */
    const char *str;
    size_t len;
    /* LIST: its elements. */
    const struct imap_arg *list;
    size_t count;
    bool literal; /* STRING came as a literal */
    bool binary;  /* STRING came as a literal8 ~{n} */
    bool spooled; /* STRING went to the parser's sink: str is NULL (imap_parse.h) */
};

/* The atom's text compared case-insensitively (ASCII) with word. */
bool imap_arg_atom_is(const struct imap_arg *arg, const char *word);
/* ATOM or STRING (astring, RFC 3501): its text, else NULL. */
const char *imap_arg_astring(const struct imap_arg *arg);

#endif
