/* The IMAP command reader (imap_parse.h): one pass over each line as it
 * comes, the argument tree kept flat (parent indices, offsets into one
 * text buffer) while the command grows, laid out as the imap_arg tree
 * once it is whole, so a reallocation never leaves a pointer behind. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <petrel/mem.h>

#include "imap_parse.h"
#include "imap_mutf7.h"

#define NO_PARENT SIZE_MAX
#define NAME_MAX_LEN 63
/* "{" 20 digits "+}" and a "~": more cannot be a literal's size. */
#define LITERAL_ANNOUNCE_MAX 24

struct node {
    enum imap_arg_type type;
    bool literal, binary, spooled;
    size_t parent;
    size_t off, len;     /* in text */
    size_t count, start; /* LIST: its elements, where they go in the tree */
    size_t filled;       /* LIST: elements placed so far */
};

enum reader_state {
    ST_IDLE,    /* between commands */
    ST_LITERAL, /* literal bytes expected */
    ST_CONT,    /* a line continuing the command expected */
};

enum literal_mode {
    LIT_MEM,     /* into text */
    LIT_SINK,    /* to the session's sink */
    LIT_DISCARD, /* of a command already bad or refused */
};

struct imap_parser {
    struct imap_parse_limits limits;
    struct imap_literal_sink sink;
    bool has_sink;

    enum reader_state state;
    char *text; /* tag, then every argument's bytes, NUL after each */
    size_t text_len, text_cap;
    size_t used; /* bytes of the command counted against max_command */
    struct node *nodes;
    size_t node_count, node_cap;
    size_t *stack; /* open lists */
    size_t depth;
    bool after_arg;   /* an argument just ended: SP, ')' or the end next */
    bool just_opened; /* right after '(': ')' may follow */
    bool no_sections; /* this line has no ']' closing a '[' from here on */

    bool tag_ok;
    char name[NAME_MAX_LEN + 1];

    struct imap_literal_info lit;
    enum literal_mode lit_mode;
    uint64_t lit_left;
    size_t lit_node;
    bool sink_open;

    bool swallow; /* the command is bad or refused: read it to its end */
    bool refused; /* by the session, which answers itself */
    const char *error;
    enum imap_parse_error_code error_code;

    struct imap_arg *tree;
    struct imap_command command;
    bool have_command;
};

enum args_result { ARGS_END, ARGS_LITERAL, ARGS_ERROR };

struct imap_parser *imap_parser_new(const struct imap_parse_limits *limits)
{
    struct imap_parser *p = petrel_calloc(1, sizeof(*p));
    p->limits = *limits;
    p->stack = petrel_reallocarray(NULL, limits->max_depth + 1, sizeof(*p->stack));
    return p;
}

static void close_sink(struct imap_parser *p, bool ok)
{
    if (p->sink_open) {
        p->sink_open = false;
        p->sink.close(p->sink.arg, ok);
    }
}

void imap_parser_free(struct imap_parser *p)
{
    if (p == NULL)
        return;
    close_sink(p, false);
    if (p->text != NULL) /* a LOGIN's password may be in it */
        explicit_bzero(p->text, p->text_cap);
    free(p->text);
    free(p->nodes);
    free(p->stack);
    free(p->tree);
    free(p);
}

void imap_parser_set_sink(struct imap_parser *p, const struct imap_literal_sink *sink)
{
    p->has_sink = sink != NULL;
    if (sink != NULL)
        p->sink = *sink;
}

/* An idle connection keeps little: a big command's memory goes. */
#define KEEP_TEXT 4096u
#define KEEP_NODES 64u

