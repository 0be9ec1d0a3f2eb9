/* petrelctl's edits of the account file: each change touches only its own
 * lines, so comments, blank lines, CRLF lines and bad lines survive
 * verbatim, and the result parses to what was asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "userdb_file.h"

#define HASH                                                                                       \
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq."    \
    "H91p5hVO1"

static const char original[] = "# Petrel accounts, by hand\n"
                               "\n"
                               "domain example.test   # our domain\n"
                               "this line is broken\r\n"
                               "account alice@example.test " HASH " quota=1G\n"
                               "  # indented comment\n";

static char *text(const struct userdb_edit *e)
{
    size_t len;
    return userdb_edit_text(e, &len);
}

static void test_round_trip_untouched(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    char *t = text(&e);
    assert_string_equal(t, original);
    free(t);
    assert_false(e.changed);
    userdb_edit_free(&e);
}

static void test_add_and_delete_keep_the_rest(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    assert_int_equal(userdb_edit_account_add(&e, "Bob@Example.TEST", HASH, 0, 500), 0);
    char *t = text(&e);
    char *want = NULL;
    assert_true(asprintf(&want, "%saccount bob@example.test %s messages=500\n", original, HASH) >
                0);
    assert_string_equal(t, want);
    free(t);
    free(want);
    assert_non_null(userdb_find(&e.db, USERDB_ACCOUNT, "bob@example.test"));

    assert_int_equal(userdb_edit_account_del(&e, "alice@example.test"), 0);
    t = text(&e);
    assert_null(strstr(t, "alice"));
    assert_non_null(strstr(t, "this line is broken\r\n"));
    assert_non_null(strstr(t, "domain example.test   # our domain\n"));
    assert_non_null(strstr(t, "  # indented comment\n"));
    free(t);
    assert_true(e.changed);
    userdb_edit_free(&e);
}

static void test_update_keeps_trailing_comment(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    assert_int_equal(userdb_edit_domain_catchall(&e, "example.test", "alice@example.test"), 0);
    assert_int_equal(userdb_edit_account_set(&e, "alice@example.test", NULL, 0, 10, 1), 0);
    char *t = text(&e);
    assert_non_null(strstr(t, "domain example.test catchall=alice@example.test # our domain\n"));
    assert_non_null(strstr(t, "account alice@example.test " HASH " messages=10 disabled\n"));
    free(t);
    const struct userdb_record *r = userdb_find(&e.db, USERDB_ACCOUNT, "alice@example.test");
    assert_true(r->disabled);
    assert_int_equal(r->quota_bytes, 0);
    assert_int_equal(userdb_edit_account_set(&e, "alice@example.test", NULL, -1, -1, 0), 0);
    r = userdb_find(&e.db, USERDB_ACCOUNT, "alice@example.test");
    assert_false(r->disabled);
    assert_int_equal(r->quota_messages, 10);
    userdb_edit_free(&e);
}

static void test_refusals(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    assert_int_equal(userdb_edit_account_add(&e, "x@nowhere.test", HASH, 0, 0), -1);
    assert_non_null(strstr(e.error, "unknown domain nowhere.test"));
    assert_int_equal(userdb_edit_account_add(&e, "alice@example.test", HASH, 0, 0), -1);
    assert_non_null(strstr(e.error, "already exists"));
    assert_int_equal(userdb_edit_account_add(&e, "not an address", HASH, 0, 0), -1);
    assert_non_null(strstr(e.error, "not a valid address"));
    assert_int_equal(userdb_edit_domain_add(&e, "example.test"), -1);
    assert_int_equal(userdb_edit_domain_del(&e, "example.test"), -1);
    assert_non_null(strstr(e.error, "delete them first"));
    char *self[] = {"sales@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "sales@example.test", self, 1), -1);
    assert_non_null(strstr(e.error, "loop"));
    char *to_alice[] = {"alice@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "alice@example.test", to_alice, 1), -1);
    assert_non_null(strstr(e.error, "is an account"));
    assert_int_equal(userdb_edit_forward_clear(&e, "alice@example.test"), -1);
    assert_false(e.changed);
    userdb_edit_free(&e);
}

static void test_aliases_and_forwarding(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    char *t1[] = {"alice@example.test", "Carol@Far.Test"};
    assert_int_equal(userdb_edit_alias_add(&e, "sales@example.test", t1, 2), 0);
    char *t2[] = {"dave@far.test", "alice@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "sales@example.test", t2, 2), 0);
    const struct userdb_record *r = userdb_find(&e.db, USERDB_ALIAS, "sales@example.test");
    assert_int_equal(r->ntargets, 3);
    /* A two-step loop: info -> sales -> info. */
    char *t3[] = {"sales@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "info@example.test", t3, 1), 0);
    char *t4[] = {"info@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "sales@example.test", t4, 1), -1);
    assert_non_null(strstr(e.error, "loop"));
    char *t5[] = {"carol@far.test"};
    assert_int_equal(userdb_edit_alias_del(&e, "sales@example.test", t5, 1), 0);
    r = userdb_find(&e.db, USERDB_ALIAS, "sales@example.test");
    assert_int_equal(r->ntargets, 2);
    assert_int_equal(userdb_edit_alias_del(&e, "sales@example.test", NULL, 0), 0);
    assert_null(userdb_find(&e.db, USERDB_ALIAS, "sales@example.test"));

    char *fw[] = {"carol@far.test"};
    assert_int_equal(userdb_edit_forward_set(&e, "alice@example.test", fw, 1, true), 0);
    r = userdb_find(&e.db, USERDB_FORWARD, "alice@example.test");
    assert_non_null(r);
    assert_true(r->keep);
    assert_int_equal(userdb_edit_forward_set(&e, "alice@example.test", fw, 1, false), 0);
    assert_false(userdb_find(&e.db, USERDB_FORWARD, "alice@example.test")->keep);
    /* Deleting the account takes its forwarding along. */
    assert_int_equal(userdb_edit_account_del(&e, "alice@example.test"), 0);
    assert_null(userdb_find(&e.db, USERDB_FORWARD, "alice@example.test"));
    assert_int_equal(e.db.nerrors, 1); /* only the original bad line */
    userdb_edit_free(&e);
}

static void test_domains(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, "", 0);
    assert_int_equal(userdb_edit_domain_add(&e, "New.Test"), 0);
    assert_non_null(userdb_find(&e.db, USERDB_DOMAIN, "new.test"));
    assert_int_equal(userdb_edit_domain_add(&e, "bad..test"), -1);
    assert_int_equal(userdb_edit_domain_del(&e, "new.test"), 0);
    assert_int_equal(e.nlines, 0);
    userdb_edit_free(&e);
}

