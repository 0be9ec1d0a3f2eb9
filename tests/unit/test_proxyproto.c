/* Unit tests for core/proxyproto.c. Headers are fed a byte at a time, each
 * prefix in a heap block of exactly its size so that AddressSanitizer
 * catches any read past len. */
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

#include "proxyproto.h"

#define AGAIN PETREL_PROXY_AGAIN
#define DONE PETREL_PROXY_DONE
#define ERROR PETREL_PROXY_ERROR

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

struct result {
    enum petrel_proxy_result res;
    struct petrel_proxy_info info;
    size_t consumed;
    const char *error;
};

static struct result parse(const void *data, size_t len)
{
    struct result r;
    uint8_t *copy = malloc(len > 0 ? len : 1);

    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, data, len);
    memset(&r, 0, sizeof(r));
    r.consumed = (size_t)-1;
    r.res = petrel_proxy_parse(copy, len, &r.info, &r.consumed, &r.error);
    free(copy);
    if (r.res == ERROR)
        assert_non_null(r.error);
    if (r.res != DONE)
        assert_int_equal(r.consumed, (size_t)-1);
    return r;
}

/* Every shorter prefix is AGAIN, the whole header DONE, also with bytes of
 * the next protocol behind it. */
static struct result feed_done(const void *data, size_t len)
{
    uint8_t *more = malloc(len + 8);

    for (size_t i = 0; i < len; i++) {
        struct result r = parse(data, i);
        if (r.res != AGAIN)
            fail_msg("prefix of %zu bytes: result %d (%s), want AGAIN", i, r.res,
                     r.error != NULL ? r.error : "");
    }
    assert_non_null(more);
    memcpy(more, data, len);
    memcpy(more + len, "EHLO x\r\n", 8);
    struct result r = parse(more, len + 8);
    free(more);
    if (r.res != DONE)
        fail_msg("result %d (%s), want DONE", r.res, r.error != NULL ? r.error : "");
    assert_int_equal(r.consumed, len);

    r = parse(data, len);
    assert_int_equal(r.res, DONE);
    assert_int_equal(r.consumed, len);
    return r;
}

static struct result feed_done_str(const char *text) { return feed_done(text, strlen(text)); }

/* Prefixes shorter than at are AGAIN; from at bytes on it is ERROR. */
static void feed_error_at(const void *data, size_t len, size_t at)
{
    for (size_t i = 0; i < at; i++) {
        struct result r = parse(data, i);
        if (r.res != AGAIN)
            fail_msg("prefix of %zu bytes: result %d (%s), want AGAIN", i, r.res,
                     r.error != NULL ? r.error : "");
    }
    for (size_t i = at; i <= len; i++) {
        struct result r = parse(data, i);
        if (r.res != ERROR)
            fail_msg("prefix of %zu bytes: result %d, want ERROR", i, r.res);
    }
}

/* text must fail, and at the byte just before the first '|', which the
 * test strips out. */
static void error_at_mark(const char *marked)
{
    char text[256];
    size_t len = 0, at = (size_t)-1;

    for (const char *p = marked; *p != '\0'; p++) {
        if (*p == '|')
            at = len;
        else
            text[len++] = *p;
    }
    assert_true(at != (size_t)-1 && at > 0);
    feed_error_at(text, len, at);
}

static void assert_bad_line(const char *text)
{
    struct result r = parse(text, strlen(text));
    if (r.res != ERROR)
        fail_msg("\"%s\": result %d, want ERROR", text, r.res);
}

static void assert_v4(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    char buf[INET_ADDRSTRLEN];

    assert_int_equal(sin->sin_family, AF_INET);
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, addr);
    assert_int_equal(ntohs(sin->sin_port), port);
}

static void assert_v6(const struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    struct in6_addr want;

    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(inet_pton(AF_INET6, addr, &want), 1);
    assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
    assert_int_equal(ntohs(sin6->sin6_port), port);
    assert_int_equal(sin6->sin6_flowinfo, 0);
    assert_int_equal(sin6->sin6_scope_id, 0);
}

