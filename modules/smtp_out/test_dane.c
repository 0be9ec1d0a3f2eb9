/* TLSA matching (RFC 7672) against certificates made here with libcrypto:
 * a CA and a server certificate it signed for mx1.example.org, and a
 * self-signed one. DANE-EE by certificate and key, each matching type;
 * DANE-TA by the CA sent in the chain, with the name checked; records
 * that are not usable; mismatches. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tlspolicy.h"

static EVP_PKEY *ca_key, *ee_key;
static X509 *ca, *ee, *self;
static unsigned char *ca_der, *ee_der, *self_der;
static int ca_len, ee_len, self_len;

static X509 *make(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool is_ca)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), is_ca ? 1 : 2);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
                                              is_ca ? "critical,CA:TRUE" : "CA:FALSE");
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    if (!is_ca) {
        char san[300];
        snprintf(san, sizeof(san), "DNS:%s", cn);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
    }
    X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256());
    return x;
}

static int setup(void **state)
{
    (void)state;
    ca_key = EVP_EC_gen("P-256");
    ee_key = EVP_EC_gen("P-256");
    ca = make("Test DANE CA", ca_key, NULL, NULL, true);
    ee = make("mx1.example.org", ee_key, ca, ca_key, false);
    self = make("mx1.example.org", ee_key, NULL, NULL, false);
    ca_len = i2d_X509(ca, &ca_der);
    ee_len = i2d_X509(ee, &ee_der);
    self_len = i2d_X509(self, &self_der);
    return ca_len > 0 && ee_len > 0 && self_len > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    OPENSSL_free(ca_der);
    OPENSSL_free(ee_der);
    OPENSSL_free(self_der);
    X509_free(ca);
    X509_free(ee);
    X509_free(self);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(ee_key);
    return 0;
}

/* A TLSA record for cert with the given parameters. */
static struct smtp_tlsa tlsa(X509 *cert, uint8_t usage, uint8_t selector, uint8_t matching)
{
    struct smtp_tlsa t = {.usage = usage, .selector = selector, .matching = matching};
    unsigned char *der = NULL;
    int n =
        selector == 0 ? i2d_X509(cert, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    assert_true(n > 0);
    if (matching == 0) {
        assert_true((size_t)n <= sizeof(t.data));
        memcpy(t.data, der, (size_t)n);
        t.len = (uint16_t)n;
    } else {
        unsigned len = 0;
        EVP_Digest(der, (size_t)n, t.data, &len, matching == 1 ? EVP_sha256() : EVP_sha512(), NULL);
        t.len = (uint16_t)len;
    }
    OPENSSL_free(der);
    return t;
}

static bool match(const struct smtp_tlsa *t, size_t nt, bool with_ca, const unsigned char *leaf,
                  int leaf_len, const char *host, const char **why)
{
    struct smtp_der chain[2] = {{leaf, (size_t)leaf_len}, {ca_der, (size_t)ca_len}};
    return smtp_dane_match(t, nt, chain, with_ca ? 2 : 1, host, why);
}

static void dane_ee(void **state)
{
    (void)state;
    const char *why;
    for (uint8_t sel = 0; sel <= 1; sel++) {
        for (uint8_t m = 0; m <= 2; m++) {
            struct smtp_tlsa t = tlsa(self, 3, sel, m);
            assert_true(smtp_tlsa_usable(&t));
            /* DANE-EE: no name check, no chain: any host name, self-signed */
            assert_true(match(&t, 1, false, self_der, self_len, "other.example", &why));
        }
    }
    /* 3 1 1 of the key: the CA-signed certificate has the same key */
    struct smtp_tlsa t = tlsa(self, 3, 1, 1);
    assert_true(match(&t, 1, true, ee_der, ee_len, "mx1.example.org", &why));
    /* 3 0 1 of the certificate: a different certificate does not match */
    t = tlsa(self, 3, 0, 1);
    assert_false(match(&t, 1, true, ee_der, ee_len, "mx1.example.org", &why));
    assert_string_equal(why, "TLSA mismatch");
}

static void dane_ee_mismatch(void **state)
{
    (void)state;
    const char *why;
    struct smtp_tlsa t = tlsa(self, 3, 1, 1);
    t.data[0] ^= 1;
    assert_false(match(&t, 1, false, self_der, self_len, "mx1.example.org", &why));
    assert_string_equal(why, "TLSA mismatch");
    /* a second record that matches is enough */
    struct smtp_tlsa two[2] = {t, tlsa(self, 3, 1, 2)};
    assert_true(match(two, 2, false, self_der, self_len, "mx1.example.org", &why));
    /* no certificate at all, or garbage */
    assert_false(smtp_dane_match(&t, 1, NULL, 0, "mx1.example.org", &why));
    struct smtp_der junk = {(const unsigned char *)"junk", 4};
    assert_false(smtp_dane_match(&t, 1, &junk, 1, "mx1.example.org", &why));
}

static void dane_ta(void **state)
{
    (void)state;
    const char *why;
    struct smtp_tlsa t = tlsa(ca, 2, 1, 1);
    assert_true(match(&t, 1, true, ee_der, ee_len, "mx1.example.org", &why));
    t = tlsa(ca, 2, 0, 2);
    assert_true(match(&t, 1, true, ee_der, ee_len, "MX1.example.org", &why));
    /* the name is checked for DANE-TA */
    assert_false(match(&t, 1, true, ee_der, ee_len, "mx2.example.org", &why));
    /* the trust anchor must be in the chain the peer sent */
    assert_false(match(&t, 1, false, ee_der, ee_len, "mx1.example.org", &why));
    /* a TA record naming the leaf itself does not make it an anchor */
    t = tlsa(ee, 2, 1, 1);
    assert_false(match(&t, 1, true, ee_der, ee_len, "mx1.example.org", &why));
    /* the CA sent, but the leaf is not signed by it */
    t = tlsa(ca, 2, 1, 1);
    assert_false(match(&t, 1, true, self_der, self_len, "mx1.example.org", &why));
}

static void unusable_records(void **state)
{
    (void)state;
    const char *why;
    struct smtp_tlsa t = tlsa(self, 3, 1, 1);
    t.usage = 1; /* PKIX-EE: not for SMTP (RFC 7672 3.1.3) */
    assert_false(smtp_tlsa_usable(&t));
    assert_false(match(&t, 1, false, self_der, self_len, "mx1.example.org", &why));
    t = tlsa(self, 3, 1, 1);
    t.len = 31; /* a SHA-256 of the wrong size */
    assert_false(smtp_tlsa_usable(&t));
    t = tlsa(self, 3, 1, 1);
    t.selector = 2;
    assert_false(smtp_tlsa_usable(&t));
    t = tlsa(self, 3, 1, 1);
    t.matching = 3;
    assert_false(smtp_tlsa_usable(&t));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dane_ee),
        cmocka_unit_test(dane_ee_mismatch),
        cmocka_unit_test(dane_ta),
        cmocka_unit_test(unusable_records),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
