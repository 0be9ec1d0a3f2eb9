/* The rate-limit tables: a key is locked after max failures within the
 * window, stays locked for the lockout, forgets after, and a full table
 * replaces old entries instead of growing. Then the lock-out model on top
 * (guard.c): failures lock out their source, for one account or for all,
 * and only slow down the account's other sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "auth_private.h"

/* The limits a table is called with, as module.c derives them from one
 * configuration generation; set by each test (and changed, as a reload
 * would, between calls). */
static struct auth_limit_params p;
static struct auth_guard_config gc;

static void test_lock_after_max(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64);
    p = (struct auth_limit_params){3, 1000, 5000};
    assert_false(auth_limits_fail(&l, &p, "1.2.3.4", 0));
    assert_false(auth_limits_fail(&l, &p, "1.2.3.4", 10));
    assert_false(auth_limits_locked(&l, &p, "1.2.3.4", 20));
    assert_true(auth_limits_fail(&l, &p, "1.2.3.4", 20));
    assert_true(auth_limits_locked(&l, &p, "1.2.3.4", 21));
    assert_false(auth_limits_locked(&l, &p, "5.6.7.8", 21));
    assert_true(auth_limits_locked(&l, &p, "1.2.3.4", 5019));
    assert_false(auth_limits_locked(&l, &p, "1.2.3.4", 5020));
    auth_limits_free(&l);
}

static void test_window_expires(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64);
    p = (struct auth_limit_params){3, 1000, 5000};
    auth_limits_fail(&l, &p, "k", 0);
    auth_limits_fail(&l, &p, "k", 500);
    /* The window has passed: counting starts again. */
    assert_false(auth_limits_fail(&l, &p, "k", 1500));
    assert_false(auth_limits_fail(&l, &p, "k", 1600));
    assert_true(auth_limits_fail(&l, &p, "k", 1700));
    auth_limits_free(&l);
}

static void test_clear_and_unlimited(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64);
    p = (struct auth_limit_params){2, 1000, 5000};
    auth_limits_fail(&l, &p, "u", 0);
    auth_limits_clear(&l, "u");
    assert_false(auth_limits_fail(&l, &p, "u", 1));
    p = (struct auth_limit_params){0, 1000, 5000};
    for (int i = 0; i < 10; i++)
        assert_false(auth_limits_fail(&l, &p, "u", 2));
    assert_false(auth_limits_locked(&l, &p, "u", 3));
    auth_limits_free(&l);
}

static void test_bounded(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16);
    p = (struct auth_limit_params){2, 1000, 100000};
    assert_true(auth_limits_fail(&l, &p, "victim", 0) || auth_limits_fail(&l, &p, "victim", 0));
    /* Many other keys, each failing once: the table never grows. */
    for (int i = 0; i < 10000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        auth_limits_fail(&l, &p, key, 10);
    }
    assert_int_equal(l.nslots, 16);
    /* A locked key is never replaced. */
    assert_true(auth_limits_locked(&l, &p, "victim", 20));
    auth_limits_free(&l);
}

/* window == lockout (the defaults): a locked key expires with the same
 * deadline as fresh ones, but flooding the table with other keys must not
 * evict it; with every probed slot locked, new keys are refused. */
static void test_flood_does_not_unlock(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16);
    p = (struct auth_limit_params){2, 1000, 1000};
    auth_limits_fail(&l, &p, "victim", 0);
    assert_true(auth_limits_fail(&l, &p, "victim", 0));
    for (int i = 0; i < 10000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
        auth_limits_fail(&l, &p, key, 10);
        auth_limits_fail(&l, &p, key, 10); /* locks it, where it got a slot */
    }
    assert_true(auth_limits_locked(&l, &p, "victim", 20));
    assert_false(auth_limits_reserve(&l, &p, "victim", 20));
    /* The table is all locked out now: a new key fails closed. */
    assert_false(auth_limits_reserve(&l, &p, "new-key", 20));
    /* After the lock-outs end, slots are reused again. */
    assert_true(auth_limits_reserve(&l, &p, "new-key", 2000));
    auth_limits_free(&l);
}

