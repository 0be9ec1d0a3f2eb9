/* Rule decisions across levels and flow-control counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rules.h"

static struct petrel_rule make_rule(bool allow, long long priority, const char *ips)
{
    struct petrel_rule r;
    memset(&r, 0, sizeof(r));
    r.allow = allow;
    r.enable = true;
    r.priority = priority;
    const char *why;
    assert_true(petrel_ipset_add(&r.set, ips, &why));
    return r;
}

static struct petrel_ipaddr ip(const char *text)
{
    struct petrel_ipaddr a;
    assert_true(petrel_ipaddr_parse(text, &a));
    return a;
}

static void free_rules(struct petrel_rules *r)
{
    for (size_t i = 0; i < r->n; i++)
        petrel_ipset_free(&r->v[i].set);
}

static void test_levels(void **state)
{
    struct petrel_rule g[] = {make_rule(false, 10, "10.0.0.0/8")};
    struct petrel_rule s[] = {make_rule(true, 50, "10.1.0.0/16")};
    struct petrel_rule l[] = {make_rule(false, 50, "10.1.2.3")};
    struct petrel_rules global = {g, 1}, service = {s, 1}, listener = {l, 1};
    const struct petrel_rules *levels[] = {&listener, &service, &global};
    struct petrel_ipaddr a = ip("10.1.2.3"), b = ip("10.1.9.9"), c = ip("10.9.9.9"),
                         d = ip("192.0.2.1");
    /* Listener level decides for .2.3, service for the rest of 10.1, global for 10. */
    assert_ptr_equal(petrel_rules_decide(levels, 3, &a), &l[0]);
    assert_ptr_equal(petrel_rules_decide(levels, 3, &b), &s[0]);
    assert_ptr_equal(petrel_rules_decide(levels, 3, &c), &g[0]);
    assert_null(petrel_rules_decide(levels, 3, &d)); /* default allow */
    free_rules(&global);
    free_rules(&service);
    free_rules(&listener);
}

static void test_priority_and_ties(void **state)
{
    struct petrel_rule v[] = {make_rule(true, 20, "any"), make_rule(false, 30, "192.0.2.0/24"),
                              make_rule(true, 5, "192.0.2.7"), make_rule(false, 5, "192.0.2.7")};
    struct petrel_rules rs = {v, 4};
    const struct petrel_rules *levels[] = {&rs};
    struct petrel_ipaddr a = ip("192.0.2.1"), b = ip("192.0.2.7");
    assert_ptr_equal(petrel_rules_decide(levels, 1, &a), &v[0]); /* lower number wins */
    assert_ptr_equal(petrel_rules_decide(levels, 1, &b), &v[3]); /* deny wins a tie */
    v[3].enable = false;
    assert_ptr_equal(petrel_rules_decide(levels, 1, &b), &v[2]); /* disabled is ignored */
    free_rules(&rs);
}

static void test_flow_limits(void **state)
{
    struct petrel_flow f = {.max_connections = 3,
                            .time_interval = 60,
                            .peer_max_connections = 2,
                            .peer_time_interval = 60};
    struct petrel_flow_state *st = petrel_flow_state_new();
    struct petrel_ipaddr a = ip("192.0.2.1"), b = ip("2001:db8::1");
    struct petrel_flow_hold h[4];
    memset(h, 0, sizeof(h));
    assert_null(petrel_flow_acquire(st, &f, &a, false, 100, &h[0]));
    assert_null(petrel_flow_acquire(st, &f, &a, false, 100, &h[1]));
    assert_string_equal(petrel_flow_acquire(st, &f, &a, false, 100, &h[2]),
                        "too many connections from this address");
    assert_null(petrel_flow_acquire(st, &f, &b, false, 100, &h[2]));
    assert_string_equal(petrel_flow_acquire(st, &f, &b, false, 100, &h[3]), "too many connections");
    petrel_flow_release(&h[0], &a);
    assert_null(petrel_flow_acquire(st, &f, &a, false, 100, &h[0]));
    for (int i = 0; i < 3; i++)
        petrel_flow_release(&h[i], i == 2 ? &b : &a);
    petrel_flow_state_unref(st);
}

static void test_flow_rates(void **state)
{
    struct petrel_flow f = {.max_interval_connections = 100,
                            .time_interval = 10,
                            .peer_max_interval_connections = 2,
                            .peer_time_interval = 5};
    struct petrel_flow_state *st = petrel_flow_state_new();
    struct petrel_ipaddr a = ip("192.0.2.1");
    struct petrel_flow_hold h;
    for (int i = 0; i < 2; i++) {
        memset(&h, 0, sizeof(h));
        assert_null(petrel_flow_acquire(st, &f, &a, false, 1000, &h));
        petrel_flow_release(&h, &a); /* a rate counts even closed connections */
    }
    assert_non_null(petrel_flow_acquire(st, &f, &a, false, 1004, &h));
    memset(&h, 0, sizeof(h));
    assert_null(petrel_flow_acquire(st, &f, &a, false, 1005, &h)); /* a new interval */
    petrel_flow_release(&h, &a);
    petrel_flow_state_unref(st);
}

/* IPv6 clients count per /64; an exempt peer skips the per-address limits
 * but still counts towards the total. */
static void test_flow_ipv6_prefix_and_exempt(void **state)
{
    struct petrel_flow f = {.max_connections = 4,
                            .time_interval = 60,
                            .peer_max_connections = 2,
                            .peer_time_interval = 60};
    struct petrel_flow_state *st = petrel_flow_state_new();
    struct petrel_ipaddr a1 = ip("2001:db8:0:1::1"), a2 = ip("2001:db8:0:1:ffff::9"),
                         other = ip("2001:db8:0:2::1"), local = ip("127.0.0.1");
    struct petrel_flow_hold h[5];
    memset(h, 0, sizeof(h));
    assert_null(petrel_flow_acquire(st, &f, &a1, false, 100, &h[0]));
    assert_null(petrel_flow_acquire(st, &f, &a2, false, 100, &h[1]));
    assert_string_equal(petrel_flow_acquire(st, &f, &a2, false, 100, &h[2]),
                        "too many connections from this address");
    assert_null(petrel_flow_acquire(st, &f, &other, false, 100, &h[2]));
    assert_null(petrel_flow_acquire(st, &f, &local, true, 100, &h[3]));
    assert_string_equal(petrel_flow_acquire(st, &f, &local, true, 100, &h[4]),
                        "too many connections");
    petrel_flow_release(&h[1], &a2); /* frees a slot of the same /64 */
    assert_null(petrel_flow_acquire(st, &f, &a1, false, 100, &h[1]));
    petrel_flow_release(&h[0], &a1);
    petrel_flow_release(&h[1], &a1);
    petrel_flow_release(&h[2], &other);
    petrel_flow_release(&h[3], &local);
    petrel_flow_state_unref(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_priority_and_ties),
        cmocka_unit_test(test_flow_limits),
        cmocka_unit_test(test_flow_rates),
        cmocka_unit_test(test_flow_ipv6_prefix_and_exempt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
