/* The SMTP command grammar: verbs, paths and their canonical form, every
 * ESMTP parameter with the extensions on and off, the limits, UTF-8, BDAT,
 * HELO/EHLO and xtext. Each refusal is checked for its reply code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"

static const struct smtp_parse_opts all = {
    .smtputf8 = true, .dsn = true, .chunking = true, .eightbit = true};
static const struct smtp_parse_opts none = {0};

static void mail_ok(const char *args, const struct smtp_parse_opts *opts, struct smtp_mail *m)
{
    struct smtp_reply err = {0};
    if (!smtp_parse_mail(args, opts, m, &err))
        fail_msg("MAIL %s: refused %d %s %s", args, err.code, err.enhanced, err.text);
    assert_int_equal(err.code, 0); /* untouched on success */
}

static void mail_refused(const char *args, const struct smtp_parse_opts *opts, int code,
                         const char *enhanced)
{
    struct smtp_mail m;
    struct smtp_reply err = {0};
    if (smtp_parse_mail(args, opts, &m, &err))
        fail_msg("MAIL %s: accepted as <%s>", args, m.from.address);
    if (err.code != code || strcmp(err.enhanced, enhanced) != 0)
        fail_msg("MAIL %s: %d %s %s, expected %d %s", args, err.code, err.enhanced, err.text, code,
                 enhanced);
    assert_non_null(err.text);
}

static void rcpt_ok(const char *args, const struct smtp_parse_opts *opts, bool utf8_ok,
                    struct smtp_rcpt *r)
{
    struct smtp_reply err = {0};
    if (!smtp_parse_rcpt(args, opts, utf8_ok, r, &err))
        fail_msg("RCPT %s: refused %d %s %s", args, err.code, err.enhanced, err.text);
}

static void rcpt_refused(const char *args, const struct smtp_parse_opts *opts, bool utf8_ok,
                         int code, const char *enhanced)
{
    struct smtp_rcpt r;
    struct smtp_reply err = {0};
    if (smtp_parse_rcpt(args, opts, utf8_ok, &r, &err))
        fail_msg("RCPT %s: accepted as <%s>", args, r.to.address);
    if (err.code != code || strcmp(err.enhanced, enhanced) != 0)
        fail_msg("RCPT %s: %d %s %s, expected %d %s", args, err.code, err.enhanced, err.text, code,
                 enhanced);
    assert_non_null(err.text);
}

/* The canonical form of a recipient (all extensions on, UTF-8 allowed). */
static const char *canon(const char *path)
{
    static struct smtp_rcpt r;
    char args[600];
    snprintf(args, sizeof(args), "TO:%s", path);
    rcpt_ok(args, &all, true, &r);
    if (!r.to.postmaster && r.to.address[r.to.local_len] != '@')
        fail_msg("%s: local_len %zu does not end at '@'", path, r.to.local_len);
    return r.to.address;
}

static void rcpt_bad(const char *path)
{
    char args[600];
    snprintf(args, sizeof(args), "TO:%s", path);
    rcpt_refused(args, &all, true, 501, "5.1.3");
}

static enum smtp_verb verb_of(const char *line, const char **args_r)
{
    return smtp_parse_verb(line, strlen(line), args_r);
}

/* ---- verbs ----------------------------------------------------------- */

