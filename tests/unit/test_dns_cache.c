/* Unit tests for core/dns_cache.c: TTLs counted down and honoured,
 * negative answers kept for their RFC 2308 TTL (and only with an SOA),
 * failures never kept, caps, the entry bound with least-recently-used
 * eviction, and several threads at once. Time is passed in, so nothing
 * sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_msg.h"
#include "dns_private.h"

#define NOW 1000000 /* an arbitrary monotonic start, in ms */

/* An answer for name: count A records with this TTL, or (count 0) a
 * negative one with rcode and, if soa_ttl, an SOA. */
static struct dns_answer *answer(const char *name, int count, uint32_t ttl, unsigned rcode,
                                 uint32_t soa_ttl)
{
    struct dmsg m;
    dm_header(&m, 0x8180u | rcode, 1, (unsigned)count, soa_ttl ? 1 : 0, 0);
    dm_question(&m, name, PETREL_DNS_A);
    for (int i = 0; i < count; i++) {
        dm_ptr(&m, DM_QNAME_OFF);
        size_t at = dm_rr(&m, PETREL_DNS_A, ttl);
        dm_bytes(&m, "\x7f\x00\x00\x01", 4);
        dm_end(&m, at);
    }
    if (soa_ttl) {
        dm_ptr(&m, DM_QNAME_OFF);
        size_t at = dm_rr(&m, DNS_TYPE_SOA, soa_ttl);
        dm_name(&m, "ns");
        dm_name(&m, "host");
        for (int i = 0; i < 5; i++)
            dm_u32(&m, soa_ttl);
        dm_end(&m, at);
    }
    const char *error = NULL;
    struct dns_answer *a = petrel_dns_parse_answer(m.b, m.len, PETREL_DNS_A, name, &error);
    if (a == NULL)
        fail_msg("test answer refused: %s", error);
    return a;
}

static void put(const char *name, struct dns_answer *a, int64_t now)
{
    petrel_dns_cache_put(PETREL_DNS_A, name, a, now);
    petrel_dns_answer_unref(a);
}

/* The TTL left, or -1 if not cached at now. */
static long left(const char *name, int64_t now)
{
    uint32_t ttl = 0;
    struct dns_answer *a = petrel_dns_cache_get(PETREL_DNS_A, name, now, &ttl);
    if (a == NULL)
        return -1;
    petrel_dns_answer_unref(a);
    return (long)ttl;
}

static int reset(void **state)
{
    (void)state;
    petrel_dns_cache_configure(100);
    petrel_dns_cache_flush();
    return 0;
}

static void test_ttl_counts_down_then_expires(void **state)
{
    (void)state;
    put("a.test", answer("a.test", 2, 10, 0, 0), NOW);
    assert_int_equal(left("a.test", NOW), 10);
    assert_int_equal(left("a.test", NOW + 3500), 7);
    assert_int_equal(left("a.test", NOW + 9999), 1);
    assert_int_equal(left("a.test", NOW + 10000), -1);
    assert_int_equal(petrel_dns_cache_count(), 0); /* dropped when found expired */
    /* Same name, other type: another entry. */
    put("a.test", answer("a.test", 1, 10, 0, 0), NOW);
    uint32_t ttl;
    assert_null(petrel_dns_cache_get(PETREL_DNS_MX, "a.test", NOW, &ttl));
}

static void test_negative_answers(void **state)
{
    (void)state;
    /* NXDOMAIN with an SOA: its TTL (min of TTL and MINIMUM, both 30). */
    put("gone.test", answer("gone.test", 0, 0, 3, 30), NOW);
    assert_int_equal(left("gone.test", NOW), 30);
    assert_int_equal(left("gone.test", NOW + 30000), -1);
    /* NODATA with an SOA. */
    put("empty.test", answer("empty.test", 0, 0, 0, 20), NOW);
    assert_int_equal(left("empty.test", NOW + 1000), 19);
    /* Without an SOA there is no negative TTL: not kept. */
    put("nosoa.test", answer("nosoa.test", 0, 0, 3, 0), NOW);
    assert_int_equal(left("nosoa.test", NOW), -1);
    /* Failures are never kept. */
    put("fail.test", answer("fail.test", 0, 0, 2, 30), NOW);
    assert_int_equal(left("fail.test", NOW), -1);
    /* Nor a TTL of 0. */
    put("zero.test", answer("zero.test", 1, 0, 0, 0), NOW);
    assert_int_equal(left("zero.test", NOW), -1);
}

