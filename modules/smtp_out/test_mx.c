/* Next-hop ordering: MX hosts by preference with equal ones shuffled,
 * the hosts less preferred than ourselves dropped, and the order of a
 * host's IPv4 and IPv6 addresses by address_preference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_out.h"

static uint32_t counter(void *ctx)
{
    uint32_t *c = ctx; /* xorshift */
    *c ^= *c << 13;
    *c ^= *c >> 17;
    *c ^= *c << 5;
    return *c;
}

static void set(struct smtp_mx *mx, uint16_t pref, const char *host)
{
    mx->preference = pref;
    snprintf(mx->host, sizeof(mx->host), "%s", host);
}

static void mx_sorted(void **state)
{
    (void)state;
    struct smtp_mx mx[5];
    set(&mx[0], 20, "c");
    set(&mx[1], 10, "a");
    set(&mx[2], 30, "d");
    set(&mx[3], 10, "b");
    set(&mx[4], 0, "z");
    uint32_t c = 1;
    smtp_mx_order(mx, 5, counter, &c);
    assert_int_equal(mx[0].preference, 0);
    assert_int_equal(mx[1].preference, 10);
    assert_int_equal(mx[2].preference, 10);
    assert_int_equal(mx[3].preference, 20);
    assert_string_equal(mx[3].host, "c");
    assert_string_equal(mx[4].host, "d");
}

static void mx_equal_shuffled(void **state)
{
    (void)state;
    /* Over many shuffles each of three equal hosts comes first. */
    unsigned first[3] = {0};
    uint32_t c = 7;
    for (int round = 0; round < 300; round++) {
        struct smtp_mx mx[4];
        set(&mx[0], 5, "h0");
        set(&mx[1], 5, "h1");
        set(&mx[2], 5, "h2");
        set(&mx[3], 1, "best");
        smtp_mx_order(mx, 4, counter, &c);
        assert_string_equal(mx[0].host, "best");
        first[mx[1].host[1] - '0']++;
    }
    for (int i = 0; i < 3; i++)
        assert_true(first[i] > 30);
}

static void mx_self(void **state)
{
    (void)state;
    struct smtp_mx mx[4];
    set(&mx[0], 10, "mx1.example.org");
    set(&mx[1], 10, "mx2.example.org");
    set(&mx[2], 20, "MAIL.example.org");
    set(&mx[3], 30, "backup.example.net");
    bool self;
    assert_int_equal(smtp_mx_trim_self(mx, 4, "mail.example.org", NULL, &self), 2);
    assert_true(self);
    assert_int_equal(smtp_mx_trim_self(mx, 4, "other", "mx1.example.org", &self), 0);
    assert_true(self); /* the best MX is us: nothing to try, a loop */
    assert_int_equal(smtp_mx_trim_self(mx, 4, "other", NULL, &self), 4);
    assert_false(self);
    assert_true(smtp_is_myself("Mail.Example.Org", "mail.example.org", NULL));
    assert_false(smtp_is_myself("", "", NULL));
}

static struct petrel_dns_addr v4(uint8_t last)
{
    struct petrel_dns_addr a = {.family = AF_INET};
    a.u.v4.s_addr = htonl(0xc0000200u | last);
    return a;
}

static struct petrel_dns_addr v6(uint8_t last)
{
    struct petrel_dns_addr a = {.family = AF_INET6};
    a.u.v6.s6_addr[15] = last;
    return a;
}

static void addr_order(void **state)
{
    (void)state;
    struct petrel_dns_addr four[3] = {v4(1), v4(2), v4(3)}, six[2] = {v6(1), v6(2)};
    struct petrel_dns_addr out[8];
    size_t n = smtp_addr_order(out, 8, four, 3, six, 2, SMTP_FAMILY_IPV6, false);
    assert_int_equal(n, 5);
    int fam6[] = {1, 1, 0, 0, 0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].family, fam6[i] ? AF_INET6 : AF_INET);
    n = smtp_addr_order(out, 8, four, 3, six, 2, SMTP_FAMILY_IPV4, true);
    int fam4[] = {0, 0, 0, 1, 1};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].family, fam4[i] ? AF_INET6 : AF_INET);
    /* any: alternating, from the family picked, the rest at the end */
    n = smtp_addr_order(out, 8, four, 3, six, 2, SMTP_FAMILY_ANY, true);
    int alt[] = {1, 0, 1, 0, 0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].family, alt[i] ? AF_INET6 : AF_INET);
    assert_int_equal(out[4].u.v4.s_addr, htonl(0xc0000203u));
    n = smtp_addr_order(out, 8, four, 3, six, 2, SMTP_FAMILY_ANY, false);
    assert_int_equal(out[0].family, AF_INET);
    assert_int_equal(out[1].family, AF_INET6);
    /* bounded by the room */
    assert_int_equal(smtp_addr_order(out, 2, four, 3, six, 2, SMTP_FAMILY_ANY, false), 2);
    assert_int_equal(smtp_addr_order(out, 8, four, 0, six, 0, SMTP_FAMILY_ANY, false), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mx_sorted),
        cmocka_unit_test(mx_equal_shuffled),
        cmocka_unit_test(mx_self),
        cmocka_unit_test(addr_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
