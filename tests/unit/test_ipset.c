/* Unit tests for core/ipset.c: address parsing and formatting, ranges,
 * CIDR blocks and sets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "ipset.h"

static struct petrel_ipaddr addr(const char *text)
{
    struct petrel_ipaddr a;
    if (!petrel_ipaddr_parse(text, &a))
        fail_msg("test address %s does not parse", text);
    return a;
}

static void assert_formats(const char *in, const char *want)
{
    struct petrel_ipaddr a = addr(in);
    char buf[PETREL_IPADDR_STRLEN];
    petrel_ipaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void assert_range(const char *text, const char *lo, const char *hi)
{
    struct petrel_iprange r;
    const char *error = NULL;
    if (!petrel_iprange_parse(text, &r, &error))
        fail_msg("\"%s\" refused: %s", text, error);
    char buf[PETREL_IPADDR_STRLEN];
    petrel_ipaddr_format(&r.lo, buf, sizeof(buf));
    assert_string_equal(buf, lo);
    petrel_ipaddr_format(&r.hi, buf, sizeof(buf));
    assert_string_equal(buf, hi);
}

static void assert_bad_range(const char *text, const char *want_error)
{
    struct petrel_iprange r;
    const char *error = NULL;
    if (petrel_iprange_parse(text, &r, &error))
        fail_msg("\"%s\" accepted", text);
    assert_non_null(error);
    if (want_error != NULL)
        assert_string_equal(error, want_error);
}

static bool set_has(const struct petrel_ipset *set, const char *text)
{
    struct petrel_ipaddr a = addr(text);
    return petrel_ipset_contains(set, &a);
}

static void set_add(struct petrel_ipset *set, const char *text)
{
    const char *error = NULL;
    if (!petrel_ipset_add(set, text, &error))
        fail_msg("\"%s\" refused: %s", text, error);
}

static void test_parse_v4(void **state)
{
    struct petrel_ipaddr a;
    static const uint8_t want[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1};

    assert_true(petrel_ipaddr_parse("192.0.2.1", &a));
    assert_memory_equal(a.b, want, 16);
    assert_true(petrel_ipaddr_is_v4(&a));
    assert_true(petrel_ipaddr_parse("0.0.0.0", &a));
    assert_true(petrel_ipaddr_is_v4(&a));
    assert_true(petrel_ipaddr_parse("255.255.255.255", &a));
}

static void test_parse_v6(void **state)
{
    struct petrel_ipaddr a;
    static const uint8_t want[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    assert_true(petrel_ipaddr_parse("2001:db8::1", &a));
    assert_memory_equal(a.b, want, 16);
    assert_false(petrel_ipaddr_is_v4(&a));
    assert_true(petrel_ipaddr_parse("::", &a));
    assert_false(petrel_ipaddr_is_v4(&a));
    assert_true(petrel_ipaddr_parse("::1", &a));
    assert_false(petrel_ipaddr_is_v4(&a));
    assert_true(petrel_ipaddr_parse("2001:DB8:0:0:0:0:0:1", &a));
    assert_memory_equal(a.b, want, 16);
}

static void test_parse_v4_mapped(void **state)
{
    struct petrel_ipaddr a = addr("::ffff:192.0.2.1");
    struct petrel_ipaddr b = addr("192.0.2.1");

    assert_true(petrel_ipaddr_is_v4(&a));
    assert_int_equal(petrel_ipaddr_cmp(&a, &b), 0);
    /* Hex form of the same mapped address. */
    b = addr("::ffff:c000:201");
    assert_int_equal(petrel_ipaddr_cmp(&a, &b), 0);
    /* ::ffff:0:0:0/96 (SIIT "translated") and IPv4-compatible are not v4. */
    a = addr("::ffff:0:c000:201");
    assert_false(petrel_ipaddr_is_v4(&a));
    a = addr("::192.0.2.1");
    assert_false(petrel_ipaddr_is_v4(&a));
}