static void reset(struct imap_parser *p)
{
    close_sink(p, false);
    /* A LOGIN's password may be in the last command's text. */
    if (p->text != NULL)
        explicit_bzero(p->text, p->text_len);
    if (p->text_cap > KEEP_TEXT) {
        free(p->text);
        p->text = NULL;
        p->text_cap = 0;
    }
    if (p->node_cap > KEEP_NODES) {
        free(p->nodes);
        p->nodes = NULL;
        p->node_cap = 0;
    }
    p->text_len = 0;
    p->used = 0;
    p->node_count = 0;
    p->depth = 0;
    p->after_arg = true;
    p->just_opened = false;
    p->tag_ok = false;
    p->name[0] = '\0';
    p->swallow = false;
    p->refused = false;
    p->error = NULL;
    p->error_code = IMAP_PARSE_ERR_SYNTAX;
    free(p->tree);
    p->tree = NULL;
    p->have_command = false;
}

static bool fail(struct imap_parser *p, enum imap_parse_error_code code, const char *error)
{
    p->error = error;
    p->error_code = code;
    return false;
}

/* Room for n more bytes of text within the command's budget. */
static bool text_reserve(struct imap_parser *p, size_t n)
{
    if (n > p->limits.max_command - p->used)
        return fail(p, IMAP_PARSE_ERR_LIMIT, "command too large");
    if (p->text_len + n > p->text_cap) {
        size_t cap = p->text_cap < 256 ? 256 : p->text_cap;
        while (cap < p->text_len + n)
            cap = cap > SIZE_MAX / 2 ? p->text_len + n : cap * 2;
        p->text = petrel_realloc(p->text, cap);
        p->text_cap = cap;
    }
    p->used += n;
    return true;
}

static bool new_node(struct imap_parser *p, enum imap_arg_type type, size_t *index_r)
{
    size_t cost = sizeof(struct node) + sizeof(struct imap_arg);
    if (p->node_count >= p->limits.max_args)
        return fail(p, IMAP_PARSE_ERR_LIMIT, "too many arguments");
    if (cost > p->limits.max_command - p->used)
        return fail(p, IMAP_PARSE_ERR_LIMIT, "command too large");
    p->used += cost;
    if (p->node_count == p->node_cap) {
        p->node_cap = p->node_cap < 16 ? 16 : p->node_cap * 2;
        p->nodes = petrel_reallocarray(p->nodes, p->node_cap, sizeof(*p->nodes));
    }
    struct node *n = &p->nodes[p->node_count];
    memset(n, 0, sizeof(*n));
    n->type = type;
    n->parent = p->depth > 0 ? p->stack[p->depth - 1] : NO_PARENT;
    n->off = p->text_len;
    *index_r = p->node_count++;
    return true;
}

/* ATOM-CHAR of RFC 3501: CHAR but atom-specials. */
static bool atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && strchr("(){%*\"\\]", c) == NULL;
}

/* In an argument atom: flags ("\Seen"), list patterns ("%", "*"),
 * sequence sets ("1:*") and astrings (']') too. */
static bool arg_atom_char(unsigned char c)
{
    return atom_char(c) || c == ']' || c == '\\' || c == '%' || c == '*';
}

/* Why the character at s[i] cannot start or follow an argument. */
static bool bad_char(struct imap_parser *p, unsigned char c)
{
    if (c >= 0x80)
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "8-bit character outside a literal");
    if (c < 0x20 || c == 0x7f)
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "control character in command");
    if (c == ' ')
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "one space expected between arguments");
    if (c == ')')
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "unbalanced parentheses: unexpected )");
    return fail(p, IMAP_PARSE_ERR_SYNTAX, "unexpected character in command");
}

/* A '[' section to its matching ']' on this line, blanks and
 * parentheses inside. Without one the '[' is a plain atom character, as
 * in a mailbox name; and so is every later '[' of the line, which keeps
 * the scan linear on "a[a[a[...". A "<n.m>" after the ']' is made of
 * atom characters and needs nothing here. */
static bool scan_section(struct imap_parser *p, const char *s, size_t len, size_t *i)
{
    if (p->no_sections)
        return false;
    size_t depth = 0;
    for (size_t j = *i; j < len; j++) {
        unsigned char c = (unsigned char)s[j];
        if (c < 0x20 || c >= 0x7f)
            break;
        if (c == '[') {
            depth++;
        } else if (c == ']' && --depth == 0) {
            *i = j + 1;
            return true;
        }
    }
    p->no_sections = true;
    return false;
}