/* A v2 header: signature, ver_cmd, fam, length, then body. */
static size_t v2_make(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const void *body, size_t len)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len > 0)
        memcpy(out + 16, body, len);
    return 16 + len;
}

static const uint8_t v2_tcp4_body[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xdc, 0x04, 0x00, 0x19};

static void test_empty(void **state) { assert_int_equal(parse("", 0).res, AGAIN); }

static void test_not_proxy(void **state)
{
    feed_error_at("EHLO example.org\r\n", 18, 1);
    feed_error_at("GET / HTTP/1.0\r\n", 16, 1);
    feed_error_at("\x16\x03\x01", 3, 1);
    feed_error_at("\0", 1, 1);
    feed_error_at("\n", 1, 1);
    /* Lower case is not the v1 signature. */
    error_at_mark("p|roxy TCP4");
    error_at_mark("PX|OXY TCP4");
    error_at_mark("PROXZ| TCP4");
    error_at_mark("PROXY\r|\n");
    error_at_mark("PROXYZ|");
}

static void test_v1_tcp4(void **state)
{
    struct result r = feed_done_str("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\n");

    assert_true(r.info.has_addr);
    assert_v4(&r.info.src, "192.0.2.1", 56324);
    assert_v4(&r.info.dst, "198.51.100.2", 25);

    r = feed_done_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
    assert_v4(&r.info.src, "0.0.0.0", 0);
    assert_v4(&r.info.dst, "255.255.255.255", 65535);

    /* The spec's longest TCP4 line, 56 bytes. */
    r = feed_done_str("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
    assert_int_equal(r.consumed, 56);
}

static void test_v1_tcp6(void **state)
{
    struct result r = feed_done_str("PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n");

    assert_true(r.info.has_addr);
    assert_v6(&r.info.src, "2001:db8::1", 1);
    assert_v6(&r.info.dst, "2001:db8::2", 65535);

    /* The spec's longest TCP6 line, 104 bytes. */
    r = feed_done_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
    assert_int_equal(r.consumed, 104);

    /* A v4-mapped source stays AF_INET6; petrel_ipaddr_from_sockaddr()
     * turns it into IPv4. */
    r = feed_done_str("PROXY TCP6 ::ffff:192.0.2.1 ::1 0 0\r\n");
    assert_v6(&r.info.src, "::ffff:192.0.2.1", 0);
    assert_v6(&r.info.dst, "::1", 0);
}

/* Every text form inet_pton takes, fed a byte at a time. */
static void test_v1_tcp6_forms(void **state)
{
    static const char *const forms[] = {
        "::",
        "::1",
        "1::",
        "1::8",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3::6:7:8",
        "ABCD:ef01:2345:6789:abcd:EF01:2345:6789",
        "0:0:0:0:0:0:0:0",
        "0000:0000:0000:0000:0000:0000:0000:0001",
        "::ffff:1.2.3.4",
        "::1.2.3.4",
        "1:2:3:4:5:6:1.2.3.4",
        "1::5:6:1.2.3.4",
        "1:2:3:4:5::1.2.3.4",
        "::ffff:255.255.255.255",
        "fe80::1:2:3:4",
    };
    char line[160];

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(line, sizeof(line), "PROXY TCP6 %s %s 25 587\r\n", forms[i], forms[i]);
        struct result r = feed_done_str(line);
        assert_v6(&r.info.src, forms[i], 25);
        assert_v6(&r.info.dst, forms[i], 587);
    }
}

/* Over a small alphabet, every string inet_pton takes as IPv6 gives DONE
 * with AGAIN for each of its prefixes, and every other one gives ERROR. */
