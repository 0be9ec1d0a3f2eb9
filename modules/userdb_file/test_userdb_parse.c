/* The account database file: parsing, line-numbered errors, the index and
 * the round trip through userdb_format(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <petrel/password.h>

#include "userdb_file.h"

static const char *const sha = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5"
                               "knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";

static char *text_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *text_of(const char *fmt, ...)
{
    static char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return buf;
}

static void parse(const char *text, struct userdb_file *db)
{
    userdb_parse(text, strlen(text), db);
}

static void test_good_file(void **state)
{
    struct userdb_file db;
    parse(text_of("# comment\n"
                  "domain Example.COM catchall=postmaster@example.com\n"
                  "\n"
                  "  account Alice@Example.com %s quota=1G messages=500\n"
                  "account bob@example.com {SHA512-CRYPT}%s disabled\r\n"
                  "alias sales@example.com alice@example.com bob@example.com # trailing\n"
                  "forward alice@example.com carol@elsewhere.test keep\n",
                  sha, sha),
          &db);
    assert_int_equal(db.nerrors, 0);
    assert_int_equal(db.count, 5);
    const struct userdb_record *d = userdb_find(&db, USERDB_DOMAIN, "example.com");
    assert_non_null(d);
    assert_string_equal(d->catchall, "postmaster@example.com");
    const struct userdb_record *a = userdb_find(&db, USERDB_ACCOUNT, "alice@example.com");
    assert_non_null(a);
    assert_int_equal(a->line, 4);
    assert_int_equal(a->quota_bytes, 1LL << 30);
    assert_int_equal(a->quota_messages, 500);
    assert_false(a->disabled);
    assert_true(petrel_password_verify("secret", a->hash));
    const struct userdb_record *b = userdb_find(&db, USERDB_ACCOUNT, "bob@example.com");
    assert_true(b->disabled);
    assert_string_equal(b->hash, sha); /* the {SCHEME} prefix is dropped */
    const struct userdb_record *s = userdb_find(&db, USERDB_ALIAS, "sales@example.com");
    assert_int_equal(s->ntargets, 2);
    assert_string_equal(s->targets[1], "bob@example.com");
    assert_null(userdb_find(&db, USERDB_ACCOUNT, "sales@example.com"));
    const struct userdb_record *f = userdb_find(&db, USERDB_FORWARD, "alice@example.com");
    assert_true(f->keep);
    assert_string_equal(f->targets[0], "carol@elsewhere.test");
    assert_null(userdb_find(&db, USERDB_ACCOUNT, "nobody@example.com"));
    userdb_free(&db);
}

static void expect_error(const char *text, unsigned line, const char *needle, size_t count)
{
    struct userdb_file db;
    parse(text, &db);
    if (db.nerrors != 1 || db.errors[0].line != line ||
        strstr(db.errors[0].message, needle) == NULL)
        fail_msg("for %s: got %zu errors, first line %u: %s", text, db.nerrors,
                 db.nerrors ? db.errors[0].line : 0, db.nerrors ? db.errors[0].message : "");
    assert_int_equal(db.count, count); /* the other lines still load */
    userdb_free(&db);
}

static void test_bad_lines_are_reported_and_skipped(void **state)
{
    const char *head = "domain example.com\naccount ok@example.com ";
    char text[4096];
#define CASE(tail, line, needle, count)                                                            \
    do {                                                                                           \
        snprintf(text, sizeof(text), "%s%s\n%s", head, sha, tail);                                 \
        expect_error(text, line, needle, count);                                                   \
    } while (0)
    CASE("account x@example.com {PLAIN}secret\n", 3, "hash refused", 2);
    CASE("account x@example.com $1$abc$defghijklmnop\n", 3, "hash refused", 2);
    CASE("account bad address $6$x\n", 3, "not an address", 2);
    CASE("account x@example.com\n", 3, "expected", 2);
    CASE("account ok@example.com $6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNu\n", 3, "already", 2);
    CASE("account x@other.test $6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNu\n", 3, "not declared", 2);
    CASE("alias ok@example.com a@b.test\n", 3, "already", 2);
    CASE("alias x@example.com\n", 3, "expected", 2);
    CASE("alias x@example.com not-an-address\n", 3, "not an address", 2);
    CASE("forward nobody@example.com a@b.test\n", 3, "no account", 2);
    CASE("forward ok@example.com keep\n", 3, "no target", 2);
    CASE("frobnicate x\n", 3, "unknown entry", 2);
    CASE("domain -bad-.test\n", 3, "domain", 2);
    CASE("domain example.com\n", 3, "already", 2);
    CASE("domain example.org catchall=nope\n", 3, "not an address", 2);
    CASE("account x@example.com $6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNu quota=lots\n", 3,
         "bad option", 2);
#undef CASE
}

