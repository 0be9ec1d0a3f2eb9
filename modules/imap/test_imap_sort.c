/* SORT and THREAD's pure parts: the base subject (every rule of RFC 5256
 * section 2.1, RFC 2047 input), the sort key record, and threading (the
 * REFERENCES steps: links, loops, missing parents and dummies, duplicate
 * Message-IDs, subject gathering; ORDEREDSUBJECT). Expected answers are
 * worked out by hand from the RFC. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "imap_sortkey.h"
#include "imap_subject.h"
#include "imap_thread.h"

static void expect_base(const char *in, const char *want, bool want_reply)
{
    bool reply = !want_reply;
    char *got = imap_base_subject(in, strlen(in), &reply);
    if (strcmp(got, want) != 0 || reply != want_reply)
        fail_msg("\"%s\": got \"%s\" reply %d, want \"%s\" reply %d", in, got, reply, want,
                 want_reply);
    free(got);
}

static void test_base_subject(void **state)
{
    (void)state;
    expect_base("hello", "hello", false);
    expect_base("", "", false);
    /* (1) white space runs, tabs and folds to one blank. */
    expect_base("  hello \t  world  ", "hello world", false);
    expect_base("hello\r\n\tworld", "hello world", false);
    /* (1) RFC 2047 words decoded before the rules. */
    expect_base("=?UTF-8?B?UmU6IGjDqWxsbw==?=", "h\xc3\xa9llo", true);
    expect_base("=?ISO-8859-1?Q?Re:_caf=E9?=", "caf\xc3\xa9", true);
    expect_base("=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab", false);
    /* (2) "(fwd)" and blanks at the end, repeatedly. */
    expect_base("hello (fwd)", "hello", true);
    expect_base("hello (FWD)(fwd)  ", "hello", true);
    expect_base("hello(fwd) (fwd)", "hello", true);
    expect_base("(fwd)", "", true);
    /* (3) subj-refwd with blobs before and inside it. */
    expect_base("Re: hello", "hello", true);
    expect_base("RE:hello", "hello", true);
    expect_base("re : hello", "hello", true);
    expect_base("Fw: hello", "hello", true);
    expect_base("FWD: hello", "hello", true);
    expect_base("Re[2]: hello", "hello", true);
    expect_base("Re [2] : hello", "hello", true);
    expect_base("[list] Re: hello", "hello", true);
    expect_base("[a][b] Fwd: hello", "hello", true);
    expect_base("Re: Re: re: hello", "hello", true);
    expect_base("Re:", "", true);
    expect_base("Ref: hello", "Ref: hello", false);
    expect_base("re hello", "re hello", false);
    expect_base("Fwdx: hello", "Fwdx: hello", false);
    /* (4) a leading blob goes only when something is left. */
    expect_base("[list] hello", "hello", false);
    expect_base("[list]", "[list]", false);
    expect_base("[a] [b]", "[b]", false);
    expect_base("[a][b] hello", "hello", false);
    expect_base("[a", "[a", false);
    /* (5) (3) and (4) in turn. */
    expect_base("Re: [list] hello", "hello", true);
    expect_base("[list] Re: [other] Fwd: hello", "hello", true);
    /* (6) the [fwd: ...] wrapper, then again from (2). */
    expect_base("[fwd: hello]", "hello", true);
    expect_base("[Fwd: Re: hello]", "hello", true);
    expect_base("Re: [fwd: hello (fwd)]", "hello", true);
    expect_base("[fwd: [fwd: hello]]", "hello", true);
    expect_base("[fwd: hello", "[fwd: hello", false);
}

static void test_casemap(void **state)
{
    (void)state;
    assert_int_equal(imap_casemap_cmp("abc", 3, "ABC", 3), 0);
    assert_true(imap_casemap_cmp("abc", 3, "abd", 3) < 0);
    assert_true(imap_casemap_cmp("ab", 2, "abc", 3) < 0);
    assert_true(imap_casemap_cmp("b", 1, "A", 1) > 0);
    /* Not ASCII: bytes as they are. */
    assert_true(imap_casemap_cmp("\xc3\xa9", 2, "\xc3\x89", 2) != 0);
}