/* The attempt is reserved at the check: concurrent attempts cannot all
 * pass; a success gives its reservation back. */
static void test_reserve_counts_in_flight(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 64);
    p = (struct auth_limit_params){2, 1000, 5000};
    assert_true(auth_limits_reserve(&l, &p, "k", 0));
    assert_true(auth_limits_reserve(&l, &p, "k", 0));
    assert_false(auth_limits_reserve(&l, &p, "k", 0));       /* two in flight: the limit */
    assert_false(auth_limits_settle(&l, &p, "k", 1, false)); /* a success: refunded */
    assert_true(auth_limits_reserve(&l, &p, "k", 1));
    assert_false(auth_limits_settle(&l, &p, "k", 2, true));
    assert_true(auth_limits_settle(&l, &p, "k", 2, true)); /* the second failure locks */
    assert_true(auth_limits_locked(&l, &p, "k", 3));
    assert_false(auth_limits_reserve(&l, &p, "k", 3));
    auth_limits_free(&l);
}

static void test_ip_key(void **state)
{
    char a[64], b[64];
    auth_limits_ip_key("2001:db8:1:2::1", a, sizeof(a));
    auth_limits_ip_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd", b, sizeof(b));
    assert_string_equal(a, "2001:db8:1:2::/64");
    assert_string_equal(a, b);
    auth_limits_ip_key("2001:db8:1:3::1", b, sizeof(b));
    assert_string_not_equal(a, b);
    auth_limits_ip_key("192.0.2.7", a, sizeof(a));
    assert_string_equal(a, "192.0.2.7");
    auth_limits_ip_key("::ffff:192.0.2.7", a, sizeof(a));
    assert_string_equal(a, "192.0.2.7");
    auth_limits_ip_key("-", a, sizeof(a));
    assert_string_equal(a, "-");
}

/* The account-wide counter never locks and always finds room. */
static void test_count_never_locks(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16);
    p = (struct auth_limit_params){2, 1000, 0};
    for (unsigned i = 1; i <= 5; i++)
        assert_int_equal(auth_limits_count(&l, &p, "alice", 10), i);
    assert_false(auth_limits_locked(&l, &p, "alice", 10));
    assert_int_equal(auth_limits_count(&l, &p, "alice", 1500), 1); /* a new window */
    for (int i = 0; i < 1000; i++) {
        char key[32];
        snprintf(key, sizeof(key), "user%d", i);
        assert_int_equal(auth_limits_count(&l, &p, key, 1600), 1);
    }
    p = (struct auth_limit_params){0, 1000, 0};
    assert_int_equal(auth_limits_count(&l, &p, "alice", 1700), 0); /* switched off */
    auth_limits_free(&l);
}

static void test_known_set(void **state)
{
    struct auth_limits l;
    auth_limits_init(&l, 16);
    p = (struct auth_limit_params){1, 1000, 0};
    assert_false(auth_limits_known(&l, &p, "alice 10.0.0.1", 0));
    auth_limits_remember(&l, &p, "alice 10.0.0.1", 0);
    assert_true(auth_limits_known(&l, &p, "alice 10.0.0.1", 999));
    assert_false(auth_limits_known(&l, &p, "alice 10.0.0.2", 1));
    auth_limits_remember(&l, &p, "alice 10.0.0.1", 900); /* refreshed */
    assert_true(auth_limits_known(&l, &p, "alice 10.0.0.1", 1500));
    assert_false(auth_limits_known(&l, &p, "alice 10.0.0.1", 1900));
    p = (struct auth_limit_params){0, 1000, 0};
    auth_limits_remember(&l, &p, "bob 10.0.0.1", 2000);
    assert_false(auth_limits_known(&l, &p, "bob 10.0.0.1", 2000));
    auth_limits_free(&l);
}

#define ATTACKER "192.0.2.66"
#define OWNER "198.51.100.1"

