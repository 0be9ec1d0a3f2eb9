/* Per-destination limits: which destination_limits entry applies (exact
 * name without case, else the longest ".suffix"), what an entry leaves
 * unset, and the settings check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_out.h"

static struct smtp_dest_limit_conf entries[] = {
    {.domain = "gmail.com", .max_connections = 5, .rate_delay = "1s"},
    {.domain = ".example.com", .rate_delay = "0"},
    {.domain = ".mx.example.com", .max_connections = 2},
};

static struct smtp_out_config config(size_t n)
{
    struct smtp_out_config cfg = {
        .max_connections = 100, .max_per_destination = 20, .destination_rate_delay = 3};
    cfg.destination_limits.count = n;
    cfg.destination_limits.items = entries;
    return cfg;
}

static void which_entry(void **state)
{
    (void)state;
    struct smtp_out_config cfg = config(3);
    struct smtp_dest_limits l;
    smtp_limits_for(&cfg, "gmail.com", &l);
    assert_int_equal(l.max, 5);
    assert_int_equal(l.delay, 1);
    smtp_limits_for(&cfg, "GMail.COM", &l);
    assert_int_equal(l.max, 5);
    smtp_limits_for(&cfg, "mail.gmail.com", &l); /* no dot: the name only */
    assert_int_equal(l.max, 20);
    assert_int_equal(l.delay, 3);
    smtp_limits_for(&cfg, "example.com", &l); /* a dot: below it only */
    assert_int_equal(l.delay, 3);
    smtp_limits_for(&cfg, "a.example.com", &l);
    assert_int_equal(l.max, 20); /* unset: max_per_destination */
    assert_int_equal(l.delay, 0);
    smtp_limits_for(&cfg, "a.mx.example.com", &l); /* the longest suffix */
    assert_int_equal(l.max, 2);
    assert_int_equal(l.delay, 3); /* unset: destination_rate_delay */
    smtp_limits_for(&cfg, "badexample.com", &l);
    assert_int_equal(l.delay, 3);
}

static void delays(void **state)
{
    (void)state;
    long long v = -1;
    assert_true(smtp_limits_parse_delay("0", &v) && v == 0);
    assert_true(smtp_limits_parse_delay("15", &v) && v == 15);
    assert_true(smtp_limits_parse_delay("2m", &v) && v == 120);
    assert_true(smtp_limits_parse_delay("1H", &v) && v == 3600);
    static const char *const bad[] = {"", "s", "-1", "1.5s", "2h", "1d", "10 s", "1ss", "99999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (smtp_limits_parse_delay(bad[i], &v))
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static bool name_ok(const char *s)
{
    return s[0] != '\0' && s[0] != '.' && strstr(s, "..") == NULL;
}

static void check(void **state)
{
    (void)state;
    char err[300];
    struct smtp_out_config cfg = config(3);
    assert_int_equal(smtp_limits_check(&cfg, name_ok, err, sizeof(err)), 0);
    struct smtp_dest_limit_conf twice[] = {{.domain = "a.test"}, {.domain = "A.TEST"}};
    cfg.destination_limits.items = twice;
    cfg.destination_limits.count = 2;
    assert_int_equal(smtp_limits_check(&cfg, name_ok, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "listed twice"));
    struct smtp_dest_limit_conf big[] = {{.domain = "a.test", .max_connections = 101}};
    cfg.destination_limits.items = big;
    cfg.destination_limits.count = 1;
    assert_int_equal(smtp_limits_check(&cfg, name_ok, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot exceed"));
    struct smtp_dest_limit_conf slow[] = {{.domain = "a.test", .rate_delay = "1 day"}};
    cfg.destination_limits.items = slow;
    assert_int_equal(smtp_limits_check(&cfg, name_ok, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "rate_delay"));
    struct smtp_dest_limit_conf dots[] = {{.domain = "..a.test"}};
    cfg.destination_limits.items = dots;
    assert_int_equal(smtp_limits_check(&cfg, name_ok, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a domain name"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(which_entry),
        cmocka_unit_test(delays),
        cmocka_unit_test(check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
