/* Modified UTF-7: RFC 3501's example, round trips of every kind of
 * character, and the non-canonical or broken forms refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "imap_mutf7.h"

static void check_pair(const char *utf8, const char *mutf7)
{
    struct petrel_buf b;
    petrel_buf_init(&b, 1024);
    if (!imap_mutf7_encode(utf8, strlen(utf8), &b))
        fail_msg("encode refused %s", utf8);
    if (b.len != strlen(mutf7) || memcmp(petrel_buf_head(&b), mutf7, b.len) != 0)
        fail_msg("encode %s: %.*s, want %s", utf8, (int)b.len, petrel_buf_head(&b), mutf7);
    petrel_buf_reset(&b);
    if (!imap_mutf7_decode(mutf7, strlen(mutf7), &b))
        fail_msg("decode refused %s", mutf7);
    if (b.len != strlen(utf8) || memcmp(petrel_buf_head(&b), utf8, b.len) != 0)
        fail_msg("decode %s: %.*s, want %s", mutf7, (int)b.len, petrel_buf_head(&b), utf8);
    petrel_buf_free(&b);
}

static void test_examples(void **state)
{
    (void)state;
    /* RFC 3501 section 5.1.3. */
    check_pair("~peter/mail/\xe5\x8f\xb0\xe5\x8c\x97/\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
               "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
    check_pair("", "");
    check_pair("INBOX", "INBOX");
    check_pair("a&b", "a&-b");
    check_pair("&&", "&-&-");
    check_pair("\xe2\x98\xba!", "&Jjo-!");
    check_pair("caf\xc3\xa9", "caf&AOk-");
    check_pair("\xc3\xa9&", "&AOk-&-");
    check_pair("&\xc3\xa9", "&-&AOk-");
    check_pair("\xc3\xa9\xc3\xa9\xc3\xa9", "&AOkA6QDp-");
    check_pair("tab\there", "tab&AAk-here");
    check_pair("\x7f", "&AH8-");
    /* U+1F600: a surrogate pair. */
    check_pair("\xf0\x9f\x98\x80", "&2D3eAA-");
    check_pair("\xf4\x8f\xbf\xbf", "&2,,f,w-");
}

static void test_round_trip(void **state)
{
    (void)state;
    static const uint32_t cps[] = {0x01,   0x1f,   0x7f,   0x80,    0x7ff,    0x800,  0xd7ff,
                                   0xe000, 0xfffd, 0xffff, 0x10000, 0x10ffff, 0xff0c, 0x2c};
    for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
        for (size_t j = 0; j < sizeof(cps) / sizeof(cps[0]); j++) {
            char u[16];
            size_t n = 0;
            const uint32_t pair[2] = {cps[i], cps[j]};
            for (int k = 0; k < 2; k++) {
                uint32_t c = pair[k];
                if (c < 0x80) {
                    u[n++] = (char)c;
                } else if (c < 0x800) {
                    u[n++] = (char)(0xc0 | c >> 6);
                    u[n++] = (char)(0x80 | (c & 0x3f));
                } else if (c < 0x10000) {
                    u[n++] = (char)(0xe0 | c >> 12);
                    u[n++] = (char)(0x80 | (c >> 6 & 0x3f));
                    u[n++] = (char)(0x80 | (c & 0x3f));
                } else {
                    u[n++] = (char)(0xf0 | c >> 18);
                    u[n++] = (char)(0x80 | (c >> 12 & 0x3f));
                    u[n++] = (char)(0x80 | (c >> 6 & 0x3f));
                    u[n++] = (char)(0x80 | (c & 0x3f));
                }
            }
            struct petrel_buf e, d;
            petrel_buf_init(&e, 256);
            petrel_buf_init(&d, 256);
            assert_true(imap_mutf7_encode(u, n, &e));
            assert_true(imap_mutf7_decode(petrel_buf_head(&e), e.len, &d));
            assert_int_equal(d.len, n);
            assert_memory_equal(petrel_buf_head(&d), u, n);
            petrel_buf_free(&e);
            petrel_buf_free(&d);
        }
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const char *const bad_mutf7[] = {
        "&",           /* unterminated */
        "&AOk",        /* unterminated */
        "a&AOk-&AOk-", /* two runs in a row */
        "&AGE-",       /* 'a' encoded */
        "&ACY-",       /* '&' encoded */
        "&AAA-",       /* NUL */
        "&AOl-",       /* non-zero padding bits */
        "&AOkA-",      /* a needless character */
        "&A-",         /* too short */
        "&AO!-",       /* bad base64 */
        "&AO/-",       /* '/' instead of ',' */
        "&2D0-",       /* lone high surrogate */
        "&3gA-",       /* lone low surrogate */
        "&2D3YPQ-",    /* high then high */
        "caf\xc3\xa9", /* 8-bit */
        "tab\there",   /* control character */
        "&AOk=-",      /* base64 padding */
    };
    for (size_t i = 0; i < sizeof(bad_mutf7) / sizeof(bad_mutf7[0]); i++) {
        struct petrel_buf b;
        petrel_buf_init(&b, 256);
        if (imap_mutf7_decode(bad_mutf7[i], strlen(bad_mutf7[i]), &b))
            fail_msg("decode accepted %s", bad_mutf7[i]);
        petrel_buf_free(&b);
    }
    static const char *const bad_utf8[] = {
        "\xc3",             /* cut */
        "\xe6\x97",         /* cut */
        "\xc0\xaf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong */
        "\xf0\x80\x80\xaf", /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xf4\x90\x80\x80", /* past U+10FFFF */
        "\xff",             /* never valid */
        "\x80",             /* continuation alone */
        "\xc3\x28",         /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        struct petrel_buf b;
        petrel_buf_init(&b, 256);
        if (imap_mutf7_encode(bad_utf8[i], strlen(bad_utf8[i]), &b))
            fail_msg("encode accepted bad UTF-8 #%zu", i);
        petrel_buf_free(&b);
    }
    struct petrel_buf b;
    petrel_buf_init(&b, 256);
    assert_false(imap_mutf7_encode("a\0b", 3, &b));
    petrel_buf_free(&b);
}

static void test_bounded(void **state)
{
    (void)state;
    struct petrel_buf b;
    petrel_buf_init(&b, 8);
    assert_false(imap_mutf7_encode("caf\xc3\xa9\xc3\xa9", 7, &b));
    assert_true(b.len <= 8);
    petrel_buf_reset(&b);
    assert_false(imap_mutf7_decode("abcdefghij", 10, &b));
    petrel_buf_reset(&b);
    assert_true(imap_mutf7_decode("abcdefgh", 8, &b));
    petrel_buf_free(&b);
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(imap_utf8_valid("", 0, true));
    assert_true(imap_utf8_valid("caf\xc3\xa9 \xf0\x9f\x93\xa7", 10, true));
    assert_true(imap_utf8_valid("a\tb", 3, false));
    assert_false(imap_utf8_valid("a\tb", 3, true));
    assert_false(imap_utf8_valid("a\x7f", 2, true));
    assert_false(imap_utf8_valid("a\0b", 3, false));
    assert_false(imap_utf8_valid("\xc3", 1, false));
    assert_false(imap_utf8_valid("\xe0\x80\xaf", 3, false)); /* overlong */
    assert_false(imap_utf8_valid("\xed\xbf\xbf", 3, false)); /* surrogate */
    assert_false(imap_utf8_valid("\xf5\x80\x80\x80", 4, false));
    /* The length is honoured: a sequence cut by it is invalid. */
    assert_false(imap_utf8_valid("\xc3\xa9", 1, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples),   cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),    cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_utf8_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