/* Deleting removes every line of the key, also repeats the parser had
 * skipped: the older duplicate must not come into force. */
static void test_delete_removes_duplicates(void **state)
{
    static const char dup[] = "domain example.test\n"
                              "domain other.test\n"
                              "domain other.test # again\n"
                              "account alice@example.test " HASH "\n"
                              "account Alice@Example.test " HASH " disabled\n"
                              "  account alice@example.test " HASH " quota=1k\r\n"
                              "alias alice@example.test bob@far.test\n"
                              "alias sales@example.test bob@far.test\n"
                              "alias sales@example.test carol@far.test\n"
                              "account sales@example.test " HASH "\n"
                              "account dave@example.test " HASH "\n"
                              "forward dave@example.test bob@far.test\n"
                              "forward dave@example.test carol@far.test\n"
                              "account alicex@example.test " HASH "\n";
    struct userdb_edit e;
    userdb_edit_load(&e, dup, sizeof(dup) - 1);
    assert_int_equal(userdb_edit_account_del(&e, "alice@example.test"), 0);
    assert_null(userdb_find(&e.db, USERDB_ACCOUNT, "alice@example.test"));
    assert_null(userdb_find(&e.db, USERDB_ALIAS, "alice@example.test"));
    char *t = text(&e);
    assert_null(strstr(t, "alice@example.test "));
    assert_null(strstr(t, "Alice@"));
    assert_non_null(strstr(t, "alicex@example.test")); /* a longer key is another */
    free(t);

    assert_int_equal(userdb_edit_alias_del(&e, "sales@example.test", NULL, 0), 0);
    assert_null(userdb_find(&e.db, USERDB_ALIAS, "sales@example.test"));
    assert_null(userdb_find(&e.db, USERDB_ACCOUNT, "sales@example.test"));

    assert_int_equal(userdb_edit_forward_clear(&e, "dave@example.test"), 0);
    assert_null(userdb_find(&e.db, USERDB_FORWARD, "dave@example.test"));
    assert_non_null(userdb_find(&e.db, USERDB_ACCOUNT, "dave@example.test"));

    assert_int_equal(userdb_edit_domain_del(&e, "other.test"), 0);
    assert_null(userdb_find(&e.db, USERDB_DOMAIN, "other.test"));
    t = text(&e);
    assert_null(strstr(t, "other.test"));
    free(t);
    userdb_edit_free(&e);
}