static void test_v1_tcp6_exhaustive(void **state)
{
    static const char alphabet[] = "0f:.1";
    char s[8], line[64];
    uint8_t bin[16];
    size_t count = 0;

    for (size_t len = 1; len <= 7; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= 5;
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t i = 0; i < len; i++, v /= 5)
                s[i] = alphabet[v % 5];
            s[len] = '\0';
            int n_line = snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", s);
            struct result r = parse(line, (size_t)n_line);
            bool valid = inet_pton(AF_INET6, s, bin) == 1;
            if (valid != (r.res == DONE))
                fail_msg("\"%s\": inet_pton says %d, parser %d", s, valid, r.res);
            if (!valid)
                continue;
            count++;
            for (size_t i = 0; i < (size_t)n_line; i++)
                assert_int_equal(parse(line, i).res, AGAIN);
        }
    }
    assert_true(count > 100);
}

static void test_v1_unknown(void **state)
{
    struct result r = feed_done_str("PROXY UNKNOWN\r\n");

    assert_false(r.info.has_addr);
    assert_int_equal(r.consumed, 15);
    r = feed_done_str("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n");
    assert_false(r.info.has_addr);
    /* Anything but a CR or LF after "UNKNOWN " is ignored. */
    r = feed_done_str("PROXY UNKNOWN  \t junk\x01\xff  \r\n");
    assert_false(r.info.has_addr);
    assert_bad_line("PROXY UNKNOWNX\r\n");
    assert_bad_line("PROXY UNKNOWN a\rb\r\n");
    assert_bad_line("PROXY UNKNOWN\n");
    error_at_mark("PROXY UNKNOWN a\rb|\r\n");
    error_at_mark("PROXY UNKNOWN\rx|\r\n");
    error_at_mark("PROXY UNKNOWN ab\n|");
}

static void test_v1_max_length(void **state)
{
    char line[120];

    /* 107 bytes with the CRLF: accepted. */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 2);
    struct result r = feed_done(line, 107);
    assert_int_equal(r.consumed, 107);

    /* 108: refused once the 107th byte is not the LF. */
    memcpy(line + 105, "x\r\n", 3);
    feed_error_at(line, 108, 107);
    memcpy(line + 105, "xx\r", 3);
    feed_error_at(line, 108, 107);
    /* No LF ever. */
    memset(line + 14, 'x', sizeof(line) - 14);
    feed_error_at(line, sizeof(line), 107);
}

static void test_v1_line_ending(void **state)
{
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n");
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\r\n");
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n\r");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\n|");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\rx|");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\r|");
    error_at_mark("PROXY TCP4 192.0.2.1\r|");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324\r|\n");
    error_at_mark("PROXY TCP4\r|\n");
    error_at_mark("PROXY\r|\n");
    error_at_mark("PROXY \r|\n");
}

static void test_v1_fields(void **state)
{
    /* Exactly one space between fields. */
    error_at_mark("PROXY  |TCP4 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP4  |192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1  |198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324  |25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 |\r\n");
    error_at_mark("PROXY\t|TCP4 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1\t|198.51.100.2 56324 25\r\n");
    /* Protocol names. */
    error_at_mark("PROXY TCP5| 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY t|cp4 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP44| 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY UD|P4 192.0.2.1 198.51.100.2 56324 25\r\n");
    error_at_mark("PROXY TCP4 \r|\n");
    /* Field counts. */
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 |7\r\n");
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n");
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2\r\n");
    assert_bad_line("PROXY TCP4 192.0.2.1\r\n");
    assert_bad_line("PROXY TCP4\r\n");
    assert_bad_line("PROXY \r\n");
    assert_bad_line("PROXY\r\n");
    assert_bad_line("PROXY TCP4 192.0.2.1 198.51.100.2 56324 25 \r\n");
}

