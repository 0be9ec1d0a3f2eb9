/* CONDSTORE/QRESYNC helpers: mod-sequence values, UID range merging and
 * intersection, and VANISHED lines (one line per bounded chunk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_modseq.h"

static bool modseq(const char *s, bool zero_ok, uint64_t *v)
{
    struct imap_arg a = {.type = IMAP_ARG_ATOM, .str = s, .len = strlen(s)};
    return imap_parse_modseq(&a, zero_ok, v);
}

static void test_parse(void **state)
{
    uint64_t v = 7;
    (void)state;
    assert_true(modseq("1", false, &v));
    assert_int_equal(v, 1);
    assert_true(modseq("9223372036854775807", false, &v));
    assert_true(v == INT64_MAX);
    assert_true(modseq("0", true, &v));
    assert_int_equal(v, 0);
    static const char *const bad[] = {"0",
                                      "",
                                      "-1",
                                      "1a",
                                      " 1",
                                      "9223372036854775808",
                                      "18446744073709551616",
                                      "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(modseq(bad[i], false, &v));
    struct imap_arg str = {.type = IMAP_ARG_STRING, .str = "5", .len = 1};
    assert_false(imap_parse_modseq(&str, true, &v));
}

static void test_ranges(void **state)
{
    (void)state;
    struct petrel_storage_uid_range *r = NULL;
    size_t n = 0, cap = 0;
    imap_uid_ranges_push(&r, &n, &cap, 1, 1);
    imap_uid_ranges_push(&r, &n, &cap, 2, 4); /* adjacent: merged */
    imap_uid_ranges_push(&r, &n, &cap, 3, 5); /* overlapping: merged */
    imap_uid_ranges_push(&r, &n, &cap, 9, 9);
    imap_uid_ranges_push(&r, &n, &cap, UINT32_MAX, UINT32_MAX);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].lo, 1);
    assert_int_equal(r[0].hi, 5);
    assert_int_equal(r[1].lo, 9);
    assert_true(r[2].hi == UINT32_MAX);
    struct petrel_storage_uid_range b[] = {{2, 3}, {5, 10}, {20, 30}};
    struct petrel_storage_uid_set set = {b, 3};
    struct petrel_storage_uid_range *out;
    size_t k = imap_uid_ranges_intersect(r, n, &set, &out);
    assert_int_equal(k, 3);
    assert_int_equal(out[0].lo, 2);
    assert_int_equal(out[0].hi, 3);
    assert_int_equal(out[1].lo, 5);
    assert_int_equal(out[1].hi, 5);
    assert_int_equal(out[2].lo, 9);
    assert_int_equal(out[2].hi, 9);
    free(out);
    struct petrel_storage_uid_set none = {NULL, 0};
    assert_int_equal(imap_uid_ranges_intersect(r, n, &none, &out), 0);
    assert_null(out);
    free(r);
}

static void test_vanished(void **state)
{
    (void)state;
    struct petrel_buf b;
    petrel_buf_init(&b, 1u << 20);
    imap_put_vanished(&b, true, NULL, 0);
    assert_int_equal(b.len, 0);
    struct petrel_storage_uid_range r[] = {{3, 4}, {7, 7}};
    imap_put_vanished(&b, true, r, 2);
    assert_int_equal(b.len, strlen("* VANISHED (EARLIER) 3:4,7\r\n"));
    assert_memory_equal(petrel_buf_head(&b), "* VANISHED (EARLIER) 3:4,7\r\n", b.len);
    petrel_buf_reset(&b);
    imap_put_vanished(&b, false, r + 1, 1);
    assert_memory_equal(petrel_buf_head(&b), "* VANISHED 7\r\n", b.len);
    /* Many ranges: several lines, none much longer than the bound. */
    petrel_buf_reset(&b);
    static struct petrel_storage_uid_range many[5000];
    for (uint32_t i = 0; i < 5000; i++)
        many[i] = (struct petrel_storage_uid_range){1000000 + 3 * i, 1000001 + 3 * i};
    imap_put_vanished(&b, false, many, 5000);
    const char *p = petrel_buf_head(&b), *end = p + b.len;
    size_t lines = 0, ranges = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(nl);
        assert_true(nl - p < 8100);
        assert_memory_equal(p, "* VANISHED ", 11);
        for (const char *q = p; q < nl; q++)
            ranges += *q == ':';
        lines++;
        p = nl + 1;
    }
    assert_true(lines > 1);
    assert_int_equal(ranges, 5000);
    petrel_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_vanished),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