static void guard_setup(struct auth_guard *g, unsigned per_ip, unsigned per_pair,
                        unsigned per_account)
{
    auth_guard_init(g, 64);
    gc = (struct auth_guard_config){.max_per_ip = per_ip,
                                    .max_per_pair = per_pair,
                                    .account_slow_after = per_account,
                                    .window_ms = 10000,
                                    .lockout_ms = 50000,
                                    .remember_ms = 100000,
                                    .failure_delay_ms = 1000,
                                    .max_failure_delay_ms = 5000};
}

/* size slots per table; per-source and per-network limits, no slow-down. */
static void guard_setup_net(struct auth_guard *g, size_t size, unsigned per_ip, unsigned per_pair,
                            unsigned per_net)
{
    auth_guard_init(g, size);
    gc = (struct auth_guard_config){.max_per_ip = per_ip,
                                    .max_per_pair = per_pair,
                                    .max_per_net = per_net,
                                    .window_ms = 10000,
                                    .lockout_ms = 50000,
                                    .failure_delay_ms = 1000,
                                    .max_failure_delay_ms = 5000};
}

/* One attempt from start to end: the lock it met, or the outcome. */
static enum auth_guard_lock attempt(struct auth_guard *g, const char *user, const char *ip,
                                    long long now, enum petrel_auth_status st,
                                    struct auth_guard_outcome *out)
{
    enum auth_guard_lock lock = auth_guard_reserve(g, &gc, user, ip, now);
    if (lock == AUTH_GUARD_OPEN)
        auth_guard_settle(g, &gc, user, ip, now, st, out);
    return lock;
}

static void fail_attempt(struct auth_guard *g, const char *user, const char *ip, long long now,
                         struct auth_guard_outcome *out)
{
    assert_int_equal(attempt(g, user, ip, now, PETREL_AUTH_FAILED, out), AUTH_GUARD_OPEN);
}

/* The defect: failures from one source locked the account everywhere.
 * Now they lock out the attacker for that account, and nobody else. */
static void test_attacker_locks_only_itself(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 20, 3, 100);
    fail_attempt(&g, "alice", ATTACKER, 0, &out);
    fail_attempt(&g, "alice", ATTACKER, 1, &out);
    assert_false(out.pair_locked);
    fail_attempt(&g, "alice", ATTACKER, 2, &out);
    assert_true(out.pair_locked);
    assert_false(out.source_locked);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 3), AUTH_GUARD_PAIR_LOCKED);
    /* The owner, elsewhere, with the right password. */
    assert_int_equal(attempt(&g, "alice", OWNER, 4, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    assert_int_equal(out.delay_ms, 0);
    /* The attacker may still try other accounts (until its source limit). */
    assert_int_equal(attempt(&g, "bob", ATTACKER, 5, PETREL_AUTH_FAILED, &out), AUTH_GUARD_OPEN);
    /* The pair's lock-out ends after lockout_ms. */
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 50001), AUTH_GUARD_PAIR_LOCKED);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 50002), AUTH_GUARD_OPEN);
    auth_guard_free(&g);
}

