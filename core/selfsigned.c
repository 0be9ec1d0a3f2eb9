/* A self-signed certificate so a new instance speaks TLS from the start. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <petrel/mem.h>

#include "cfg_error.h"
#include "selfsigned.h"
#include "tls.h"

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

static X509 *make_cert(EVP_PKEY *key, const char *hostname)
{
    X509 *x = X509_new();
    unsigned char serial[16];
    char san[300];
    if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto fail;
    serial[0] &= 0x7f; /* a positive serial number */
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    bool ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    if (!ok || X509_set_version(x, 2) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 10L * 365 * 86400) == NULL ||
        X509_set_pubkey(x, key) != 1)
        goto fail;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)hostname, -1,
                                   -1, 0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   (const unsigned char *)"Petrel self-signed", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1)
        goto fail;
    if (!petrel_snprintf(san, sizeof(san), "DNS:%s", hostname) ||
        add_ext(x, NID_subject_alt_name, san) < 0 ||
        add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, NID_ext_key_usage, "serverAuth") < 0 || X509_sign(x, key, EVP_sha256()) == 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

static int write_pem(const char *path, mode_t mode, X509 *cert, EVP_PKEY *key)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int ok = cert != NULL ? PEM_write_X509(f, cert)
                          : PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        ok = 0;
    return fclose(f) == 0 && ok == 1 ? 0 : -1;
}

int petrel_selfsigned_write(const char *hostname, const char *cert_path, const char *key_path,
                            const char **error_r)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key != NULL ? make_cert(key, hostname) : NULL;
    int ret = -1;
    if (cert == NULL)
        *error_r = petrel_cfg_error("cannot make a certificate: %s", petrel_tls_error());
    else if (write_pem(key_path, 0600, NULL, key) < 0)
        *error_r = petrel_cfg_error("cannot write %s", key_path);
    else if (write_pem(cert_path, 0644, cert, NULL) < 0)
        *error_r = petrel_cfg_error("cannot write %s", cert_path);
    else
        ret = 0;
    X509_free(cert);
    EVP_PKEY_free(key);
    return ret;
}