/* Loops through forwarding and catch-alls are refused too, and a wide
 * fan-out is checked once per entry. */
static void test_loops_through_forwards_and_catchall(void **state)
{
    struct userdb_edit e;
    userdb_edit_load(&e, original, sizeof(original) - 1);
    char *to_info[] = {"info@example.test"};
    assert_int_equal(userdb_edit_forward_set(&e, "alice@example.test", to_info, 1, true), 0);
    char *to_alice[] = {"alice@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "info@example.test", to_alice, 1), -1);
    assert_non_null(strstr(e.error, "loop"));

    /* A catch-all that is itself unknown in its domain catches itself. */
    assert_int_equal(userdb_edit_domain_catchall(&e, "example.test", "nobody@example.test"), -1);
    assert_non_null(strstr(e.error, "loop"));
    assert_int_equal(userdb_edit_domain_catchall(&e, "example.test", "alice@example.test"), 0);
    /* ...and an alias to an unknown address of the domain reaches it. */
    char *to_unknown[] = {"whoever@example.test"};
    assert_int_equal(userdb_edit_forward_set(&e, "alice@example.test", to_unknown, 1, true), -1);
    assert_non_null(strstr(e.error, "loop"));

    /* Ten levels of two aliases that each point to both of the next level:
     * 2^10 paths, one visit per alias. */
    for (int level = 9; level >= 0; level--) {
        for (int k = 0; k < 2; k++) {
            char name[64], n0[64], n1[64];
            snprintf(name, sizeof(name), "l%d-%d@example.test", level, k);
            snprintf(n0, sizeof(n0), "l%d-0@example.test", level + 1);
            snprintf(n1, sizeof(n1), "l%d-1@example.test", level + 1);
            char *next[] = {level == 9 ? "end@far.test" : n0, n1};
            assert_int_equal(userdb_edit_alias_add(&e, name, next, level == 9 ? 1 : 2), 0);
        }
    }
    char *top[] = {"l0-0@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "top@example.test", top, 1), 0);
    char *back[] = {"top@example.test"};
    assert_int_equal(userdb_edit_alias_add(&e, "l9-1@example.test", back, 1), -1);
    assert_non_null(strstr(e.error, "loop"));
    userdb_edit_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_untouched),
        cmocka_unit_test(test_add_and_delete_keep_the_rest),
        cmocka_unit_test(test_update_keeps_trailing_comment),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_aliases_and_forwarding),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_delete_removes_duplicates),
        cmocka_unit_test(test_loops_through_forwards_and_catchall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
