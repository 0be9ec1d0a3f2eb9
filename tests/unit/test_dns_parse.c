/* Unit tests for core/dns_parse.c and core/dns_name.c: every record type,
 * CNAME chains, negative answers with their RFC 2308 TTL, the AD bit and
 * the refusals (compression loops, lengths, counts, truncation, another
 * question); names asked for, PTR names and the dnr.servers list. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns_msg.h"
#include "dns_private.h"

#define REPLY 0x8180u    /* QR, RD, RA, NOERROR */
#define REPLY_AD 0x81a0u /* the same with AD */

static struct dns_answer *parse_ok(const struct dmsg *m, uint16_t type, const char *qname)
{
    const char *error = NULL;
    struct dns_answer *a = petrel_dns_parse_answer(m->b, m->len, type, qname, &error);
    if (a == NULL)
        fail_msg("refused: %s", error);
    return a;
}

static void assert_refused(const struct dmsg *m, uint16_t type, const char *qname, const char *why)
{
    const char *error = NULL;
    struct dns_answer *a = petrel_dns_parse_answer(m->b, m->len, type, qname, &error);
    if (a != NULL) {
        petrel_dns_answer_unref(a);
        fail_msg("accepted, wanted \"%s\"", why);
    }
    assert_non_null(error);
    if (why != NULL)
        assert_string_equal(error, why);
}

static void a_record(struct dmsg *m, size_t owner, uint32_t ttl, const char *ip)
{
    unsigned char b[4];
    inet_pton(AF_INET, ip, b);
    dm_ptr(m, owner);
    size_t at = dm_rr(m, PETREL_DNS_A, ttl);
    dm_bytes(m, b, 4);
    dm_end(m, at);
}

static void test_a_records_ttl_and_ad(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY_AD, 1, 2, 0, 0);
    dm_question(&m, "mx.example.test", PETREL_DNS_A);
    a_record(&m, DM_QNAME_OFF, 300, "192.0.2.1");
    a_record(&m, DM_QNAME_OFF, 120, "192.0.2.2");
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_A, "MX.Example.TEST");
    assert_int_equal(a->count, 2);
    assert_int_equal(a->rcode, 0);
    assert_true(a->ad);
    assert_int_equal(a->ttl, 120);
    assert_string_equal(a->canonical, "mx.example.test");
    char ip[INET_ADDRSTRLEN];
    assert_int_equal(a->records[1].a.family, AF_INET);
    inet_ntop(AF_INET, &a->records[1].a.u.v4, ip, sizeof(ip));
    assert_string_equal(ip, "192.0.2.2");
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_OK);
    petrel_dns_answer_unref(a);
}

static void test_aaaa(void **state)
{
    (void)state;
    struct dmsg m;
    unsigned char b[16];
    inet_pton(AF_INET6, "2001:db8::25", b);
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "mx.example.test", PETREL_DNS_AAAA);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_AAAA, 60);
    dm_bytes(&m, b, 16);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_AAAA, "mx.example.test");
    assert_int_equal(a->count, 1);
    assert_false(a->ad);
    assert_int_equal(a->records[0].a.family, AF_INET6);
    assert_memory_equal(&a->records[0].a.u.v6, b, 16);
    petrel_dns_answer_unref(a);
}

static void mx_record(struct dmsg *m, unsigned pref, const char *host)
{
    dm_ptr(m, DM_QNAME_OFF);
    size_t at = dm_rr(m, PETREL_DNS_MX, 3600);
    dm_u16(m, pref);
    dm_name(m, host);
    dm_end(m, at);
}

static void test_mx_sorted_stable(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 4, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_MX);
    mx_record(&m, 20, "b.example.test");
    mx_record(&m, 10, "a1.example.test");
    mx_record(&m, 20, "c.example.test");
    /* The exchange compressed against the owner: "a2" + pointer. */
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_MX, 3600);
    dm_u16(&m, 10);
    dm_byte(&m, 2);
    dm_bytes(&m, "a2", 2);
    dm_ptr(&m, DM_QNAME_OFF);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_MX, "example.test");
    assert_int_equal(a->count, 4);
    const char *want[] = {"a1.example.test", "a2.example.test", "b.example.test", "c.example.test"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(a->records[i].mx.exchange, want[i]);
    assert_int_equal(a->records[0].mx.preference, 10);
    assert_int_equal(a->records[3].mx.preference, 20);
    petrel_dns_answer_unref(a);
}