static void test_source_locked_for_every_account(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 3, 10, 100);
    fail_attempt(&g, "u0", ATTACKER, 0, &out);
    fail_attempt(&g, "u1", ATTACKER, 0, &out);
    assert_false(out.source_locked);
    auth_guard_fail_source(&g, &gc, ATTACKER, 0, &out); /* an invalid user name counts too */
    assert_true(out.source_locked);
    assert_int_equal(out.delay_ms, 1000);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 1), AUTH_GUARD_SOURCE_LOCKED);
    assert_int_equal(auth_guard_reserve(&g, &gc, "u0", ATTACKER, 1), AUTH_GUARD_SOURCE_LOCKED);
    assert_int_equal(attempt(&g, "u0", OWNER, 1, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    auth_guard_free(&g);
}

/* Failures from many sources (each under its own limits) only slow the
 * account's failures down, growing and capped; never a refusal, and no
 * slow-down for a source the owner has logged in from. */
static void test_account_failures_slow_never_refuse(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 20, 10, 2);
    assert_int_equal(attempt(&g, "alice", OWNER, 0, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    static const unsigned want[] = {1000, 1000, 2000, 4000, 5000, 5000};
    for (unsigned i = 0; i < 6; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "203.0.113.%u", i);
        fail_attempt(&g, "alice", ip, 10 + i, &out);
        assert_int_equal(out.delay_ms, want[i]);
        assert_int_equal(out.account_slowing, i == 1);
        assert_int_equal(out.slowed, i >= 2);
    }
    /* A new source is slowed on failure, but not refused. */
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", "203.0.113.99", 20), AUTH_GUARD_OPEN);
    auth_guard_settle(&g, &gc, "alice", "203.0.113.99", 20, PETREL_AUTH_OK, &out);
    /* The owner's known-good source: a typo costs the plain delay. */
    fail_attempt(&g, "alice", OWNER, 21, &out);
    assert_int_equal(out.delay_ms, 1000);
    assert_false(out.slowed);
    assert_int_equal(attempt(&g, "alice", OWNER, 22, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    /* Other accounts are not slowed. */
    fail_attempt(&g, "bob", "203.0.113.0", 23, &out);
    assert_int_equal(out.delay_ms, 1000);
    /* A new window starts at the plain delay again. */
    fail_attempt(&g, "alice", "203.0.113.7", 10011, &out);
    assert_int_equal(out.delay_ms, 1000);
    auth_guard_free(&g);
}

/* Known-good lasts remember_ms after the last login, then the owner's
 * source is like any other. */
static void test_known_good_expires(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 0, 0, 1);
    assert_int_equal(attempt(&g, "alice", OWNER, 0, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    fail_attempt(&g, "alice", ATTACKER, 200000, &out);
    fail_attempt(&g, "alice", OWNER, 200001, &out);
    assert_int_equal(out.delay_ms, 2000);
    assert_true(out.slowed);
    auth_guard_free(&g);
}

/* A success clears the pair's failures, not the source's (they may be
 * against other accounts); a temporary failure counts nothing. */
static void test_success_clears_pair_only(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 4, 2, 100);
    fail_attempt(&g, "alice", OWNER, 0, &out);
    assert_int_equal(attempt(&g, "alice", OWNER, 1, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    fail_attempt(&g, "alice", OWNER, 2, &out);
    assert_false(out.pair_locked);
    assert_int_equal(attempt(&g, "alice", OWNER, 3, PETREL_AUTH_TEMPFAIL, &out), AUTH_GUARD_OPEN);
    assert_int_equal(out.delay_ms, 0);
    assert_false(out.pair_locked);
    fail_attempt(&g, "bob", OWNER, 4, &out);
    assert_false(out.source_locked);
    fail_attempt(&g, "carol", OWNER, 5, &out);
    assert_true(out.source_locked); /* 1 + 1 + 1 + 1 */
    auth_guard_free(&g);
}

/* Attempts in flight count against the pair and the source; one refused
 * by the pair gives its source reservation back. */
static void test_guard_reserves_in_flight(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup(&g, 3, 2, 100);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 0), AUTH_GUARD_OPEN);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 0), AUTH_GUARD_OPEN);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", ATTACKER, 0), AUTH_GUARD_PAIR_LOCKED);
    assert_int_equal(auth_guard_reserve(&g, &gc, "bob", ATTACKER, 0), AUTH_GUARD_OPEN);
    assert_int_equal(auth_guard_reserve(&g, &gc, "carol", ATTACKER, 0), AUTH_GUARD_SOURCE_LOCKED);
    auth_guard_settle(&g, &gc, "bob", ATTACKER, 1, PETREL_AUTH_OK, &out);
    assert_int_equal(auth_guard_reserve(&g, &gc, "carol", ATTACKER, 1), AUTH_GUARD_OPEN);
    auth_guard_free(&g);
}

/* IPv6 sources are one per /64, for the pair as for the source. */
static void test_guard_ipv6_per_64(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    char a[AUTH_IP_KEY_MAX + 1], b[AUTH_IP_KEY_MAX + 1];
    guard_setup(&g, 20, 2, 100);
    auth_limits_ip_key("2001:db8:1:2::1", a, sizeof(a));
    auth_limits_ip_key("2001:db8:1:2::2", b, sizeof(b));
    fail_attempt(&g, "alice", a, 0, &out);
    fail_attempt(&g, "alice", b, 0, &out);
    assert_true(out.pair_locked);
    auth_limits_ip_key("2001:db8:1:3::1", b, sizeof(b));
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", b, 1), AUTH_GUARD_OPEN);
    auth_guard_free(&g);
}

/* A delay longer than the core will hold a connection (petrel_conn_delay:
 * 60 s) would be refused there and the failure answered at once: the
 * grown delay stops at 60 s whatever max_failure_delay says. */
static void test_delay_capped_at_conn_limit(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    auth_guard_init(&g, 64);
    gc = (struct auth_guard_config){.account_slow_after = 1,
                                    .window_ms = 1000000,
                                    .lockout_ms = 1000,
                                    .failure_delay_ms = 1000,
                                    .max_failure_delay_ms = 300000};
    unsigned last = 0;
    for (unsigned i = 0; i < 12; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "203.0.113.%u", i);
        fail_attempt(&g, "alice", ip, i, &out);
        assert_true(out.delay_ms <= 60000);
        last = out.delay_ms;
    }
    assert_int_equal(last, 60000);
    auth_guard_free(&g);
}