static bool add_text(struct imap_parser *p, size_t node, const char *s, size_t n)
{
    if (!text_reserve(p, n + 1))
        return false;
    memcpy(p->text + p->text_len, s, n);
    p->text_len += n;
    p->text[p->text_len++] = '\0';
    p->nodes[node].len = n;
    return true;
}

static bool parse_atom(struct imap_parser *p, const char *s, size_t len, size_t *i)
{
    size_t start = *i, j = *i;
    while (j < len) {
        if (s[j] == '[' && scan_section(p, s, len, &j))
            continue;
        if (arg_atom_char((unsigned char)s[j])) {
            j++;
        } else {
            break;
        }
    }
    if (j == start)
        return bad_char(p, (unsigned char)s[j]);
    bool nil = j - start == 3 && strncasecmp(s + start, "NIL", 3) == 0;
    size_t node;
    if (!new_node(p, nil ? IMAP_ARG_NIL : IMAP_ARG_ATOM, &node))
        return false;
    *i = j;
    return nil || add_text(p, node, s + start, j - start);
}

/* The quoted string from s[*i] ('"'): checked and measured first, so
 * that only its own bytes count against the command's budget. */
static bool parse_quoted(struct imap_parser *p, const char *s, size_t len, size_t *i)
{
    size_t j = *i + 1, n = 0;
    for (;; j++, n++) {
        if (j == len)
            return fail(p, IMAP_PARSE_ERR_SYNTAX, "unterminated quoted string");
        unsigned char c = (unsigned char)s[j];
        if (c == '"')
            break;
        if (c == '\\') {
            if (j + 1 == len || (s[j + 1] != '\\' && s[j + 1] != '"'))
                return fail(p, IMAP_PARSE_ERR_SYNTAX, "bad escape in quoted string");
            j++;
        } else if (c == '\0' || c == '\r' || c == '\n') {
            return fail(p, IMAP_PARSE_ERR_SYNTAX, "CR, LF or NUL in quoted string");
        } else if (c >= 0x80 && !p->limits.utf8_quoted) {
            return fail(p, IMAP_PARSE_ERR_SYNTAX, "8-bit character in quoted string");
        }
    }
    if (p->limits.utf8_quoted && !imap_utf8_valid(s + *i + 1, j - *i - 1, false))
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "quoted string is not UTF-8");
    size_t node;
    if (!new_node(p, IMAP_ARG_STRING, &node) || !text_reserve(p, n + 1))
        return false;
    char *out = p->text + p->text_len;
    for (size_t k = *i + 1, o = 0; o < n; k++)
        out[o++] = s[k] == '\\' ? s[++k] : s[k];
    out[n] = '\0';
    p->text_len += n + 1;
    p->nodes[node].len = n;
    *i = j + 1;
    return true;
}

/* "{n}", "{n+}", "~{n}", "~{n+}" from s[i] to the end of the line. */
static bool literal_at(const char *s, size_t len, size_t i, struct imap_literal_info *info)
{
    memset(info, 0, sizeof(*info));
    if (i < len && s[i] == '~') {
        info->binary = true;
        i++;
    }
    if (i == len || s[i] != '{' || len - i < 3 || s[len - 1] != '}')
        return false;
    size_t end = len - 1;
    info->sync = s[end - 1] != '+';
    if (!info->sync)
        end--;
    if (end == i + 1)
        return false;
    uint64_t n = 0;
    for (size_t j = i + 1; j < end; j++) {
        if (s[j] < '0' || s[j] > '9')
            return false;
        uint64_t d = (uint64_t)(s[j] - '0');
        if (n > (UINT64_MAX - d) / 10)
            return false;
        n = n * 10 + d;
    }
    info->size = n;
    return true;
}

/* The literal a bad line announces at its end, if any. */
static bool trailing_literal(const char *s, size_t len, struct imap_literal_info *info)
{
    if (len == 0 || s[len - 1] != '}')
        return false;
    size_t i = len - 1;
    while (i > 0 && len - i < LITERAL_ANNOUNCE_MAX && s[i] != '{')
        i--;
    if (s[i] != '{')
        return false;
    if (i > 0 && s[i - 1] == '~')
        i--;
    return literal_at(s, len, i, info);
}