static void test_null_mx(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "nomail.example.test", PETREL_DNS_MX);
    mx_record(&m, 0, "");
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_MX, "nomail.example.test");
    assert_int_equal(a->count, 1);
    assert_int_equal(a->records[0].mx.preference, 0);
    assert_string_equal(a->records[0].mx.exchange, "");
    petrel_dns_answer_unref(a);
}

static void test_txt_strings_joined(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "_dmarc.example.test", PETREL_DNS_TXT);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_TXT, 30);
    dm_byte(&m, 8);
    dm_bytes(&m, "v=DMARC1", 8);
    dm_byte(&m, 0); /* an empty string is allowed */
    dm_byte(&m, 8);
    dm_bytes(&m, "; p=none", 8);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_TXT, "_dmarc.example.test");
    assert_int_equal(a->records[0].txt.len, 16);
    assert_string_equal((const char *)a->records[0].txt.data, "v=DMARC1; p=none");
    petrel_dns_answer_unref(a);
}

static void test_tlsa(void **state)
{
    (void)state;
    struct dmsg m;
    const unsigned char hash[4] = {0xde, 0xad, 0xbe, 0xef};
    dm_header(&m, REPLY_AD, 1, 1, 0, 0);
    dm_question(&m, "_25._tcp.mx.example.test", PETREL_DNS_TLSA);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_TLSA, 30);
    dm_byte(&m, 3);
    dm_byte(&m, 1);
    dm_byte(&m, 1);
    dm_bytes(&m, hash, 4);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_TLSA, "_25._tcp.mx.example.test");
    assert_true(a->ad);
    assert_int_equal(a->records[0].tlsa.usage, 3);
    assert_int_equal(a->records[0].tlsa.selector, 1);
    assert_int_equal(a->records[0].tlsa.matching, 1);
    assert_int_equal(a->records[0].tlsa.len, 4);
    assert_memory_equal(a->records[0].tlsa.data, hash, 4);
    petrel_dns_answer_unref(a);
}

static void test_ptr(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "1.2.0.192.in-addr.arpa", PETREL_DNS_PTR);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_PTR, 30);
    dm_name(&m, "host.example.test");
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_PTR, "1.2.0.192.in-addr.arpa");
    assert_string_equal(a->records[0].ptr, "host.example.test");
    petrel_dns_answer_unref(a);
}

/* www -> alias -> target, out of order in the answer, plus a record of
 * another owner that must not be picked up. */
static void test_cname_chain(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 4, 0, 0);
    dm_question(&m, "www.example.test", PETREL_DNS_A);
    size_t alias_name = 0;
    dm_name(&m, "alias.example.test");
    size_t at = dm_rr(&m, DNS_TYPE_CNAME, 50);
    dm_name(&m, "target.example.test");
    dm_end(&m, at);
    dm_ptr(&m, DM_QNAME_OFF);
    at = dm_rr(&m, DNS_TYPE_CNAME, 500);
    alias_name = m.len;
    dm_name(&m, "alias.example.test");
    dm_end(&m, at);
    a_record(&m, alias_name, 500, "192.0.2.9"); /* owned by the alias: not an answer */
    dm_name(&m, "target.example.test");
    at = dm_rr(&m, PETREL_DNS_A, 400);
    dm_bytes(&m, "\xc0\x00\x02\x07", 4);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_A, "www.example.test");
    assert_int_equal(a->count, 1);
    assert_string_equal(a->canonical, "target.example.test");
    assert_int_equal(a->ttl, 50);
    assert_memory_equal(&a->records[0].a.u.v4, "\xc0\x00\x02\x07", 4);
    petrel_dns_answer_unref(a);
}

static void test_cname_loop_refused(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 2, 0, 0);
    dm_question(&m, "a.example.test", PETREL_DNS_A);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, DNS_TYPE_CNAME, 50);
    size_t b = m.len;
    dm_name(&m, "b.example.test");
    dm_end(&m, at);
    dm_ptr(&m, b);
    at = dm_rr(&m, DNS_TYPE_CNAME, 50);
    dm_ptr(&m, DM_QNAME_OFF);
    dm_end(&m, at);
    assert_refused(&m, PETREL_DNS_A, "a.example.test", "CNAME chain too long");
}

