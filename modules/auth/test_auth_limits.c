/* The rate-limit tables: a key is locked after max failures within the
 * window, stays locked for the lockout, forgets after, and a full table
 * replaces old entries instead of growing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "auth_private.h"

static void test_lock_after_max(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64, 3, 1000, 5000);
    assert_false(auth_limits_fail(&l, "1.2.3.4", 0));
    assert_false(auth_limits_fail(&l, "1.2.3.4", 10));
    assert_false(auth_limits_locked(&l, "1.2.3.4", 20));
    assert_true(auth_limits_fail(&l, "1.2.3.4", 20));
    assert_true(auth_limits_locked(&l, "1.2.3.4", 21));
    assert_false(auth_limits_locked(&l, "5.6.7.8", 21));
    assert_true(auth_limits_locked(&l, "1.2.3.4", 5019));
    assert_false(auth_limits_locked(&l, "1.2.3.4", 5020));
    auth_limits_free(&l);
}

static void test_window_expires(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64, 3, 1000, 5000);
    auth_limits_fail(&l, "k", 0);
    auth_limits_fail(&l, "k", 500);
    /* The window has passed: counting starts again. */
    assert_false(auth_limits_fail(&l, "k", 1500));
    assert_false(auth_limits_fail(&l, "k", 1600));
    assert_true(auth_limits_fail(&l, "k", 1700));
    auth_limits_free(&l);
}

static void test_clear_and_unlimited(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64, 2, 1000, 5000);
    auth_limits_fail(&l, "u", 0);
    auth_limits_clear(&l, "u");
    assert_false(auth_limits_fail(&l, "u", 1));
    auth_limits_set(&l, 0, 1000, 5000);
    for (int i = 0; i < 10; i++)
        assert_false(auth_limits_fail(&l, "u", 2));
    assert_false(auth_limits_locked(&l, "u", 3));
    auth_limits_free(&l);
}

static void test_bounded(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16, 2, 1000, 100000);
    assert_true(auth_limits_fail(&l, "victim", 0) || auth_limits_fail(&l, "victim", 0));
    /* Many other keys, each failing once: the table never grows. */
    for (int i = 0; i < 10000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        auth_limits_fail(&l, key, 10);
    }
    assert_int_equal(l.nslots, 16);
    /* A locked key is never replaced. */
    assert_true(auth_limits_locked(&l, "victim", 20));
    auth_limits_free(&l);
}

/* window == lockout (the defaults): a locked key expires with the same
 * deadline as fresh ones, but flooding the table with other keys must not
 * evict it; with every probed slot locked, new keys are refused. */
static void test_flood_does_not_unlock(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16, 2, 1000, 1000);
    auth_limits_fail(&l, "victim", 0);
    assert_true(auth_limits_fail(&l, "victim", 0));
    for (int i = 0; i < 10000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        auth_limits_fail(&l, key, 10);
        auth_limits_fail(&l, key, 10); /* locks it, where it got a slot */
    }
    assert_true(auth_limits_locked(&l, "victim", 20));
    assert_false(auth_limits_reserve(&l, "victim", 20));
    /* The table is all locked out now: a new key fails closed. */
    assert_false(auth_limits_reserve(&l, "new-key", 20));
    /* After the lock-outs end, slots are reused again. */
    assert_true(auth_limits_reserve(&l, "new-key", 2000));
    auth_limits_free(&l);
}

/* The attempt is reserved at the check: concurrent attempts cannot all
 * pass; a success gives its reservation back. */
static void test_reserve_counts_in_flight(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64, 2, 1000, 5000);
    assert_true(auth_limits_reserve(&l, "k", 0));
    assert_true(auth_limits_reserve(&l, "k", 0));
    assert_false(auth_limits_reserve(&l, "k", 0));       /* two in flight: the limit */
    assert_false(auth_limits_settle(&l, "k", 1, false)); /* a success: refunded */
    assert_true(auth_limits_reserve(&l, "k", 1));
    assert_false(auth_limits_settle(&l, "k", 2, true));
    assert_true(auth_limits_settle(&l, "k", 2, true)); /* the second failure locks */
    assert_true(auth_limits_locked(&l, "k", 3));
    assert_false(auth_limits_reserve(&l, "k", 3));
    auth_limits_free(&l);
}

static void test_ip_key(void **state)
{
    char a[64], b[64];
    auth_limits_ip_key("2001:db8:1:2::1", a, sizeof(a));
    auth_limits_ip_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", b, sizeof(b));
    assert_string_equal(a, "2001:db8:1:2::/64");
    assert_string_equal(a, b);
    auth_limits_ip_key("2001:db8:1:3::1", b, sizeof(b));
    assert_string_not_equal(a, b);
    auth_limits_ip_key("192.0.2.7", a, sizeof(a));
    assert_string_equal(a, "192.0.2.7");
    auth_limits_ip_key("::ffff:192.0.2.7", a, sizeof(a));
    assert_string_equal(a, "192.0.2.7");
    auth_limits_ip_key("-", a, sizeof(a));
    assert_string_equal(a, "-");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_after_max),
        cmocka_unit_test(test_window_expires),
        cmocka_unit_test(test_clear_and_unlimited),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_flood_does_not_unlock),
        cmocka_unit_test(test_reserve_counts_in_flight),
        cmocka_unit_test(test_ip_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
