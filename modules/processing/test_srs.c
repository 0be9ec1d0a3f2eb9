/* SRS addresses (srs.c): the known answers (computed apart from this
 * code, with Python's hmac), round trips through SRS0 and SRS1, the hash
 * checked without regard to case, key rotation, the timestamp's age
 * both ways, and what a parser must refuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "srs.h"

#define NOW ((time_t)1714564800) /* 2024-05-01: day 19844, 388 mod 1024, "ME" */
#define DOMAIN "fwd.test"

static const char *const one[] = {"secret-one"};
static const char *const rotated[] = {"secret-two", "secret-one"};
static const struct srs_keys keys = {one, 1};
static const struct srs_keys keys_rotated = {rotated, 2};
static const struct srs_keys no_keys = {one, 0};

static char out[SRS_ADDRESS_MAX + 1];

static enum srs_result back(const struct srs_keys *k, const char *address, time_t now)
{
    return srs_reverse(k, address, DOMAIN, 21, now, out, sizeof(out));
}

static void test_known_answers(void **state)
{
    (void)state;
    assert_int_equal(srs_forward(&keys, "Alice@Sender.test", DOMAIN, NOW, out, sizeof(out)),
                     SRS_OK);
    assert_string_equal(out, "SRS0=S/ta=ME=Sender.test=Alice@fwd.test");
    assert_int_equal(
        srs_forward(&keys, "SRS0=HHHH=TT=orig.test=bob@first.test", DOMAIN, NOW, out, sizeof(out)),
        SRS_OK);
    assert_string_equal(out, "SRS1=iy4X=first.test==HHHH=TT=orig.test=bob@fwd.test");
}

static void test_round_trip_srs0(void **state)
{
    (void)state;
    char a[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(&keys, "alice=x+y@sender.test", DOMAIN, NOW, a, sizeof(a)),
                     SRS_OK);
    assert_true(srs_is_srs(a));
    assert_int_equal(back(&keys, a, NOW), SRS_OK);
    assert_string_equal(out, "alice=x+y@sender.test"); /* '=' in a local part survives */
    assert_int_equal(back(&keys, a, NOW + 21 * SRS_DAY), SRS_OK);
}

static void test_round_trip_srs1(void **state)
{
    (void)state;
    char a[SRS_ADDRESS_MAX + 1], b[SRS_ADDRESS_MAX + 1];
    /* Another forwarder's SRS0 (its hash is not ours to check): SRS1. */
    const char *theirs = "SRS0+abcd=ME=orig.test=bob@first.test";
    assert_int_equal(srs_forward(&keys, theirs, DOMAIN, NOW, a, sizeof(a)), SRS_OK);
    assert_memory_equal(a, "SRS1=", 5);
    assert_int_equal(back(&keys, a, NOW), SRS_OK);
    assert_string_equal(out, "SRS0+abcd=ME=orig.test=bob@first.test");
    /* An SRS1 from a second forwarder stays one step long: first.test and
     * its SRS0 part kept, only the hash is ours. */
    assert_int_equal(srs_forward(&keys, "SRS1=zzzz=first.test==abcd=ME=orig.test=bob@second.test",
                                 DOMAIN, NOW, b, sizeof(b)),
                     SRS_OK);
    assert_non_null(strstr(b, "=first.test==abcd=ME=orig.test=bob@fwd.test"));
    assert_int_equal(back(&keys, b, NOW), SRS_OK);
    assert_string_equal(out, "SRS0=abcd=ME=orig.test=bob@first.test");
    /* SRS1 does not expire (its SRS0 part is the first forwarder's). */
    assert_int_equal(back(&keys, b, NOW + 500 * SRS_DAY), SRS_OK);
}

static void test_case_insensitive(void **state)
{
    (void)state;
    char a[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(&keys, "Alice@Sender.test", DOMAIN, NOW, a, sizeof(a)), SRS_OK);
    for (char *p = a; *p != '\0'; p++) /* a hop that folds everything */
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    assert_string_equal(a, "srs0=s/ta=me=sender.test=alice@fwd.test");
    assert_int_equal(back(&keys, a, NOW), SRS_OK);
    assert_string_equal(out, "alice@sender.test");
    assert_int_equal(srs_reverse(&keys, a, "FWD.Test", 21, NOW, out, sizeof(out)), SRS_OK);
}