static bool open_literal(struct imap_parser *p, const char *s, size_t len, size_t i)
{
    if (!literal_at(s, len, i, &p->lit)) {
        size_t j = i + (s[i] == '~');
        if (j < len && s[j] == '{' && memchr(s + j, '}', len - j) != NULL && s[len - 1] != '}')
            return fail(p, IMAP_PARSE_ERR_SYNTAX,
                        "literal announcement not at the end of the line");
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "bad literal announcement");
    }
    size_t node;
    if (!new_node(p, IMAP_ARG_STRING, &node))
        return false;
    p->nodes[node].literal = true;
    p->nodes[node].binary = p->lit.binary;
    p->lit_node = node;
    p->lit_left = p->lit.size;
    if (p->lit.size <= p->limits.max_literal_mem) {
        if (p->lit.size >= p->limits.max_command)
            return fail(p, IMAP_PARSE_ERR_LIMIT, "command too large");
        if (!text_reserve(p, (size_t)p->lit.size + 1))
            return false;
        p->used -= (size_t)p->lit.size + 1; /* counted again as the bytes come */
        p->nodes[node].off = p->text_len;
        p->lit_mode = LIT_MEM;
        return true;
    }
    if (p->lit.size > p->limits.max_literal || !p->has_sink || p->sink_open)
        return fail(p, IMAP_PARSE_ERR_TOOBIG, "literal too large");
    if (!p->sink.open(p->sink.arg, p->name, p->lit.size))
        return fail(p, IMAP_PARSE_ERR_TOOBIG, "literal refused");
    p->sink_open = true;
    p->nodes[node].spooled = true;
    p->nodes[node].len = (size_t)p->lit.size;
    p->lit_mode = LIT_SINK;
    return true;
}

static bool open_list(struct imap_parser *p)
{
    if (p->depth >= p->limits.max_depth)
        return fail(p, IMAP_PARSE_ERR_LIMIT, "lists nested too deep");
    size_t node;
    if (!new_node(p, IMAP_ARG_LIST, &node))
        return false;
    p->stack[p->depth++] = node;
    return true;
}

/* One argument (or list opening) at s[*i]. */
static enum args_result parse_arg(struct imap_parser *p, const char *s, size_t len, size_t *i)
{
    char c = s[*i];
    bool opened = p->just_opened;
    p->just_opened = false;
    p->after_arg = true;
    if (c == '(') {
        if (!open_list(p))
            return ARGS_ERROR;
        (*i)++;
        p->after_arg = false;
        p->just_opened = true;
        return ARGS_END;
    }
    if (c == ')' && opened) {
        p->depth--;
        (*i)++;
        return ARGS_END;
    }
    if (c == '"')
        return parse_quoted(p, s, len, i) ? ARGS_END : ARGS_ERROR;
    if (c == '{' || (c == '~' && *i + 1 < len && s[*i + 1] == '{'))
        return open_literal(p, s, len, *i) ? ARGS_LITERAL : ARGS_ERROR;
    return parse_atom(p, s, len, i) ? ARGS_END : ARGS_ERROR;
}

/* The arguments on s from i: ARGS_END at the line's end (the command may
 * still be open after a literal), ARGS_LITERAL, ARGS_ERROR. */
static enum args_result parse_args(struct imap_parser *p, const char *s, size_t len, size_t i)
{
    p->no_sections = false;
    while (i < len) {
        if (!p->after_arg) {
            enum args_result r = parse_arg(p, s, len, &i);
            if (r != ARGS_END)
                return r;
        } else if (s[i] == ' ') {
            p->after_arg = false;
            i++;
        } else if (s[i] == ')' && p->depth > 0) {
            p->depth--;
            i++;
        } else {
            bad_char(p, (unsigned char)s[i]);
            return ARGS_ERROR;
        }
    }
    if (!p->after_arg) {
        fail(p, IMAP_PARSE_ERR_SYNTAX,
             p->just_opened ? "unbalanced parentheses: missing )" : "unexpected end of line");
        return ARGS_ERROR;
    }
    if (p->depth > 0) {
        fail(p, IMAP_PARSE_ERR_SYNTAX, "unbalanced parentheses: missing )");
        return ARGS_ERROR;
    }
    return ARGS_END;
}

