/* The POP3 command grammar (verbs, arities, message numbers, the bad
 * input the integration tests send too) and the RETR/TOP output: CRLF
 * line ends, dot-stuffing, TOP's cut, fed whole and a byte at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "pop3_body.h"
#include "pop3_parse.h"

static struct pop3_cmd parsed(const char *text)
{
    static char line[512]; /* the command points into it */
    snprintf(line, sizeof(line), "%s", text);
    struct pop3_cmd cmd;
    const char *error = NULL;
    if (!pop3_parse(line, strlen(line), &cmd, &error))
        fail_msg("%s: refused: %s", text, error);
    return cmd;
}

static void refused(const char *text, const char *why)
{
    char line[512];
    snprintf(line, sizeof(line), "%s", text);
    struct pop3_cmd cmd;
    const char *error = NULL;
    if (pop3_parse(line, strlen(line), &cmd, &error))
        fail_msg("%s: accepted", text);
    if (strstr(error, why) == NULL)
        fail_msg("%s: refused with '%s', expected '%s'", text, error, why);
}

static void test_verbs(void **state)
{
    (void)state;
    assert_int_equal(parsed("STAT").verb, POP3_STAT);
    assert_int_equal(parsed("stat").verb, POP3_STAT);
    assert_int_equal(parsed("Top 1 0").verb, POP3_TOP);
    assert_int_equal(parsed("CAPA").verb, POP3_CAPA);
    assert_int_equal(parsed("STLS").verb, POP3_STLS);
    assert_int_equal(parsed("NOOP").verb, POP3_NOOP);
    refused("STATS", "unknown command");
    refused("", "unknown command");
    refused(" STAT", "unknown command");
    refused("XTND XLST", "unknown command");
    char nul[] = "STAT\0x";
    struct pop3_cmd cmd;
    const char *error;
    assert_false(pop3_parse(nul, 6, &cmd, &error));
}

static void test_arguments(void **state)
{
    (void)state;
    struct pop3_cmd c = parsed("LIST");
    assert_int_equal(c.nargs, 0);
    assert_int_equal(c.msg, 0);
    c = parsed("LIST 7");
    assert_int_equal(c.msg, 7);
    c = parsed("TOP 3 10");
    assert_int_equal(c.msg, 3);
    assert_int_equal(c.lines, 10);
    c = parsed("TOP 3 0");
    assert_int_equal(c.lines, 0);
    c = parsed("USER alice@example.test");
    assert_string_equal(c.arg[0], "alice@example.test");
    c = parsed("PASS a secret with spaces ");
    assert_string_equal(c.arg[0], "a secret with spaces ");
    c = parsed("AUTH PLAIN AGFsaWNlAHB3");
    assert_string_equal(c.arg[0], "PLAIN");
    assert_string_equal(c.arg[1], "AGFsaWNlAHB3");
    c = parsed("AUTH");
    assert_int_equal(c.nargs, 0);
    c = parsed("UIDL 4294967295");
    assert_int_equal(c.msg, 4294967295u);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    refused("RETR", "missing argument");
    refused("DELE", "missing argument");
    refused("TOP 1", "missing argument");
    refused("USER", "missing argument");
    refused("PASS", "missing argument");
    refused("PASS ", "missing argument");
    refused("STAT 1", "invalid arguments");
    refused("RETR 1 2", "invalid arguments");
    refused("LIST 1 2", "invalid arguments");
    refused("QUIT now", "invalid arguments");
    refused("RETR 0", "invalid message number");
    refused("RETR -1", "invalid message number");
    refused("RETR +1", "invalid message number");
    refused("RETR 4294967296", "invalid message number");
    refused("RETR 99999999999999999999", "invalid message number");
    refused("RETR 1x", "invalid message number");
    refused("TOP 1 -1", "invalid number of lines");
    refused("TOP 1 x", "invalid number of lines");
    refused("RETR  1", "invalid arguments");
    refused("LIST 1 ", "invalid arguments");
    refused("TOP 1  2", "invalid arguments");
    refused("RETR 11111111111111111111111111111111111111111", "argument too long");
}

/* Whole, and a byte at a time. */
static void body(const char *in, bool top, uint32_t lines, const char *want)
{
    for (int step = 0; step < 2; step++) {
        struct pop3_body b;
        struct petrel_buf out;
        petrel_buf_init(&out, 1 << 16);
        pop3_body_init(&b, top, lines);
        size_t len = strlen(in), i = 0;
        while (i < len && !b.done) {
            size_t n = step == 0 ? len : 1;
            i += pop3_body_feed(&b, in + i, n, &out);
        }
        pop3_body_end(&b, &out);
        char got[4096];
        snprintf(got, sizeof(got), "%.*s", (int)out.len, petrel_buf_head(&out));
        if (strcmp(got, want) != 0)
            fail_msg("%s step %d: got '%s' want '%s'", in, step, got, want);
        petrel_buf_free(&out);
    }
}

static void test_body(void **state)
{
    (void)state;
    body("A: b\r\n\r\nline\r\n", false, 0, "A: b\r\n\r\nline\r\n.\r\n");
    body("A: b\n\n.dot\n..two\n.\n", false, 0, "A: b\r\n\r\n..dot\r\n...two\r\n..\r\n.\r\n");
    body("no end", false, 0, "no end\r\n.\r\n");
    body("cr\rin\r\nthe middle\r", false, 0, "cr\rin\r\nthe middle\r\n.\r\n");
    body("", false, 0, ".\r\n");
}

static void test_top(void **state)
{
    (void)state;
    const char *m = "A: 1\r\nB: 2\r\n\r\none\r\n.two\r\nthree\r\n";
    body(m, true, 0, "A: 1\r\nB: 2\r\n\r\n.\r\n");
    body(m, true, 1, "A: 1\r\nB: 2\r\n\r\none\r\n.\r\n");
    body(m, true, 2, "A: 1\r\nB: 2\r\n\r\none\r\n..two\r\n.\r\n");
    body(m, true, 100, "A: 1\r\nB: 2\r\n\r\none\r\n..two\r\nthree\r\n.\r\n");
    body("A: 1\nB: 2\n\nbody\n", true, 0, "A: 1\r\nB: 2\r\n\r\n.\r\n");
    body("only: header\r\n", true, 5, "only: header\r\n.\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbs),         cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_bad_arguments), cmocka_unit_test(test_body),
        cmocka_unit_test(test_top),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
