/* The reply parser (single and multi-line replies, enhanced codes, what
 * is refused, the bounds), the EHLO keywords, the reasons built from
 * replies and the MAIL/RCPT commands with their ESMTP parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/queue.h>
#include <petrel/transport.h>

#include "smtp_reply.h"

static enum smtp_reply_step feed(struct smtp_reply *r, const char *line)
{
    return smtp_reply_feed(r, line, strlen(line), NULL);
}

static void single_line(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, "250 2.1.5 Ok"), SMTP_REPLY_DONE);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.enhanced, "2.1.5");
    assert_string_equal(r.text, "Ok");
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, "354"), SMTP_REPLY_DONE); /* a bare code */
    assert_int_equal(r.code, 354);
    assert_string_equal(r.text, "");
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, "220 mx.example.org ESMTP ready"), SMTP_REPLY_DONE);
    assert_string_equal(r.domain, "mx.example.org");
    assert_string_equal(r.enhanced, "");
    /* A code of another class is text, not an enhanced code. */
    smtp_reply_init(&r);
    feed(&r, "550 4.1.1 odd");
    assert_string_equal(r.enhanced, "");
    assert_string_equal(r.text, "4.1.1 odd");
}

static void multi_line(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, "550-5.1.1 The email account that you tried to reach"),
                     SMTP_REPLY_MORE);
    assert_int_equal(feed(&r, "550-5.1.1 does not exist."), SMTP_REPLY_MORE);
    assert_int_equal(feed(&r, "550 5.1.1  Please try again"), SMTP_REPLY_DONE);
    assert_int_equal(r.lines, 3);
    assert_string_equal(r.enhanced, "5.1.1");
    assert_string_equal(
        r.text, "The email account that you tried to reach does not exist. Please try again");
    /* Codes must agree on every line. */
    smtp_reply_init(&r);
    assert_int_equal(feed(&r, "250-first"), SMTP_REPLY_MORE);
    assert_int_equal(feed(&r, "251 second"), SMTP_REPLY_BAD);
}

static void refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"",       "25",    "2500 x", "250x", "650 no",
                                      "150 no", "2a0 x", "hello",  "25 0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct smtp_reply r;
        smtp_reply_init(&r);
        if (feed(&r, bad[i]) != SMTP_REPLY_BAD)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void bounded(void **state)
{
    (void)state;
    struct smtp_reply r;
    smtp_reply_init(&r);
    for (int i = 0; i < SMTP_REPLY_LINES_MAX; i++)
        assert_int_equal(feed(&r, "250-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), SMTP_REPLY_MORE);
    assert_int_equal(feed(&r, "250 last"), SMTP_REPLY_BAD); /* the 101st line */
    assert_true(r.truncated);
    assert_int_equal(strlen(r.text), SMTP_REPLY_TEXT_MAX);
    /* Controls and 8-bit bytes become '?', NULs included. */
    smtp_reply_init(&r);
    const char raw[] = "451 a\tb\x80\0c";
    assert_int_equal(smtp_reply_feed(&r, raw, sizeof(raw) - 1, NULL), SMTP_REPLY_DONE);
    assert_string_equal(r.text, "a?b??c");
}

static void ehlo_keywords(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "250-mx.example.org Hello",
        "250-PIPELINING",
        "250-SIZE 10240000",
        "250-8bitmime",
        "250-STARTTLS",
        "250-ENHANCEDSTATUSCODES",
        "250-DSN",
        "250-SMTPUTF8",
        "250-CHUNKING",
        "250-X-SIZEISH",
        "250 BINARYMIME",
    };
    struct smtp_reply r;
    struct smtp_ehlo e = {0};
    smtp_reply_init(&r);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        const char *text;
        enum smtp_reply_step s = smtp_reply_feed(&r, lines[i], strlen(lines[i]), &text);
        assert_int_equal(s, i + 1 < sizeof(lines) / sizeof(lines[0]) ? SMTP_REPLY_MORE
                                                                     : SMTP_REPLY_DONE);
        if (i > 0)
            smtp_ehlo_keyword(&e, text, strlen(text));
    }
    assert_string_equal(r.domain, "mx.example.org");
    assert_true(e.pipelining && e.size && e.eightbitmime && e.starttls && e.dsn && e.smtputf8 &&
                e.chunking && e.binarymime);
    assert_int_equal(e.size_limit, 10240000);
    struct smtp_ehlo f = {0};
    smtp_ehlo_keyword(&f, "SIZE", 4);
    assert_true(f.size);
    assert_int_equal(f.size_limit, 0);
    smtp_ehlo_keyword(&f, "PIPELININGX", 11);
    smtp_ehlo_keyword(&f, "SIZE 99999999999999999999999", 28);
    assert_false(f.pipelining);
    assert_int_equal(f.size_limit, 0); /* absurd: no limit */
    struct smtp_ehlo a = {0};
    smtp_ehlo_keyword(&a, "AUTH CRAM-MD5 login", 19);
    assert_true(a.auth && a.auth_login && !a.auth_plain);
    struct smtp_ehlo b = {0};
    smtp_ehlo_keyword(&b, "AUTH=PLAIN", 10);
    assert_true(b.auth && b.auth_plain && !b.auth_login);
    struct smtp_ehlo c = {0};
    smtp_ehlo_keyword(&c, "AUTHX PLAIN", 11);
    assert_false(c.auth || c.auth_plain);
}

