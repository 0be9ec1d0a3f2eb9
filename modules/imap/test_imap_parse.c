/* The IMAP command reader driven as the session drives it: input cut
 * into lines at CRLF, literals handed over in chunks of a chosen size
 * (one byte, a few, all at once), every grammar case, the limits, the
 * sink, and recovery: the command after a bad one must parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_parse.h"

static const struct imap_parse_limits limits = {
    .max_command = 16384,
    .max_literal_mem = 64,
    .max_literal = 100000,
    .max_args = 50,
    .max_depth = 4,
};

/* What the fake session saw: one entry per finished command. */
struct seen {
    char out[4096];
    size_t out_len;
    unsigned literals;      /* LITERAL answers */
    unsigned sync_literals; /* of which the client waits for "+" */
};

static void say(struct seen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct seen *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->out + s->out_len, sizeof(s->out) - s->out_len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(s->out) - s->out_len);
    s->out_len += (size_t)n;
}

static void dump_args(struct seen *s, const struct imap_arg *args, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const struct imap_arg *a = &args[i];
        if (i > 0)
            say(s, " ");
        switch (a->type) {
        case IMAP_ARG_ATOM:
            assert_int_equal(strlen(a->str), a->len);
            say(s, "%s", a->str);
            break;
        case IMAP_ARG_NIL:
            assert_null(a->str);
            say(s, "NIL");
            break;
        case IMAP_ARG_STRING:
            if (a->spooled) {
                assert_null(a->str);
                say(s, "<spooled %zu>", a->len);
            } else {
                assert_int_equal(a->str[a->len], '\0');
                say(s, "%s[%.*s]",
                    a->binary    ? "~lit"
                    : a->literal ? "lit"
                                 : "q",
                    (int)a->len, a->str);
            }
            break;
        case IMAP_ARG_LIST:
            say(s, "(");
            dump_args(s, a->list, a->count);
            say(s, ")");
            break;
        }
    }
}

static void report(struct imap_parser *p, enum imap_parse_status st, struct seen *s)
{
    if (st == IMAP_PARSE_DONE) {
        const struct imap_command *c = imap_parse_command(p);
        assert_non_null(c);
        say(s, "%s %s", c->tag, c->name);
        if (c->count > 0)
            say(s, " ");
        dump_args(s, c->args, c->count);
        say(s, "\n");
    } else if (st == IMAP_PARSE_BAD) {
        static const char *const codes[] = {"BAD", "TOOBIG", "LIMIT"};
        say(s, "%s %s %s\n", imap_parse_tag(p), codes[imap_parse_error_code(p)],
            imap_parse_error(p));
    }
}

/* Feed input as the session would; literal bytes in pieces of chunk. */
static void drive(struct imap_parser *p, const char *in, size_t in_len, size_t chunk,
                  struct seen *s)
{
    size_t pos = 0;
    while (pos < in_len) {
        const char *end = NULL;
        for (size_t k = pos; k + 1 < in_len; k++)
            if (in[k] == '\r' && in[k + 1] == '\n') {
                end = in + k;
                break;
            }
        assert_non_null(end);
        enum imap_parse_status st = imap_parse_line(p, in + pos, (size_t)(end - in - pos));
        pos = (size_t)(end - in) + 2;
        while (st == IMAP_PARSE_LITERAL) {
            struct imap_literal_info info = imap_parse_literal_info(p);
            s->literals++;
            s->sync_literals += info.sync;
            assert_true(info.size <= in_len - pos);
            size_t left = (size_t)info.size;
            st = IMAP_PARSE_LITERAL;
            if (left == 0)
                st = imap_parse_literal(p, NULL, 0);
            while (left > 0) {
                size_t n = left < chunk ? left : chunk;
                st = imap_parse_literal(p, in + pos, n);
                pos += n;
                left -= n;
                assert_int_equal(st, left > 0 ? IMAP_PARSE_LITERAL : IMAP_PARSE_LINE);
            }
        }
        report(p, st, s);
    }
}

