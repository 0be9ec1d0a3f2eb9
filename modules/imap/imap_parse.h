/* The IMAP command reader (RFC 3501 section 9, RFC 7888 literals): it
 * takes a client's input as the core hands it over, lines (terminator
 * removed) and the chunks of literals, and builds one command at a time:
 * tag, name and an argument tree (imap_arg.h). It knows the grammar of
 * arguments, not of commands: "FETCH 1 (FLAGS" is a bad parenthesis, but
 * "FETCH" without arguments is for the command code to refuse.
 *
 * The session drives it:
 *
 *   line  -> imap_parse_line()     -> DONE | LITERAL | BAD
 *   chunk -> imap_parse_literal()  -> LITERAL (more to come) | LINE
 *
 * LITERAL: read literal.size bytes as a chunk (petrel_conn_read_chunk) and
 * hand them to imap_parse_literal(); when literal.sync, first send "+ ..."
 * (or refuse the command with imap_parse_refuse()). LINE: the literal is
 * in, the rest of the command comes as the next line. DONE: the command is
 * in imap_parse_command() until the next call. BAD: answer BAD with the
 * tag (imap_parse_tag(), "*" when there is none) and imap_parse_error();
 * the reader is ready for the next command. A command found bad while a
 * non-synchronising literal of it is still coming reports BAD only after
 * its end, swallowing the literal and the lines that follow; a bad
 * synchronising literal is refused at once, since the client waits.
 *
 * Memory: at most limits.max_command bytes per command (the lines, the
 * literals kept in memory, the tree). A literal larger than
 * limits.max_literal_mem goes to the sink when the session gives one
 * (APPEND's message), else the command is refused with
 * IMAP_PARSE_TOOBIG. */
#ifndef PETREL_IMAP_PARSE_H
#define PETREL_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "imap_arg.h"

struct imap_parser;

struct imap_parse_limits {
    size_t max_command;     /* bytes of one command held in memory */
    size_t max_literal_mem; /* a literal kept in memory, at most */
    uint64_t max_literal;   /* a literal given to the sink, at most */
    size_t max_args;        /* arguments in all, nested ones included */
    size_t max_depth;       /* nesting of parenthesised lists */
    bool utf8_quoted;       /* quoted strings may hold UTF-8 (IMAP4rev2, RFC 6855) */
};

/* Where a large literal goes (APPEND's message: a spool file). open is
 * called with the command's name (upper-case) and the literal's size when
 * a literal larger than max_literal_mem is announced; it returns false to
 * refuse it (the command ends in BAD or NO [TOOBIG]: see
 * imap_parse_error_code). write gets its bytes in order; false stops the
 * command (BAD), close ends it either way (ok false when the command
 * failed). The literal's argument is then a STRING with str NULL, len its
 * size and spooled true. */
struct imap_literal_sink {
    bool (*open)(void *arg, const char *command, uint64_t size);
    bool (*write)(void *arg, const void *data, size_t len);
    void (*close)(void *arg, bool ok);
    void *arg;
};

enum imap_parse_status {
    IMAP_PARSE_DONE,    /* a whole command */
    IMAP_PARSE_LITERAL, /* read a literal: imap_parse_literal_info() */
    IMAP_PARSE_LINE,    /* the literal is in: the command goes on on the next line */
    IMAP_PARSE_BAD,     /* a bad command: answer it, then go on */
};

/* How a BAD or refused command should be answered. */
enum imap_parse_error_code {
    IMAP_PARSE_ERR_SYNTAX, /* BAD <message> */
    IMAP_PARSE_ERR_TOOBIG, /* NO [TOOBIG] (RFC 4469/7889): a literal over the limits */
    IMAP_PARSE_ERR_LIMIT,  /* BAD [LIMIT]: the command is too large or deep */
};

struct imap_literal_info {
    uint64_t size;
    bool sync;   /* {n}: the client waits for "+" */
    bool binary; /* ~{n} (RFC 3516) */
};

/* A parsed command: valid until the next call on the parser. */
struct imap_command {
    const char *tag;
    /* Upper-case; "UID FETCH" etc. are "UID" with the subcommand the
     * first argument (an atom). */
    const char *name;
    const struct imap_arg *args;
    size_t count;
};

struct imap_parser *imap_parser_new(const struct imap_parse_limits *limits);
void imap_parser_free(struct imap_parser *p);
/* The sink for large literals of the coming commands; NULL: none. */
void imap_parser_set_sink(struct imap_parser *p, const struct imap_literal_sink *sink);

enum imap_parse_status imap_parse_line(struct imap_parser *p, const char *line, size_t len);
enum imap_parse_status imap_parse_literal(struct imap_parser *p, const void *data, size_t len);

/* After LITERAL: what to read. */
struct imap_literal_info imap_parse_literal_info(const struct imap_parser *p);
/* After LITERAL: the session will not take this command (wrong state,
 * APPEND over quota): a synchronising literal is dropped unread, a
 * non-synchronising one and the command's remaining lines are swallowed.
 * The reader reports nothing more for it: the session answers. Returns
 * the status to act on: LITERAL (read and hand over the bytes, which are
 * discarded) or DONE meaning "nothing to read" (the session answers now). */
enum imap_parse_status imap_parse_refuse(struct imap_parser *p);

/* After DONE. */
const struct imap_command *imap_parse_command(const struct imap_parser *p);
/* The command's tag once its first line was read ("*" before that or
 * when the tag itself is bad), its upper-case name ("" when unknown): for
 * answering BAD, and for deciding about a literal. */
const char *imap_parse_tag(const struct imap_parser *p);
const char *imap_parse_name(const struct imap_parser *p);
/* After BAD: what to say. */
const char *imap_parse_error(const struct imap_parser *p);
enum imap_parse_error_code imap_parse_error_code(const struct imap_parser *p);

#endif