/* NXDOMAIN: the negative TTL is the smaller of the SOA's TTL and its
 * MINIMUM (RFC 2308 s.5). */
static void soa_answer(struct dmsg *m, unsigned flags, uint32_t soa_ttl, uint32_t minimum)
{
    dm_header(m, flags, 1, 0, 1, 0);
    dm_question(m, "missing.example.test", PETREL_DNS_MX);
    dm_name(m, "example.test");
    size_t at = dm_rr(m, DNS_TYPE_SOA, soa_ttl);
    dm_name(m, "ns.example.test");
    dm_name(m, "hostmaster.example.test");
    for (int i = 0; i < 4; i++)
        dm_u32(m, 1000);
    dm_u32(m, minimum);
    dm_end(m, at);
}

static void test_nxdomain_negative_ttl(void **state)
{
    (void)state;
    struct dmsg m;
    soa_answer(&m, REPLY | 3, 900, 60);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_MX, "missing.example.test");
    assert_int_equal(a->rcode, PETREL_DNS_RCODE_NXDOMAIN);
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_NXDOMAIN);
    assert_true(a->has_soa);
    assert_int_equal(a->ttl, 60);
    petrel_dns_answer_unref(a);
    soa_answer(&m, REPLY, 30, 600); /* NODATA */
    a = parse_ok(&m, PETREL_DNS_MX, "missing.example.test");
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_NODATA);
    assert_int_equal(a->ttl, 30);
    petrel_dns_answer_unref(a);
}

static void test_nodata_without_soa(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 0, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_TLSA);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_TLSA, "example.test");
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_NODATA);
    assert_false(a->has_soa);
    assert_int_equal(a->ttl, 0);
    petrel_dns_answer_unref(a);
}

static void test_servfail_and_extended_rcode(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY | 2, 1, 0, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_A);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_A, "example.test");
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_SERVFAIL);
    petrel_dns_answer_unref(a);
    /* BADVERS (16): 0 in the header, 1 in the OPT record's TTL. */
    dm_header(&m, REPLY, 1, 0, 0, 1);
    dm_question(&m, "example.test", PETREL_DNS_A);
    dm_name(&m, "");
    size_t at = dm_rr(&m, DNS_TYPE_OPT, 0x01000000u);
    dm_end(&m, at);
    a = parse_ok(&m, PETREL_DNS_A, "example.test");
    assert_int_equal(a->rcode, 16);
    assert_int_equal(petrel_dns_answer_status(a), PETREL_DNS_SERVFAIL);
    petrel_dns_answer_unref(a);
    /* An error reply without its question is still read. */
    dm_header(&m, REPLY | 5, 0, 0, 0, 0);
    a = parse_ok(&m, PETREL_DNS_A, "example.test");
    assert_int_equal(a->rcode, PETREL_DNS_RCODE_REFUSED);
    petrel_dns_answer_unref(a);
}

static void test_odd_bytes_escaped(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_MX);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_MX, 30);
    dm_u16(&m, 5);
    dm_byte(&m, 5);
    dm_bytes(&m, "a.b\0\\", 5);
    dm_ptr(&m, DM_QNAME_OFF);
    dm_end(&m, at);
    struct dns_answer *a = parse_ok(&m, PETREL_DNS_MX, "example.test");
    assert_string_equal(a->records[0].mx.exchange, "a\\.b\\000\\\\.example.test");
    petrel_dns_answer_unref(a);
}

static void test_not_a_fitting_reply(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, 0x0100, 1, 0, 0, 0); /* a query */
    dm_question(&m, "example.test", PETREL_DNS_A);
    assert_refused(&m, PETREL_DNS_A, "example.test", "not a reply to a standard query");
    dm_header(&m, REPLY | 0x0200, 1, 0, 0, 0); /* TC */
    dm_question(&m, "example.test", PETREL_DNS_A);
    assert_refused(&m, PETREL_DNS_A, "example.test", "truncated reply");
    dm_header(&m, REPLY, 1, 0, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_A);
    assert_refused(&m, PETREL_DNS_MX, "example.test", "reply to another question");
    assert_refused(&m, PETREL_DNS_A, "other.test", "reply to another question");
    dm_header(&m, REPLY, 2, 0, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_A);
    dm_question(&m, "example.test", PETREL_DNS_A);
    assert_refused(&m, PETREL_DNS_A, "example.test", "malformed question");
    m.len = 11;
    assert_refused(&m, PETREL_DNS_A, "example.test", "shorter than a DNS header");
}

