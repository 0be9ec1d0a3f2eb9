/* LIST patterns: RFC 3501's wildcard meanings, reference joining, INBOX
 * in any case, limits, and a pattern that would make a backtracking
 * matcher run for ages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_list.h"

static bool match(const char *ref, const char *mailbox, const char *name)
{
    struct imap_list_pattern *pat =
        imap_list_pattern_new(ref, strlen(ref), mailbox, strlen(mailbox));
    assert_non_null(pat);
    bool m = imap_list_match(pat, name, strlen(name));
    imap_list_pattern_free(pat);
    return m;
}

static void test_wildcards(void **state)
{
    (void)state;
    assert_true(match("", "*", "INBOX"));
    assert_true(match("", "*", "a/b/c"));
    assert_true(match("", "%", "a"));
    assert_false(match("", "%", "a/b"));
    assert_true(match("", "a/%", "a/b"));
    assert_false(match("", "a/%", "a/b/c"));
    assert_true(match("", "a/*", "a/b/c"));
    assert_false(match("", "a/*", "a"));
    assert_true(match("", "a*", "a"));
    assert_true(match("", "a%", "abc"));
    assert_false(match("", "a%", "ab/c"));
    assert_true(match("", "%/%", "x/y"));
    assert_true(match("", "*c", "a/b/c"));
    assert_true(match("", "a%c", "abbc"));
    assert_false(match("", "a%c", "ab/bc"));
    assert_true(match("", "a*c", "ab/bc"));
    assert_true(match("", "Sent", "Sent"));
    assert_false(match("", "Sent", "sent"));
    assert_false(match("", "Sent", "Sent/x"));
    assert_false(match("", "Sent", "Sen"));
    assert_true(match("", "%*%", "a/b"));
    assert_false(match("", "", "a"));
    assert_false(match("", "*", ""));
    assert_true(match("", "a/%%", "a/b"));
}

static void test_reference(void **state)
{
    (void)state;
    assert_true(match("a/", "%", "a/b"));
    assert_false(match("a/", "%", "b"));
    assert_true(match("a/", "/b", "a/b"));
    assert_true(match("a", "/b", "a/b"));
    assert_true(match("a", "*", "abc"));
    assert_true(match("Archive/2024/", "*", "Archive/2024/Jan"));
}

static void test_inbox(void **state)
{
    (void)state;
    assert_true(match("", "inbox", "INBOX"));
    assert_true(match("", "INBOX", "inbox"));
    assert_true(match("", "InBoX/%", "INBOX/sub"));
    assert_true(match("", "inb*", "INBOX"));
    assert_false(match("", "inbox/Sub", "INBOX/sub"));
    assert_false(match("", "inboxes", "INBOXES"));
    assert_false(match("", "inbox", "INBOXES"));
    assert_false(match("", "xinbox", "xINBOX"));
}

static void test_limits(void **state)
{
    (void)state;
    char *big = malloc(IMAP_LIST_NAME_MAX + 2);
    memset(big, 'a', IMAP_LIST_NAME_MAX + 1);
    big[IMAP_LIST_NAME_MAX + 1] = '\0';
    assert_null(imap_list_pattern_new(big, IMAP_LIST_PATTERN_MAX, "a", 1));
    assert_null(imap_list_pattern_new("", 0, big, IMAP_LIST_PATTERN_MAX + 1));
    struct imap_list_pattern *pat = imap_list_pattern_new("", 0, "*", 1);
    assert_true(imap_list_match(pat, big, IMAP_LIST_NAME_MAX));
    assert_false(imap_list_match(pat, big, IMAP_LIST_NAME_MAX + 1));
    imap_list_pattern_free(pat);

    /* "*a*a*...*b" against "aaaa...": exponential for a backtracker. */
    char p[IMAP_LIST_PATTERN_MAX];
    size_t n = 0;
    while (n + 3 < sizeof(p)) {
        p[n++] = '*';
        p[n++] = 'a';
    }
    p[n++] = 'b';
    pat = imap_list_pattern_new("", 0, p, n);
    assert_non_null(pat);
    assert_false(imap_list_match(pat, big, IMAP_LIST_NAME_MAX));
    big[IMAP_LIST_NAME_MAX - 1] = 'b';
    assert_true(imap_list_match(pat, big, IMAP_LIST_NAME_MAX));
    imap_list_pattern_free(pat);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wildcards),
        cmocka_unit_test(test_reference),
        cmocka_unit_test(test_inbox),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