static void test_key_rotation(void **state)
{
    (void)state;
    char old[SRS_ADDRESS_MAX + 1], fresh[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(&keys, "a@b.test", DOMAIN, NOW, old, sizeof(old)), SRS_OK);
    assert_int_equal(srs_forward(&keys_rotated, "a@b.test", DOMAIN, NOW, fresh, sizeof(fresh)),
                     SRS_OK);
    assert_string_not_equal(old, fresh);                     /* the first key signs */
    assert_int_equal(back(&keys_rotated, old, NOW), SRS_OK); /* every key verifies */
    assert_int_equal(back(&keys_rotated, fresh, NOW), SRS_OK);
    assert_int_equal(back(&keys, fresh, NOW), SRS_BAD_HASH); /* the new key is not the old */
    assert_int_equal(back(&no_keys, old, NOW), SRS_BAD_HASH);
    assert_int_equal(srs_forward(&no_keys, "a@b.test", DOMAIN, NOW, old, sizeof(old)),
                     SRS_MALFORMED);
}

static void test_expiry(void **state)
{
    (void)state;
    char a[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(&keys, "a@b.test", DOMAIN, NOW, a, sizeof(a)), SRS_OK);
    assert_int_equal(back(&keys, a, NOW + 22 * SRS_DAY), SRS_EXPIRED);
    assert_int_equal(srs_reverse(&keys, a, DOMAIN, 30, NOW + 22 * SRS_DAY, out, sizeof(out)),
                     SRS_OK);
    /* Signed tomorrow (a clock set wrong, or forged): as if 1023 days old. */
    assert_int_equal(back(&keys, a, NOW - SRS_DAY), SRS_EXPIRED);
    assert_int_equal(back(&keys, a, NOW - 300 * SRS_DAY), SRS_EXPIRED);
    /* The stamp wraps after 1024 days: the same day then is fresh again
     * (the hash alone cannot tell; the limit on age bounds the window). */
    assert_int_equal(back(&keys, a, NOW + SRS_DAYS * (time_t)SRS_DAY), SRS_OK);
}

static void test_tampered(void **state)
{
    (void)state;
    char a[SRS_ADDRESS_MAX + 1];
    assert_int_equal(srs_forward(&keys, "alice@sender.test", DOMAIN, NOW, a, sizeof(a)), SRS_OK);
    char t[SRS_ADDRESS_MAX + 1];
    /* Another victim, the same hash. */
    memcpy(t, a, sizeof(t));
    memcpy(strstr(t, "alice"), "bobby", 5);
    assert_int_equal(back(&keys, t, NOW), SRS_BAD_HASH);
    /* A fresher timestamp, the same hash. */
    memcpy(t, a, sizeof(t));
    t[10] = t[10] == 'F' ? 'G' : 'F';
    assert_int_equal(back(&keys, t, NOW), SRS_BAD_HASH);
    /* Another hash. */
    memcpy(t, a, sizeof(t));
    t[5] = t[5] == '0' ? '1' : '0';
    assert_int_equal(back(&keys, t, NOW), SRS_BAD_HASH);
    assert_int_equal(back(&keys, "SRS0=AAAA=ME=sender.test=alice@fwd.test", NOW), SRS_BAD_HASH);
    assert_int_equal(back(&keys, "SRS1=AAAA=first.test==x=ME=o.test=b@fwd.test", NOW),
                     SRS_BAD_HASH);
}