/* Pointers to themselves, forwards, into the header, and a chain of
 * pointers each pointing back to the previous: never accepted, never a
 * loop. */
static void test_compression_loops(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_MX);
    size_t self = m.len;
    dm_ptr(&m, self);
    dm_rr(&m, PETREL_DNS_MX, 30);
    assert_refused(&m, PETREL_DNS_MX, NULL, "malformed or truncated record");

    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_MX);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_MX, 30);
    dm_u16(&m, 10);
    dm_ptr(&m, m.len + 2); /* forwards */
    dm_name(&m, "x");
    dm_end(&m, at);
    assert_refused(&m, PETREL_DNS_MX, NULL, "malformed record data");

    dm_header(&m, REPLY, 1, 0, 0, 0);
    dm_ptr(&m, 2); /* into the header */
    dm_u16(&m, 1);
    dm_u16(&m, 1);
    assert_refused(&m, PETREL_DNS_A, NULL, "malformed question");

    /* label "a" then a pointer back to that label: a -> a -> a ... */
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_MX);
    dm_ptr(&m, DM_QNAME_OFF);
    at = dm_rr(&m, PETREL_DNS_MX, 30);
    dm_u16(&m, 10);
    size_t label = m.len;
    dm_byte(&m, 1);
    dm_byte(&m, 'a');
    dm_ptr(&m, label);
    dm_end(&m, at);
    assert_refused(&m, PETREL_DNS_MX, NULL, "malformed record data");
}

static void test_bad_lengths(void **state)
{
    (void)state;
    struct dmsg m;
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_A);
    dm_ptr(&m, DM_QNAME_OFF);
    size_t at = dm_rr(&m, PETREL_DNS_A, 30);
    dm_bytes(&m, "\1\2\3\4\5", 5);
    dm_end(&m, at);
    assert_refused(&m, PETREL_DNS_A, NULL, "malformed record data");

    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_TXT);
    dm_ptr(&m, DM_QNAME_OFF);
    at = dm_rr(&m, PETREL_DNS_TXT, 30);
    dm_byte(&m, 9); /* says 9, holds 3 */
    dm_bytes(&m, "abc", 3);
    dm_end(&m, at);
    assert_refused(&m, PETREL_DNS_TXT, NULL, "malformed record data");

    /* A label of 64 (the 0x40 type bit) and a name over 255 octets. */
    dm_header(&m, REPLY, 1, 0, 0, 0);
    dm_byte(&m, 64);
    for (int i = 0; i < 64; i++)
        dm_byte(&m, 'x');
    dm_byte(&m, 0);
    dm_u16(&m, 1);
    dm_u16(&m, 1);
    assert_refused(&m, PETREL_DNS_A, NULL, "malformed question");
    dm_header(&m, REPLY, 1, 0, 0, 0);
    for (int l = 0; l < 5; l++) {
        dm_byte(&m, 63);
        for (int i = 0; i < 63; i++)
            dm_byte(&m, 'y');
    }
    dm_byte(&m, 0);
    dm_u16(&m, 1);
    dm_u16(&m, 1);
    assert_refused(&m, PETREL_DNS_A, NULL, "malformed question");

    /* rdlength past the end of the message. */
    dm_header(&m, REPLY, 1, 1, 0, 0);
    dm_question(&m, "example.test", PETREL_DNS_A);
    dm_ptr(&m, DM_QNAME_OFF);
    dm_rr(&m, PETREL_DNS_A, 30);
    m.b[m.len - 1] = 4;
    dm_bytes(&m, "\1\2", 2);
    assert_refused(&m, PETREL_DNS_A, NULL, "malformed or truncated record");
}

