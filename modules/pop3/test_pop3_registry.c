/* The maildrop registry: the lock, LOGIN-DELAY's last logins, their
 * lazy expiry and the cap on them. The registry is global: each test
 * starts with it freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "pop3_registry.h"

#define DELAY 2000 /* ms */

static enum pop3_registry_verdict take(const char *user, int64_t now)
{
    int64_t wait = -1;
    enum pop3_registry_verdict v = pop3_registry_take(user, now, DELAY, &wait);
    if (v == POP3_REGISTRY_DELAY && (wait <= 0 || wait > DELAY))
        fail_msg("%s at %lld: wait %lld", user, (long long)now, (long long)wait);
    return v;
}

/* A whole session: lock, login, logout. */
static void session(const char *user, int64_t now)
{
    assert_int_equal(take(user, now), POP3_REGISTRY_TAKEN);
    assert_int_equal(pop3_registry_login(user, now, DELAY), 0);
    pop3_registry_release(user);
}

static int forget_all(void **state)
{
    (void)state;
    pop3_registry_free();
    assert_int_equal(pop3_registry_remembered(), 0);
    return 0;
}

static void test_lock(void **state)
{
    (void)state;
    int64_t wait;
    assert_int_equal(pop3_registry_take("alice", 0, 0, &wait), POP3_REGISTRY_TAKEN);
    assert_int_equal(pop3_registry_take("alice", 0, 0, &wait), POP3_REGISTRY_IN_USE);
    assert_int_equal(pop3_registry_take("bob", 0, 0, &wait), POP3_REGISTRY_TAKEN);
    pop3_registry_release("alice");
    assert_int_equal(pop3_registry_take("alice", 0, 0, &wait), POP3_REGISTRY_TAKEN);
    pop3_registry_release("alice");
    pop3_registry_release("bob");
    pop3_registry_release("nobody"); /* harmless */
}

static void test_delay(void **state)
{
    (void)state;
    session("alice", 1000);
    int64_t wait = 0;
    assert_int_equal(pop3_registry_take("alice", 2500, DELAY, &wait), POP3_REGISTRY_DELAY);
    assert_int_equal(wait, 500);
    assert_int_equal(take("bob", 2500), POP3_REGISTRY_TAKEN); /* another user */
    pop3_registry_release("bob");
    assert_int_equal(take("alice", 2999), POP3_REGISTRY_DELAY);
    assert_int_equal(take("alice", 3000), POP3_REGISTRY_TAKEN); /* DELAY after the login */
    assert_int_equal(pop3_registry_remembered(), 0);            /* forgotten on the way */
    pop3_registry_release("alice");
}

static void test_delay_comes_first(void **state)
{
    (void)state;
    assert_int_equal(take("alice", 0), POP3_REGISTRY_TAKEN);
    pop3_registry_login("alice", 0, DELAY);
    assert_int_equal(take("alice", 10), POP3_REGISTRY_DELAY); /* the session still holds it */
    assert_int_equal(take("alice", DELAY), POP3_REGISTRY_IN_USE);
    pop3_registry_release("alice");
    assert_int_equal(pop3_registry_remembered(), 0);
    assert_int_equal(take("alice", DELAY), POP3_REGISTRY_TAKEN);
    pop3_registry_release("alice");
}

static void test_no_delay_remembers_nothing(void **state)
{
    (void)state;
    int64_t wait;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pop3_registry_take("alice", 5, 0, &wait), POP3_REGISTRY_TAKEN);
        assert_int_equal(pop3_registry_login("alice", 5, 0), 0);
        pop3_registry_release("alice");
    }
    assert_int_equal(pop3_registry_remembered(), 0);
}

static void test_clock_read_out_of_order(void **state)
{
    (void)state;
    session("a", 2000);
    session("b", 1990); /* read its clock first, got here second: counts as 2000 */
    assert_int_equal(take("c", 3999), POP3_REGISTRY_TAKEN);
    pop3_registry_release("c");
    assert_int_equal(pop3_registry_remembered(), 2);
    assert_int_equal(take("b", 3999), POP3_REGISTRY_DELAY);
    assert_int_equal(take("c", 4000), POP3_REGISTRY_TAKEN);
    pop3_registry_release("c");
    assert_int_equal(pop3_registry_remembered(), 0);
}

/* Full: the oldest login is forgotten, the new one never refused. */
static void test_full_forgets_the_oldest(void **state)
{
    (void)state;
    char user[32];
    unsigned forgotten = 0;
    for (unsigned i = 0; i <= POP3_REGISTRY_MAX; i++) {
        snprintf(user, sizeof(user), "user%u", i);
        assert_int_equal(take(user, 0), POP3_REGISTRY_TAKEN);
        forgotten += pop3_registry_login(user, 0, DELAY);
        pop3_registry_release(user);
    }
    assert_int_equal(forgotten, 1);
    assert_int_equal(pop3_registry_remembered(), POP3_REGISTRY_MAX);
    assert_int_equal(take("user0", 1), POP3_REGISTRY_TAKEN);
    pop3_registry_release("user0");
    assert_int_equal(take("user1", 1), POP3_REGISTRY_DELAY);
    assert_int_equal(take("user1", DELAY), POP3_REGISTRY_TAKEN); /* all stale now */
    pop3_registry_release("user1");
    assert_int_equal(pop3_registry_remembered(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_lock, forget_all),
        cmocka_unit_test_setup(test_delay, forget_all),
        cmocka_unit_test_setup(test_delay_comes_first, forget_all),
        cmocka_unit_test_setup(test_no_delay_remembers_nothing, forget_all),
        cmocka_unit_test_setup(test_clock_read_out_of_order, forget_all),
        cmocka_unit_test_setup(test_full_forgets_the_oldest, forget_all),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    pop3_registry_free();
    return failed;
}