static void test_not_srs(void **state)
{
    (void)state;
    assert_int_equal(back(&keys, "alice@fwd.test", NOW), SRS_NOT_SRS);
    assert_int_equal(back(&keys, "SRS2=AAAA=ME=b.test=a@fwd.test", NOW), SRS_NOT_SRS);
    assert_int_equal(back(&keys, "SRS0", NOW), SRS_NOT_SRS);
    assert_int_equal(back(&keys, "SRS0x=AAAA=ME=b.test=a@fwd.test", NOW), SRS_NOT_SRS);
    /* Ours only: another forwarder's SRS address is an address as any. */
    assert_int_equal(back(&keys, "SRS0=S/ta=ME=Sender.test=Alice@other.test", NOW), SRS_NOT_SRS);
    assert_false(srs_is_srs("srsx@fwd.test"));
    assert_true(srs_is_srs("srs1-x@fwd.test"));
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "SRS0=@fwd.test",                         /* nothing */
        "SRS0=S/ta@fwd.test",                     /* no timestamp */
        "SRS0=S/ta=ME@fwd.test",                  /* no domain */
        "SRS0=S/ta=ME=Sender.test@fwd.test",      /* no local part */
        "SRS0=S/ta=ME=Sender.test=@fwd.test",     /* empty local part */
        "SRS0=S/ta=ME==Alice@fwd.test",           /* empty domain */
        "SRS0==ME=Sender.test=Alice@fwd.test",    /* empty hash */
        "SRS0=S/t=ME=Sender.test=Alice@fwd.test", /* short hash */
        "SRS0=S/taa=ME=Sender.test=Alice@fwd.test",
        "SRS0=S/ta=M=Sender.test=Alice@fwd.test", /* short timestamp */
        "SRS0=S/ta=MEE=Sender.test=Alice@fwd.test",
        "SRS0=S/ta=M1=Sender.test=Alice@fwd.test", /* not base32 */
        "SRS0=S/ta==Sender.test=Alice@fwd.test",
        "SRS1=iy4X@fwd.test",                   /* no host */
        "SRS1=iy4X=first.test@fwd.test",        /* no rest */
        "SRS1=iy4X=first.test=@fwd.test",       /* empty rest */
        "SRS1=iy4X==x=y@fwd.test",              /* empty host */
        "SRS1=iy4X=first.test=x@fwd.test",      /* rest without its separator */
        "SRS1=iy4X=first.test==@fwd.test",      /* only the separator */
        "SRS0=S/ta=ME=a b.test=Alice@fwd.test", /* would need quoting */
        "SRS0=S/ta=ME=Sender.test=\"x\"@fwd.test",
        "SRS0=S/ta=ME=Sender.test=Alice@", /* no domain at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum srs_result r = srs_reverse(&keys, bad[i], DOMAIN, 21, NOW, out, sizeof(out));
        if (r != SRS_MALFORMED && r != SRS_NOT_SRS)
            fail_msg("%s: %s", bad[i], srs_result_text(r));
    }
    /* Overlong: 255 octets. */
    char longer[300];
    memset(longer, 'x', sizeof(longer));
    memcpy(longer, "SRS0=S/ta=ME=Sender.test=", 25);
    memcpy(longer + 255 - 9, "@fwd.test", 10);
    assert_int_equal(strlen(longer), 255);
    assert_int_equal(back(&keys, longer, NOW), SRS_MALFORMED);
    /* Senders that cannot be rewritten. */
    assert_int_equal(srs_forward(&keys, "", DOMAIN, NOW, out, sizeof(out)), SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "nodomain", DOMAIN, NOW, out, sizeof(out)), SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "@b.test", DOMAIN, NOW, out, sizeof(out)), SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "a@", DOMAIN, NOW, out, sizeof(out)), SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "a@b.test", "", NOW, out, sizeof(out)), SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "SRS1=x@b.test", DOMAIN, NOW, out, sizeof(out)),
                     SRS_MALFORMED);
    assert_int_equal(srs_forward(&keys, "SRS0=@b.test", DOMAIN, NOW, out, sizeof(out)),
                     SRS_MALFORMED);
}

static void test_too_long(void **state)
{
    (void)state;
    /* A 247-octet sender fits in an address, not once rewritten. */
    char sender[260];
    memset(sender, 'a', 240);
    memcpy(sender + 240, "@b.test", 8);
    assert_int_equal(srs_forward(&keys, sender, DOMAIN, NOW, out, sizeof(out)), SRS_TOO_LONG);
    char huge[400];
    memset(huge, 'a', sizeof(huge) - 8);
    memcpy(huge + sizeof(huge) - 8, "@b.test", 8);
    assert_int_equal(srs_forward(&keys, huge, DOMAIN, NOW, out, sizeof(out)), SRS_TOO_LONG);
    /* A small output buffer is no overflow. */
    char small[20];
    assert_int_equal(srs_forward(&keys, "a@b.test", DOMAIN, NOW, small, sizeof(small)),
                     SRS_TOO_LONG);
    /* Just fits: 254 octets. */
    char fits[SRS_ADDRESS_MAX + 1];
    size_t local = SRS_ADDRESS_MAX - strlen("SRS0=S/ta=ME=b.test=@fwd.test");
    memset(sender, 'a', local);
    memcpy(sender + local, "@b.test", 8);
    assert_int_equal(srs_forward(&keys, sender, DOMAIN, NOW, fits, sizeof(fits)), SRS_OK);
    assert_int_equal(strlen(fits), SRS_ADDRESS_MAX);
    assert_int_equal(back(&keys, fits, NOW), SRS_OK);
    assert_string_equal(out, sender);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),   cmocka_unit_test(test_round_trip_srs0),
        cmocka_unit_test(test_round_trip_srs1), cmocka_unit_test(test_case_insensitive),
        cmocka_unit_test(test_key_rotation),    cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_tampered),        cmocka_unit_test(test_not_srs),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