/* Every proper prefix of a valid answer promises more than it holds. */
static void test_every_prefix_refused(void **state)
{
    (void)state;
    struct dmsg m;
    soa_answer(&m, REPLY | 3, 900, 60);
    size_t full = m.len;
    for (size_t n = 0; n < full; n++) {
        m.len = n;
        const char *error = NULL;
        struct dns_answer *a =
            petrel_dns_parse_answer(m.b, m.len, PETREL_DNS_MX, "missing.example.test", &error);
        if (a != NULL)
            fail_msg("prefix of %zu bytes accepted", n);
    }
}

/* --- names (dns_name.c) --- */

static void test_names_normalised(void **state)
{
    (void)state;
    char out[300];
    assert_true(petrel_dns_name_normalise("MX.Example.TEST.", out, sizeof(out)));
    assert_string_equal(out, "mx.example.test");
    assert_true(petrel_dns_name_normalise("_25._tcp.mx.example.test", out, sizeof(out)));
    const char *bad[] = {"", ".", "a..b", ".a", "a b", "a\\.b", "a\"b", "xn--\xc3\xa9.test"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (petrel_dns_name_normalise(bad[i], out, sizeof(out)))
            fail_msg("\"%s\" accepted", bad[i]);
    char longlabel[70];
    memset(longlabel, 'a', 64);
    longlabel[64] = '\0';
    assert_false(petrel_dns_name_normalise(longlabel, out, sizeof(out)));
    char longname[300];
    memset(longname, 'a', 254);
    for (int i = 10; i < 254; i += 10)
        longname[i] = '.';
    longname[254] = '\0';
    assert_false(petrel_dns_name_normalise(longname, out, sizeof(out)));
}

static void test_reverse_names(void **state)
{
    (void)state;
    char out[PETREL_DNS_NAME_MAX];
    assert_true(petrel_dns_reverse_name("192.0.2.1", out, sizeof(out)));
    assert_string_equal(out, "1.2.0.192.in-addr.arpa");
    assert_true(petrel_dns_reverse_name("::ffff:127.0.0.1", out, sizeof(out)));
    assert_string_equal(out, "1.0.0.127.in-addr.arpa");
    assert_true(petrel_dns_reverse_name("2001:db8::1", out, sizeof(out)));
    assert_string_equal(out,
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_false(petrel_dns_reverse_name("example.test", out, sizeof(out)));
    assert_false(petrel_dns_reverse_name("2001:db8::1", out, 20));
}

static void test_servers_list(void **state)
{
    (void)state;
    char csv[256];
    const char *error = NULL;
    char *good[] = {"127.0.0.1", "127.0.0.2:5353", "::1", "[::1]:53", "[2001:db8::1]", NULL};
    assert_true(petrel_dns_servers_csv(good, csv, sizeof(csv), &error));
    assert_string_equal(csv, "127.0.0.1:53,127.0.0.2:5353,[::1]:53,[::1]:53,[2001:db8::1]:53");
    assert_true(petrel_dns_servers_csv(NULL, csv, sizeof(csv), &error));
    assert_string_equal(csv, "");
    const char *bad[] = {
        "localhost", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:", "[::1", "[::1]x", "1.2.3.4.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *list[] = {(char *)bad[i], NULL};
        if (petrel_dns_servers_csv(list, csv, sizeof(csv), &error))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(error, bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_records_ttl_and_ad),
        cmocka_unit_test(test_aaaa),
        cmocka_unit_test(test_mx_sorted_stable),
        cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_txt_strings_joined),
        cmocka_unit_test(test_tlsa),
        cmocka_unit_test(test_ptr),
        cmocka_unit_test(test_cname_chain),
        cmocka_unit_test(test_cname_loop_refused),
        cmocka_unit_test(test_nxdomain_negative_ttl),
        cmocka_unit_test(test_nodata_without_soa),
        cmocka_unit_test(test_servfail_and_extended_rcode),
        cmocka_unit_test(test_odd_bytes_escaped),
        cmocka_unit_test(test_not_a_fitting_reply),
        cmocka_unit_test(test_compression_loops),
        cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_every_prefix_refused),
        cmocka_unit_test(test_names_normalised),
        cmocka_unit_test(test_reverse_names),
        cmocka_unit_test(test_servers_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