static void build(const char *hdr, struct petrel_buf *b, struct imap_sortkey *k)
{
    petrel_buf_init(b, 1u << 20);
    imap_sortkey_build(hdr, strlen(hdr), b);
    assert_true(imap_sortkey_parse(petrel_buf_head(b), b->len, k));
}

static bool field_is(const struct imap_sortkey *k, int f, const char *want)
{
    return k->len[f] == strlen(want) && memcmp(k->str[f], want, k->len[f]) == 0;
}

static void test_sortkey(void **state)
{
    (void)state;
    struct petrel_buf b;
    struct imap_sortkey k;
    build("From: \"Zed, Z\" <Zed@X.test>, bob@x.test\r\n"
          "To: undisclosed: ;, =?UTF-8?Q?J=C3=B6rg?= <jorg@x.test>\r\n"
          "Subject: Re: [list]\r\n  hello\r\n"
          "Date: Tue, 1 Jul 2003 10:52:37 +0200 (CEST)\r\n"
          "Message-ID: < id1@x.test >\r\n"
          "References: <r1@x> (comment)\r\n <r2@x>\r\n"
          "In-Reply-To: <irt@x>\r\n\r\nFrom: body@x\r\n",
          &b, &k);
    assert_true(field_is(&k, IMAP_SK_SUBJECT, "hello"));
    assert_true(k.reply);
    assert_true(field_is(&k, IMAP_SK_FROM, "Zed"));
    assert_true(field_is(&k, IMAP_SK_DISPLAYFROM, "Zed, Z"));
    assert_true(field_is(&k, IMAP_SK_TO, "jorg"));
    assert_true(field_is(&k, IMAP_SK_DISPLAYTO, "J\xc3\xb6rg"));
    assert_true(field_is(&k, IMAP_SK_CC, ""));
    assert_true(field_is(&k, IMAP_SK_MSGID, "id1@x.test"));
    assert_true(field_is(&k, IMAP_SK_REFS, "r1@x r2@x"));
    assert_true(k.has_date);
    assert_int_equal(k.date, 1057049557); /* 2003-07-01 08:52:37 UTC */
    /* A truncated or foreign record is refused. */
    assert_false(imap_sortkey_parse(petrel_buf_head(&b), b.len - 1, &k));
    assert_false(imap_sortkey_parse("XX1", 3, &k));
    petrel_buf_free(&b);

    /* In-Reply-To stands in for References; no Date:, no subject. */
    build("In-Reply-To: <a@x> <b@x>\r\nTo: bob@x.test\r\nDate: garbage\r\n\r\n", &b, &k);
    assert_true(field_is(&k, IMAP_SK_REFS, "a@x"));
    assert_true(field_is(&k, IMAP_SK_DISPLAYTO, "bob@x.test"));
    assert_true(field_is(&k, IMAP_SK_SUBJECT, ""));
    assert_false(k.has_date);
    assert_false(k.reply);
    petrel_buf_free(&b);
}

static void test_dates(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"Thu, 01 Jan 1970 00:00:00 +0000", 0},     {"1 Jan 1970 01:00 +0100", 0},
        {"Wed, 31 Dec 1969 19:00:00 EST", 0},       {"Thu, 1 Jan 70 00:00:00 GMT", 0},
        {"29 Feb 2000 12:00:00 -0030", 951827400},  {"Sat, 1 Jan 2050 00:00:00 +0000", 2524608000},
        {" ( comment ) 1 Jan 1970 00:00:01 UT", 1},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t t = -1;
        if (!imap_sortkey_date(ok[i].in, strlen(ok[i].in), &t) || t != ok[i].want)
            fail_msg("%s: %lld", ok[i].in, (long long)t);
    }
    static const char *const bad[] = {"",
                                      "yesterday",
                                      "32 Jan 2020 00:00 +0000",
                                      "1 Foo 2020 00:00 +0000",
                                      "1 Jan 2020 25:00 +0000",
                                      "1 Jan 2020"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t;
        if (imap_sortkey_date(bad[i], strlen(bad[i]), &t))
            fail_msg("%s parsed", bad[i]);
    }
}

/* --- threading --- */

struct tmsg {
    const char *subject; /* as written: the base subject is taken here */
    const char *msgid;
    const char *refs;
    int64_t date; /* 0: the message's number */
};