static void test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "192.0.2.1 ",
        " 192.0.2.1",
        "192.0.2",
        "192.0.2.1.5",
        "192.0.2.256",
        "192.0.2.01",
        "010.0.0.1",
        "192.0.2.-1",
        "192.0.2.+1",
        "0x7f.0.0.1",
        "127.1",
        "1",
        "localhost",
        "2001:db8::1::2",
        "2001:db8:::1",
        "2001:db8::g",
        "12345::",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        ":1",
        "1:",
        "fe80::1%eth0",
        "::ffff:192.0.2.256",
        "[::1]",
    };
    struct petrel_ipaddr a;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (petrel_ipaddr_parse(bad[i], &a))
            fail_msg("\"%s\" accepted", bad[i]);
    }
}

static void test_format_v4(void **state)
{
    assert_formats("192.0.2.1", "192.0.2.1");
    assert_formats("0.0.0.0", "0.0.0.0");
    assert_formats("255.255.255.255", "255.255.255.255");
    assert_formats("::ffff:192.0.2.1", "192.0.2.1");
    assert_formats("::FFFF:C000:0201", "192.0.2.1");
}

/* RFC 5952 section 4. */
static void test_format_v6_rfc5952(void **state)
{
    assert_formats("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1");
    assert_formats("2001:DB8::A", "2001:db8::a");
    assert_formats("::", "::");
    assert_formats("::1", "::1");
    assert_formats("1::", "1::");
    assert_formats("fe80::", "fe80::");
    /* 4.2.2: one zero group is not shortened. */
    assert_formats("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1");
    /* 4.2.3: the longest run; on a tie, the first. */
    assert_formats("2001:0:0:1:0:0:0:1", "2001:0:0:1::1");
    assert_formats("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1");
    /* 4.1: leading zeros dropped, but a zero group is "0". */
    assert_formats("2001:db8:00aa:0:00bb:0:cc:dd", "2001:db8:aa:0:bb:0:cc:dd");
    assert_formats("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_formats("1:0:0:0:0:0:0:0", "1::");
    assert_formats("0:0:0:0:0:0:0:1", "::1");
    assert_formats("1:2:3:4:5:6:7:0", "1:2:3:4:5:6:7:0");
    assert_formats("0:1:2:3:4:5:6:7", "0:1:2:3:4:5:6:7");
    assert_formats("1:0:0:2:3:0:0:4", "1::2:3:0:0:4");
    /* No dotted quad outside the v4-mapped block (glibc would write
     * "::0.1.0.2" here). */
    assert_formats("::1:2", "::1:2");
    assert_formats("::192.0.2.1", "::c000:201");
    assert_formats("::ffff:0:c000:201", "::ffff:0:c000:201");
    assert_formats("::fffe:ffff:ffff", "::fffe:ffff:ffff");
    assert_formats("::1:0:0:0", "::1:0:0:0");
}

static void test_format_small_buffer(void **state)
{
    struct petrel_ipaddr a = addr("192.0.2.1");
    char buf[8];

    memset(buf, 'x', sizeof(buf));
    petrel_ipaddr_format(&a, buf, 4);
    assert_string_equal(buf, "192");
    assert_int_equal(buf[4], 'x');
    petrel_ipaddr_format(&a, buf, 0);
    assert_string_equal(buf, "192");

    a = addr("2001:db8::1");
    petrel_ipaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db");

    /* The longest text fits PETREL_IPADDR_STRLEN exactly. */
    char big[PETREL_IPADDR_STRLEN];
    a = addr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    petrel_ipaddr_format(&a, big, sizeof(big));
    assert_int_equal(strlen(big), 39);
}

static void test_format_roundtrip(void **state)
{
    /* Every format output parses back to the same bytes. */
    struct petrel_ipaddr a, b;
    char buf[PETREL_IPADDR_STRLEN];

    for (unsigned i = 0; i < 4096; i++) {
        memset(&a, 0, sizeof(a));
        /* Walk zero/non-zero patterns over the eight groups. */
        for (unsigned g = 0; g < 8; g++) {
            if (i & (1u << g)) {
                a.b[2 * g] = (uint8_t)(i >> 4);
                a.b[2 * g + 1] = (uint8_t)(g + 1);
            }
        }
        if (i & 0x100) {
            memset(a.b, 0, 10);
            a.b[10] = a.b[11] = 0xff;
        }
        petrel_ipaddr_format(&a, buf, sizeof(buf));
        assert_true(petrel_ipaddr_parse(buf, &b));
        assert_memory_equal(a.b, b.b, 16);
    }
}

static void test_from_sockaddr(void **state)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun;
    struct petrel_ipaddr a;
    char buf[PETREL_IPADDR_STRLEN];

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, "198.51.100.7", &sin.sin_addr), 1);
    assert_true(petrel_ipaddr_from_sockaddr((struct sockaddr *)&sin, &a));
    assert_true(petrel_ipaddr_is_v4(&a));
    petrel_ipaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "198.51.100.7");

    /* A dual-stack socket's v4-mapped peer is IPv4. */
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "::ffff:198.51.100.7", &sin6.sin6_addr), 1);
    assert_true(petrel_ipaddr_from_sockaddr((struct sockaddr *)&sin6, &a));
    assert_true(petrel_ipaddr_is_v4(&a));
    petrel_ipaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "198.51.100.7");

    assert_int_equal(inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr), 1);
    assert_true(petrel_ipaddr_from_sockaddr((struct sockaddr *)&sin6, &a));
    assert_false(petrel_ipaddr_is_v4(&a));
    petrel_ipaddr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "2001:db8::7");

    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    assert_false(petrel_ipaddr_from_sockaddr((struct sockaddr *)&sun, &a));
}

