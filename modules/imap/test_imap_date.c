/* IMAP date-time and date: known instants, zones, padding, impossible
 * dates refused, and formatting read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "imap_date.h"

static int64_t datetime(const char *s)
{
    int64_t t = 0;
    if (!imap_datetime_parse(s, strlen(s), &t))
        fail_msg("refused %s", s);
    return t;
}

static void test_datetime(void **state)
{
    (void)state;
    assert_int_equal(datetime("01-Jan-1970 00:00:00 +0000"), 0);
    /* RFC 3501's example: 1996-07-17 09:44:25 UTC. */
    assert_int_equal(datetime("17-Jul-1996 02:44:25 -0700"), 837596665);
    assert_int_equal(datetime("17-jul-1996 11:14:25 +0130"), 837596665);
    assert_int_equal(datetime(" 1-Jan-1970 01:00:00 +0100"), 0);
    assert_int_equal(datetime("29-Feb-2000 00:00:00 +0000"), 951782400);
    assert_int_equal(datetime("31-Dec-1969 23:59:59 +0000"), -1);
    assert_int_equal(datetime("19-Jan-2038 03:14:08 +0000"), INT64_C(2147483648));
    static const char *const bad[] = {
        "",
        "17-Jul-1996 02:44:25",
        "17-Jul-1996 02:44:25 -07000",
        "7-Jul-1996 02:44:25 -0700",
        "17-Jly-1996 02:44:25 -0700",
        "29-Feb-1900 02:44:25 -0700",
        "31-Apr-1996 02:44:25 -0700",
        "00-Jan-1996 02:44:25 -0700",
        "17-Jul-1996 24:00:00 -0700",
        "17-Jul-1996 02:60:25 -0700",
        "17-Jul-1996 02:44:61 -0700",
        "17-Jul-1996 02:44:25 -0760",
        "17-Jul-1996 02:44:25 *0700",
        "17-Jul-96 02:44:25 -0700   ",
        "17 Jul 1996 02:44:25 -0700",
        "1x-Jul-1996 02:44:25 -0700",
        "17-Jul-1996 02:44:25 -07a0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t;
        if (imap_datetime_parse(bad[i], strlen(bad[i]), &t))
            fail_msg("accepted %s", bad[i]);
    }
}

static void test_format(void **state)
{
    (void)state;
    char out[IMAP_DATETIME_LEN + 1];
    imap_datetime_format(837596665, out);
    assert_string_equal(out, "17-Jul-1996 09:44:25 +0000");
    imap_datetime_format(-1, out);
    assert_string_equal(out, "31-Dec-1969 23:59:59 +0000");
    imap_datetime_format(0, out);
    assert_string_equal(out, "01-Jan-1970 00:00:00 +0000");
    imap_datetime_format(INT64_MAX, out);
    assert_string_equal(out, "31-Dec-9999 23:59:59 +0000");
    imap_datetime_format(INT64_MIN, out);
    assert_string_equal(out, "01-Jan-0000 00:00:00 +0000");
    /* Every format reads back as the same instant. */
    for (int64_t t = -86400 * 800; t < INT64_C(86400) * 40000; t += 86400 * 37 + 3671) {
        imap_datetime_format(t, out);
        assert_int_equal(strlen(out), IMAP_DATETIME_LEN);
        assert_int_equal(datetime(out), t);
    }
}

static void test_date(void **state)
{
    (void)state;
    int64_t d;
    assert_true(imap_date_parse("1-Feb-1994", 10, &d));
    assert_int_equal(d, 8797);
    assert_true(imap_date_parse("01-feb-1994", 11, &d));
    assert_int_equal(d, 8797);
    assert_true(imap_date_parse("1-Jan-1970", 10, &d));
    assert_int_equal(d, 0);
    assert_true(imap_date_parse("31-Dec-1969", 11, &d));
    assert_int_equal(d, -1);
    assert_true(imap_date_parse("29-Feb-2024", 11, &d));
    static const char *const bad[] = {
        "",           "1-Feb-94",        " 1-Feb-1994", "32-Jan-1994", "29-Feb-2023", "1-Feb-1994 ",
        "1/Feb/1994", "1-February-1994", "a-Feb-1994",  "0-Feb-1994"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (imap_date_parse(bad[i], strlen(bad[i]), &d))
            fail_msg("accepted %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_datetime),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_date),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
