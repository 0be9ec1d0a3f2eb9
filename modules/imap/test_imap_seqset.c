/* IMAP sequence sets: parsing, membership and resolution against '*'. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_seqset.h"

static enum imap_seqset_result parse(const char *s, struct imap_seqset *set)
{
    return imap_seqset_parse(s, strlen(s), set);
}

static void test_syntax(void **state)
{
    (void)state;
    static const char *const good[] = {"1",   "*",       "2:4", "4:2",       "7:*",
                                       "*:3", "1,3:5,9", "*:*", "4294967295"};
    static const char *const bad[] = {"",     "0",   "1:0",  "01", "1,",   ",1",
                                      "1::2", "1:",  ":1",   "a",  "1 2",  "4294967296",
                                      "$1",   "$,1", "1,,2", "-1", "1:2:3"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct imap_seqset set;
        if (parse(good[i], &set) != IMAP_SEQSET_OK)
            fail_msg("refused %s", good[i]);
        assert_false(set.saved);
        imap_seqset_free(&set);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct imap_seqset set;
        if (parse(bad[i], &set) != IMAP_SEQSET_SYNTAX)
            fail_msg("took %s", bad[i]);
        assert_null(set.ranges);
    }
    struct imap_seqset set;
    assert_int_equal(parse("$", &set), IMAP_SEQSET_OK);
    assert_true(set.saved);
    assert_int_equal(set.count, 0);
}

static void test_limit(void **state)
{
    (void)state;
    size_t n = IMAP_SEQSET_MAX_RANGES + 1, len = 0;
    char *s = malloc(n * 8);
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, 8, i == 0 ? "%zu" : ",%zu", i + 1);
    struct imap_seqset set;
    assert_int_equal(imap_seqset_parse(s, len, &set), IMAP_SEQSET_LIMIT);
    assert_null(set.ranges);
    /* One fewer range is fine. */
    len = (size_t)(strrchr(s, ',') - s);
    assert_int_equal(imap_seqset_parse(s, len, &set), IMAP_SEQSET_OK);
    assert_int_equal(set.count, IMAP_SEQSET_MAX_RANGES);
    imap_seqset_free(&set);
    free(s);
}

static void test_contains(void **state)
{
    (void)state;
    struct imap_seqset set;
    assert_int_equal(parse("5:3,9,*", &set), IMAP_SEQSET_OK);
    bool want[13] = {[3] = true, [4] = true, [5] = true, [9] = true, [12] = true};
    for (uint32_t n = 0; n <= 12; n++)
        assert_int_equal(imap_seqset_contains(&set, n, 12), want[n]);
    assert_false(imap_seqset_contains(&set, 13, 12)); /* beyond '*' */
    assert_false(imap_seqset_contains(&set, 1, 0));   /* an empty mailbox */
    imap_seqset_free(&set);
    /* "*:4" with 2 messages is 2:4, of which 2 exists. */
    assert_int_equal(parse("*:4", &set), IMAP_SEQSET_OK);
    assert_true(imap_seqset_contains(&set, 2, 2));
    assert_false(imap_seqset_contains(&set, 1, 2));
    imap_seqset_free(&set);
}

/* A sorted set (a saved result, a WITHIN key) is bisected: the same
 * answers as a walk, for every number around every range. */
static void test_contains_sorted(void **state)
{
    (void)state;
    struct imap_seq_range r[] = {{2, 2}, {4, 7}, {10, 10}, {12, 20}, {30, 31}};
    struct imap_seqset sorted = {r, 5, false, true}, walked = {r, 5, false, false};
    for (size_t count = 0; count <= 5; count++) {
        sorted.count = walked.count = count;
        for (uint32_t n = 0; n <= 33; n++)
            assert_int_equal(imap_seqset_contains(&sorted, n, 40),
                             imap_seqset_contains(&walked, n, 40));
    }
    assert_false(imap_seqset_contains(&sorted, 31, 30)); /* beyond the largest in use */
}

/* The resolved ranges as "lo-hi lo-hi ...". */
static void expect(const char *s, uint32_t star, const char *want)
{
    struct imap_seqset set;
    assert_int_equal(parse(s, &set), IMAP_SEQSET_OK);
    struct petrel_storage_uid_range *r;
    size_t n = imap_seqset_resolve(&set, star, &r);
    char got[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(got + len, sizeof(got) - len, "%s%u-%u", i ? " " : "", r[i].lo,
                                r[i].hi);
    if (strcmp(got, want) != 0)
        fail_msg("%s with * = %u: got \"%s\", want \"%s\"", s, star, got, want);
    assert_true(n > 0 || r == NULL);
    free(r);
    imap_seqset_free(&set);
}

static void test_resolve(void **state)
{
    (void)state;
    expect("1:*", 10, "1-10");
    expect("*:1", 10, "1-10");
    expect("9,1,2:4,3", 10, "1-4 9-9");
    expect("1:3,4:6", 10, "1-6"); /* adjacent ranges merge */
    expect("20:30", 10, "");      /* wholly above '*' */
    expect("20:*", 10, "10-10");  /* "n:*" is always '*' */
    expect("8:20", 10, "8-10");   /* cut at '*' */
    expect("*", 0, "");           /* an empty mailbox */
    expect("4294967295", 4294967295u, "4294967295-4294967295");
    expect("1:4294967295,5", 4294967295u, "1-4294967295");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax),   cmocka_unit_test(test_limit),
        cmocka_unit_test(test_contains), cmocka_unit_test(test_contains_sorted),
        cmocka_unit_test(test_resolve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