static void test_cmp(void **state)
{
    struct petrel_ipaddr a = addr("192.0.2.1"), b = addr("192.0.2.2");
    struct petrel_ipaddr c = addr("10.255.255.255"), d = addr("::1");
    struct petrel_ipaddr e = addr("2001:db8::");

    assert_true(petrel_ipaddr_cmp(&a, &b) < 0);
    assert_true(petrel_ipaddr_cmp(&b, &a) > 0);
    assert_int_equal(petrel_ipaddr_cmp(&a, &a), 0);
    assert_true(petrel_ipaddr_cmp(&c, &a) < 0);
    /* ::1 sorts below the v4-mapped block, 2001:db8:: above it. */
    assert_true(petrel_ipaddr_cmp(&d, &a) < 0);
    assert_true(petrel_ipaddr_cmp(&e, &a) > 0);
}

static void test_range_any(void **state)
{
    assert_range("any", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_range("*", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_range(" \tany  ", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_bad_range("ANY", NULL);
    assert_bad_range("any*", NULL);
    assert_bad_range("**", NULL);
}

static void test_range_single(void **state)
{
    assert_range("192.0.2.1", "192.0.2.1", "192.0.2.1");
    assert_range("  192.0.2.1\t", "192.0.2.1", "192.0.2.1");
    assert_range("2001:db8::1", "2001:db8::1", "2001:db8::1");
    assert_range("::ffff:192.0.2.1", "192.0.2.1", "192.0.2.1");
}

static void test_range_cidr_v4(void **state)
{
    assert_range("192.0.2.0/24", "192.0.2.0", "192.0.2.255");
    /* Host bits are dropped. */
    assert_range("192.0.2.5/24", "192.0.2.0", "192.0.2.255");
    assert_range("192.0.2.5/32", "192.0.2.5", "192.0.2.5");
    assert_range("192.0.2.5/31", "192.0.2.4", "192.0.2.5");
    assert_range("10.200.0.0/9", "10.128.0.0", "10.255.255.255");
    assert_range("172.16.0.0/12", "172.16.0.0", "172.31.255.255");
    assert_range("128.0.0.1/1", "128.0.0.0", "255.255.255.255");
    assert_range("0.0.0.0/0", "0.0.0.0", "255.255.255.255");
    assert_range("203.0.113.77/0", "0.0.0.0", "255.255.255.255");
    assert_range(" 192.0.2.0/24 ", "192.0.2.0", "192.0.2.255");
}

static void test_range_cidr_v6(void **state)
{
    assert_range("2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_range("2001:db8::1/128", "2001:db8::1", "2001:db8::1");
    assert_range("2001:db8::1/127", "2001:db8::", "2001:db8::1");
    assert_range("2001:db8:1:2:3:4:5:6/64", "2001:db8:1:2::", "2001:db8:1:2:ffff:ffff:ffff:ffff");
    assert_range("2001:db8::/65", "2001:db8::", "2001:db8::7fff:ffff:ffff:ffff");
    assert_range("::/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    /* An IPv6 prefix inside the mapped block names IPv4 addresses. */
    assert_range("::ffff:0:0/96", "0.0.0.0", "255.255.255.255");
    assert_range("::ffff:192.0.2.0/120", "192.0.2.0", "192.0.2.255");
}

static void test_range_span(void **state)
{
    assert_range("192.0.2.10-192.0.2.20", "192.0.2.10", "192.0.2.20");
    assert_range("192.0.2.10-192.0.2.10", "192.0.2.10", "192.0.2.10");
    assert_range("0.0.0.0-255.255.255.255", "0.0.0.0", "255.255.255.255");
    assert_range("2001:db8::1-2001:db8::ff", "2001:db8::1", "2001:db8::ff");
    assert_range("::ffff:192.0.2.1-192.0.2.9", "192.0.2.1", "192.0.2.9");
    assert_range(" 10.0.0.1-10.0.0.2 ", "10.0.0.1", "10.0.0.2");
}

static void test_range_bad(void **state)
{
    char longtext[200];

    assert_bad_range("", "empty address");
    assert_bad_range(" \t ", "empty address");
    assert_bad_range("garbage", "invalid IP address");
    assert_bad_range("192.0.2.1x", "invalid IP address");
    assert_bad_range("192.0.2.1 x", "invalid IP address");
    assert_bad_range("192.0.2.1\n", "invalid IP address");
    assert_bad_range("192.0.2.256", "invalid IP address");
    assert_bad_range("/24", "invalid IP address");
    assert_bad_range("192.0.2.0/", "invalid prefix length");
    assert_bad_range("192.0.2.0/33", "invalid prefix length");
    assert_bad_range("192.0.2.0/100", "invalid prefix length");
    assert_bad_range("192.0.2.0/4294967320", "invalid prefix length");
    assert_bad_range("2001:db8::/129", "invalid prefix length");
    assert_bad_range("2001:db8::/1000", "invalid prefix length");
    assert_bad_range("192.0.2.0/-1", NULL);
    assert_bad_range("192.0.2.0/+8", "invalid prefix length");
    assert_bad_range("192.0.2.0/08", "invalid prefix length");
    assert_bad_range("192.0.2.0/ 8", "invalid prefix length");
    assert_bad_range("192.0.2.0 /8", "invalid IP address");
    assert_bad_range("192.0.2.0/24x", "invalid prefix length");
    assert_bad_range("192.0.2.0/24/8", "invalid prefix length");
    assert_bad_range("192.0.2.0/0x10", "invalid prefix length");
    assert_bad_range("192.0.2.20-192.0.2.10", "range start is above its end");
    assert_bad_range("2001:db8::2-2001:db8::1", "range start is above its end");
    assert_bad_range("192.0.2.1-2001:db8::1", "range mixes IPv4 and IPv6");
    assert_bad_range("::1-192.0.2.1", "range mixes IPv4 and IPv6");
    assert_bad_range("192.0.2.1-", "invalid IP address");
    assert_bad_range("-192.0.2.1", "invalid IP address");
    assert_bad_range("-", "invalid IP address");
    assert_bad_range("1.2.3.4-5.6.7.8-9.9.9.9", "invalid IP address");
    assert_bad_range("192.0.2.1 - 192.0.2.2", "invalid IP address");
    assert_bad_range("192.0.2.0/24-192.0.2.9", "a range cannot have a prefix length");
    assert_bad_range("fe80::1%eth0", "invalid IP address");
    assert_bad_range("any/0", "invalid IP address");

    /* Over-long input, even if it would be blanks around a valid entry. */
    memset(longtext, ' ', sizeof(longtext));
    memcpy(longtext + 100, "192.0.2.1", 9);
    longtext[sizeof(longtext) - 1] = '\0';
    assert_bad_range(longtext, "address too long");
    /* 128 characters is the limit. */
    memset(longtext, ' ', 128);
    memcpy(longtext + 60, "192.0.2.1", 9);
    longtext[128] = '\0';
    assert_range(longtext, "192.0.2.1", "192.0.2.1");
    longtext[128] = ' ';
    longtext[129] = '\0';
    assert_bad_range(longtext, "address too long");
}

static void test_range_error_null(void **state)
{
    struct petrel_iprange r;
    assert_false(petrel_iprange_parse("nope", &r, NULL));
}

static void test_set_basic(void **state)
{
    struct petrel_ipset set = {0};

    assert_false(set_has(&set, "192.0.2.1"));
    set_add(&set, "192.0.2.0/24");
    set_add(&set, "2001:db8::/32");
    set_add(&set, "198.51.100.10-198.51.100.20");
    assert_true(set_has(&set, "192.0.2.0"));
    assert_true(set_has(&set, "192.0.2.255"));
    assert_false(set_has(&set, "192.0.1.255"));
    assert_false(set_has(&set, "192.0.3.0"));
    assert_true(set_has(&set, "2001:db8::1"));
    assert_true(set_has(&set, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(set_has(&set, "2001:db9::"));
    assert_false(set_has(&set, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(set_has(&set, "198.51.100.10"));
    assert_true(set_has(&set, "198.51.100.20"));
    assert_false(set_has(&set, "198.51.100.9"));
    assert_false(set_has(&set, "198.51.100.21"));
    assert_true(set_has(&set, "::ffff:192.0.2.7"));
    petrel_ipset_free(&set);
    assert_null(set.ranges);
    assert_int_equal(set.count, 0);
    petrel_ipset_free(&set);
}

static void test_set_failed_add_keeps_set(void **state)
{
    struct petrel_ipset set = {0};
    const char *error = NULL;

    set_add(&set, "192.0.2.1");
    assert_false(petrel_ipset_add(&set, "192.0.2.0/33", &error));
    assert_string_equal(error, "invalid prefix length");
    assert_int_equal(set.count, 1);
    assert_true(set_has(&set, "192.0.2.1"));
    petrel_ipset_free(&set);
}

static void test_set_any(void **state)
{
    struct petrel_ipset set = {0};

    set_add(&set, "any");
    assert_true(set_has(&set, "0.0.0.0"));
    assert_true(set_has(&set, "192.0.2.1"));
    assert_true(set_has(&set, "255.255.255.255"));
    assert_true(set_has(&set, "::"));
    assert_true(set_has(&set, "2001:db8::1"));
    assert_true(set_has(&set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    petrel_ipset_free(&set);
}

/* 0.0.0.0/0 is every IPv4 address and nothing else. */
static void test_set_v4_all(void **state)
{
    struct petrel_ipset set = {0};

    set_add(&set, "0.0.0.0/0");
    assert_true(set_has(&set, "0.0.0.0"));
    assert_true(set_has(&set, "255.255.255.255"));
    assert_true(set_has(&set, "::ffff:10.0.0.1"));
    assert_false(set_has(&set, "::"));
    assert_false(set_has(&set, "::1"));
    assert_false(set_has(&set, "::fffe:ffff:ffff"));
    assert_false(set_has(&set, "::1:0:0:0"));
    assert_false(set_has(&set, "2001:db8::1"));
    petrel_ipset_free(&set);
}

/* ::/0 is every IPv6 address but not the v4-mapped block: that is IPv4. */
static void test_set_v6_all_excludes_v4(void **state)
{
    struct petrel_ipset set = {0};

    set_add(&set, "::/0");
    assert_int_equal(set.count, 2);
    assert_true(set_has(&set, "::"));
    assert_true(set_has(&set, "::1"));
    assert_true(set_has(&set, "::fffe:ffff:ffff"));
    assert_true(set_has(&set, "::1:0:0:0"));
    assert_true(set_has(&set, "2001:db8::1"));
    assert_true(set_has(&set, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_false(set_has(&set, "0.0.0.0"));
    assert_false(set_has(&set, "192.0.2.1"));
    assert_false(set_has(&set, "255.255.255.255"));
    petrel_ipset_free(&set);
}

static void test_set_v6_spanning_mapped(void **state)
{
    struct petrel_ipset set = {0};

    /* ::/64 covers the mapped block too; only the lower part stays. */
    set_add(&set, "::/64");
    assert_int_equal(set.count, 2);
    assert_true(set_has(&set, "::1"));
    assert_true(set_has(&set, "::ffff:ffff:ffff:ffff"));
    assert_false(set_has(&set, "192.0.2.1"));
    assert_false(set_has(&set, "1::"));
    petrel_ipset_free(&set);

    /* A range around the block keeps both sides. */
    set_add(&set, "::1-::2:0:0:0");
    assert_true(set_has(&set, "::1"));
    assert_true(set_has(&set, "::fffe:ffff:ffff"));
    assert_true(set_has(&set, "::1:0:0:0"));
    assert_true(set_has(&set, "::2:0:0:0"));
    assert_false(set_has(&set, "::2:0:0:1"));
    assert_false(set_has(&set, "10.0.0.1"));
    petrel_ipset_free(&set);

    /* Ending exactly below the block needs no cut. */
    set_add(&set, "::-::fffe:ffff:ffff");
    assert_int_equal(set.count, 1);
    assert_false(set_has(&set, "0.0.0.0"));
    petrel_ipset_free(&set);

    /* Inside the block, IPv6 notation names IPv4 addresses. */
    set_add(&set, "::ffff:0:0/96");
    assert_int_equal(set.count, 1);
    assert_true(set_has(&set, "0.0.0.0"));
    assert_true(set_has(&set, "203.0.113.9"));
    assert_false(set_has(&set, "::1"));
    petrel_ipset_free(&set);
}

static void test_set_many(void **state)
{
    struct petrel_ipset set = {0};
    char text[32];

    for (unsigned i = 0; i < 200; i++) {
        snprintf(text, sizeof(text), "10.%u.0.0/16", i);
        set_add(&set, text);
    }
    assert_int_equal(set.count, 200);
    assert_true(set_has(&set, "10.0.0.1"));
    assert_true(set_has(&set, "10.199.255.255"));
    assert_false(set_has(&set, "10.200.0.0"));
    petrel_ipset_free(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_v4),
        cmocka_unit_test(test_parse_v6),
        cmocka_unit_test(test_parse_v4_mapped),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_format_v4),
        cmocka_unit_test(test_format_v6_rfc5952),
        cmocka_unit_test(test_format_small_buffer),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_from_sockaddr),
        cmocka_unit_test(test_cmp),
        cmocka_unit_test(test_range_any),
        cmocka_unit_test(test_range_single),
        cmocka_unit_test(test_range_cidr_v4),
        cmocka_unit_test(test_range_cidr_v6),
        cmocka_unit_test(test_range_span),
        cmocka_unit_test(test_range_bad),
        cmocka_unit_test(test_range_error_null),
        cmocka_unit_test(test_set_basic),
        cmocka_unit_test(test_set_failed_add_keeps_set),
        cmocka_unit_test(test_set_any),
        cmocka_unit_test(test_set_v4_all),
        cmocka_unit_test(test_set_v6_all_excludes_v4),
        cmocka_unit_test(test_set_v6_spanning_mapped),
        cmocka_unit_test(test_set_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