/* The commands of in, as one string, checked for chunk sizes 1, 3, all. */
static void expect_with(const struct imap_parse_limits *l, const char *in, const char *want)
{
    static const size_t chunks[] = {1, 3, 1000000};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        struct imap_parser *p = imap_parser_new(l);
        struct seen s = {0};
        drive(p, in, strlen(in), chunks[k], &s);
        if (strcmp(s.out, want) != 0)
            fail_msg("input %s (chunk %zu):\n got: %s\nwant: %s", in, chunks[k], s.out, want);
        imap_parser_free(p);
    }
}

static void expect(const char *in, const char *want) { expect_with(&limits, in, want); }

static void test_simple(void **state)
{
    (void)state;
    expect("a1 NOOP\r\n", "a1 NOOP\n");
    expect("a1 noop\r\n", "a1 NOOP\n");
    expect("A.2] capability\r\n", "A.2] CAPABILITY\n");
    expect("x LOGIN alice secret\r\n", "x LOGIN alice secret\n");
    expect("x UID fetch 1:* (FLAGS)\r\n", "x UID fetch 1:* (FLAGS)\n");
    expect("x select \"INBOX\"\r\n", "x SELECT q[INBOX]\n");
    expect("x LOGIN \"a \\\"b\\\\\" \"\"\r\n", "x LOGIN q[a \"b\\] q[]\n");
    expect("x STORE 1 +FLAGS (\\Seen \\Deleted)\r\n", "x STORE 1 +FLAGS (\\Seen \\Deleted)\n");
    expect("x LIST \"\" %/*\r\n", "x LIST q[] %/*\n");
    expect("x CMD nil NiL \"NIL\" NILS\r\n", "x CMD NIL NIL q[NIL] NILS\n");
    expect("x CMD ()\r\n", "x CMD ()\n");
    expect("x CMD (() (a (b c)) d)\r\n", "x CMD (() (a (b c)) d)\n");
    expect("x CMD a]b\r\n", "x CMD a]b\n");
}

static void test_sections(void **state)
{
    (void)state;
    expect("x FETCH 1 BODY.PEEK[HEADER.FIELDS (From To)]<0.100>\r\n",
           "x FETCH 1 BODY.PEEK[HEADER.FIELDS (From To)]<0.100>\n");
    expect("x FETCH 1 (BODY[] BODY[1.2.MIME] FLAGS)\r\n",
           "x FETCH 1 (BODY[] BODY[1.2.MIME] FLAGS)\n");
    expect("x FETCH 1 (BODY[HEADER.FIELDS (\"a b\")])\r\n",
           "x FETCH 1 (BODY[HEADER.FIELDS (\"a b\")])\n");
    /* A '[' without its ']' is a plain atom character (mailbox names). */
    expect("x FETCH 1 BODY[TEXT\r\n", "x FETCH 1 BODY[TEXT\n");
    expect("x FETCH 1 BODY[]<1.2 BODY[]<x>\r\n", "x FETCH 1 BODY[]<1.2 BODY[]<x>\n");
    expect("x SELECT foo[bar\r\n", "x SELECT foo[bar\n");
    expect("x SELECT [Gmail]/Sent\r\n", "x SELECT [Gmail]/Sent\n");
    expect("x CMD a[b[c] d\r\n", "x CMD a[b[c] d\n");
    expect("x CMD [[a] b]\r\n", "x CMD [[a] b]\n");
    expect("x FETCH 1 BODY[HEADER.FIELDS (From\r\n", "x BAD unbalanced parentheses: missing )\n");
    /* Once a '[' is found open, later ones on the line are plain too. */
    expect("x CMD a[ b[c]\r\n", "x CMD a[ b[c]\n");
    expect("x FETCH 1 BODY[\tX]\r\n", "x BAD control character in command\n");
}