static void test_limits(void **state)
{
    /* A NUL byte and an over-long line are refused, not truncated. */
    char text[] = "domain example.com\nalias a@example.com b@x.test\0junk\nalias c@example.com "
                  "d@x.test\n";
    struct userdb_file db;
    userdb_parse(text, sizeof(text) - 1, &db);
    assert_int_equal(db.nerrors, 1);
    assert_int_equal(db.errors[0].line, 2);
    assert_int_equal(db.count, 2);
    userdb_free(&db);

    size_t big = USERDB_LINE_MAX + 100;
    char *longline = malloc(big + 64);
    int n = snprintf(longline, 64, "domain example.com\nalias a@example.com ");
    memset(longline + n, 'x', big);
    longline[n + big] = '\0';
    userdb_parse(longline, strlen(longline), &db);
    assert_int_equal(db.nerrors, 1);
    assert_int_equal(db.count, 1);
    userdb_free(&db);
    free(longline);
}

static void test_round_trip(void **state)
{
    struct userdb_file db, again;
    parse(text_of("domain example.com catchall=pm@example.com\n"
                  "account a@example.com %s quota=1048576 messages=7 disabled\n"
                  "alias s@example.com a@example.com x@y.test\n"
                  "forward a@example.com z@y.test keep\n",
                  sha),
          &db);
    assert_int_equal(db.nerrors, 0);
    char out[8192] = "";
    size_t used = 0;
    for (size_t i = 0; i < db.count; i++) {
        char line[4096];
        assert_true(userdb_format(&db.records[i], line, sizeof(line)));
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s\n", line);
    }
    parse(out, &again);
    assert_int_equal(again.nerrors, 0);
    assert_int_equal(again.count, db.count);
    for (size_t i = 0; i < db.count; i++) {
        char l1[4096], l2[4096];
        userdb_format(&db.records[i], l1, sizeof(l1));
        userdb_format(&again.records[i], l2, sizeof(l2));
        assert_string_equal(l1, l2);
    }
    char tiny[8];
    assert_false(userdb_format(&db.records[1], tiny, sizeof(tiny)));
    userdb_free(&db);
    userdb_free(&again);
}

static void test_many_accounts(void **state)
{
    /* 100,000 accounts load, every one is found, and a miss is a miss. */
    enum { N = 100000 };
    size_t cap = (size_t)N * 140 + 64;
    char *text = malloc(cap);
    size_t used = (size_t)snprintf(text, cap, "domain big.test\n");
    for (int i = 0; i < N; i++)
        used += (size_t)snprintf(text + used, cap - used, "account user%d@big.test %s\n", i, sha);
    struct userdb_file db;
    userdb_parse(text, used, &db);
    assert_int_equal(db.nerrors, 0);
    assert_int_equal(db.count, N + 1);
    char key[64];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "user%d@big.test", i);
        const struct userdb_record *r = userdb_find(&db, USERDB_ACCOUNT, key);
        assert_non_null(r);
        assert_int_equal(r->line, (unsigned)i + 2);
    }
    assert_null(userdb_find(&db, USERDB_ACCOUNT, "user100000@big.test"));
    userdb_free(&db);
    free(text);
}

static void test_address_normalise(void **state)
{
    char out[300];
    assert_true(userdb_address_normalise("Alice.B+tag@Mail.Example.COM", out, sizeof(out)));
    assert_string_equal(out, "alice.b+tag@mail.example.com");
    static const char *const bad[] = {
        "",          "@example.com", "alice@",    "alice",     "a..b@x.test",  ".a@x.test",
        "a.@x.test", "a b@x.test",   "a@-x.test", "a@x..test", "\"q\"@x.test", "a@x_y.test"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (userdb_address_normalise(bad[i], out, sizeof(out)))
            fail_msg("accepted '%s'", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_bad_lines_are_reported_and_skipped),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_many_accounts),
        cmocka_unit_test(test_address_normalise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
