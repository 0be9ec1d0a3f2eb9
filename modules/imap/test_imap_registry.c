/* The per-user session counts: the limit, release, entries that go at
 * zero, many users in one bucket chain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "imap_registry.h"

static void limit_and_release(void **state)
{
    (void)state;
    assert_true(imap_registry_take("alice@example.test", 2));
    assert_true(imap_registry_take("alice@example.test", 2));
    assert_false(imap_registry_take("alice@example.test", 2));
    assert_int_equal(imap_registry_count("alice@example.test"), 2);
    assert_true(imap_registry_take("bob@example.test", 2));
    imap_registry_release("alice@example.test");
    assert_true(imap_registry_take("alice@example.test", 2));
    imap_registry_release("alice@example.test");
    imap_registry_release("alice@example.test");
    assert_int_equal(imap_registry_count("alice@example.test"), 0);
    assert_int_equal(imap_registry_count("bob@example.test"), 1);
    imap_registry_release("bob@example.test");
    imap_registry_release("nobody@example.test"); /* harmless */
    imap_registry_free();
}

static void many_users(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        assert_true(imap_registry_take(name, 1));
    }
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        assert_false(imap_registry_take(name, 1));
        assert_int_equal(imap_registry_count(name), 1);
    }
    for (int i = 0; i < 5000; i += 2) {
        snprintf(name, sizeof(name), "u%d", i);
        imap_registry_release(name);
        assert_int_equal(imap_registry_count(name), 0);
    }
    assert_int_equal(imap_registry_count("u1"), 1);
    imap_registry_free();
    assert_int_equal(imap_registry_count("u1"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(limit_and_release),
        cmocka_unit_test(many_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