static void test_v1_addresses(void **state)
{
    /* The address must be of the family named, and strict. */
    error_at_mark("PROXY TCP4 2001|:db8::1 2001:db8::2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2:| 1 2\r\n");
    error_at_mark("PROXY TCP6 192.|0.2.1 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 256| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.256| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.01| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 01|.0.2.1 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1.| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192..| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 .| 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2 |198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100 |1 2\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2x| 1 2\r\n");
    error_at_mark("PROXY TCP4 0x|7f.0.0.1 198.51.100.2 1 2\r\n");
    error_at_mark("PROXY TCP6 1:2:3:4:5:6:7:8:| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1:2:3:4:5:6:7:88888| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1:2:3:4:5:6:7::8| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::1:2:3:4:5:6:7:| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1::2::| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 :::| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 :1| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 12345| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 g| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1: |::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1:2:3:4:5:1.| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 1::2:3:4:5:6:1.| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::ffff:1a.| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::ffff:1.2.3.4.| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::ffff:1.2.3.4:| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::ffff:1.2.3.256| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 ::ffff:1.2.3 |::1 1 2\r\n");
    error_at_mark("PROXY TCP6 fe80::1%| ::1 1 2\r\n");
    error_at_mark("PROXY TCP6 [|::1] ::1 1 2\r\n");
    /* A NUL inside an address must not end it early. */
    feed_error_at("PROXY TCP4 192.0.2.1\0 198.51.100.2 1 2\r\n", 40, 21);
}

static void test_v1_ports(void **state)
{
    struct result r = feed_done_str("PROXY TCP4 192.0.2.1 198.51.100.2 0 0\r\n");
    assert_v4(&r.info.src, "192.0.2.1", 0);
    assert_v4(&r.info.dst, "198.51.100.2", 0);
    r = feed_done_str("PROXY TCP4 192.0.2.1 198.51.100.2 65535 10\r\n");
    assert_v4(&r.info.src, "192.0.2.1", 65535);
    assert_v4(&r.info.dst, "198.51.100.2", 10);

    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 65536| 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 25 65536|\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 99999| 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 +|80 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 -|1 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 08|0 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 00| 25\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 80 0x|19\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 80 25a|\r\n");
    error_at_mark("PROXY TCP4 192.0.2.1 198.51.100.2 100000|0 25\r\n");
}

static void test_v1_followed_by_data(void **state)
{
    static const char text[] = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 25\r\nEHLO x\r\n";
    struct result r = parse(text, sizeof(text) - 1);

    assert_int_equal(r.res, DONE);
    assert_int_equal(r.consumed, 44);
    /* A second header behind the first is the next protocol's business. */
    static const char two[] = "PROXY UNKNOWN\r\nPROXY UNKNOWN\r\n";
    r = parse(two, sizeof(two) - 1);
    assert_int_equal(r.res, DONE);
    assert_int_equal(r.consumed, 15);
}

static void test_error_r_optional(void **state)
{
    struct petrel_proxy_info info;
    size_t consumed = 0;

    assert_int_equal(petrel_proxy_parse((const uint8_t *)"X", 1, &info, &consumed, NULL), ERROR);
    assert_int_equal(petrel_proxy_parse(v2_sig, 1, &info, &consumed, NULL), AGAIN);
}

static void test_v2_tcp4(void **state)
{
    uint8_t buf[64];
    size_t len = v2_make(buf, 0x21, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));
    struct result r = feed_done(buf, len);

    assert_int_equal(r.consumed, 28);
    assert_true(r.info.has_addr);
    assert_v4(&r.info.src, "192.0.2.1", 56324);
    assert_v4(&r.info.dst, "198.51.100.2", 25);
}

static void test_v2_tcp6(void **state)
{
    uint8_t body[36], buf[64];

    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", body), 1);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::2", body + 16), 1);
    memcpy(body + 32, "\xff\xff\x00\x00", 4);
    size_t len = v2_make(buf, 0x21, 0x21, body, sizeof(body));
    struct result r = feed_done(buf, len);

    assert_int_equal(r.consumed, 52);
    assert_true(r.info.has_addr);
    assert_v6(&r.info.src, "2001:db8::1", 65535);
    assert_v6(&r.info.dst, "2001:db8::2", 0);
}

