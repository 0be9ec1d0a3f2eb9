/* TLSA matching (RFC 6698 section 2.1, RFC 7672 section 3): does the
 * certificate chain a server sent satisfy its TLSA records? No I/O: the
 * chain comes in as DER (petrel_conn_tls_peer_cert), so unit tests use
 * fixed certificates. libcrypto parses and hashes; the core's SSL object
 * is never touched. */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "tlspolicy.h"

bool smtp_tlsa_usable(const struct smtp_tlsa *t)
{
    if ((t->usage != 2 && t->usage != 3) || t->selector > 1 || t->len == 0)
        return false;
    switch (t->matching) {
    case 0:
        return true;
    case 1:
        return t->len == 32;
    case 2:
        return t->len == 64;
    }
    return false;
}

/* The selected part of cert (0: the whole certificate, 1: its
 * SubjectPublicKeyInfo) hashed by the matching type, compared. */
static bool cert_matches(const struct smtp_tlsa *t, X509 *cert)
{
    unsigned char *der = NULL;
    int n =
        t->selector == 0 ? i2d_X509(cert, &der) : i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
    if (n <= 0)
        return false;
    bool match = false;
    if (t->matching == 0) {
        match = (size_t)n == t->len && memcmp(der, t->data, t->len) == 0;
    } else {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        const EVP_MD *type = t->matching == 1 ? EVP_sha256() : EVP_sha512();
        if (EVP_Digest(der, (size_t)n, md, &mdlen, type, NULL) == 1)
            match = mdlen == t->len && memcmp(md, t->data, mdlen) == 0;
    }
    OPENSSL_free(der);
    return match;
}

/* DANE-TA: the trust anchor ta (a certificate the peer sent) is the only
 * trusted one; the rest of the chain is untrusted help. PARTIAL_CHAIN
 * lets a non-self-signed anchor end the chain; the name is the MX host
 * (RFC 7672 3.2.2; the dates are checked as usual). */
static bool chain_to(X509 *ee, X509 *ta, STACK_OF(X509) * untrusted, const char *host,
                     const char **why_r)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    bool ok = false;
    if (store != NULL && ctx != NULL && X509_STORE_add_cert(store, ta) == 1 &&
        X509_STORE_CTX_init(ctx, store, ee, untrusted) == 1) {
        X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx);
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (host != NULL && host[0] != '\0')
            X509_VERIFY_PARAM_set1_host(param, host, 0);
        ok = X509_verify_cert(ctx) == 1;
        if (!ok)
            *why_r = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    return ok;
}

bool smtp_dane_match(const struct smtp_tlsa *t, size_t nt, const struct smtp_der *chain,
                     size_t nchain, const char *host, const char **why_r)
{
    X509 *certs[SMTP_CHAIN_MAX] = {NULL};
    size_t n = 0;
    *why_r = "TLSA mismatch";
    for (size_t i = 0; i < nchain && i < SMTP_CHAIN_MAX; i++) {
        const unsigned char *p = chain[i].data;
        X509 *x = d2i_X509(NULL, &p, (long)chain[i].len);
        if (x == NULL)
            break; /* the chain ends at a certificate libcrypto cannot read */
        certs[n++] = x;
    }
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    for (size_t i = 1; i < n && untrusted != NULL; i++)
        sk_X509_push(untrusted, certs[i]);
    bool ok = false;
    for (size_t k = 0; k < nt && n > 0 && !ok; k++) {
        if (!smtp_tlsa_usable(&t[k]))
            continue;
        if (t[k].usage == 3) {
            ok = cert_matches(&t[k], certs[0]);
            continue;
        }
        for (size_t i = 1; i < n && !ok; i++) {
            if (cert_matches(&t[k], certs[i]))
                ok = chain_to(certs[0], certs[i], untrusted, host, why_r);
        }
    }
    if (n == 0)
        *why_r = "no peer certificate";
    sk_X509_free(untrusted); /* the certificates are freed below */
    for (size_t i = 0; i < n; i++)
        X509_free(certs[i]);
    return ok;
}