static void test_bad(void **state)
{
    (void)state;
    expect("\r\n", "* BAD empty command line\n");
    expect("a1\r\n", "a1 BAD missing command name\n");
    expect("a1 \r\n", "a1 BAD missing command name\n");
    expect("+a NOOP\r\n", "* BAD bad tag\n");
    expect("a+ NOOP\r\n", "* BAD bad tag\n");
    expect("* NOOP\r\n", "* BAD bad tag\n");
    expect("a(1 NOOP\r\n", "* BAD bad tag\n");
    expect("a1 NO(OP\r\n", "a1 BAD bad command name\n");
    expect("a1  NOOP\r\n", "a1 BAD bad command name\n");
    expect("a1 NOOP \r\n", "a1 BAD unexpected end of line\n");
    expect("a1 X a  b\r\n", "a1 BAD one space expected between arguments\n");
    expect("a1 X (a\r\n", "a1 BAD unbalanced parentheses: missing )\n");
    expect("a1 X (\r\n", "a1 BAD unbalanced parentheses: missing )\n");
    expect("a1 X a)\r\n", "a1 BAD unbalanced parentheses: unexpected )\n");
    expect("a1 X ((a) b))\r\n", "a1 BAD unbalanced parentheses: unexpected )\n");
    expect("a1 X \"abc\r\n", "a1 BAD unterminated quoted string\n");
    expect("a1 X \"a\\b\"\r\n", "a1 BAD bad escape in quoted string\n");
    expect("a1 X \"a\xc3\xa9\"\r\n", "a1 BAD 8-bit character in quoted string\n");
    expect("a1 X a\xc3\xa9\r\n", "a1 BAD 8-bit character outside a literal\n");
    expect("a1 X \xc3\xa9\r\n", "a1 BAD 8-bit character outside a literal\n");
    expect("a1 X a\tb\r\n", "a1 BAD control character in command\n");
    expect("a1 X \"a\"b\r\n", "a1 BAD unexpected character in command\n");
    expect("a1 X {abc}\r\n", "a1 BAD bad literal announcement\n");
    expect("a1 X {}\r\n", "a1 BAD bad literal announcement\n");
    expect("a1 X {3} a\r\n", "a1 BAD literal announcement not at the end of the line\n");
    expect("a1 X {99999999999999999999999}\r\n", "a1 BAD bad literal announcement\n");
    expect("a1 X {18446744073709551616}\r\n", "a1 BAD bad literal announcement\n");
    /* The reader goes on with the next command. */
    expect("a1 X (\r\na2 NOOP\r\n", "a1 BAD unbalanced parentheses: missing )\na2 NOOP\n");

    char nul[] = "a1 X \"a\0b\"";
    struct imap_parser *p = imap_parser_new(&limits);
    assert_int_equal(imap_parse_line(p, nul, sizeof(nul) - 1), IMAP_PARSE_BAD);
    assert_string_equal(imap_parse_error(p), "CR, LF or NUL in quoted string");
    imap_parser_free(p);
}

/* UTF8=ACCEPT and IMAP4rev2 sessions: quoted strings may hold UTF-8, but
 * only valid UTF-8 (no overlong forms, surrogates or stray bytes); atoms
 * stay ASCII. */