/* One holder of a /48 floods the tables: every one of its /64s fails
 * until it is refused (locked out for some accounts, then for all), or
 * fails with invalid user names, and keeps an attempt in flight. Nobody
 * outside the /48 may be refused because of it, and a lock-out taken
 * before the flood stays. */
static void flood_from_48(struct auth_guard *g, unsigned n64, long long now)
{
    static const char *const users[] = {"u0", "u1", "u2", "u3"};
    for (unsigned i = 0; i < n64; i++) {
        char ip[64], key[AUTH_IP_KEY_MAX + 1];
        struct auth_guard_outcome out;
        snprintf(ip, sizeof(ip), "2001:db8:77:%x::1", i);
        auth_limits_ip_key(ip, key, sizeof(key));
        for (unsigned j = 0; j < 64; j++) {
            if (i % 2 == 0)
                auth_guard_fail_source(g, &gc, key, now, &out);
            else if (attempt(g, users[j % 4], key, now, PETREL_AUTH_FAILED, &out) !=
                     AUTH_GUARD_OPEN)
                break;
        }
        auth_guard_reserve(g, &gc, "u9", key, now); /* left in flight */
    }
}

static void test_flood_from_one_48(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup_net(&g, 1024, 5, 3, 30);
    /* A lock-out before the flood: the attacker's IPv4 address, for bob. */
    for (int i = 0; i < 3; i++)
        fail_attempt(&g, "bob", ATTACKER, 0, &out);
    assert_true(out.pair_locked);
    flood_from_48(&g, 65536, 1);
    assert_int_equal(g.per_ip.nslots, 1024); /* the tables never grow */
    /* Unrelated sources log in, IPv4 and IPv6, for new and old accounts. */
    assert_int_equal(attempt(&g, "alice", OWNER, 2, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    assert_int_equal(attempt(&g, "carol", "2001:db8:78:1::/64", 2, PETREL_AUTH_OK, &out),
                     AUTH_GUARD_OPEN);
    assert_int_equal(attempt(&g, "u0", "198.51.100.2", 2, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    for (int i = 0; i < 200; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 16, i % 16);
        assert_int_equal(attempt(&g, "dave", ip, 2, PETREL_AUTH_FAILED, &out), AUTH_GUARD_OPEN);
    }
    /* The lock-out taken before the flood was not evicted by it. */
    assert_int_equal(auth_guard_reserve(&g, &gc, "bob", ATTACKER, 3), AUTH_GUARD_PAIR_LOCKED);
    /* The /48 is locked out as a whole, its unused /64s too. */
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", "2001:db8:77:ffff:1::/64", 3),
                     AUTH_GUARD_NET_LOCKED);
    auth_guard_free(&g);
}

static void test_net_key(void **state)
{
    char a[AUTH_IP_KEY_MAX + 1], b[AUTH_IP_KEY_MAX + 1];
    auth_limits_net_key("192.0.2.77", a, sizeof(a));
    assert_string_equal(a, "192.0.2.0/24");
    auth_limits_net_key("::ffff:192.0.2.1", a, sizeof(a));
    assert_string_equal(a, "192.0.2.0/24");
    auth_limits_net_key("2001:db8:1:2:3:4:5:6", a, sizeof(a));
    assert_string_equal(a, "2001:db8:1::/48");
    auth_limits_ip_key("2001:db8:1:ffff::9", b, sizeof(b));
    auth_limits_net_key(b, a, sizeof(a)); /* from a per-IP key */
    assert_string_equal(a, "2001:db8:1::/48");
    auth_limits_net_key("2001:db8:2::1", a, sizeof(a));
    assert_string_equal(a, "2001:db8:2::/48");
    auth_limits_net_key("-", a, sizeof(a));
    assert_string_equal(a, "-");
}

/* Failures from many sources of one block, each under its own limits,
 * add up: the whole block is locked out, other blocks are not, and the
 * lock-out ends like the others. */
static void test_network_lockout(void **state)
{
    struct auth_guard g;
    struct auth_guard_outcome out;
    guard_setup_net(&g, 64, 3, 2, 4);
    fail_attempt(&g, "u0", "192.0.2.1", 0, &out);
    fail_attempt(&g, "u1", "192.0.2.2", 0, &out);
    auth_guard_fail_source(&g, &gc, "192.0.2.3", 0, &out);
    assert_false(out.net_locked);
    fail_attempt(&g, "u3", "192.0.2.4", 0, &out);
    assert_true(out.net_locked);
    assert_false(out.source_locked);
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", "192.0.2.200", 1), AUTH_GUARD_NET_LOCKED);
    assert_int_equal(attempt(&g, "alice", "192.0.3.1", 1, PETREL_AUTH_OK, &out), AUTH_GUARD_OPEN);
    /* Invalid user names from a locked block lock no more sources. */
    for (int i = 0; i < 5; i++)
        auth_guard_fail_source(&g, &gc, "192.0.2.9", 2, &out);
    assert_false(out.source_locked);
    struct auth_limit_params per_ip = {gc.max_per_ip, gc.window_ms, gc.lockout_ms};
    assert_false(auth_limits_locked(&g.per_ip, &per_ip, "192.0.2.9", 2));
    assert_int_equal(auth_guard_reserve(&g, &gc, "alice", "192.0.2.200", 49999),
                     AUTH_GUARD_NET_LOCKED);
    assert_int_equal(attempt(&g, "alice", "192.0.2.200", 50000, PETREL_AUTH_OK, &out),
                     AUTH_GUARD_OPEN);
    auth_guard_free(&g);
    /* Switched off (0), a block is never locked as a whole. */
    guard_setup_net(&g, 64, 3, 2, 0);
    for (int i = 0; i < 10; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "192.0.2.%d", i);
        fail_attempt(&g, "u0", ip, 0, &out);
        assert_false(out.net_locked);
    }
    assert_int_equal(auth_guard_reserve(&g, &gc, "u0", "192.0.2.200", 1), AUTH_GUARD_OPEN);
    auth_guard_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_after_max),
        cmocka_unit_test(test_window_expires),
        cmocka_unit_test(test_clear_and_unlimited),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_flood_does_not_unlock),
        cmocka_unit_test(test_reserve_counts_in_flight),
        cmocka_unit_test(test_ip_key),
        cmocka_unit_test(test_count_never_locks),
        cmocka_unit_test(test_known_set),
        cmocka_unit_test(test_attacker_locks_only_itself),
        cmocka_unit_test(test_source_locked_for_every_account),
        cmocka_unit_test(test_account_failures_slow_never_refuse),
        cmocka_unit_test(test_known_good_expires),
        cmocka_unit_test(test_success_clears_pair_only),
        cmocka_unit_test(test_guard_reserves_in_flight),
        cmocka_unit_test(test_guard_ipv6_per_64),
        cmocka_unit_test(test_delay_capped_at_conn_limit),
        cmocka_unit_test(test_flood_from_one_48),
        cmocka_unit_test(test_net_key),
        cmocka_unit_test(test_network_lockout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