/* Tag and command name; i is left after them. */
static bool parse_head(struct imap_parser *p, const char *s, size_t len, size_t *i)
{
    size_t j = 0;
    if (len == 0)
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "empty command line");
    while (j < len && (atom_char((unsigned char)s[j]) || s[j] == ']') && s[j] != '+')
        j++;
    if (j == 0 || (j < len && s[j] != ' '))
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "bad tag");
    if (!text_reserve(p, j + 1))
        return false;
    memcpy(p->text, s, j);
    p->text[j] = '\0';
    p->text_len = j + 1;
    p->tag_ok = true;
    if (j == len || ++j == len)
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "missing command name");
    size_t start = j;
    while (j < len && atom_char((unsigned char)s[j]))
        j++;
    if (j == start || (j < len && s[j] != ' '))
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "bad command name");
    if (j - start > NAME_MAX_LEN)
        return fail(p, IMAP_PARSE_ERR_SYNTAX, "command name too long");
    for (size_t k = start; k < j; k++)
        p->name[k - start] = (char)(s[k] >= 'a' && s[k] <= 'z' ? s[k] - 'a' + 'A' : s[k]);
    p->name[j - start] = '\0';
    *i = j;
    return true;
}

/* The flat nodes as the tree: top-level arguments first, then each list's
 * elements together, in the order the lists opened. */
static void build_tree(struct imap_parser *p)
{
    size_t n = p->node_count, top = 0;
    for (size_t k = 0; k < n; k++) {
        if (p->nodes[k].parent == NO_PARENT)
            top++;
        else
            p->nodes[p->nodes[k].parent].count++;
    }
    size_t next = top, top_filled = 0;
    for (size_t k = 0; k < n; k++) {
        if (p->nodes[k].type == IMAP_ARG_LIST) {
            p->nodes[k].start = next;
            next += p->nodes[k].count;
        }
    }
    p->tree = n > 0 ? petrel_calloc(n, sizeof(*p->tree)) : NULL;
    for (size_t k = 0; k < n; k++) {
        struct node *nd = &p->nodes[k];
        size_t dest;
        if (nd->parent == NO_PARENT) {
            dest = top_filled++;
        } else {
            struct node *parent = &p->nodes[nd->parent];
            dest = parent->start + parent->filled++;
        }
        struct imap_arg *a = &p->tree[dest];
        a->type = nd->type;
        a->literal = nd->literal;
        a->binary = nd->binary;
        a->spooled = nd->spooled;
        a->len = nd->len;
        if (nd->type == IMAP_ARG_LIST) {
            a->list = nd->count > 0 ? p->tree + nd->start : NULL;
            a->count = nd->count;
        } else if (nd->type != IMAP_ARG_NIL && !nd->spooled) {
            a->str = p->text + nd->off;
        }
    }
    p->command.tag = p->text;
    p->command.name = p->name;
    p->command.args = p->tree;
    p->command.count = top;
    p->have_command = true;
}

static enum imap_parse_status finish_bad(struct imap_parser *p)
{
    close_sink(p, false);
    p->state = ST_IDLE;
    return IMAP_PARSE_BAD;
}

/* Read the rest of a bad or refused command: its non-synchronising
 * literals are coming whatever we answer. */
static enum imap_parse_status swallow_to_end(struct imap_parser *p, const char *s, size_t len)
{
    struct imap_literal_info info;
    p->swallow = true;
    if (trailing_literal(s, len, &info) && !info.sync) {
        p->lit = info;
        p->lit_left = info.size;
        p->lit_mode = LIT_DISCARD;
        p->state = ST_LITERAL;
        return IMAP_PARSE_LITERAL;
    }
    if (p->refused) {
        p->state = ST_IDLE;
        return IMAP_PARSE_LINE; /* the session answered already */
    }
    return finish_bad(p);
}