static void test_utf8_quoted(void **state)
{
    (void)state;
    struct imap_parse_limits u = limits;
    u.utf8_quoted = true;
    expect_with(&u, "a1 X \"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7\"\r\n",
                "a1 X q[caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa7]\n");
    expect_with(&u, "a1 X \"\xc3\xa9\\\"\"\r\n", "a1 X q[\xc3\xa9\"]\n");
    static const char *const bad[] = {
        "a1 X \"\xc3\"\r\n",             /* truncated sequence */
        "a1 X \"\xc0\xaf\"\r\n",         /* overlong '/' */
        "a1 X \"\xed\xa0\x80\"\r\n",     /* surrogate */
        "a1 X \"\xf4\x90\x80\x80\"\r\n", /* above U+10FFFF */
        "a1 X \"\xa9\"\r\n",             /* continuation byte alone */
        "a1 X \"\xff\"\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_with(&u, bad[i], "a1 BAD quoted string is not UTF-8\n");
    expect_with(&u, "a1 X caf\xc3\xa9\r\n", "a1 BAD 8-bit character outside a literal\n");
}

static void test_literals(void **state)
{
    (void)state;
    expect("a LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "a LOGIN lit[alice] lit[secret]\n");
    expect("a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", "a LOGIN lit[alice] lit[secret]\n");
    expect("a X ({2}\r\n()) b\r\n", "a X (lit[()]) b\n");
    expect("a X {0}\r\n\r\n", "a X lit[]\n");
    expect("a X ~{3}\r\na\r\n\r\n", "a X ~lit[a\r\n]\n");
    expect("a X ~{3+}\r\nxyz b\r\n", "a X ~lit[xyz] b\n");
    /* Literal bytes are anything, CRLF included. */
    expect("a X {4}\r\n\r\n\r\n\r\n", "a X lit[\r\n\r\n]\n");
    /* After a literal: one SP, ')' or the end. */
    expect("a X {1}\r\nab\r\n", "a BAD unexpected character in command\n");
    expect("a X {1}\r\na  b\r\n", "a BAD one space expected between arguments\n");
    expect("a X {1}\r\na \r\n", "a BAD unexpected end of line\n");

    struct imap_parser *p = imap_parser_new(&limits);
    assert_int_equal(imap_parse_line(p, "t APPEND x {3}", 14), IMAP_PARSE_LITERAL);
    struct imap_literal_info info = imap_parse_literal_info(p);
    assert_int_equal(info.size, 3);
    assert_true(info.sync);
    assert_false(info.binary);
    assert_string_equal(imap_parse_tag(p), "t");
    assert_string_equal(imap_parse_name(p), "APPEND");
    assert_int_equal(imap_parse_literal(p, "a\0b", 3), IMAP_PARSE_LINE);
    assert_int_equal(imap_parse_line(p, "", 0), IMAP_PARSE_DONE);
    const struct imap_command *c = imap_parse_command(p);
    assert_int_equal(c->count, 2);
    assert_true(c->args[1].literal);
    assert_int_equal(c->args[1].len, 3);
    assert_memory_equal(c->args[1].str, "a\0b", 4);
    imap_parser_free(p);
}

static void test_limits(void **state)
{
    (void)state;
    /* Depth 4 fits, 5 does not. */
    expect("a X ((((a))))\r\n", "a X ((((a))))\n");
    expect("a X (((((a)))))\r\n", "a LIMIT lists nested too deep\n");
    /* 50 arguments fit, 51 do not. */
    char line[256] = "a X";
    for (int i = 0; i < 50; i++)
        strncat(line, " b", sizeof(line) - strlen(line) - 1);
    char in[300];
    snprintf(in, sizeof(in), "%s\r\n", line);
    struct imap_parser *p = imap_parser_new(&limits);
    struct seen s = {0};
    drive(p, in, strlen(in), 10, &s);
    assert_int_equal(imap_parse_command(p)->count, 50);
    snprintf(in, sizeof(in), "%s b\r\n", line);
    s.out_len = 0;
    drive(p, in, strlen(in), 10, &s);
    assert_string_equal(s.out, "a LIMIT too many arguments\n");
    imap_parser_free(p);

    /* A long quoted string over max_command. */
    char big[20000];
    memset(big, 'x', sizeof(big));
    memcpy(big, "a X \"", 5);
    big[sizeof(big) - 1] = '"';
    p = imap_parser_new(&limits);
    assert_int_equal(imap_parse_line(p, big, sizeof(big)), IMAP_PARSE_BAD);
    assert_int_equal(imap_parse_error_code(p), IMAP_PARSE_ERR_LIMIT);
    /* In-memory literals summing past max_command. */
    enum imap_parse_status st = imap_parse_line(p, "a X {60}", 8);
    for (int i = 0; st == IMAP_PARSE_LITERAL && i < 1000; i++) {
        assert_int_equal(imap_parse_literal(p, big, 60), IMAP_PARSE_LINE);
        st = imap_parse_line(p, " {60}", 5);
    }
    assert_int_equal(st, IMAP_PARSE_BAD);
    assert_int_equal(imap_parse_error_code(p), IMAP_PARSE_ERR_LIMIT);
    assert_int_equal(imap_parse_line(p, "b NOOP", 6), IMAP_PARSE_DONE);
    imap_parser_free(p);

    /* max_literal_mem above max_command: the command's budget decides. */
    struct imap_parse_limits wide = limits;
    wide.max_literal_mem = SIZE_MAX;
    p = imap_parser_new(&wide);
    const char *huge = "a X {18446744073709551615}";
    assert_int_equal(imap_parse_line(p, huge, strlen(huge)), IMAP_PARSE_BAD);
    assert_int_equal(imap_parse_error_code(p), IMAP_PARSE_ERR_LIMIT);
    assert_string_equal(imap_parse_error(p), "command too large");
    imap_parser_free(p);
}

static void test_toobig(void **state)
{
    (void)state;
    /* Synchronising: refused at once, the client sends nothing more. */
    expect("a APPEND x {65}\r\nb NOOP\r\n", "a TOOBIG literal too large\nb NOOP\n");
    /* Non-synchronising: its bytes and the rest of the command are
     * swallowed, then the answer. */
    expect("a APPEND x {65+}\r\n"
           "0123456789012345678901234567890123456789012345678901234567890123"
           "4 {3+}\r\nabc more\r\nb NOOP\r\n",
           "a TOOBIG literal too large\nb NOOP\n");
    struct imap_parser *p = imap_parser_new(&limits);
    struct seen s = {0};
    const char *in = "a APPEND x {65+}\r\n"
                     "0123456789012345678901234567890123456789012345678901234567890123"
                     "4\r\n";
    drive(p, in, strlen(in), 7, &s);
    assert_int_equal(s.literals, 1);
    assert_int_equal(s.sync_literals, 0);
    imap_parser_free(p);
}

static void test_bad_then_literal(void **state)
{
    (void)state;
    /* A bad line that announces a non-synchronising literal: it comes
     * anyway and must not be taken for commands. */
    expect("a X (a)) {5+}\r\nb NOP\r\nc NOOP\r\n",
           "a BAD unbalanced parentheses: unexpected )\nc NOOP\n");
    /* The literal's bytes look like a command: still swallowed. */
    expect("a X a\"b {8+}\r\nb NOOP\r\n\r\nc NOOP\r\n",
           "a BAD unexpected character in command\nc NOOP\n");
    expect("a X \"a\\x\" {5+}\r\nb NOP\r\nc NOOP\r\n", "a BAD bad escape in quoted string\n"
                                                       "c NOOP\n");
    /* Found bad on a line after the literal: swallowed to the end. */
    expect("a X {1+}\r\na (b c\" {2+}\r\nxy {1+}\r\nz\r\nc NOOP\r\n",
           "a BAD unexpected character in command\nc NOOP\n");
    /* A synchronising one: BAD at once, the client waits. */
    expect("a X (a)) {5}\r\nc NOOP\r\n", "a BAD unbalanced parentheses: unexpected )\nc NOOP\n");
    struct imap_parser *p = imap_parser_new(&limits);
    struct seen s = {0};
    drive(p, "a X (a)) {5}\r\n", 14, 1, &s);
    assert_int_equal(s.literals, 0);
    imap_parser_free(p);
}

static void test_refuse(void **state)
{
    (void)state;
    struct imap_parser *p = imap_parser_new(&limits);
    assert_int_equal(imap_parse_line(p, "a APPEND x {30}", 15), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_refuse(p), IMAP_PARSE_DONE);
    assert_null(imap_parse_command(p));
    assert_int_equal(imap_parse_line(p, "b NOOP", 6), IMAP_PARSE_DONE);

    assert_int_equal(imap_parse_line(p, "a APPEND x {3+}", 15), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_refuse(p), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_literal_info(p).size, 3);
    assert_int_equal(imap_parse_literal(p, "ab", 2), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_literal(p, "c", 1), IMAP_PARSE_LINE);
    assert_int_equal(imap_parse_line(p, " (x {2+}", 8), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_literal(p, "zz", 2), IMAP_PARSE_LINE);
    /* The end of the refused command: nothing to answer. */
    assert_int_equal(imap_parse_line(p, ")", 1), IMAP_PARSE_LINE);
    assert_null(imap_parse_command(p));
    assert_int_equal(imap_parse_line(p, "c NOOP", 6), IMAP_PARSE_DONE);
    assert_string_equal(imap_parse_command(p)->tag, "c");
    imap_parser_free(p);
}

struct spool {
    unsigned opens, closes;
    bool last_ok;
    size_t bytes;
    char cmd[16];
    bool refuse_open, fail_write;
};

static bool spool_open(void *arg, const char *command, uint64_t size)
{
    struct spool *sp = arg;
    (void)size;
    sp->opens++;
    snprintf(sp->cmd, sizeof(sp->cmd), "%s", command);
    return !sp->refuse_open;
}

static bool spool_write(void *arg, const void *data, size_t len)
{
    struct spool *sp = arg;
    (void)data;
    sp->bytes += len;
    return !sp->fail_write;
}

static void spool_close(void *arg, bool ok)
{
    struct spool *sp = arg;
    sp->closes++;
    sp->last_ok = ok;
}

static void run_sink(struct spool *sp, const char *in, const char *want)
{
    static const size_t chunks[] = {1, 7, 100000};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        struct spool saved = *sp;
        struct imap_parser *p = imap_parser_new(&limits);
        struct imap_literal_sink sink = {spool_open, spool_write, spool_close, sp};
        imap_parser_set_sink(p, &sink);
        struct seen s = {0};
        drive(p, in, strlen(in), chunks[k], &s);
        assert_string_equal(s.out, want);
        imap_parser_free(p);
        if (k + 1 < sizeof(chunks) / sizeof(chunks[0]))
            *sp = saved;
    }
}

static void test_sink(void **state)
{
    (void)state;
    char msg[200];
    memset(msg, 'm', sizeof(msg));
    char in[400];
    snprintf(in, sizeof(in), "a append INBOX (\\Seen) {200}\r\n%.200s\r\nb NOOP\r\n", msg);
    struct spool sp = {0};
    run_sink(&sp, in, "a APPEND INBOX (\\Seen) <spooled 200>\nb NOOP\n");
    assert_int_equal(sp.opens, 1);
    assert_int_equal(sp.closes, 1);
    assert_true(sp.last_ok);
    assert_int_equal(sp.bytes, 200);
    assert_string_equal(sp.cmd, "APPEND");

    /* Refused by the sink: NO [TOOBIG]. */
    sp = (struct spool){.refuse_open = true};
    run_sink(&sp, "a APPEND INBOX {200}\r\nb NOOP\r\n", "a TOOBIG literal refused\nb NOOP\n");
    assert_int_equal(sp.closes, 0);

    /* A write that fails: BAD after the literal and the command. */
    sp = (struct spool){.fail_write = true};
    snprintf(in, sizeof(in), "a APPEND INBOX {200+}\r\n%.200s extra\r\nb NOOP\r\n", msg);
    run_sink(&sp, in, "a BAD literal could not be stored\nb NOOP\n");
    assert_int_equal(sp.closes, 1);
    assert_false(sp.last_ok);

    /* Bad after the literal: closed not ok. */
    sp = (struct spool){0};
    snprintf(in, sizeof(in), "a APPEND INBOX {200}\r\n%.200s (\r\nb NOOP\r\n", msg);
    run_sink(&sp, in, "a BAD unbalanced parentheses: missing )\nb NOOP\n");
    assert_int_equal(sp.closes, 1);
    assert_false(sp.last_ok);

    /* Over max_literal: the sink is not asked. */
    sp = (struct spool){0};
    run_sink(&sp, "a APPEND INBOX {100001}\r\n", "a TOOBIG literal too large\n");
    assert_int_equal(sp.opens, 0);

    /* Refused by the session after open: closed not ok. */
    sp = (struct spool){0};
    struct imap_parser *p = imap_parser_new(&limits);
    struct imap_literal_sink sink = {spool_open, spool_write, spool_close, &sp};
    imap_parser_set_sink(p, &sink);
    assert_int_equal(imap_parse_line(p, "a APPEND x {1000}", 17), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_refuse(p), IMAP_PARSE_DONE);
    assert_int_equal(sp.closes, 1);
    assert_false(sp.last_ok);
    /* Freed in the middle of a spooled literal: closed not ok. */
    assert_int_equal(imap_parse_line(p, "a APPEND x {1000}", 17), IMAP_PARSE_LITERAL);
    assert_int_equal(imap_parse_literal(p, msg, 10), IMAP_PARSE_LITERAL);
    imap_parser_free(p);
    assert_int_equal(sp.closes, 2);
    assert_false(sp.last_ok);
}

static void test_arg_helpers(void **state)
{
    (void)state;
    struct imap_parser *p = imap_parser_new(&limits);
    const char *line = "a X Fetch \"fetch\" NIL (a)";
    assert_int_equal(imap_parse_line(p, line, strlen(line)), IMAP_PARSE_DONE);
    const struct imap_command *c = imap_parse_command(p);
    assert_int_equal(c->count, 4);
    assert_true(imap_arg_atom_is(&c->args[0], "FETCH"));
    assert_false(imap_arg_atom_is(&c->args[0], "FETC"));
    assert_false(imap_arg_atom_is(&c->args[1], "fetch"));
    assert_false(imap_arg_atom_is(&c->args[2], "NIL"));
    assert_string_equal(imap_arg_astring(&c->args[0]), "Fetch");
    assert_string_equal(imap_arg_astring(&c->args[1]), "fetch");
    assert_null(imap_arg_astring(&c->args[2]));
    assert_null(imap_arg_astring(&c->args[3]));
    imap_parser_free(p);
}

/* A long line of many arguments parses in one pass (no re-scanning). */
static void test_long_line(void **state)
{
    (void)state;
    struct imap_parse_limits big = limits;
    big.max_command = 32u << 20;
    big.max_args = 200000;
    size_t n = 100000;
    char *line = malloc(4 + n * 2 + 1);
    memcpy(line, "a X", 3);
    for (size_t i = 0; i < n; i++)
        memcpy(line + 3 + i * 2, " b", 2);
    struct imap_parser *p = imap_parser_new(&big);
    assert_int_equal(imap_parse_line(p, line, 3 + n * 2), IMAP_PARSE_DONE);
    assert_int_equal(imap_parse_command(p)->count, n);
    /* Open '[' after open '[': each would scan to the end if rescanned. */
    for (size_t i = 0; i < n; i++)
        memcpy(line + 4 + i * 2, "a[", 2);
    memcpy(line, "a X ", 4);
    assert_int_equal(imap_parse_line(p, line, 4 + n * 2), IMAP_PARSE_DONE);
    assert_int_equal(imap_parse_command(p)->args[0].len, n * 2);
    imap_parser_free(p);
    free(line);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),      cmocka_unit_test(test_sections),
        cmocka_unit_test(test_bad),         cmocka_unit_test(test_utf8_quoted),
        cmocka_unit_test(test_literals),    cmocka_unit_test(test_limits),
        cmocka_unit_test(test_toobig),      cmocka_unit_test(test_bad_then_literal),
        cmocka_unit_test(test_refuse),      cmocka_unit_test(test_sink),
        cmocka_unit_test(test_arg_helpers), cmocka_unit_test(test_long_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
