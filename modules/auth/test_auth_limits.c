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
    /* The locked key expires last, so it is the last to be replaced. */
    assert_true(auth_limits_locked(&l, "victim", 20));
    auth_limits_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_after_max),
        cmocka_unit_test(test_window_expires),
        cmocka_unit_test(test_clear_and_unlimited),
        cmocka_unit_test(test_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