static void test_v2_tlvs(void **state)
{
    uint8_t body[64], buf[96];
    size_t n = sizeof(v2_tcp4_body);

    memcpy(body, v2_tcp4_body, n);
    /* PP2_TYPE_ALPN "smtp", PP2_TYPE_AUTHORITY, PP2_TYPE_NOOP. */
    memcpy(body + n, "\x01\x00\x04smtp", 7);
    n += 7;
    memcpy(body + n, "\x02\x00\x0bexample.org", 14);
    n += 14;
    memcpy(body + n, "\x04\x00\x03\x00\x00\x00", 6);
    n += 6;
    size_t len = v2_make(buf, 0x21, 0x11, body, n);
    struct result r = feed_done(buf, len);

    assert_int_equal(r.consumed, 16 + n);
    assert_true(r.info.has_addr);
    assert_v4(&r.info.src, "192.0.2.1", 56324);
    assert_v4(&r.info.dst, "198.51.100.2", 25);
}

static void test_v2_local(void **state)
{
    uint8_t buf[64];

    /* LOCAL (health checks): no addresses, family ignored. */
    size_t len = v2_make(buf, 0x20, 0x00, NULL, 0);
    struct result r = feed_done(buf, len);
    assert_int_equal(r.consumed, 16);
    assert_false(r.info.has_addr);

    len = v2_make(buf, 0x20, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));
    r = feed_done(buf, len);
    assert_int_equal(r.consumed, 28);
    assert_false(r.info.has_addr);

    len = v2_make(buf, 0x20, 0xff, NULL, 0);
    r = feed_done(buf, len);
    assert_false(r.info.has_addr);

    /* Even a TCP4 family with no address block. */
    len = v2_make(buf, 0x20, 0x11, NULL, 0);
    r = feed_done(buf, len);
    assert_false(r.info.has_addr);
}

static void test_v2_other_families(void **state)
{
    uint8_t body[216], buf[256];
    size_t len;
    struct result r;

    memset(body, 0, sizeof(body));
    /* UNSPEC. */
    len = v2_make(buf, 0x21, 0x00, NULL, 0);
    r = feed_done(buf, len);
    assert_false(r.info.has_addr);
    /* UNIX stream with its 216-byte block. */
    len = v2_make(buf, 0x21, 0x31, body, sizeof(body));
    r = feed_done(buf, len);
    assert_int_equal(r.consumed, 232);
    assert_false(r.info.has_addr);
    /* UNIX datagram. */
    len = v2_make(buf, 0x21, 0x32, body, sizeof(body));
    assert_false(feed_done(buf, len).info.has_addr);
    /* INET over UDP or an unspecified transport: not a TCP peer. */
    len = v2_make(buf, 0x21, 0x12, v2_tcp4_body, sizeof(v2_tcp4_body));
    assert_false(feed_done(buf, len).info.has_addr);
    len = v2_make(buf, 0x21, 0x10, v2_tcp4_body, sizeof(v2_tcp4_body));
    assert_false(feed_done(buf, len).info.has_addr);
    len = v2_make(buf, 0x21, 0x22, body, 36);
    assert_false(feed_done(buf, len).info.has_addr);
}

static void test_v2_bad_signature(void **state)
{
    uint8_t buf[64];
    size_t len = v2_make(buf, 0x21, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));

    for (size_t i = 0; i < 12; i++) {
        buf[i] ^= 0x40;
        feed_error_at(buf, len, i + 1);
        buf[i] ^= 0x40;
    }
}

static void test_v2_bad_version(void **state)
{
    uint8_t buf[64];
    static const uint8_t bad[] = {0x01, 0x11, 0x31, 0xf1, 0x00, 0x10};

    for (size_t i = 0; i < sizeof(bad); i++) {
        size_t len = v2_make(buf, bad[i], 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));
        feed_error_at(buf, len, 13);
        struct result r = parse(buf, len);
        assert_string_equal(r.error, "unsupported PROXY protocol version");
    }
}

static void test_v2_bad_command(void **state)
{
    uint8_t buf[64];

    for (uint8_t cmd = 0x22; cmd <= 0x2f; cmd++) {
        size_t len = v2_make(buf, cmd, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));
        feed_error_at(buf, len, 13);
    }
}