static void test_caps(void **state)
{
    (void)state;
    struct dns_answer *a = answer("week.test", 1, 7 * 86400, 0, 0);
    assert_int_equal(petrel_dns_cache_ttl(a), DNS_CACHE_MAX_TTL);
    put("week.test", a, NOW);
    assert_int_equal(left("week.test", NOW), DNS_CACHE_MAX_TTL);
    a = answer("neg.test", 0, 0, 3, 86400);
    assert_int_equal(petrel_dns_cache_ttl(a), DNS_CACHE_MAX_NEG_TTL);
    petrel_dns_answer_unref(a);
    /* A TTL with the top bit set reads as 0 (RFC 2181 s.8). */
    a = answer("big.test", 1, 0x80000000u, 0, 0);
    assert_int_equal(petrel_dns_cache_ttl(a), 0);
    petrel_dns_answer_unref(a);
}

static void test_bound_evicts_least_recent(void **state)
{
    (void)state;
    petrel_dns_cache_configure(3);
    put("1.test", answer("1.test", 1, 60, 0, 0), NOW);
    put("2.test", answer("2.test", 1, 60, 0, 0), NOW);
    put("3.test", answer("3.test", 1, 60, 0, 0), NOW);
    assert_int_equal(left("1.test", NOW), 60); /* 1 is now the latest used */
    put("4.test", answer("4.test", 1, 60, 0, 0), NOW);
    assert_int_equal(petrel_dns_cache_count(), 3);
    assert_int_equal(left("2.test", NOW), -1);
    assert_int_equal(left("1.test", NOW), 60);
    /* A new answer for a cached name replaces it. */
    put("3.test", answer("3.test", 1, 5, 0, 0), NOW);
    assert_int_equal(left("3.test", NOW), 5);
    assert_int_equal(petrel_dns_cache_count(), 3);
    /* Shrinking keeps the latest used. */
    petrel_dns_cache_configure(1);
    assert_int_equal(petrel_dns_cache_count(), 1);
    assert_int_equal(left("3.test", NOW), 5);
    /* 0 turns it off. */
    petrel_dns_cache_configure(0);
    assert_int_equal(petrel_dns_cache_count(), 0);
    put("5.test", answer("5.test", 1, 60, 0, 0), NOW);
    assert_int_equal(left("5.test", NOW), -1);
}

static void test_grows_past_initial_table(void **state)
{
    (void)state;
    petrel_dns_cache_configure(5000);
    char name[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof(name), "h%d.test", i);
        put(name, answer(name, 1, 60, 0, 0), NOW);
    }
    assert_int_equal(petrel_dns_cache_count(), 5000);
    for (int i = 0; i < 5000; i += 499) {
        snprintf(name, sizeof(name), "h%d.test", i);
        assert_int_equal(left(name, NOW), 60);
    }
    petrel_dns_cache_flush();
    assert_int_equal(petrel_dns_cache_count(), 0);
}

/* The result a caller holds outlives the entry. */
static void test_answer_outlives_entry(void **state)
{
    (void)state;
    put("keep.test", answer("keep.test", 1, 60, 0, 0), NOW);
    uint32_t ttl;
    struct dns_answer *a = petrel_dns_cache_get(PETREL_DNS_A, "keep.test", NOW, &ttl);
    assert_non_null(a);
    petrel_dns_cache_flush();
    assert_int_equal(a->count, 1);
    assert_string_equal(a->canonical, "keep.test");
    petrel_dns_answer_unref(a);
}

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    char name[32];
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        snprintf(name, sizeof(name), "t%u.test", seed >> 16 & 63);
        if (seed & 1) {
            put(name, answer(name, 1, 1 + (seed >> 8 & 3), 0, 0), NOW + i);
        } else {
            uint32_t ttl;
            struct dns_answer *a = petrel_dns_cache_get(PETREL_DNS_A, name, NOW + i, &ttl);
            /* Threads run at different times: one may read what another put
             * up to ROUNDS ms "later". */
            if (a != NULL && (a->count != 1 || ttl == 0 || ttl > 4 + ROUNDS / 1000))
                abort();
            petrel_dns_answer_unref(a);
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    petrel_dns_cache_configure(32); /* smaller than the names: evictions too */
    pthread_t t[THREADS];
    for (uintptr_t i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, (void *)(i + 1)), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(petrel_dns_cache_count() <= 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_ttl_counts_down_then_expires, reset),
        cmocka_unit_test_setup(test_negative_answers, reset),
        cmocka_unit_test_setup(test_caps, reset),
        cmocka_unit_test_setup(test_bound_evicts_least_recent, reset),
        cmocka_unit_test_setup(test_grows_past_initial_table, reset),
        cmocka_unit_test_setup(test_answer_outlives_entry, reset),
        cmocka_unit_test_setup(test_threads, reset),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    petrel_dns_cache_free();
    return r;
}
