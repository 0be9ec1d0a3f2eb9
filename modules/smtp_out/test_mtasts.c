/* The MTA-STS texts (RFC 8461): policy files as servers write them (CRLF
 * and LF, extra spaces, extensions, duplicates), refusals, the TXT
 * record, and mx patterns with wildcards; and the TLS-Required header
 * field (RFC 8689) in a message's header block. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tlspolicy.h"

static int parse(const char *text, struct smtp_sts_policy *p, const char **error)
{
    *error = NULL;
    return smtp_sts_parse_policy(text, strlen(text), p, error);
}

static void policy_rfc_example(void **state)
{
    (void)state;
    struct smtp_sts_policy p;
    const char *error;
    assert_int_equal(parse("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\n"
                           "mx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
                           &p, &error),
                     0);
    assert_int_equal(p.mode, SMTP_STS_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[1], "*.example.net");
    assert_true(smtp_sts_mx_match(&p, "mail.example.com"));
    assert_true(smtp_sts_mx_match(&p, "MAIL.Example.COM."));
    assert_true(smtp_sts_mx_match(&p, "mx1.example.net"));
    assert_false(smtp_sts_mx_match(&p, "a.b.example.net")); /* one label only */
    assert_false(smtp_sts_mx_match(&p, "example.net"));
    assert_false(smtp_sts_mx_match(&p, "mail.example.com.evil"));
    assert_false(smtp_sts_mx_match(&p, "xmail.example.com"));
}

static void policy_lf_spaces_extensions(void **state)
{
    (void)state;
    struct smtp_sts_policy p;
    const char *error;
    assert_int_equal(parse("version: STSv1\nmode:testing\nmx:\t MX1.Out.Test  \nfoo: bar\n"
                           "mode: enforce\nmax_age: 99999999999\n",
                           &p, &error),
                     -1); /* max_age of 11 digits */
    assert_int_equal(parse("version: STSv1\nmode:testing\nmx:\t MX1.Out.Test  \nfoo: bar\n"
                           "mode: enforce\nmax_age: 9999999999",
                           &p, &error),
                     0);
    assert_int_equal(p.mode, SMTP_STS_TESTING); /* the first mode counts */
    assert_int_equal(p.max_age, SMTP_STS_MAX_AGE);
    assert_string_equal(p.mx[0], "mx1.out.test");
}

static void policy_refused(void **state)
{
    (void)state;
    struct smtp_sts_policy p;
    const char *error;
    static const char *const bad[] = {
        "mode: enforce\nmx: a.example\nmax_age: 1\n",                 /* no version */
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", /* other version */
        "version: STSv1\nmx: a.example\nmax_age: 1\n",                /* no mode */
        "version: STSv1\nmode: enforce\nmx: a.example\n",             /* no max_age */
        "version: STSv1\nmode: enforce\nmax_age: 1\n",                /* no mx */
        "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", /* case-sensitive */
        "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\njunk\n",
        "<html>not a policy</html>",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &p, &error), -1);
        assert_non_null(error);
    }
    assert_int_equal(parse("version: STSv1\nmode: none\nmax_age: 86400\n", &p, &error), 0);
    assert_int_equal(p.mode, SMTP_STS_NONE);
}

static void policy_many_mx_bounded(void **state)
{
    (void)state;
    char text[4096] = "version: STSv1\nmode: enforce\nmax_age: 10\n";
    size_t len = strlen(text);
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, "mx: mx%d.example\n", i);
    struct smtp_sts_policy p;
    const char *error;
    assert_int_equal(parse(text, &p, &error), 0);
    assert_int_equal(p.nmx, SMTP_STS_MX_MAX);
    assert_true(smtp_sts_mx_match(&p, "mx0.example"));
    assert_false(smtp_sts_mx_match(&p, "mx39.example")); /* dropped: refused, never trusted */
}

static int txt(const char *s, char *id) { return smtp_sts_parse_txt(s, strlen(s), id); }

static void txt_record(void **state)
{
    (void)state;
    char id[SMTP_STS_ID_MAX];
    assert_int_equal(txt("v=STSv1; id=20160831085700Z;", id), 1);
    assert_string_equal(id, "20160831085700Z");
    assert_int_equal(txt("v=STSv1;id=abc;ext=1", id), 1);
    assert_string_equal(id, "abc");
    assert_int_equal(txt("v=STSv1; ext=x; id=Z9 ", id), 1);
    assert_string_equal(id, "Z9");
    assert_int_equal(txt("v=spf1 -all", id), 0);
    assert_int_equal(txt("v=STSv10; id=1", id), 0);
    assert_int_equal(txt("v=STSv1;", id), -1);
    assert_int_equal(txt("v=STSv1; id=", id), -1);
    assert_int_equal(txt("v=STSv1; id=a-b", id), -1);
    assert_int_equal(txt("v=STSv1; id=123456789012345678901234567890123", id), -1); /* 33 */
}

static bool tls_no(const char *h) { return smtp_tls_required_no(h, strlen(h)); }

static void tls_required_header(void **state)
{
    (void)state;
    assert_true(tls_no("Subject: x\r\nTLS-Required: No\r\n\r\nbody"));
    assert_true(tls_no("tls-required:no\r\n\r\n"));
    assert_true(tls_no("TLS-Required :  NO  \r\n\r\n"));
    assert_true(tls_no("TLS-Required:\r\n No\r\nX: y\r\n\r\n")); /* folded */
    assert_true(tls_no("From: a\nTLS-Required: No\n\nbody"));    /* LF only */
    assert_true(tls_no("TLS-Required: No"));                     /* no line end */
    assert_false(tls_no("TLS-Required: Yes\r\n\r\n"));
    assert_false(tls_no("TLS-Required: Nope\r\n\r\n"));
    assert_false(tls_no("TLS-Required: No way\r\n\r\n"));
    assert_false(tls_no("TLS-Required: N\r\n o\r\n\r\n"));
    assert_false(tls_no("TLS-Required-X: No\r\n\r\n"));
    assert_false(tls_no("X-TLS-Required: No\r\n\r\n"));
    assert_false(tls_no("Subject: x\r\n TLS-Required: No\r\n\r\n")); /* a continuation */
    assert_false(tls_no("Subject: x\r\n\r\nTLS-Required: No\r\n"));  /* in the body */
    assert_false(tls_no("TLS-Required: No"
                        "                                                  x\r\n\r\n"));
    assert_false(smtp_tls_required_no("TLS-Required: No", 15)); /* cut short: "N" */
    assert_false(tls_no(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_rfc_example), cmocka_unit_test(policy_lf_spaces_extensions),
        cmocka_unit_test(policy_refused),     cmocka_unit_test(policy_many_mx_bounded),
        cmocka_unit_test(txt_record),         cmocka_unit_test(tls_required_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