static void expect_threads(enum imap_thread_alg alg, const struct tmsg *msgs, size_t n,
                           const char *want)
{
    struct imap_thread *t = imap_thread_new(alg);
    char *subjects[64];
    assert_true(n <= 64);
    for (size_t i = 0; i < n; i++) {
        bool reply;
        const char *s = msgs[i].subject != NULL ? msgs[i].subject : "";
        subjects[i] = imap_base_subject(s, strlen(s), &reply);
        struct imap_thread_msg m = {
            .number = (uint32_t)(i + 1),
            .date = msgs[i].date != 0 ? msgs[i].date : (int64_t)(i + 1),
            .subject = subjects[i],
            .subject_len = strlen(subjects[i]),
            .reply = reply,
            .msgid = msgs[i].msgid,
            .msgid_len = msgs[i].msgid != NULL ? strlen(msgs[i].msgid) : 0,
            .refs = msgs[i].refs,
            .refs_len = msgs[i].refs != NULL ? strlen(msgs[i].refs) : 0,
        };
        imap_thread_add(t, &m);
    }
    struct petrel_buf out;
    petrel_buf_init(&out, 1u << 24);
    imap_thread_write(t, &out);
    petrel_buf_append(&out, "", 1);
    if (strcmp(petrel_buf_head(&out), want) != 0)
        fail_msg("got %s, want %s", petrel_buf_head(&out), want);
    petrel_buf_free(&out);
    imap_thread_free(t);
    for (size_t i = 0; i < n; i++)
        free(subjects[i]);
}

#define THREADS(alg, want, ...)                                                                    \
    do {                                                                                           \
        const struct tmsg m_[] = {__VA_ARGS__};                                                    \
        expect_threads(alg, m_, sizeof(m_) / sizeof(m_[0]), want);                                 \
    } while (0)
#define REF IMAP_THREAD_REFERENCES
#define ORD IMAP_THREAD_ORDEREDSUBJECT

static void test_references_links(void **state)
{
    (void)state;
    /* Parent chains and siblings. */
    THREADS(REF, "(1 (2 3)(4))", {"a", "a", NULL, 0}, {"b", "b", "a", 0}, {"c", "c", "a b", 0},
            {"d", "d", "a", 0});
    /* In the answer siblings go by date, not by number. */
    THREADS(REF, "(1 (3)(2))", {"a", "a", NULL, 0}, {"b", "b", "a", 50}, {"c", "c", "a", 40});
    /* The last reference wins over a parent guessed before. */
    THREADS(REF, "(1 (2)(3 4))", {"a", "a", NULL, 0}, {"b", "b", "a", 0}, {"c", "c", "a", 0},
            {"d", "d", "b c", 0});
    /* Threads ordered by their first message's date. */
    THREADS(REF, "(2)(1)", {"a", "a", NULL, 9}, {"b", "b", NULL, 5});
    /* Equal dates: by number. */
    THREADS(REF, "(1)(2)", {"a", "a", NULL, 7}, {"b", "b", NULL, 7});
}

static void test_references_dummies(void **state)
{
    (void)state;
    /* A missing parent with two children stays as a dummy under the root. */
    THREADS(REF, "((1)(2))", {"a", "a", "x", 0}, {"b", "b", "x", 0});
    /* With one child it goes, the child moving up. */
    THREADS(REF, "(1)", {"a", "a", "x", 0});
    /* A dummy below another thread goes: its children move up. */
    THREADS(REF, "(1 (2)(3))", {"a", "a", NULL, 0}, {"b", "b", "a y", 0}, {"c", "c", "a y", 0});
    /* Nested missing parents: y below x is pruned, x stays. */
    THREADS(REF, "((1)(2))", {"a", "a", "x y", 0}, {"b", "b", "x", 0});
    /* A dummy's date is its first child's. */
    THREADS(REF, "(3)((2)(1))", {"a", "a", "x", 30}, {"b", "b", "x", 20}, {"c", "c", NULL, 10});
}