static void test_v2_bad_family(void **state)
{
    uint8_t buf[64];
    static const uint8_t bad[] = {0x41, 0xf1, 0x13, 0x1f, 0x03, 0x33};

    for (size_t i = 0; i < sizeof(bad); i++) {
        size_t len = v2_make(buf, 0x21, bad[i], v2_tcp4_body, sizeof(v2_tcp4_body));
        feed_error_at(buf, len, 14);
    }
}

static void test_v2_short_address_block(void **state)
{
    uint8_t buf[64], body[36] = {0};

    size_t len = v2_make(buf, 0x21, 0x11, v2_tcp4_body, 11);
    feed_error_at(buf, len, 16);
    len = v2_make(buf, 0x21, 0x21, body, 35);
    feed_error_at(buf, len, 16);
    len = v2_make(buf, 0x21, 0x11, NULL, 0);
    feed_error_at(buf, len, 16);
    /* A TCP4 block under the TCP6 family is too short too. */
    len = v2_make(buf, 0x21, 0x21, v2_tcp4_body, sizeof(v2_tcp4_body));
    feed_error_at(buf, len, 16);
}

static void test_v2_max_length(void **state)
{
    uint8_t *buf = calloc(1, PETREL_PROXY_MAX + 1);
    uint8_t *body = calloc(1, PETREL_PROXY_MAX);

    assert_non_null(buf);
    assert_non_null(body);
    memcpy(body, v2_tcp4_body, sizeof(v2_tcp4_body));
    /* Exactly PETREL_PROXY_MAX in all: accepted. */
    size_t len = v2_make(buf, 0x21, 0x11, body, PETREL_PROXY_MAX - 16);
    assert_int_equal(len, PETREL_PROXY_MAX);
    struct result r = feed_done(buf, len);
    assert_int_equal(r.consumed, PETREL_PROXY_MAX);
    assert_true(r.info.has_addr);
    /* One byte more is refused as soon as the length is known. */
    len = v2_make(buf, 0x21, 0x11, body, PETREL_PROXY_MAX - 15);
    feed_error_at(buf, len, 16);
    /* And the largest length field. */
    buf[14] = buf[15] = 0xff;
    feed_error_at(buf, 16, 16);
    free(buf);
    free(body);
}

static void test_v2_truncated(void **state)
{
    uint8_t buf[64];
    size_t len = v2_make(buf, 0x21, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));

    for (size_t i = 0; i < len; i++)
        assert_int_equal(parse(buf, i).res, AGAIN);
    /* The length counts TLV bytes not yet received. */
    buf[15] = 40;
    assert_int_equal(parse(buf, len).res, AGAIN);
    assert_int_equal(parse(buf, 55).res, AGAIN);
}

static void test_v2_followed_by_data(void **state)
{
    uint8_t buf[64];
    size_t len = v2_make(buf, 0x21, 0x11, v2_tcp4_body, sizeof(v2_tcp4_body));

    memcpy(buf + len, "\x16\x03\x01\x02\x00", 5);
    struct result r = parse(buf, len + 5);
    assert_int_equal(r.res, DONE);
    assert_int_equal(r.consumed, len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_not_proxy),
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_tcp6_forms),
        cmocka_unit_test(test_v1_tcp6_exhaustive),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_max_length),
        cmocka_unit_test(test_v1_line_ending),
        cmocka_unit_test(test_v1_fields),
        cmocka_unit_test(test_v1_addresses),
        cmocka_unit_test(test_v1_ports),
        cmocka_unit_test(test_v1_followed_by_data),
        cmocka_unit_test(test_error_r_optional),
        cmocka_unit_test(test_v2_tcp4),
        cmocka_unit_test(test_v2_tcp6),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_other_families),
        cmocka_unit_test(test_v2_bad_signature),
        cmocka_unit_test(test_v2_bad_version),
        cmocka_unit_test(test_v2_bad_command),
        cmocka_unit_test(test_v2_bad_family),
        cmocka_unit_test(test_v2_short_address_block),
        cmocka_unit_test(test_v2_max_length),
        cmocka_unit_test(test_v2_truncated),
        cmocka_unit_test(test_v2_followed_by_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