static void test_every_verb(void **state)
{
    static const struct {
        const char *name;
        enum smtp_verb verb;
    } cases[] = {
        {"HELO", SMTP_HELO}, {"EHLO", SMTP_EHLO},         {"MAIL", SMTP_MAIL}, {"RCPT", SMTP_RCPT},
        {"DATA", SMTP_DATA}, {"BDAT", SMTP_BDAT},         {"RSET", SMTP_RSET}, {"NOOP", SMTP_NOOP},
        {"QUIT", SMTP_QUIT}, {"VRFY", SMTP_VRFY},         {"EXPN", SMTP_EXPN}, {"HELP", SMTP_HELP},
        {"AUTH", SMTP_AUTH}, {"STARTTLS", SMTP_STARTTLS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char lower[16];
        const char *args = NULL;
        assert_int_equal(verb_of(cases[i].name, &args), cases[i].verb);
        assert_string_equal(args, "");
        snprintf(lower, sizeof(lower), "%s", cases[i].name);
        for (char *p = lower; *p != '\0'; p++)
            *p = (char)(*p | 0x20);
        assert_int_equal(verb_of(lower, &args), cases[i].verb);
    }
    const char *args;
    assert_int_equal(verb_of("StartTls", &args), SMTP_STARTTLS);
    assert_int_equal(verb_of("mAiL FROM:<a@b.c>", &args), SMTP_MAIL);
}

static void test_verb_args(void **state)
{
    const char *line = "MAIL FROM:<a@b.c> SIZE=10", *args;
    assert_int_equal(verb_of(line, &args), SMTP_MAIL);
    assert_ptr_equal(args, line + 5);
    assert_int_equal(verb_of("RCPT   TO:<a@b.c>", &args), SMTP_RCPT);
    assert_string_equal(args, "TO:<a@b.c>");
    assert_int_equal(verb_of("EHLO client.example", &args), SMTP_EHLO);
    assert_string_equal(args, "client.example");
    assert_int_equal(verb_of("QUIT   ", &args), SMTP_QUIT);
    assert_string_equal(args, "");
    assert_int_equal(verb_of("DATA x", &args), SMTP_DATA); /* the caller refuses the x */
    assert_string_equal(args, "x");
}

static void test_verb_malformed(void **state)
{
    static const char *const lines[] = {
        "",
        " MAIL FROM:<a@b.c>",
        "FOO",
        "MAILFROM:<a@b.c>",
        "MAIL\tFROM:<a@b.c>",
        "MAIL:",
        "HEL0",
        "QUITQUIT",
        "AAAAAAAAAAAAAAAAA",
        "M\xc3\xa4IL",
        "\xff\xfe",
        "DATA\r",
        "EHLO\nfoo",
        "1234",
        "RCPT-TO:<a@b.c>",
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        const char *args = NULL;
        assert_int_equal(verb_of(lines[i], &args), SMTP_UNKNOWN);
        assert_string_equal(args, "");
    }
    /* A NUL anywhere in the line: the rest could not be seen as a string. */
    const char *args;
    assert_int_equal(smtp_parse_verb("QUIT\0x", 6, &args), SMTP_UNKNOWN);
    assert_int_equal(smtp_parse_verb("MAIL FROM:<a@b.c>\0", 18, &args), SMTP_UNKNOWN);
    /* Only len octets are looked at. */
    assert_int_equal(smtp_parse_verb("QUITX", 4, &args), SMTP_QUIT);
    assert_string_equal(args, "");
}

/* ---- MAIL ------------------------------------------------------------ */

static void test_mail_all_parameters(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c> SIZE=100 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By AUTH=<>", &all, &m);
    assert_string_equal(m.from.address, "a@b.c");
    assert_int_equal(m.from.local_len, 1);
    assert_false(m.from.null);
    assert_int_equal(m.size, 100);
    assert_int_equal(m.body, SMTP_BODY_8BITMIME);
    assert_true(m.smtputf8);
    assert_int_equal(m.ret, SMTP_RET_HDRS);
    assert_true(m.has_envid);
    assert_string_equal(m.envid, "x+y");
    assert_true(m.has_auth);
    assert_string_equal(m.auth, "<>");
}

static void test_mail_plain(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<alice@example.test>", &none, &m);
    assert_string_equal(m.from.address, "alice@example.test");
    assert_int_equal(m.size, 0);
    assert_int_equal(m.body, SMTP_BODY_NONE);
    assert_false(m.smtputf8);
    assert_int_equal(m.ret, SMTP_RET_NONE);
    assert_false(m.has_envid);
    assert_string_equal(m.envid, "");
    assert_false(m.has_auth);
    assert_false(m.from.quoted);
    assert_false(m.from.domain_literal);
    assert_false(m.from.utf8);
}

static void test_mail_case_and_spaces(void **state)
{
    static const char *const ok[] = {
        "from:<a@b.c>",
        "From:<a@b.c>",
        "FROM: <a@b.c>",
        "FROM:   <a@b.c>",
        "FROM:<a@b.c> ",
        "FROM:<a@b.c>   SIZE=1   BODY=7BIT  ",
        "from:<a@b.c> size=10 body=8bitmime smtputf8 ret=full envid=abc auth=<>",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct smtp_mail m;
        mail_ok(ok[i], &all, &m);
        assert_string_equal(m.from.address, "a@b.c");
    }
    struct smtp_mail m;
    mail_ok("from:<a@b.c> size=10 body=binarymime ret=full", &all, &m);
    assert_int_equal(m.body, SMTP_BODY_BINARYMIME);
    assert_int_equal(m.ret, SMTP_RET_FULL);
}

static void test_mail_null_path(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<>", &none, &m);
    assert_true(m.from.null);
    assert_string_equal(m.from.address, "");
    assert_int_equal(m.from.local_len, 0);
    mail_ok("FROM:<> SIZE=2000 BODY=7BIT", &none, &m);
    assert_true(m.from.null);
    assert_int_equal(m.size, 2000);
    assert_int_equal(m.body, SMTP_BODY_7BIT);
    mail_refused("FROM:<> >", &all, 501, "5.5.4");
    mail_refused("FROM:<>>", &all, 501, "5.5.4");
}

static void test_mail_shape(void **state)
{
    mail_refused("", &all, 501, "5.5.2");
    mail_refused("FROM", &all, 501, "5.5.2");
    mail_refused("FROM <a@b.c>", &all, 501, "5.5.2");
    mail_refused("TO:<a@b.c>", &all, 501, "5.5.2");
    mail_refused("FROM:", &all, 501, "5.1.7");
    mail_refused("FROM:a@b.c", &all, 501, "5.1.7");
    mail_refused("FROM:<a@b.c", &all, 501, "5.1.7");
    mail_refused("FROM:<postmaster>", &all, 501, "5.1.7");
    mail_refused("FROM:<@a,@b:u@c>", &all, 501, "5.1.7");
    mail_refused("FROM:<a@b.c>SIZE=1", &all, 501, "5.5.4");
}

static void test_unknown_parameters(void **state)
{
    mail_refused("FROM:<a@b.c> FOO=bar", &all, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> X-FOO", &all, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> SIZES=1", &all, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> NOTIFY=NEVER", &all, 555, "5.5.4"); /* a RCPT parameter */
    mail_refused("FROM:<a@b.c> ORCPT=rfc822;a@b.c", &all, 555, "5.5.4");
    rcpt_refused("TO:<a@b.c> SIZE=1", &all, true, 555, "5.5.4"); /* a MAIL parameter */
    rcpt_refused("TO:<a@b.c> RET=FULL", &all, true, 555, "5.5.4");
    rcpt_refused("TO:<a@b.c> X=1", &all, true, 555, "5.5.4");
}

static void test_extensions_not_offered(void **state)
{
    mail_refused("FROM:<a@b.c> BODY=8BITMIME", &none, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> BODY=BINARYMIME", &none, 555, "5.5.4");
    struct smtp_parse_opts eight = {.eightbit = true};
    mail_refused("FROM:<a@b.c> BODY=BINARYMIME", &eight, 555, "5.5.4");
    struct smtp_parse_opts chunk = {.chunking = true};
    mail_refused("FROM:<a@b.c> BODY=BINARYMIME", &chunk, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> SMTPUTF8", &none, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> RET=FULL", &none, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> ENVID=abc", &none, 555, "5.5.4");
    rcpt_refused("TO:<a@b.c> NOTIFY=NEVER", &none, true, 555, "5.5.4");
    rcpt_refused("TO:<a@b.c> ORCPT=rfc822;a@b.c", &none, true, 555, "5.5.4");
    /* Not offered wins over a bad value. */
    mail_refused("FROM:<a@b.c> RET=bogus", &none, 555, "5.5.4");
    /* Always there: SIZE, BODY=7BIT, AUTH=. */
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c> SIZE=1 BODY=7BIT AUTH=<>", &none, &m);
    mail_ok("FROM:<a@b.c> BODY=8BITMIME", &eight, &m);
    assert_int_equal(m.body, SMTP_BODY_8BITMIME);
    /* A NULL opts is nothing offered. */
    mail_ok("FROM:<a@b.c> SIZE=1", NULL, &m);
    mail_refused("FROM:<a@b.c> SMTPUTF8", NULL, 555, "5.5.4");
}

static void test_duplicate_parameters(void **state)
{
    mail_refused("FROM:<a@b.c> SIZE=1 SIZE=2", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> SIZE=1 size=1", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> SMTPUTF8 SMTPUTF8", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> BODY=7BIT BODY=8BITMIME", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> AUTH=<> AUTH=<>", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> ENVID=a ENVID=b", &all, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> RET=FULL RET=HDRS", &all, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", &all, true, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c> ORCPT=rfc822;a ORCPT=rfc822;b", &all, true, 501, "5.5.4");
}

static void test_parameter_syntax(void **state)
{
    static const char *const bad[] = {
        "FROM:<a@b.c> =x",        "FROM:<a@b.c> SIZE==1",   "FROM:<a@b.c> -SIZE=1",
        "FROM:<a@b.c> SI_ZE=1",   "FROM:<a@b.c> SIZE=1\t",  "FROM:<a@b.c> AUTH=a\x7f",
        "FROM:<a@b.c> AUTH=a\rb", "FROM:<a@b.c> ENVID=a=b", "FROM:<a@b.c> SMTPUTF8=yes",
        "FROM:<a@b.c> BODY",      "FROM:<a@b.c> BODY=",     "FROM:<a@b.c> BODY=8BIT",
        "FROM:<a@b.c> RET",       "FROM:<a@b.c> RET=NONE",  "FROM:<a@b.c> AUTH",
        "FROM:<a@b.c> ENVID",     "FROM:<a@b.c> AUTH=\xff", "FROM:<a@b.c>\tSIZE=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_refused(bad[i], &all, 501, "5.5.4");
}

static void test_parameter_limits(void **state)
{
    char args[1200];
    /* 17 parameters: refused whatever they are. */
    snprintf(args, sizeof(args), "FROM:<a@b.c>%s", " x x x x x x x x x x x x x x x x x");
    mail_refused(args, &all, 501, "5.5.4");
    /* keyword=value of 1000 octets fits: ORCPT=rfc822; and 329 "+41". */
    char *p = args + snprintf(args, sizeof(args), "TO:<a@b.c> ORCPT=rfc822;");
    for (int i = 0; i < 329; i++, p += 3)
        memcpy(p, "+41", 3);
    *p = '\0';
    struct smtp_rcpt r;
    rcpt_ok(args, &all, false, &r);
    assert_int_equal(strlen(r.orcpt), 329);
    /* 1001 octets, though ORCPT would hold the 330 it decodes to. */
    memcpy(p, "A", 2);
    rcpt_refused(args, &all, false, 501, "5.5.4");
    struct smtp_mail m;
    int n;
    /* AUTH of 257 decoded octets. */
    n = snprintf(args, sizeof(args), "FROM:<a@b.c> AUTH=");
    memset(args + n, 'a', 257);
    args[n + 257] = '\0';
    mail_refused(args, &all, 501, "5.5.4");
    args[n + 256] = '\0';
    mail_ok(args, &all, &m);
    assert_int_equal(strlen(m.auth), 256);
}

static void test_size(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c> SIZE=0", &none, &m);
    assert_int_equal(m.size, 0);
    mail_ok("FROM:<a@b.c> SIZE=10485760", &none, &m);
    assert_int_equal(m.size, 10485760);
    mail_ok("FROM:<a@b.c> SIZE=18446744073709551615", &none, &m);
    assert_true(m.size == UINT64_MAX);
    mail_ok("FROM:<a@b.c> SIZE=00000000000000000001", &none, &m); /* 20 digits */
    assert_int_equal(m.size, 1);
    mail_refused("FROM:<a@b.c> SIZE=18446744073709551616", &none, 552, "5.3.4");
    mail_refused("FROM:<a@b.c> SIZE=99999999999999999999", &none, 552, "5.3.4");
    static const char *const bad[] = {
        "FROM:<a@b.c> SIZE=000000000000000000001", /* 21 digits */
        "FROM:<a@b.c> SIZE=999999999999999999999999999999",
        "FROM:<a@b.c> SIZE=abc",
        "FROM:<a@b.c> SIZE=",
        "FROM:<a@b.c> SIZE",
        "FROM:<a@b.c> SIZE=-1",
        "FROM:<a@b.c> SIZE=+1",
        "FROM:<a@b.c> SIZE=1x",
        "FROM:<a@b.c> SIZE=0x10",
        "FROM:<a@b.c> SIZE=1.5",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_refused(bad[i], &none, 501, "5.5.4");
}

static void test_envid(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c> ENVID=QQ314159", &all, &m);
    assert_string_equal(m.envid, "QQ314159");
    mail_ok("FROM:<a@b.c> ENVID=a+20b+2B+3D", &all, &m);
    assert_string_equal(m.envid, "a b+=");
    mail_ok("FROM:<a@b.c> ENVID=+41", &all, &m); /* needless but valid */
    assert_string_equal(m.envid, "A");
    char args[300];
    int n = snprintf(args, sizeof(args), "FROM:<a@b.c> ENVID=");
    memset(args + n, 'e', SMTP_ENVID_MAX);
    args[n + SMTP_ENVID_MAX] = '\0';
    mail_ok(args, &all, &m);
    assert_int_equal(strlen(m.envid), SMTP_ENVID_MAX);
    args[n + SMTP_ENVID_MAX] = 'e';
    args[n + SMTP_ENVID_MAX + 1] = '\0';
    mail_refused(args, &all, 501, "5.5.4");
    static const char *const bad[] = {
        "FROM:<a@b.c> ENVID=a+2",   "FROM:<a@b.c> ENVID=a+",     "FROM:<a@b.c> ENVID=a+zz",
        "FROM:<a@b.c> ENVID=a+2b",  "FROM:<a@b.c> ENVID=a+0A",   "FROM:<a@b.c> ENVID=+00",
        "FROM:<a@b.c> ENVID=+7F",   "FROM:<a@b.c> ENVID=+C3+BC", "FROM:<a@b.c> ENVID=\xc3\xbc",
        "FROM:<a@b.c> ENVID=a++41", "FROM:<a@b.c> ENVID=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_refused(bad[i], &all, 501, "5.5.4");
}

static void test_auth_parameter(void **state)
{
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c> AUTH=<>", &none, &m);
    assert_true(m.has_auth);
    assert_string_equal(m.auth, "<>");
    mail_ok("FROM:<a@b.c> AUTH=user+2Bx@example.com", &none, &m);
    assert_string_equal(m.auth, "user+x@example.com");
    mail_ok("FROM:<> AUTH=<e+3Dmc2@example.com>", &none, &m);
    assert_string_equal(m.auth, "<e=mc2@example.com>");
    mail_refused("FROM:<a@b.c> AUTH=", &none, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> AUTH=+00", &none, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> AUTH=a+0D+0Ab", &none, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> AUTH=+C3", &none, 501, "5.5.4"); /* not UTF-8 */
}

/* ---- paths ----------------------------------------------------------- */

/* RFC 8689: REQUIRETLS only when offered, only over TLS, no value, and
 * never on RCPT. */
static void test_requiretls(void **state)
{
    (void)state;
    static const struct smtp_parse_opts on_tls = {.requiretls = true, .tls = true};
    static const struct smtp_parse_opts on_plain = {.requiretls = true};
    static const struct smtp_parse_opts off_tls = {.tls = true};
    struct smtp_mail m;
    mail_ok("FROM:<a@b.c>", &on_tls, &m);
    assert_false(m.requiretls);
    mail_ok("FROM:<a@b.c> REQUIRETLS", &on_tls, &m);
    assert_true(m.requiretls);
    mail_ok("FROM:<a@b.c> requiretls SIZE=10", &on_tls, &m);
    assert_true(m.requiretls);
    assert_int_equal(m.size, 10);
    mail_ok("FROM:<> REQUIRETLS", &on_tls, &m);
    assert_true(m.requiretls && m.from.null);
    mail_refused("FROM:<a@b.c> REQUIRETLS", &on_plain, 530, "5.7.10");
    mail_refused("FROM:<a@b.c> REQUIRETLS", &off_tls, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> REQUIRETLS", &none, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> REQUIRETLS", NULL, 555, "5.5.4");
    mail_refused("FROM:<a@b.c> REQUIRETLS=yes", &on_tls, 501, "5.5.4");
    mail_refused("FROM:<a@b.c> REQUIRETLS REQUIRETLS", &on_tls, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c> REQUIRETLS", &on_tls, false, 555, "5.5.4");
}

static void test_rcpt_plain(void **state)
{
    struct smtp_rcpt r;
    rcpt_ok("TO:<bob@example.test>", &none, false, &r);
    assert_string_equal(r.to.address, "bob@example.test");
    assert_int_equal(r.to.local_len, 3);
    assert_int_equal(r.notify, 0);
    assert_string_equal(r.orcpt_type, "");
    assert_string_equal(r.orcpt, "");
    rcpt_ok("to: <bob@example.test>", &none, false, &r);
    assert_string_equal(r.to.address, "bob@example.test");
    rcpt_ok("To:<bob@example.test>  ", &none, false, &r);
    assert_string_equal(r.to.address, "bob@example.test");
}

static void test_rcpt_shape(void **state)
{
    rcpt_refused("", &all, true, 501, "5.5.2");
    rcpt_refused("TO", &all, true, 501, "5.5.2");
    rcpt_refused("FROM:<a@b.c>", &all, true, 501, "5.5.2");
    rcpt_refused("TO <a@b.c>", &all, true, 501, "5.5.2");
    rcpt_refused("TO:user@x.y", &all, true, 501, "5.1.3");
    rcpt_refused("TO:", &all, true, 501, "5.1.3");
    rcpt_refused("TO:<>", &all, true, 501, "5.1.3");
    rcpt_refused("TO:<a@b.c>x", &all, true, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c>>", &all, true, 501, "5.5.4");
}

static void test_postmaster(void **state)
{
    struct smtp_rcpt r;
    static const char *const forms[] = {"TO:<postmaster>", "TO:<Postmaster>", "to:<POSTMASTER>"};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        rcpt_ok(forms[i], &none, false, &r);
        assert_true(r.to.postmaster);
        assert_string_equal(r.to.address, "postmaster");
        assert_int_equal(r.to.local_len, strlen("postmaster"));
    }
    rcpt_ok("TO:<PostMaster@Example.TEST>", &none, false, &r);
    assert_false(r.to.postmaster);
    assert_string_equal(r.to.address, "PostMaster@example.test");
    rcpt_bad("<\"postmaster\">");
    rcpt_bad("<postmasters>");
    rcpt_bad("<abuse>");
    mail_refused("FROM:<postmaster>", &all, 501, "5.1.7");
}

static void test_source_routes(void **state)
{
    rcpt_bad("<@a,@b:u@c>");
    rcpt_bad("<@a:u@c>");
    rcpt_bad("<@a.example:user@b.example>");
    mail_refused("FROM:<@a,@b:u@c>", &all, 501, "5.1.7");
}

static void test_path_syntax(void **state)
{
    static const char *const bad[] = {
        "<user>",         "<user@>",          "<@x.y>",         "<user@a@b>",
        "<user@x.y",      "<user@x.y.>",      "<user@.x.y>",    "<user@x..y>",
        "<user@-x.y>",    "<user@x-.y>",      "<user@x_y.z>",   "<.user@x.y>",
        "<user.@x.y>",    "<us..er@x.y>",     "<a b@x.y>",      "< a@x.y>",
        "<a@x.y >",       "<a@ x.y>",         "<a@x.y\r>",      "<a\r\n@x.y>",
        "<a@x.y\n>",      "<(c)a@x.y>",       "<a,b@x.y>",      "<a@[1.2.3.4>",
        "<a:b@x.y>",      "<\"a\"b@x.y>",     "<a\"b\"@x.y>",   "<\"abc@x.y>",
        "<\"a\rb\"@x.y>", "<\"a\\\rb\"@x.y>", "<\"a\tb\"@x.y>", "<\"a\x7f\"@x.y>",
        "<a\x7f@x.y>",    "<a@x.y.z.>",       "<a@>x.y",        "<>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rcpt_bad(bad[i]);
}

static void test_quoted_local_parts(void **state)
{
    struct smtp_rcpt r;
    rcpt_ok("TO:<\"a b\"@x.y>", &none, false, &r);
    assert_string_equal(r.to.address, "\"a b\"@x.y");
    assert_true(r.to.quoted);
    assert_int_equal(r.to.local_len, 5);
    rcpt_ok("TO:<\"user@remote\"@local.test>", &none, false, &r);
    assert_string_equal(r.to.address, "\"user@remote\"@local.test");
    assert_int_equal(r.to.local_len, 13);
    assert_string_equal(r.to.address + r.to.local_len + 1, "local.test");
    rcpt_ok("TO:<\"abc\"@x.y>", &none, false, &r);
    assert_string_equal(r.to.address, "abc@x.y");
    assert_false(r.to.quoted);
    assert_int_equal(r.to.local_len, 3);

    assert_string_equal(canon("<\"a.b\"@x.y>"), "a.b@x.y");
    assert_string_equal(canon("<\"a..b\"@x.y>"), "\"a..b\"@x.y");
    assert_string_equal(canon("<\".a\"@x.y>"), "\".a\"@x.y");
    assert_string_equal(canon("<\"a\\bc\"@x.y>"), "abc@x.y"); /* needless backslash */
    assert_string_equal(canon("<\"a\\ b\"@x.y>"), "\"a b\"@x.y");
    assert_string_equal(canon("<\"a\\\"b\"@x.y>"), "\"a\\\"b\"@x.y");
    assert_string_equal(canon("<\"a\\\\b\"@x.y>"), "\"a\\\\b\"@x.y");
    assert_string_equal(canon("<\"\"@x.y>"), "\"\"@x.y");
    assert_string_equal(canon("<\"a>b\"@x.y>"), "\"a>b\"@x.y");
    assert_string_equal(canon("<\"a,b\"@x.y>"), "\"a,b\"@x.y");
    assert_string_equal(canon("<!#$%&'*+-/=?^_`{|}~@x.y>"), "!#$%&'*+-/=?^_`{|}~@x.y");
    assert_string_equal(canon("<\"!#$%&'*+-/=?^_`{|}~\"@x.y>"), "!#$%&'*+-/=?^_`{|}~@x.y");
    assert_string_equal(canon("<John.Doe@x.y>"), "John.Doe@x.y"); /* local part keeps case */
}

static void test_domain_case(void **state)
{
    assert_string_equal(canon("<Joe@Example.COM>"), "Joe@example.com");
    assert_string_equal(canon("<a@MAIL-1.Example.Test>"), "a@mail-1.example.test");
    assert_string_equal(canon("<a@localhost>"), "a@localhost");
    assert_string_equal(canon("<a@123.example>"), "a@123.example");
    assert_string_equal(canon("<a@x--y.z>"), "a@x--y.z");
}

static void test_address_literals(void **state)
{
    struct smtp_rcpt r;
    rcpt_ok("TO:<user@[127.0.0.1]>", &none, false, &r);
    assert_string_equal(r.to.address, "user@[127.0.0.1]");
    assert_true(r.to.domain_literal);
    assert_int_equal(r.to.local_len, 4);
    rcpt_ok("TO:<user@[IPv6:::1]>", &none, false, &r);
    assert_string_equal(r.to.address, "user@[IPv6:::1]");
    assert_true(r.to.domain_literal);
    assert_string_equal(canon("<u@[ipv6:2001:DB8::1]>"), "u@[IPv6:2001:db8::1]");
    assert_string_equal(canon("<u@[IPV6:::FFFF:192.0.2.1]>"), "u@[IPv6:::ffff:192.0.2.1]");
    assert_string_equal(canon("<u@[IPv6:1:2:3:4:5:6:7:8]>"), "u@[IPv6:1:2:3:4:5:6:7:8]");
    static const char *const bad[] = {
        "<u@[256.0.0.1]>",
        "<u@[1.2.3]>",
        "<u@[1.2.3.4.5]>",
        "<u@[127.0.0.1>",
        "<u@[]>",
        "<u@[IPv6:]>",
        "<u@[IPv6:1:2:3]>",
        "<u@[IPv6:::g]>",
        "<u@[IPv6:1::2::3]>",
        "<u@[IPv6:127.0.0.1]>",
        "<u@[tag:foo]>",
        "<u@[ 1.2.3.4]>",
        "<u@[1.2.3.4 ]>",
        "<u@[::1]>",
        "<u@[IPv6:::1]x>",
        "<u@[1.2.3.4].x>",
        "<u@x.[1.2.3.4]>",
        "<u@[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]>",
        "<u@[\xc3\xbc]>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rcpt_bad(bad[i]);
}

/* A string of n copies of c, for the length limits. */
static const char *repeat(char c, size_t n)
{
    static char buf[400];
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

/* A domain of exactly n octets made of labels of 63 at most. */
static void make_domain(char *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (i + 1) % 64 == 0 ? '.' : 'd';
    out[n] = '\0';
    if (n > 0 && out[n - 1] == '.')
        out[n - 1] = 'd', out[n - 2] = '.';
}

static void test_length_limits(void **state)
{
    char args[900], domain[400];
    struct smtp_rcpt r;
    /* A local part of 64 octets, 65. */
    snprintf(args, sizeof(args), "TO:<%s@x.y>", repeat('l', 64));
    rcpt_ok(args, &none, false, &r);
    assert_int_equal(r.to.local_len, 64);
    snprintf(args, sizeof(args), "TO:<%s@x.y>", repeat('l', 65));
    rcpt_refused(args, &none, false, 501, "5.5.4");
    /* The same in quotes: 64 octets with them. */
    snprintf(args, sizeof(args), "TO:<\"%s\"@x.y>", repeat(' ', 62));
    rcpt_ok(args, &none, false, &r);
    assert_int_equal(r.to.local_len, 64);
    snprintf(args, sizeof(args), "TO:<\"%s\"@x.y>", repeat(' ', 63));
    rcpt_refused(args, &none, false, 501, "5.5.4");
    /* A path of 256 octets, 257. */
    make_domain(domain, 252);
    snprintf(args, sizeof(args), "TO:<a@%s>", domain);
    rcpt_ok(args, &none, false, &r);
    assert_int_equal(strlen(r.to.address), 254);
    make_domain(domain, 253);
    snprintf(args, sizeof(args), "TO:<a@%s>", domain);
    rcpt_refused(args, &none, false, 501, "5.5.4");
    /* A domain of 255 octets fits no path with a local part; 256 is refused
     * as a domain. */
    make_domain(domain, 255);
    snprintf(args, sizeof(args), "TO:<a@%s>", domain);
    rcpt_refused(args, &none, false, 501, "5.5.4");
    make_domain(domain, 256);
    snprintf(args, sizeof(args), "TO:<a@%s>", domain);
    rcpt_refused(args, &none, false, 501, "5.5.4");
    make_domain(domain, 300);
    snprintf(args, sizeof(args), "FROM:<a@%s>", domain);
    mail_refused(args, &none, 501, "5.5.4");
    /* Labels of 63 octets, 64. */
    snprintf(args, sizeof(args), "TO:<a@%s.y>", repeat('d', 63));
    rcpt_ok(args, &none, false, &r);
    snprintf(args, sizeof(args), "TO:<a@%s.y>", repeat('d', 64));
    rcpt_refused(args, &none, false, 501, "5.1.3");
    /* Local 64 + domain: too long as a path. */
    make_domain(domain, 200);
    snprintf(args, sizeof(args), "TO:<%s@%s>", repeat('l', 64), domain);
    rcpt_refused(args, &none, false, 501, "5.5.4");
}

static void test_utf8_addresses(void **state)
{
    struct smtp_rcpt r;
    struct smtp_mail m;
    rcpt_ok("TO:<j\xc3\xbcrgen@b\303\274cher.example>", &all, true, &r);
    assert_true(r.to.utf8);
    assert_string_equal(r.to.address, "j\xc3\xbcrgen@b\303\274cher.example");
    rcpt_refused("TO:<j\xc3\xbcrgen@x.y>", &all, false, 553, "5.6.7");
    rcpt_refused("TO:<a@b\303\274cher.example>", &all, false, 553, "5.6.7");
    rcpt_ok("TO:<\"\xe2\x82\xac x\"@x.y>", &all, true, &r);
    assert_string_equal(r.to.address, "\"\xe2\x82\xac x\"@x.y");
    assert_string_equal(canon("<\"\xf0\x9f\x90\xa6\"@x.y>"), "\xf0\x9f\x90\xa6@x.y");
    assert_string_equal(canon("<a@\xc3\x9c.EXAMPLE>"), "a@\xc3\x9c.example"); /* ASCII only */

    mail_ok("FROM:<j\xc3\xbcrgen@x.y> SMTPUTF8", &all, &m);
    assert_true(m.from.utf8);
    assert_true(m.smtputf8);
    mail_refused("FROM:<j\xc3\xbcrgen@x.y>", &all, 553, "5.6.7");
    mail_refused("FROM:<j\xc3\xbcrgen@x.y> SMTPUTF8", &none, 555, "5.5.4");
    mail_ok("FROM:<ascii@x.y> SMTPUTF8", &all, &m);
    assert_false(m.from.utf8);

    static const char *const invalid[] = {
        "<a\xc3(@x.y>",            /* truncated sequence */
        "<a\xc0\xaf@x.y>",         /* overlong */
        "<a\xe0\x80\xaf@x.y>",     /* overlong */
        "<a\xed\xa0\x80@x.y>",     /* surrogate */
        "<a\xf4\x90\x80\x80@x.y>", /* above U+10FFFF */
        "<a\x80@x.y>",             /* lone continuation */
        "<a\xc2\x85@x.y>",         /* C1 control (NEL) */
        "<a\xff@x.y>",
        "<a@x\xc3.y>",
        "<\"a\xc3\"@x.y>",
        "<\"a\\\xc3\xbc\"@x.y>", /* no quoted-pair of non-ASCII */
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        rcpt_bad(invalid[i]);
        char args[100];
        snprintf(args, sizeof(args), "FROM:%s SMTPUTF8", invalid[i]);
        mail_refused(args, &all, 501, "5.1.7");
    }
}

/* ---- RCPT parameters ------------------------------------------------- */

static void test_notify(void **state)
{
    struct smtp_rcpt r;
    rcpt_ok("TO:<a@b.c> NOTIFY=NEVER", &all, false, &r);
    assert_int_equal(r.notify, SMTP_NOTIFY_NEVER);
    rcpt_ok("TO:<a@b.c> notify=never", &all, false, &r);
    assert_int_equal(r.notify, SMTP_NOTIFY_NEVER);
    rcpt_ok("TO:<a@b.c> NOTIFY=SUCCESS,FAILURE,DELAY", &all, false, &r);
    assert_int_equal(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
    rcpt_ok("TO:<a@b.c> NOTIFY=delay,Failure", &all, false, &r);
    assert_int_equal(r.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
    static const char *const bad[] = {
        "TO:<a@b.c> NOTIFY=NEVER,SUCCESS",
        "TO:<a@b.c> NOTIFY=FAILURE,NEVER",
        "TO:<a@b.c> NOTIFY=SUCCESS,SUCCESS",
        "TO:<a@b.c> NOTIFY=SUCCESS,",
        "TO:<a@b.c> NOTIFY=,SUCCESS",
        "TO:<a@b.c> NOTIFY=SUCCESS,,DELAY",
        "TO:<a@b.c> NOTIFY=",
        "TO:<a@b.c> NOTIFY",
        "TO:<a@b.c> NOTIFY=ALWAYS",
        "TO:<a@b.c> NOTIFY=SUCCESSFAILURE",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rcpt_refused(bad[i], &all, false, 501, "5.5.4");
}

static void test_orcpt(void **state)
{
    struct smtp_rcpt r;
    rcpt_ok("TO:<a@b.c> ORCPT=rfc822;user+40example.com", &all, false, &r);
    assert_string_equal(r.orcpt_type, "rfc822");
    assert_string_equal(r.orcpt, "user@example.com");
    rcpt_ok("TO:<a@b.c> ORCPT=RFC822;Bob@Example.COM", &all, false, &r);
    assert_string_equal(r.orcpt_type, "rfc822");
    assert_string_equal(r.orcpt, "Bob@Example.COM"); /* as the client sent it */
    rcpt_ok("TO:<a@b.c> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Bb@c.d", &all, false, &r);
    assert_int_equal(r.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE);
    assert_string_equal(r.orcpt, "a+b@c.d");
    rcpt_ok("TO:<a@b.c> ORCPT=utf-8;j\xc3\xbcrgen@x.y", &all, true, &r);
    assert_string_equal(r.orcpt_type, "utf-8");
    assert_string_equal(r.orcpt, "j\xc3\xbcrgen@x.y");
    char args[700];
    int n = snprintf(args, sizeof(args), "TO:<a@b.c> ORCPT=rfc822;");
    memset(args + n, 'o', SMTP_ORCPT_MAX);
    args[n + SMTP_ORCPT_MAX] = '\0';
    rcpt_ok(args, &all, false, &r);
    assert_int_equal(strlen(r.orcpt), SMTP_ORCPT_MAX);
    args[n + SMTP_ORCPT_MAX] = 'o';
    args[n + SMTP_ORCPT_MAX + 1] = '\0';
    rcpt_refused(args, &all, false, 501, "5.5.4");
    static const char *const bad[] = {
        "TO:<a@b.c> ORCPT=rfc822;a+4",
        "TO:<a@b.c> ORCPT=rfc822;a+4g",
        "TO:<a@b.c> ORCPT=rfc822;a+40b+",
        "TO:<a@b.c> ORCPT=rfc822;",
        "TO:<a@b.c> ORCPT=rfc822",
        "TO:<a@b.c> ORCPT=;a@b.c",
        "TO:<a@b.c> ORCPT=",
        "TO:<a@b.c> ORCPT",
        "TO:<a@b.c> ORCPT=abcdefghijklmnop;a@b.c", /* type of 16 */
        "TO:<a@b.c> ORCPT=rfc(822;a@b.c",
        "TO:<a@b.c> ORCPT=rfc822;a+0D+0Ab",
        "TO:<a@b.c> ORCPT=rfc822;+00",
        "TO:<a@b.c> ORCPT=rfc822;j\xc3\xbcrgen@x.y", /* raw UTF-8 only as utf-8 */
        "TO:<a@b.c> ORCPT=utf-8;j\xc3\xbcrgen@x.y",  /* and with SMTPUTF8 */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        rcpt_refused(bad[i], &all, false, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c> ORCPT=rfc822;j\xc3\xbcrgen@x.y", &all, true, 501, "5.5.4");
    rcpt_refused("TO:<a@b.c> ORCPT=utf-8;j\xc3(rgen@x.y", &all, true, 501, "5.5.4");
}

/* ---- BDAT, HELO, xtext ----------------------------------------------- */

static void test_bdat(void **state)
{
    uint64_t size = 99;
    bool last = true;
    struct smtp_reply err = {0};
    assert_true(smtp_parse_bdat("1000 LAST", &size, &last, &err));
    assert_int_equal(size, 1000);
    assert_true(last);
    assert_true(smtp_parse_bdat("0 LAST", &size, &last, &err));
    assert_int_equal(size, 0);
    assert_true(last);
    assert_true(smtp_parse_bdat("1000", &size, &last, &err));
    assert_int_equal(size, 1000);
    assert_false(last);
    assert_true(smtp_parse_bdat("10 last", &size, &last, &err));
    assert_true(last);
    assert_true(smtp_parse_bdat("10  LAST  ", &size, &last, &err));
    assert_true(last);
    assert_true(smtp_parse_bdat("18446744073709551615", &size, &last, &err));
    assert_true(size == UINT64_MAX);
    assert_true(smtp_parse_bdat("000000000000000000000000042", &size, &last, &err));
    assert_int_equal(size, 42);
    assert_int_equal(err.code, 0);
    static const char *const bad[] = {
        "abc",
        "",
        "LAST",
        "-1",
        "+1",
        "1 2",
        "10LAST",
        "10 LASTX",
        "10 LAST x",
        "10 x",
        "0x10",
        "1\t",
        "1.0",
        " ",
        "18446744073709551616",
        "99999999999999999999999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.code = 0;
        if (smtp_parse_bdat(bad[i], &size, &last, &err))
            fail_msg("BDAT %s accepted", bad[i]);
        assert_int_equal(err.code, 501);
        assert_string_equal(err.enhanced, "5.5.4");
        assert_non_null(err.text);
    }
}

static void helo_ok(const char *args, bool ehlo, const char *expect)
{
    char out[SMTP_DOMAIN_MAX + 1];
    struct smtp_reply err = {0};
    if (!smtp_parse_helo(args, ehlo, out, sizeof(out), &err))
        fail_msg("%s %s: refused %d %s", ehlo ? "EHLO" : "HELO", args, err.code, err.text);
    assert_string_equal(out, expect);
}

static void helo_refused(const char *args, bool ehlo)
{
    char out[SMTP_DOMAIN_MAX + 1];
    struct smtp_reply err = {0};
    if (smtp_parse_helo(args, ehlo, out, sizeof(out), &err))
        fail_msg("%s %s: accepted", ehlo ? "EHLO" : "HELO", args);
    assert_int_equal(err.code, 501);
    assert_string_equal(err.enhanced, "5.5.2");
    assert_string_equal(out, "");
}

/* HELO and EHLO: one grammar, since both end up in Received:. */
static void test_helo_accepted(void **state)
{
    static const char *const good[] = {
        "mail.example.com",   "Mail.Example.COM", "localhost", "foo_bar", "mail_1.example-2.net",
        "_dmarc.example",     "1.2.3.4",          "x",         "a-b.c",   "[192.0.2.1]",
        "[IPv6:2001:db8::1]", "[ipv6:::1]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        helo_ok(good[i], false, good[i]);
        helo_ok(good[i], true, good[i]);
    }
    helo_ok("  Mixed.Case  ", false, "Mixed.Case");
    helo_ok("client.example ", true, "client.example");
}

static void test_helo_refused(void **state)
{
    static const char *const bad[] = {
        "",           "   ",           "foo bar",    "x)by(trusted.example)with(ESMTPSA)id(FAKE);",
        "x(comment)", "a;b",           "a.b.",       ".a.b",
        "-a.b",       "a-.b",          "a..b",       "a.b,c",
        "x@y",        "\"x\"",         "a/b",        "a\\b",
        "[garbage",   "[1.2.3]",       "[::1]",      "[IPv6:::1",
        "[1.2.3.4]x", "[1.2.3.4].com", "[tag:text]", "b\303\274cher.de",
        "a\tb",       "a\rb",          "a\177b",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        helo_refused(bad[i], false);
        helo_refused(bad[i], true);
    }
    char label[80];
    memset(label, 'a', 64);
    label[64] = '\0';
    helo_refused(label, false); /* a label of 64 octets */
    label[63] = '\0';
    helo_ok(label, false, label);
}

static void test_helo_limits(void **state)
{
    char out[8], args[300];
    struct smtp_reply err = {0};
    assert_false(smtp_parse_helo("mail.example.com", true, out, sizeof(out), &err));
    assert_int_equal(err.code, 501);
    assert_string_equal(out, "");
    assert_false(smtp_parse_helo("mail.example.com", false, out, sizeof(out), &err));
    assert_true(smtp_parse_helo("abcdefg", false, out, sizeof(out), &err));
    assert_string_equal(out, "abcdefg");
    assert_false(smtp_parse_helo("abcdefgh", false, out, sizeof(out), &err));
    assert_false(smtp_parse_helo("a", false, out, 0, &err));
    make_domain(args, 255);
    helo_ok(args, true, args);
    helo_ok(args, false, args);
    make_domain(args, 256);
    helo_refused(args, true);
    helo_refused(args, false);
}

/* Decoding through ENVID: what smtp_xtext_encode writes, MAIL reads back. */
static void envid_round_trip(const char *s)
{
    char enc[400], args[500];
    assert_true(smtp_xtext_encode(s, enc, sizeof(enc)));
    snprintf(args, sizeof(args), "FROM:<> ENVID=%s", enc);
    struct smtp_mail m;
    mail_ok(args, &all, &m);
    assert_string_equal(m.envid, s);
}

static void test_xtext_encode(void **state)
{
    char out[64];
    assert_true(smtp_xtext_encode("x+y", out, sizeof(out)));
    assert_string_equal(out, "x+2By");
    assert_true(smtp_xtext_encode("a b=c", out, sizeof(out)));
    assert_string_equal(out, "a+20b+3Dc");
    assert_true(smtp_xtext_encode("", out, sizeof(out)));
    assert_string_equal(out, "");
    assert_true(smtp_xtext_encode("\xc3\xbc\r\n\x7f", out, sizeof(out)));
    assert_string_equal(out, "+C3+BC+0D+0A+7F");
    /* Exactly fits, one short. */
    assert_true(smtp_xtext_encode("abc", out, 4));
    assert_string_equal(out, "abc");
    assert_false(smtp_xtext_encode("abcd", out, 4));
    assert_string_equal(out, "");
    assert_true(smtp_xtext_encode("a+", out, 5));
    assert_string_equal(out, "a+2B");
    assert_false(smtp_xtext_encode("a+", out, 4));
    assert_false(smtp_xtext_encode("", out, 0));

    char printable[96];
    for (int c = 0x20; c < 0x7f; c++)
        printable[c - 0x20] = (char)c;
    printable[0x7f - 0x20] = '\0';
    envid_round_trip(printable + 5); /* 90 octets, within ENVID's 100 */
    envid_round_trip("+++===   ");
    envid_round_trip("QQ314159");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb),
        cmocka_unit_test(test_verb_args),
        cmocka_unit_test(test_verb_malformed),
        cmocka_unit_test(test_mail_all_parameters),
        cmocka_unit_test(test_mail_plain),
        cmocka_unit_test(test_mail_case_and_spaces),
        cmocka_unit_test(test_mail_null_path),
        cmocka_unit_test(test_mail_shape),
        cmocka_unit_test(test_unknown_parameters),
        cmocka_unit_test(test_extensions_not_offered),
        cmocka_unit_test(test_duplicate_parameters),
        cmocka_unit_test(test_parameter_syntax),
        cmocka_unit_test(test_parameter_limits),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_envid),
        cmocka_unit_test(test_auth_parameter),
        cmocka_unit_test(test_requiretls),
        cmocka_unit_test(test_rcpt_plain),
        cmocka_unit_test(test_rcpt_shape),
        cmocka_unit_test(test_postmaster),
        cmocka_unit_test(test_source_routes),
        cmocka_unit_test(test_path_syntax),
        cmocka_unit_test(test_quoted_local_parts),
        cmocka_unit_test(test_domain_case),
        cmocka_unit_test(test_address_literals),
        cmocka_unit_test(test_length_limits),
        cmocka_unit_test(test_utf8_addresses),
        cmocka_unit_test(test_notify),
        cmocka_unit_test(test_orcpt),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_helo_accepted),
        cmocka_unit_test(test_helo_refused),
        cmocka_unit_test(test_helo_limits),
        cmocka_unit_test(test_xtext_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