static void test_references_loops_and_dups(void **state)
{
    (void)state;
    /* Each claims the other as parent: the second link would loop. */
    THREADS(REF, "(2 1)", {"a", "a", "b", 0}, {"b", "b", "a", 0});
    /* A message that names itself. */
    THREADS(REF, "(1)", {"a", "a", "a", 0});
    /* A longer loop through references only. */
    THREADS(REF, "((1)(2))", {"a", "a", "x y", 0}, {"b", "b", "y x", 0});
    /* A duplicate Message-ID: the second message is apart; replies go
     * to the first. */
    THREADS(REF, "(1 3)(2)", {"a", "x", NULL, 0}, {"b", "x", "y", 0}, {"c", "c", "x", 0});
    /* No Message-ID at all. */
    THREADS(REF, "(1)(2 3)", {"a", NULL, NULL, 0}, {"b", "b", NULL, 0}, {"c", NULL, "b", 0});
}

static void test_references_subjects(void **state)
{
    (void)state;
    /* A reply without references joins the thread of its subject. */
    THREADS(REF, "(1 2)", {"hello", "a", NULL, 0}, {"Re: hello", "b", NULL, 0});
    /* The non-reply is preferred as the parent even when later. */
    THREADS(REF, "(2 1)", {"Re: hello", "a", NULL, 0}, {"hello", "b", NULL, 0});
    /* Neither a reply: a dummy holds both. */
    THREADS(REF, "((1)(2))", {"hello", "a", NULL, 0}, {"hello", "b", NULL, 0});
    /* Both replies too. */
    THREADS(REF, "((1)(2))", {"Re: hello", "a", NULL, 0}, {"Fwd: hello", "b", NULL, 0});
    /* A dummy root is preferred and takes the others as children. */
    THREADS(REF, "((1)(2)(3))", {"s", "a", "x", 0}, {"Re: s", "b", "x", 0}, {"s", "c", NULL, 0});
    /* Subjects compare with ASCII case folded; empty ones never merge. */
    THREADS(REF, "(1 2)(3)(4)", {"Apple", "a", NULL, 0}, {"re: APPLE", "b", NULL, 0},
            {"", "c", NULL, 0}, {"", "d", NULL, 0});
    /* Two dummies with one subject: children together in one. */
    THREADS(REF, "((1)(2)(3)(4))", {"s", "a", "x", 0}, {"s", "b", "x", 0}, {"s", "c", "y", 0},
            {"s", "d", "y", 0});
}

static void test_orderedsubject(void **state)
{
    (void)state;
    /* By base subject, then date; threads by their first message. */
    THREADS(ORD, "(2 1)(5)(3 (6)(4))", {"Re: hello", NULL, NULL, 30}, {"hello", NULL, NULL, 10},
            {"[list] Fwd: apple", NULL, NULL, 20}, {"Re: Apple (fwd)", NULL, NULL, 50},
            {"zebra", NULL, NULL, 10}, {"Re: apple", NULL, NULL, 40});
    /* References play no part. */
    THREADS(ORD, "(1)(2)", {"a", "a", NULL, 0}, {"b", "b", "a", 0});
}

/* A reply chain far deeper than a worker's stack would take recursively. */
static void test_deep_chain(void **state)
{
    (void)state;
    const uint32_t n = 200000;
    struct imap_thread *t = imap_thread_new(IMAP_THREAD_REFERENCES);
    char id[32], ref[32];
    for (uint32_t i = 1; i <= n; i++) {
        snprintf(id, sizeof(id), "m%u", i);
        snprintf(ref, sizeof(ref), "m%u", i - 1);
        struct imap_thread_msg m = {.number = i,
                                    .date = i,
                                    .subject = "s",
                                    .subject_len = 1,
                                    .msgid = id,
                                    .msgid_len = strlen(id),
                                    .refs = i > 1 ? ref : NULL,
                                    .refs_len = i > 1 ? strlen(ref) : 0};
        imap_thread_add(t, &m);
    }
    struct petrel_buf out;
    petrel_buf_init(&out, 1u << 24);
    imap_thread_write(t, &out);
    imap_thread_free(t);
    const char *s = petrel_buf_head(&out);
    assert_true(out.len > 10);
    assert_memory_equal(s, "(1 2 3 ", 7);
    assert_memory_equal(s + out.len - 8, " 200000)", 8);
    petrel_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_subject),
        cmocka_unit_test(test_casemap),
        cmocka_unit_test(test_sortkey),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_references_links),
        cmocka_unit_test(test_references_dummies),
        cmocka_unit_test(test_references_loops_and_dups),
        cmocka_unit_test(test_references_subjects),
        cmocka_unit_test(test_orderedsubject),
        cmocka_unit_test(test_deep_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