static void reasons(void **state)
{
    (void)state;
    struct smtp_reply r;
    char out[PETREL_TRANSPORT_REASON_MAX];
    smtp_reply_init(&r);
    feed(&r, "550-5.1.1 <a@b>: no such");
    feed(&r, "550 5.1.1 user");
    smtp_reply_reason(out, sizeof(out), &r, "RCPT TO", "mx.example.org[192.0.2.1]");
    assert_string_equal(out, "550 5.1.1 <a@b>: no such user (in reply to RCPT TO, from "
                             "mx.example.org[192.0.2.1])");
    smtp_reply_init(&r);
    feed(&r, "452 too many");
    smtp_reply_reason(out, sizeof(out), &r, "RCPT TO", "h[a]");
    assert_string_equal(out, "452 4.0.0 too many (in reply to RCPT TO, from h[a])");
    /* Cut to fit: the text gives way. */
    char small[48];
    smtp_reply_reason(small, sizeof(small), &r, "RCPT TO", "h[a]");
    assert_int_equal(strlen(small), 47);
    assert_non_null(strstr(small, "(in reply to RCPT TO, from h[a])"));
}

/* Buffers are length-counted, not NUL-terminated. */
static void assert_buf(const struct petrel_buf *b, const char *want)
{
    if (b->len != strlen(want) || memcmp(petrel_buf_head(b), want, b->len) != 0)
        fail_msg("\"%.*s\" != \"%s\"", (int)b->len, petrel_buf_head(b), want);
}

static void commands(void **state)
{
    (void)state;
    struct petrel_buf b;
    petrel_buf_init(&b, 4096);
    struct petrel_transport_msg msg = {.from = "a@example.org",
                                       .size = 1234,
                                       .body = PETREL_BODY_8BITMIME,
                                       .smtputf8 = true,
                                       .ret = PETREL_DSN_RET_HDRS,
                                       .envid = "id+1=2 x"};
    struct smtp_ehlo all = {.size = true, .eightbitmime = true, .dsn = true, .smtputf8 = true};
    struct smtp_ehlo none = {0};
    assert_true(smtp_cmd_mail(&b, &msg, &all));
    assert_buf(&b, "MAIL FROM:<a@example.org> SIZE=1234 BODY=8BITMIME "
                   "SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2+20x\r\n");
    petrel_buf_reset(&b);
    msg.smtputf8 = false;
    assert_true(smtp_cmd_mail(&b, &msg, &none)); /* 8bit sent anyway, as Postfix does */
    assert_buf(&b, "MAIL FROM:<a@example.org>\r\n");
    petrel_buf_reset(&b);
    msg.from = "";
    assert_true(smtp_cmd_mail(&b, &msg, &none));
    assert_buf(&b, "MAIL FROM:<>\r\n");
    petrel_buf_reset(&b);
    msg.from = "a\r\nRSET@x";
    assert_false(smtp_cmd_mail(&b, &msg, &all));
    assert_int_equal(b.len, 0);

    struct petrel_transport_rcpt r = {.address = "b@example.net",
                                      .orcpt = "rfc822;b+x@example.net",
                                      .notify = PETREL_DSN_SUCCESS | PETREL_DSN_DELAY};
    assert_true(smtp_cmd_rcpt(&b, &r, &all));
    assert_buf(&b, "RCPT TO:<b@example.net> NOTIFY=SUCCESS,DELAY "
                   "ORCPT=rfc822;b+2Bx@example.net\r\n");
    petrel_buf_reset(&b);
    r.notify = PETREL_DSN_NEVER;
    r.orcpt = "utf-8;j\xc3\xb6rg@example.net";
    assert_true(smtp_cmd_rcpt(&b, &r, &all));
    assert_buf(&b, "RCPT TO:<b@example.net> NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@example.net\r\n");
    petrel_buf_reset(&b);
    assert_true(smtp_cmd_rcpt(&b, &r, &none));
    assert_buf(&b, "RCPT TO:<b@example.net>\r\n");
    petrel_buf_reset(&b);
    r.address = "";
    assert_false(smtp_cmd_rcpt(&b, &r, &none));
    assert_false(smtp_addr_sendable("a\n@b"));
    assert_true(smtp_addr_sendable("j\xc3\xb6rg@example.net"));
    petrel_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_line), cmocka_unit_test(multi_line),    cmocka_unit_test(refused),
        cmocka_unit_test(bounded),     cmocka_unit_test(ehlo_keywords), cmocka_unit_test(reasons),
        cmocka_unit_test(commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