static enum imap_parse_status after_args(struct imap_parser *p, enum args_result r, const char *s,
                                         size_t len)
{
    if (r == ARGS_ERROR)
        return swallow_to_end(p, s, len);
    if (r == ARGS_LITERAL) {
        p->state = ST_LITERAL;
        return IMAP_PARSE_LITERAL;
    }
    close_sink(p, true);
    build_tree(p);
    p->state = ST_IDLE;
    return IMAP_PARSE_DONE;
}

enum imap_parse_status imap_parse_line(struct imap_parser *p, const char *line, size_t len)
{
    if (p->state == ST_CONT) {
        if (p->swallow)
            return swallow_to_end(p, line, len);
        return after_args(p, parse_args(p, line, len, 0), line, len);
    }
    reset(p);
    if (p->state == ST_LITERAL) {
        /* The session handed a line where a literal was due. */
        p->state = ST_IDLE;
        fail(p, IMAP_PARSE_ERR_SYNTAX, "literal expected");
        return IMAP_PARSE_BAD;
    }
    size_t i = 0;
    if (!parse_head(p, line, len, &i))
        return swallow_to_end(p, line, len);
    return after_args(p, parse_args(p, line, len, i), line, len);
}

enum imap_parse_status imap_parse_literal(struct imap_parser *p, const void *data, size_t len)
{
    if (p->state != ST_LITERAL)
        return IMAP_PARSE_LINE;
    size_t n = p->lit_left < len ? (size_t)p->lit_left : len;
    if (p->lit_mode == LIT_MEM && n > 0) {
        memcpy(p->text + p->text_len, data, n);
        p->text_len += n;
        p->used += n;
    } else if (p->lit_mode == LIT_SINK && n > 0 && !p->sink.write(p->sink.arg, data, n)) {
        fail(p, IMAP_PARSE_ERR_SYNTAX, "literal could not be stored");
        close_sink(p, false);
        p->swallow = true;
        p->lit_mode = LIT_DISCARD;
    }
    p->lit_left -= n;
    if (p->lit_left > 0)
        return IMAP_PARSE_LITERAL;
    if (p->lit_mode == LIT_MEM) {
        p->text[p->text_len++] = '\0';
        p->used++;
        p->nodes[p->lit_node].len = (size_t)p->lit.size;
    }
    p->state = ST_CONT;
    return IMAP_PARSE_LINE;
}

struct imap_literal_info imap_parse_literal_info(const struct imap_parser *p) { return p->lit; }

enum imap_parse_status imap_parse_refuse(struct imap_parser *p)
{
    close_sink(p, false);
    if (p->state != ST_LITERAL || p->lit.sync) {
        p->state = ST_IDLE;
        return IMAP_PARSE_DONE;
    }
    p->refused = true;
    p->swallow = true;
    p->lit_mode = LIT_DISCARD;
    return IMAP_PARSE_LITERAL;
}

const struct imap_command *imap_parse_command(const struct imap_parser *p)
{
    return p->have_command ? &p->command : NULL;
}

const char *imap_parse_tag(const struct imap_parser *p) { return p->tag_ok ? p->text : "*"; }

const char *imap_parse_name(const struct imap_parser *p) { return p->name; }

const char *imap_parse_error(const struct imap_parser *p)
{
    return p->error != NULL ? p->error : "syntax error";
}

enum imap_parse_error_code imap_parse_error_code(const struct imap_parser *p)
{
    return p->error_code;
}

bool imap_arg_atom_is(const struct imap_arg *arg, const char *word)
{
    return arg->type == IMAP_ARG_ATOM && strlen(word) == arg->len &&
           strncasecmp(arg->str, word, arg->len) == 0;
}

const char *imap_arg_astring(const struct imap_arg *arg)
{
    if (arg->type == IMAP_ARG_ATOM || (arg->type == IMAP_ARG_STRING && !arg->spooled))
        return arg->str;
    return NULL;
}
